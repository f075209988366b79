//! The end-to-end sandbox: one node's pods as real network namespaces (eth0 Calico-like with
//! a default route via 169.254.1.1, eth1 in 10.244.0.0/16 behind a bridge 10.244.0.1 in a
//! host namespace), their CNI cache files, their logical switch ports in a real NB
//! (ovsdb-server with the OVN schema, `ovn_cluster_router` with the join port
//! 100.64.0.1/16), and the input directory the file source reads (one world file, one file
//! per Route). The Kubernetes source gets the same objects from `kube.rs`.
//!
//! Shape (issue 17): 40 Routes of 45 rules (every fifth rule on eth0, the others on eth1),
//! each with a reroute next hop. Route r0 selects every other pod; every pod is also
//! selected by 4 to 6 of the 39 others, so a pod carries 180-315 routes (about 250 on
//! average) and an edit of one rule of r0 changes one route in half the pods.
//!
//! Namespaces are created in bulk (`ip -batch`), each pod configured with one
//! `ip -n NS -batch`, and every namespace this sandbox created is deleted on Drop (by name,
//! recorded as created; nothing else is touched).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::common::{Listen, NB, Server, row};
use ovnkube_route::ovsdb::{Atom, Client, ClientConfig, Condition, Mutation, Operation, Value};

pub const ROUTES: usize = 40;
pub const RULES: usize = 45;
/// The Route the edits change (rule 0): it selects every other pod.
pub const EDITED: usize = 0;

/// Runs `ip` with a batch on stdin.
pub fn ip_batch(netns: Option<&str>, lines: &str) {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("ip");
    assert!(
        out.status.success(),
        "ip -batch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: a fixed, well-spread choice per pod.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The Routes selecting pod `i`: r0 for even pods, and 4 to 6 distinct others.
pub fn selected(i: usize) -> Vec<usize> {
    let k = 4 + (mix(i as u64) % 3) as usize;
    let s = (mix(i as u64 ^ 0xabcd) % (ROUTES as u64 - 1)) as usize;
    // 7 is coprime with 39, so the picks are distinct.
    let mut v: Vec<usize> = (0..k).map(|t| 1 + (s + 7 * t) % (ROUTES - 1)).collect();
    if i.is_multiple_of(2) {
        v.push(EDITED);
    }
    v.sort_unstable();
    v
}

/// Rule `k` of Route `j`; a non-zero `variant` moves rule 0 elsewhere (the edits).
pub fn rule_dst(j: usize, k: usize, variant: usize) -> String {
    if k == 0 && variant > 0 {
        return format!("172.31.{}.0/24", variant % 256);
    }
    let n = j * RULES + k;
    format!("10.{}.{}.0/24", 100 + n / 256, n % 256)
}

pub fn rule_dev(k: usize) -> &'static str {
    if k % 5 == 4 { "eth0" } else { "eth1" }
}

/// One pod of the sandbox.
#[derive(Clone, Debug)]
pub struct Pod {
    pub i: usize,
    pub namespace: String,
    pub name: String,
    pub netns: String,
    pub ovn_ip: String,
    pub calico_ip: String,
}

impl Pod {
    pub fn new(prefix: &str, i: usize) -> Pod {
        let (a, b) = (i / 250 + 1, i % 250 + 2);
        Pod {
            i,
            namespace: format!("ns-{}", i / 100),
            name: format!("pod-{i}"),
            netns: format!("{prefix}p{i}"),
            ovn_ip: format!("10.244.{a}.{b}"),
            calico_ip: format!("192.168.{a}.{b}"),
        }
    }

    /// The uid the file source gives it (the API server assigns its own).
    pub fn file_uid(&self) -> String {
        format!("00000000-0000-4000-8000-{:012}", self.i)
    }

    pub fn lsp(&self) -> String {
        format!("{}_{}", self.namespace, self.name)
    }

    /// The pod object, labelled for the Routes in `routes`, Running or Pending.
    pub fn document(
        &self,
        uid: Option<&str>,
        routes: &[usize],
        running: bool,
    ) -> serde_json::Value {
        let networks = json!({"default": {"ip_addresses": [format!("{}/16", self.ovn_ip)],
            "mac_address": "0a:58:0a:f4:00:02", "gateway_ips": ["10.244.0.1"]}});
        let labels: serde_json::Map<String, serde_json::Value> = routes
            .iter()
            .map(|j| (format!("r{j}"), json!("y")))
            .collect();
        let mut doc = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace,
                "labels": labels,
                "annotations": {"k8s.ovn.org/pod-networks": networks.to_string()}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}});
        if let Some(uid) = uid {
            doc["metadata"]["uid"] = json!(uid);
        }
        doc["status"] = if running {
            json!({"phase": "Running", "podIP": self.calico_ip,
                "podIPs": [{"ip": self.calico_ip}]})
        } else {
            json!({"phase": "Pending"})
        };
        doc
    }
}

