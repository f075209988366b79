//! How the benchmark changes the cluster: through the Kubernetes API test server, or by
//! rewriting the one input file that holds the object. Each change is prepared first (files
//! serialized, a Service deleted and its ACL seen gone) and then committed by one call, so
//! the clock runs from the commit only.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::kube_api::ApiServer;
use super::nb::{Conn, Wait};
use super::world::{self, GROUP, NS_PODS, Spec};

/// One change to the cluster.
#[derive(Clone, Debug)]
pub enum Change {
    /// Route `i` gets these destinations.
    Edit(usize, Vec<String>),
    /// Pod `p` moves to label group `g`.
    Relabel(usize, usize),
    /// Pod `x<k>` appears in group `g` with this OVN address.
    Add(usize, usize, Ipv4Addr),
    /// Pod `x<k>` of group `g` goes away.
    Delete(usize, usize),
    /// Route `i`'s Service gets this ClusterIP.
    ServiceIp(usize, Ipv4Addr),
    /// Namespace `n` gets label `team=t<t>`.
    Team(usize, usize),
}

pub type Commit<'a> = Box<dyn FnOnce() + 'a>;

pub trait Source {
    /// Prepares `c` (nothing visible yet) and returns what makes it visible.
    fn prepare<'a>(&'a mut self, c: &Change, nb: &mut Conn) -> Commit<'a>;
}

/// What has changed from the generated cluster so far.
#[derive(Default)]
pub struct Edits {
    pub routes: BTreeMap<usize, Vec<String>>,
    pub groups: BTreeMap<usize, usize>,
    pub extra: BTreeMap<usize, (usize, Ipv4Addr)>,
    pub service_ips: BTreeMap<usize, Ipv4Addr>,
    pub teams: BTreeMap<usize, usize>,
}

pub fn extra_name(k: usize) -> String {
    format!("x{k}")
}

/// The API server as a source.
pub struct Kube {
    pub api: Arc<ApiServer>,
    pub spec: Spec,
}

impl Kube {
    fn pod_ref(&self, p_ns: usize, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": world::ns_of(p_ns)}})
    }
}

impl Source for Kube {
    fn prepare<'a>(&'a mut self, c: &Change, nb: &mut Conn) -> Commit<'a> {
        let api = self.api.clone();
        let spec = self.spec;
        match c.clone() {
            Change::Edit(i, dsts) => Box::new(move || {
                let rules: Vec<Value> = dsts
                    .iter()
                    .map(|d| json!({"dst": d, "dev": "eth1"}))
                    .collect();
                let r = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": world::route_name(i)}});
                api.merge(&r, json!({"spec": {"route": rules}})).unwrap();
            }),
            Change::Relabel(p, g) => {
                let obj = self.pod_ref(p, &world::pod_name(p));
                Box::new(move || {
                    api.merge(
                        &obj,
                        json!({"metadata": {"labels": {"app": format!("a{g}")}}}),
                    )
                    .unwrap();
                })
            }
            Change::Add(k, g, ip) => {
                let p = g * GROUP;
                super::nb::add_lsp(
                    nb,
                    &world::node_of(&spec, p),
                    &format!("{}_{}", world::ns_of(p), extra_name(k)),
                    ip,
                );
                let pod = world::pod(&spec, p, &extra_name(k), g, ip);
                let status = world::pod_status(p, ip);
                Box::new(move || {
                    let stored = api.create(pod).unwrap();
                    api.set_status(&stored, status).unwrap();
                })
            }
            Change::Delete(k, g) => {
                let obj = self.pod_ref(g * GROUP, &extra_name(k));
                Box::new(move || api.delete(&obj).unwrap())
            }
            Change::ServiceIp(i, ip) => {
                // A ClusterIP cannot change in place: the Service is deleted (and its ACL seen
                // gone) before the clock starts, then created with the new address.
                let old = world::service(i, world::cluster_ip(i));
                api.delete(&old).unwrap();
                let id = nb.start_wait(
                    &[Wait::Gone(
                        "ACL",
                        "match",
                        world::acl_match(i, world::cluster_ip(i)),
                    )],
                    std::time::Duration::from_secs(120),
                );
                assert!(nb.waited(id), "the ACL of a deleted Service stayed");
                Box::new(move || {
                    api.create(world::service(i, ip)).unwrap();
                })
            }
            Change::Team(n, t) => Box::new(move || {
                let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n}")}});
                api.merge(
                    &obj,
                    json!({"metadata": {"labels": {"team": format!("t{t}")}}}),
                )
                .unwrap();
            }),
        }
    }
}

