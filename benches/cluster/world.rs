//! The benchmark's cluster, generated from one number (pods): who is where, what each Route
//! selects, and every object as the Kubernetes API server and the input files hold it.
//!
//! Shape at 50,000 pods: 500 nodes x 100 pods, 100 namespaces of 500 pods, 5,000 groups of
//! 10 pods (one Deployment each, label `app=a<g>`, spread over 10 nodes), 5,000 Routes:
//! - Route `r<i>` with `i % 10 == 0` targets Deployment `d<i>` (owner references through the
//!   ReplicaSet), `i % 50 == 1` selects namespace `team=t<i/50>` (500 pods), the others
//!   `podSelector app=a<i>` (10 pods);
//! - 4 rules each, /32 destinations of their own over eth1, ECMP next hops 100.64.0.2 and
//!   100.64.0.3 (reroute policies);
//! - `i % 5 == 2` also sends its own Service `s<i>` over eth0 with `ovn.enforce`: an ACL on
//!   the Service's ClusterIP.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{Value, json};

/// Pods per namespace and per group.
pub const NS_PODS: usize = 500;
pub const GROUP: usize = 10;
pub const RULES: usize = 4;
pub const HOPS: [&str; 2] = ["100.64.0.2", "100.64.0.3"];

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub pods: usize,
}

/// How a Route selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    Deployment,
    Namespace,
    Label,
}

impl Spec {
    pub fn nodes(&self) -> usize {
        (self.pods / 100).max(1)
    }
    pub fn namespaces(&self) -> usize {
        (self.pods / NS_PODS).max(1)
    }
    pub fn routes(&self) -> usize {
        self.pods / GROUP
    }
    pub fn select(i: usize) -> Select {
        if i.is_multiple_of(10) {
            Select::Deployment
        } else if i % 50 == 1 {
            Select::Namespace
        } else {
            Select::Label
        }
    }
    pub fn has_service(i: usize) -> bool {
        i % 5 == 2
    }
    /// The pods Route `i` selects.
    pub fn members(&self, i: usize) -> std::ops::Range<usize> {
        match Self::select(i) {
            Select::Namespace => {
                let ns = (i / 50) % self.namespaces();
                ns * NS_PODS..(ns + 1) * NS_PODS
            }
            _ => i * GROUP..(i + 1) * GROUP,
        }
    }
    /// Address-set members over every Route, when converged.
    pub fn total_members(&self) -> usize {
        (0..self.routes()).map(|i| self.members(i).len()).sum()
    }
    /// (address sets, port groups, policies, ACLs) when converged.
    pub fn rows(&self) -> (usize, usize, usize, usize) {
        let r = self.routes();
        let acls = (0..r).filter(|i| Self::has_service(*i)).count();
        (2 * r, r, RULES * r, acls)
    }
}

pub fn ns_of(p: usize) -> String {
    format!("ns-{}", p / NS_PODS)
}
pub fn pod_name(p: usize) -> String {
    format!("p{p}")
}
pub fn node_of(spec: &Spec, p: usize) -> String {
    format!("node-{}", p % spec.nodes())
}
pub fn lsp(p: usize) -> String {
    format!("{}_{}", ns_of(p), pod_name(p))
}
fn v4(base: [u8; 4], n: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + n as u32)
}
/// The pod's OVN address (pods added during the run use 10.131.x.y).
pub fn ovn_ip(p: usize) -> Ipv4Addr {
    v4([10, 128, 0, 2], p)
}
pub fn mac(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}
/// Destination of rule `j` of Route `i`.
pub fn dst(i: usize, j: usize) -> String {
    format!("{}/32", v4([172, 16, 0, 0], i * RULES + j))
}
/// A destination no Route has yet (edits).
pub fn fresh_dst(k: usize) -> String {
    format!("{}/32", v4([172, 24, 0, 0], k))
}
pub fn cluster_ip(i: usize) -> Ipv4Addr {
    v4([10, 96, 0, 10], i)
}
pub fn route_name(i: usize) -> String {
    format!("r{i}")
}
pub fn address_set(i: usize) -> String {
    format!("ovnkube_route_r{i}_v4")
}
pub fn port_group(i: usize) -> String {
    format!("ovnkube_route_r{i}")
}
pub fn policy_match(i: usize, dst: &str) -> String {
    format!("ip4.src == ${} && ip4.dst == {dst}", address_set(i))
}
pub fn acl_match(i: usize, ip: Ipv4Addr) -> String {
    format!("inport == @{} && ip4.dst == {ip}/32", port_group(i))
}