/// Route `j` (`variant`: see [`rule_dst`]).
pub fn route_doc(j: usize, variant: usize) -> serde_json::Value {
    let rules: Vec<_> = (0..RULES)
        .map(|k| json!({"dst": rule_dst(j, k, variant), "dev": rule_dev(k)}))
        .collect();
    json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": format!("r{j}")},
        "spec": {"podSelector": {"matchLabels": {format!("r{j}"): "y"}}, "route": rules,
            "ovn": {"nextHops": ["100.64.0.2"]}}})
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub host: String,
    pub pods: Vec<Pod>,
    pub nb: Server,
    created: Vec<String>,
}

impl Sandbox {
    pub fn input(&self) -> PathBuf {
        self.dir.path().join("input")
    }
    pub fn cni(&self) -> PathBuf {
        self.dir.path().join("cni")
    }

    /// Builds the pods' namespaces and the NB with their ports; no Route, no CNI file yet.
    pub async fn new(n: usize, tag: &str) -> Sandbox {
        let prefix = format!("e2e{tag}{}-", std::process::id() % 100_000);
        let dir = tempfile::Builder::new()
            .prefix("ovnkr-e2e")
            .tempdir()
            .expect("tmp");
        for d in ["input", "cni", "nb"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let pods: Vec<Pod> = (0..n).map(|i| Pod::new(&prefix, i)).collect();
        let nb = Server::create(
            &dir.path().join("nb"),
            "nb",
            &super::common::schema(),
            Listen::Unix,
        );
        let mut sb = Sandbox {
            host: format!("{prefix}host"),
            dir,
            prefix,
            pods,
            nb,
            created: Vec::new(),
        };
        sb.namespaces();
        sb.topology().await;
        sb
    }

    /// Every namespace in one batch, then the host side in one batch, then each pod.
    fn namespaces(&mut self) {
        let mut adds = format!("netns add {}\n", self.host);
        for p in &self.pods {
            adds.push_str(&format!("netns add {}\n", p.netns));
        }
        // Recorded before they exist: Drop removes whatever of these was made.
        self.created.push(self.host.clone());
        self.created
            .extend(self.pods.iter().map(|p| p.netns.clone()));
        ip_batch(None, &adds);
        let mut host = String::from(
            "link add br-ovn type bridge\naddr add 10.244.0.1/16 dev br-ovn\nlink set br-ovn up\nlink set lo up\n",
        );
        for p in &self.pods {
            host.push_str(&self.host_side(p));
        }
        ip_batch(Some(&self.host), &host);
        std::thread::scope(|s| {
            for w in 0..2 {
                let sb = &*self;
                s.spawn(move || {
                    for p in sb.pods.iter().skip(w).step_by(2) {
                        sb.configure(p);
                    }
                });
            }
        });
    }

    fn host_side(&self, p: &Pod) -> String {
        const BRIDGE_PORTS: usize = 1000;
        format!(
            "link add c{i} type veth peer name eth0 netns {ns}\nlink set c{i} up\nlink add o{i} type veth peer name eth1 netns {ns}\nlink set o{i} {master}up\n",
            i = p.i,
            ns = p.netns,
            // A Linux bridge takes at most 1,024 ports ("Exchange full"); routes only need
            // eth1 up with its address, so pods past that are left unbridged.
            master = if p.i < BRIDGE_PORTS {
                "master br-ovn "
            } else {
                ""
            },
        )
    }

    fn configure(&self, p: &Pod) {
        ip_batch(
            Some(&p.netns),
            &format!(
                "link set lo up\naddr add {c}/32 dev eth0\nlink set eth0 up\nroute add 169.254.1.1 dev eth0 scope link\nroute add default via 169.254.1.1 dev eth0\naddr add {o}/16 dev eth1\nlink set eth1 up\n",
                c = p.calico_ip,
                o = p.ovn_ip
            ),
        );
    }

    fn cni_path(&self, p: &Pod) -> PathBuf {
        self.cni().join(format!("cni-loopback-{:064x}-lo", p.i + 1))
    }

    /// kubelet's loopback CNI cache entry pointing at the pod's namespace, written whole
    /// (temp file, rename) as libcni does.
    pub fn cni_file(&self, p: &Pod, uid: &str) {
        let cid = format!("{:064x}", p.i + 1);
        let lo = json!({
            "kind": "cniCacheV1", "containerId": cid, "ifName": "lo", "networkName": "cni-loopback",
            "cniArgs": [["K8S_POD_NAMESPACE", p.namespace], ["K8S_POD_NAME", p.name],
                        ["K8S_POD_INFRA_CONTAINER_ID", cid], ["K8S_POD_UID", uid]],
            "result": {"cniVersion": "0.3.1", "interfaces": [{"name": "lo",
                "sandbox": format!("/var/run/netns/{}", p.netns)}], "ips": []}
        });
        let tmp = self.cni().join(format!(".{cid}.tmp"));
        std::fs::write(&tmp, lo.to_string()).expect("cni file");
        std::fs::rename(&tmp, self.cni_path(p)).expect("cni file");
    }

    /// Every CNI cache file gone (between the sources: the uids differ).
    pub fn clear_cni(&self) {
        for e in std::fs::read_dir(self.cni()).expect("cni dir").flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }

    /// One more pod (the "new pod" figures): its namespace, veths and logical switch port.
    pub async fn add_pod(&mut self) -> Pod {
        let p = Pod::new(&self.prefix, self.pods.len());
        self.created.push(p.netns.clone());
        ip_batch(None, &format!("netns add {}\n", p.netns));
        ip_batch(Some(&self.host), &self.host_side(&p));
        self.configure(&p);
        // A switch port is not a root row: inserted and attached in one transaction.
        self.transact(vec![
            Operation::insert_named("Logical_Switch_Port", row([("name", p.lsp().into())]), "p"),
            Operation::mutate(
                "Logical_Switch",
                vec![Condition::eq("name", "node1")],
                vec![Mutation::insert(
                    "ports",
                    Value::set([Atom::NamedUuid("p".into())]),
                )],
            ),
        ])
        .await;
        self.pods.push(p.clone());
        p
    }

    /// The namespaces of pods added for a previous source, gone (the next source adds its
    /// own): their switch ports stay, unused.
    pub fn drop_added(&mut self, keep: usize) {
        let gone: Vec<Pod> = self.pods.drain(keep..).collect();
        let lines: String = gone
            .iter()
            .map(|p| format!("netns del {}\n", p.netns))
            .collect();
        if !lines.is_empty() {
            ip_batch(None, &lines);
        }
    }

    pub fn config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new(vec![self.nb.unix()], NB);
        cfg.probe_interval = None;
        cfg
    }