/// The input files as a source.
pub struct Files {
    pub spec: Spec,
    pub world: PathBuf,
    pub routes: PathBuf,
    pub edits: Edits,
}

impl Files {
    /// Every object of namespace `n` as the edits so far make it.
    fn namespace_docs(&self, n: usize) -> Vec<Value> {
        let spec = &self.spec;
        let e = &self.edits;
        let team = e.teams.get(&n).copied().unwrap_or(n);
        let mut docs = vec![world::namespace(n, team)];
        let groups = n * NS_PODS / GROUP..((n + 1) * NS_PODS / GROUP).min(spec.routes());
        docs.extend(groups.clone().map(world::replica_set));
        for i in groups.filter(|i| Spec::has_service(*i)) {
            let ip = e
                .service_ips
                .get(&i)
                .copied()
                .unwrap_or_else(|| world::cluster_ip(i));
            docs.push(world::service(i, ip));
        }
        for p in n * NS_PODS..((n + 1) * NS_PODS).min(spec.pods) {
            let g = e.groups.get(&p).copied().unwrap_or(p / GROUP);
            let mut v = world::pod(spec, p, &world::pod_name(p), g, world::ovn_ip(p));
            v["status"] = world::pod_status(p, world::ovn_ip(p));
            docs.push(v);
        }
        for (k, (g, ip)) in &e.extra {
            let p = g * GROUP;
            if p / NS_PODS == n {
                let mut v = world::pod(spec, p, &extra_name(*k), *g, *ip);
                v["status"] = world::pod_status(p, *ip);
                docs.push(v);
            }
        }
        docs
    }

    fn stage(&self, path: &Path, docs: &[Value]) -> Commit<'static> {
        let tmp = stage(path, docs);
        let path = path.to_path_buf();
        Box::new(move || std::fs::rename(&tmp, &path).unwrap())
    }
}

/// Writes `docs` beside `path` (hidden, so the loader never reads it); the rename is the
/// commit.
pub fn stage(path: &Path, docs: &[Value]) -> PathBuf {
    let mut text = String::new();
    for d in docs {
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(d).unwrap());
    }
    let name = path.file_name().unwrap().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    tmp
}

impl Source for Files {
    fn prepare<'a>(&'a mut self, c: &Change, nb: &mut Conn) -> Commit<'a> {
        let spec = self.spec;
        let ns_file = |n: usize, f: &Files| {
            let docs = f.namespace_docs(n);
            f.stage(&world::namespace_file(&f.world, n), &docs)
        };
        match c.clone() {
            Change::Edit(i, dsts) => {
                self.edits.routes.insert(i, dsts);
                let k = i / world::ROUTES_PER_FILE;
                let docs: Vec<Value> = (k * world::ROUTES_PER_FILE
                    ..((k + 1) * world::ROUTES_PER_FILE).min(spec.routes()))
                    .map(|r| world::route(&spec, r, self.edits.routes.get(&r).map(Vec::as_slice)))
                    .collect();
                self.stage(&world::routes_file(&self.routes, k), &docs)
            }
            Change::Relabel(p, g) => {
                self.edits.groups.insert(p, g);
                ns_file(p / NS_PODS, self)
            }
            Change::Add(k, g, ip) => {
                let p = g * GROUP;
                super::nb::add_lsp(
                    nb,
                    &world::node_of(&spec, p),
                    &format!("{}_{}", world::ns_of(p), extra_name(k)),
                    ip,
                );
                self.edits.extra.insert(k, (g, ip));
                ns_file(p / NS_PODS, self)
            }
            Change::Delete(k, g) => {
                self.edits.extra.remove(&k);
                ns_file(g * GROUP / NS_PODS, self)
            }
            Change::ServiceIp(i, ip) => {
                self.edits.service_ips.insert(i, ip);
                ns_file(i * GROUP / NS_PODS, self)
            }
            Change::Team(n, t) => {
                self.edits.teams.insert(n, t);
                ns_file(n, self)
            }
        }
    }
}