pub fn namespace(n: usize, team: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": format!("ns-{n}"), "labels": {"team": format!("t{team}"),
            "kubernetes.io/metadata.name": format!("ns-{n}")}}})
}

pub fn replica_set(g: usize) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("d{g}-5d9f7c"), "namespace": ns_of(g * GROUP),
            "labels": {"app": format!("a{g}"), "pod-template-hash": "5d9f7c"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("d{g}"),
                "uid": format!("uid-d{g}"), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": GROUP, "selector": {"matchLabels": {"app": format!("a{g}")}},
            "template": {"metadata": {"labels": {"app": format!("a{g}")}},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.2.3"}]}}}})
}

pub fn service(i: usize, ip: Ipv4Addr) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("s{i}"), "namespace": ns_of(i * GROUP)},
        "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()], "type": "ClusterIP",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": format!("a{i}")}}})
}

/// Pod `p` of group `group` (its label), without status (see [`pod_status`]).
pub fn pod(spec: &Spec, p: usize, name: &str, group: usize, ip: Ipv4Addr) -> Value {
    let g = p / GROUP;
    let pn = format!(
        "{{\"default\":{{\"ip_addresses\":[\"{ip}/14\"],\"mac_address\":\"{}\",\"gateway_ips\":[\"10.128.0.1\"],\"ip_address\":\"{ip}/14\",\"gateway_ip\":\"10.128.0.1\"}}}}",
        mac(ip)
    );
    let calico = v4([192, 168, 0, 0], p);
    let ns_status = format!(
        "[{{\"name\":\"k8s-pod-network\",\"interface\":\"eth0\",\"ips\":[\"{calico}\"],\"default\":true,\"dns\":{{}}}},{{\"name\":\"ovn-kubernetes\",\"interface\":\"eth1\",\"ips\":[\"{ip}\"],\"mac\":\"{}\",\"dns\":{{}},\"gateway\":[\"10.128.0.1\"]}}]",
        mac(ip)
    );
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns_of(p),
            "labels": {"app": format!("a{group}"), "pod-template-hash": "5d9f7c", "tier": format!("t{}", p % 4)},
            "annotations": {"k8s.ovn.org/pod-networks": pn, "k8s.v1.cni.cncf.io/network-status": ns_status,
                "cni.projectcalico.org/podIP": format!("{calico}/32")},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("d{g}-5d9f7c"),
                "uid": format!("uid-rs{g}"), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": node_of(spec, p), "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "app", "image": "registry.example.com/app:1.2.3",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "production"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]}],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]}})
}

pub fn pod_status(p: usize, ip: Ipv4Addr) -> Value {
    let calico = v4([192, 168, 0, 0], p);
    let _ = ip;
    json!({"phase": "Running", "podIP": calico.to_string(), "podIPs": [{"ip": calico.to_string()}],
        "hostIP": "10.0.0.1", "startTime": "2026-01-01T00:00:00Z", "qosClass": "Burstable",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "started": true,
            "image": "registry.example.com/app:1.2.3", "imageID": "registry.example.com/app@sha256:0123456789abcdef",
            "containerID": format!("containerd://{p:064x}"),
            "state": {"running": {"startedAt": "2026-01-01T00:00:04Z"}}}]})
}

/// Pod `p` with its status, as a file holds it.
pub fn pod_with_status(spec: &Spec, p: usize) -> Value {
    let mut v = pod(spec, p, &pod_name(p), p / GROUP, ovn_ip(p));
    v["status"] = pod_status(p, ovn_ip(p));
    v
}