    async fn transact(&self, ops: Vec<Operation>) {
        let c = Client::connect(self.config()).await.expect("NB");
        c.transact(NB, &ops).await.expect("NB transaction");
        c.close();
    }

    /// The ovn-kubernetes topology our rows refer to: the router with its join port, one
    /// switch with a port per pod.
    async fn topology(&self) {
        let mut ops = vec![
            Operation::insert_named(
                "Logical_Router_Port",
                row([
                    ("name", "rtoj-ovn_cluster_router".into()),
                    ("mac", "0a:58:64:40:00:01".into()),
                    ("networks", Value::set([Atom::string("100.64.0.1/16")])),
                ]),
                "join",
            ),
            Operation::insert(
                "Logical_Router",
                row([
                    ("name", "ovn_cluster_router".into()),
                    ("ports", Value::set([Atom::NamedUuid("join".into())])),
                ]),
            ),
        ];
        for p in &self.pods {
            ops.push(Operation::insert_named(
                "Logical_Switch_Port",
                row([("name", p.lsp().into())]),
                format!("p{}", p.i),
            ));
        }
        ops.push(Operation::insert(
            "Logical_Switch",
            row([
                ("name", "node1".into()),
                (
                    "ports",
                    Value::set(
                        self.pods
                            .iter()
                            .map(|p| Atom::NamedUuid(format!("p{}", p.i))),
                    ),
                ),
            ]),
        ));
        self.transact(ops).await;
    }

