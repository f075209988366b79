//! The end-to-end sandbox: N pods of node1 as real network namespaces (eth0 and eth1
//! veths, eth1 in 10.244.0.0/16 behind a bridge 10.244.0.1 in a host namespace), their CNI
//! cache files, their logical switch ports in a real NB (ovsdb-server with the OVN schema,
//! `ovn_cluster_router` with the join port 100.64.0.1/16), and the input directory the
//! controller's file source reads (one world file, one file per Route).
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

/// Rules per Route, and so routes per pod.
pub const RULES: usize = 20;
/// Pods per Route.
pub const PODS_PER_ROUTE: usize = 20;

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

/// One pod of the sandbox.
#[derive(Clone, Debug)]
pub struct Pod {
    pub i: usize,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub netns: String,
    pub ovn_ip: String,
    pub calico_ip: String,
    /// The Route selecting it (`app=g-<group>`).
    pub group: usize,
}

impl Pod {
    pub fn new(prefix: &str, i: usize, groups: usize) -> Pod {
        let (a, b) = (i / 250 + 1, i % 250 + 2);
        Pod {
            i,
            namespace: format!("ns-{}", i / 100),
            name: format!("pod-{i}"),
            uid: format!("00000000-0000-4000-8000-{i:012}"),
            netns: format!("{prefix}p{i}"),
            ovn_ip: format!("10.244.{a}.{b}"),
            calico_ip: format!("192.168.{a}.{b}"),
            group: i % groups,
        }
    }

    pub fn lsp(&self) -> String {
        format!("{}_{}", self.namespace, self.name)
    }

    /// The world document of this pod, labelled for `group`.
    pub fn document(&self, group: usize) -> serde_json::Value {
        let networks = json!({"default": {"ip_addresses": [format!("{}/16", self.ovn_ip)],
            "mac_address": "0a:58:0a:f4:00:02", "gateway_ips": ["10.244.0.1"]}});
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid,
                "labels": {"app": format!("g-{group}")},
                "annotations": {"k8s.ovn.org/pod-networks": networks.to_string()}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "podIP": self.calico_ip,
                "podIPs": [{"ip": self.calico_ip}]}})
    }
}

/// Destination of rule `j` of Route `g`; `variant` moves rule 0 elsewhere (edits).
pub fn dst(g: usize, j: usize, variant: usize) -> String {
    let k = g * RULES + j;
    if j == 0 && variant % 2 == 1 {
        format!("172.{}.{}.0/24", 16 + k / 65536 % 16, k / 256 % 256)
    } else {
        format!("10.{}.{}.0/24", 64 + k / 256, k % 256)
    }
}

/// Route `g`: pods labelled `app=g-<g>`, 20 rules over eth1, a reroute policy each.
pub fn route_doc(g: usize, variant: usize) -> serde_json::Value {
    let rules: Vec<_> = (0..RULES)
        .map(|j| json!({"dst": dst(g, j, variant), "dev": "eth1"}))
        .collect();
    json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": format!("g-{g}")},
        "spec": {"podSelector": {"matchLabels": {"app": format!("g-{g}")}}, "route": rules,
            "ovn": {"nextHops": ["100.64.0.2"]}}})
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub host: String,
    pub pods: Vec<Pod>,
    pub groups: usize,
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
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Builds the pods' namespaces and the NB with their ports; no Route yet.
    pub async fn new(n: usize, tag: &str) -> Sandbox {
        let prefix = format!("e2e{tag}{}-", std::process::id() % 100_000);
        let dir = tempfile::Builder::new()
            .prefix("ovnkr-e2e")
            .tempdir()
            .expect("tmp");
        for d in ["input", "cni", "state", "nb"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let groups = n.div_ceil(PODS_PER_ROUTE);
        let pods: Vec<Pod> = (0..n).map(|i| Pod::new(&prefix, i, groups)).collect();
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
            groups,
            nb,
            created: Vec::new(),
        };
        sb.namespaces();
        sb.topology().await;
        sb.write_world(&[]);
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
        for p in &self.pods {
            self.configure(p);
        }
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
        self.cni_file(p);
    }

    /// kubelet's loopback CNI cache entry pointing at the pod's namespace.
    pub fn cni_file(&self, p: &Pod) {
        let cid = format!("{:064x}", p.i + 1);
        let lo = json!({
            "kind": "cniCacheV1", "containerId": cid, "ifName": "lo", "networkName": "cni-loopback",
            "cniArgs": [["K8S_POD_NAMESPACE", p.namespace], ["K8S_POD_NAME", p.name],
                        ["K8S_POD_INFRA_CONTAINER_ID", cid], ["K8S_POD_UID", p.uid]],
            "result": {"cniVersion": "0.3.1", "interfaces": [{"name": "lo",
                "sandbox": format!("/var/run/netns/{}", p.netns)}], "ips": []}
        });
        std::fs::write(
            self.cni().join(format!("cni-loopback-{cid}-lo")),
            lo.to_string(),
        )
        .expect("cni file");
    }

    /// One more pod (for "new pod" figures): its namespace, veths and logical switch port,
    /// not yet in the world.
    pub async fn add_pod(&mut self) -> Pod {
        let p = Pod::new(&self.prefix, self.pods.len(), self.groups);
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

    pub fn config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new(vec![self.nb.unix()], NB);
        cfg.probe_interval = None;
        cfg
    }

    async fn client(&self) -> Client {
        Client::connect(self.config()).await.expect("NB")
    }

    async fn transact(&self, ops: Vec<Operation>) {
        let c = self.client().await;
        c.transact(NB, &ops).await.expect("NB transaction");
        c.close();
    }

    /// The ovn-kubernetes topology our rows refer to: the router with its join port, one
    /// switch with a port per pod (ports are added unreferenced then attached, so a
    /// pod added later is attached the same way).
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

    /// A fresh NB (after the scripted baseline): the server restarted on a new database
    /// with the same topology.
    pub async fn fresh_nb(&mut self) {
        let d = self.dir.path().join("nb2");
        std::fs::create_dir_all(&d).expect("mkdir");
        self.nb = Server::create(&d, "nb", &super::common::schema(), Listen::Unix);
        self.topology().await;
    }

    /// The world file: namespaces and pods; `moved` relabels pods (index, group).
    pub fn write_world(&self, moved: &[(usize, usize)]) {
        let mut docs = Vec::new();
        let mut nss: Vec<&str> = self.pods.iter().map(|p| p.namespace.as_str()).collect();
        nss.dedup();
        for ns in nss {
            docs.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        for p in &self.pods {
            let g = moved
                .iter()
                .find(|(i, _)| *i == p.i)
                .map_or(p.group, |(_, g)| *g);
            docs.push(p.document(g));
        }
        write_docs(&self.input().join("world.yaml"), &docs);
    }

    pub fn write_route(&self, g: usize, variant: usize) {
        write_docs(
            &self.input().join(format!("route-{g}.yaml")),
            &[route_doc(g, variant)],
        );
    }

    pub fn netns_path(&self, p: &Pod) -> PathBuf {
        Path::new("/var/run/netns").join(&p.netns)
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