/// Route `i`; `dsts` overrides its destinations (edits).
pub fn route(spec: &Spec, i: usize, dsts: Option<&[String]>) -> Value {
    let rules: Vec<Value> = (0..RULES)
        .map(|j| {
            let d = dsts.map_or_else(|| dst(i, j), |d| d[j].clone());
            json!({"dst": d, "dev": "eth1"})
        })
        .collect();
    let mut s = json!({"route": rules, "ovn": {"nextHops": HOPS}});
    match Spec::select(i) {
        Select::Deployment => {
            s["targets"] = json!([{"kind": "Deployment", "namespace": ns_of(i * GROUP), "name": format!("d{i}")}]);
        }
        Select::Namespace => {
            let team = (i / 50) % spec.namespaces();
            s["namespaceSelector"] = json!({"matchLabels": {"team": format!("t{team}")}});
        }
        Select::Label => s["podSelector"] = json!({"matchLabels": {"app": format!("a{i}")}}),
    }
    if Spec::has_service(i) {
        s["svc"] = json!([{"namespace": ns_of(i * GROUP), "name": format!("s{i}"), "dev": "eth0"}]);
        s["ovn"]["enforce"] = json!(true);
    }
    json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": route_name(i)}, "spec": s})
}

/// Every object of namespace `n` (the namespace, its ReplicaSets, Services and pods).
pub fn namespace_objects(spec: &Spec, n: usize, team: usize) -> Vec<Value> {
    let mut out = vec![namespace(n, team)];
    let groups = n * NS_PODS / GROUP..((n + 1) * NS_PODS / GROUP).min(spec.routes());
    for g in groups.clone() {
        out.push(replica_set(g));
    }
    for i in groups {
        if Spec::has_service(i) {
            out.push(service(i, cluster_ip(i)));
        }
    }
    for p in n * NS_PODS..((n + 1) * NS_PODS).min(spec.pods) {
        out.push(pod_with_status(spec, p));
    }
    out
}

/// Routes per input file.
pub const ROUTES_PER_FILE: usize = 50;

pub fn routes_file(dir: &Path, k: usize) -> std::path::PathBuf {
    dir.join(format!("routes-{k:03}.yaml"))
}
pub fn namespace_file(dir: &Path, n: usize) -> std::path::PathBuf {
    dir.join(format!("ns-{n:03}.yaml"))
}

/// Writes `docs` as one YAML stream, atomically (temp file + rename, as editors and
/// ConfigMap updates do).
pub fn write_yaml(path: &Path, docs: &[Value]) {
    let mut text = String::new();
    for d in docs {
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(d).unwrap());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The whole cluster as files: `world/ns-NNN.yaml` per namespace, `routes/routes-NNN.yaml`
/// per 50 Routes. Returns the bytes written.
pub fn write_files(
    spec: &Spec,
    world: &Path,
    routes: &Path,
    edits: &BTreeMap<usize, Vec<String>>,
) -> u64 {
    std::fs::create_dir_all(world).unwrap();
    std::fs::create_dir_all(routes).unwrap();
    for n in 0..spec.namespaces() {
        write_yaml(&namespace_file(world, n), &namespace_objects(spec, n, n));
    }
    for k in 0..spec.routes().div_ceil(ROUTES_PER_FILE) {
        write_routes_file(spec, routes, k, edits);
    }
    dir_bytes(world) + dir_bytes(routes)
}

pub fn write_routes_file(spec: &Spec, dir: &Path, k: usize, edits: &BTreeMap<usize, Vec<String>>) {
    let docs: Vec<Value> = (k * ROUTES_PER_FILE..((k + 1) * ROUTES_PER_FILE).min(spec.routes()))
        .map(|i| route(spec, i, edits.get(&i).map(Vec::as_slice)))
        .collect();
    write_yaml(&routes_file(dir, k), &docs);
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