    /// A fresh NB: the server restarted on a new database with the same topology.
    pub async fn fresh_nb(&mut self, tag: &str) {
        let d = self.dir.path().join(format!("nb-{tag}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        self.nb = Server::create(&d, "nb", &super::common::schema(), Listen::Unix);
        self.topology().await;
    }

    /// The world file: namespaces and pods (`labels(i)`: the Routes pod i is labelled for).
    pub fn write_world(&self, pods: &[&Pod], labels: impl Fn(usize) -> Vec<usize>) {
        let mut docs = Vec::new();
        let mut nss: Vec<&str> = pods.iter().map(|p| p.namespace.as_str()).collect();
        nss.dedup();
        for ns in nss {
            docs.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        for p in pods {
            docs.push(p.document(Some(&p.file_uid()), &labels(p.i), true));
        }
        write_docs(&self.input().join("world.yaml"), &docs);
    }

    pub fn write_route(&self, j: usize, variant: usize) {
        write_docs(
            &self.input().join(format!("route-{j}.yaml")),
            &[route_doc(j, variant)],
        );
    }

    pub fn netns_path(&self, p: &Pod) -> PathBuf {
        Path::new("/var/run/netns").join(&p.netns)
    }

    /// Gives every namespace in `pods` an id in the host namespace (as `ip netns set NAME
    /// auto`), so the probe's listener hears it; returns (id, pod index) pairs.
    pub fn nsids(&self, pods: &[&Pod]) -> Vec<(i32, usize)> {
        let lines: String = pods
            .iter()
            .map(|p| format!("netns set {} auto\n", p.netns))
            .collect();
        ip_batch(None, &lines);
        let out = Command::new("ip")
            .args(["-j", "netns", "list"])
            .output()
            .expect("ip netns list");
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j");
        let ids: std::collections::HashMap<&str, i32> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["name"].as_str()?, e["id"].as_i64()? as i32)))
            .collect();
        pods.iter()
            .map(|p| (*ids.get(p.netns.as_str()).expect("an id"), p.i))
            .collect()
    }
}

/// YAML documents (JSON is YAML), written to a temp file and renamed so a reader never
/// sees half a file.
pub fn write_docs(path: &Path, docs: &[serde_json::Value]) {
    let mut text = String::new();
    for d in docs {
        text.push_str("---\n");
        text.push_str(&d.to_string());
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let lines: String = self
            .created
            .iter()
            .rev()
            .filter(|ns| Path::new("/var/run/netns").join(ns).exists())
            .map(|ns| format!("netns del {ns}\n"))
            .collect();
        if !lines.is_empty() {
            let _ = Command::new("ip")
                .args(["-force", "-batch", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .and_then(|mut c| {
                    if let Some(mut i) = c.stdin.take() {
                        let _ = i.write_all(lines.as_bytes());
                    }
                    c.wait()
                });
        }
    }
}
