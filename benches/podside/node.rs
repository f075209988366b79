//! The node the benchmark measures: N pods as real network namespaces (eth0 Calico-like with
//! a default route via 169.254.1.1, eth1 OVN-like in 10.244.0.0/16 with gateway 10.244.0.1),
//! their CNI cache `-lo` files, the world file (Namespaces and Pods with labels and the
//! `k8s.ovn.org/pod-networks` annotation), one file per Route, and a real NB (ovsdb-server)
//! holding `ovn_cluster_router` with its join port and a logical switch port per pod.
//!
//! Shape (as in the issue: 140-400 routes per pod, ~250 on average): 40 Routes of 45 rules
//! (every fifth rule on eth0, the others on eth1, `ovn.nextHops` on the join network); pod
//! `i` is selected by 3 to 8 of them (deterministic), so it carries 135-360 routes.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::common::Server;

pub const ROUTES: usize = 40;
pub const RULES: usize = 45;

pub use crate::netlink_support::{ip_batch, sh};

fn mix(mut x: u64) -> u64 {
    // splitmix64: a fixed, well-spread pseudo-random choice per pod.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The Routes selecting pod `i` (3 to 8 distinct ones).
pub fn selected(i: usize) -> Vec<usize> {
    let k = 3 + (mix(i as u64) % 6) as usize;
    let s = (mix(i as u64 ^ 0xabcd) % ROUTES as u64) as usize;
    // 7 is coprime with 40, so the k picks are distinct.
    (0..k).map(|t| (s + 7 * t) % ROUTES).collect()
}

/// Rule `k` of Route `j`; `variant` changes rule 0 (the edit the benchmark makes).
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

pub fn uid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

fn addr(i: usize) -> (usize, usize) {
    (i / 250, i % 250 + 2)
}

pub struct Node {
    pub pods: usize,
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub nss: Vec<String>,
    pub server: Server,
}

impl Node {
    pub fn build(pods: usize, rules: usize) -> Node {
        let prefix = format!("ovr-ps{}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("ovr-podside")
            .tempdir()
            .expect("tempdir");
        for sub in ["cni", "state", "routes", "nb"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let server = Server::standalone(&dir.path().join("nb"));
        let mut node = Node {
            pods,
            prefix,
            dir,
            nss: Vec::new(),
            server,
        };
        node.nss = (0..pods).map(|i| node.ns(i)).collect();
        // Namespaces in 4 parallel workers (each pod is two `ip` processes).
        std::thread::scope(|s| {
            for w in 0..4 {
                let node = &node;
                s.spawn(move || {
                    for i in (w..pods).step_by(4) {
                        node.add_pod_ns(i);
                    }
                });
            }
        });
        node.write_cni();
        node.write_world();
        for j in 0..ROUTES {
            node.write_route(j, 0, rules);
        }
        node.topology();
        node
    }

    pub fn ns(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }

    pub fn ns_path(&self, i: usize) -> PathBuf {
        PathBuf::from("/var/run/netns").join(self.ns(i))
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn add_pod_ns(&self, i: usize) {
        let ns = self.ns(i);
        sh(&["ip", "netns", "add", &ns]);
        let (a, b) = addr(i);
        ip_batch(
            Some(&ns),
            &format!(
                "link set lo up\n\
                 link add eth1 type veth peer name peer1\nlink set peer1 up\nlink set eth1 up\n\
                 addr add 10.244.{a}.{b}/16 dev eth1\n\
                 link add eth0 type veth peer name peer0\nlink set peer0 up\nlink set eth0 up\n\
                 addr add 192.168.{a}.{b}/32 dev eth0\n\
                 route add 169.254.1.1 dev eth0 scope link\n\
                 route add default via 169.254.1.1 dev eth0\n"
            ),
        );
    }

    fn write_cni(&self) {
        for i in 0..self.pods {
            let cid = format!("{:064x}", i + 1);
            let lo = json!({
                "kind": "cniCacheV1", "containerId": cid, "ifName": "lo",
                "networkName": "cni-loopback",
                "cniArgs": [["K8S_POD_NAMESPACE", format!("bench-{}", i / 100)],
                            ["K8S_POD_NAME", format!("pod-{i}")],
                            ["K8S_POD_INFRA_CONTAINER_ID", cid], ["K8S_POD_UID", uid(i)],
                            ["IgnoreUnknown", "1"]],
                "result": {"cniVersion": "0.3.1", "dns": {},
                           "interfaces": [{"mac": "00:00:00:00:00:00", "name": "lo",
                                           "sandbox": self.ns_path(i)}],
                           "ips": [{"address": "127.0.0.1/8", "interface": 0, "version": ""}]}
            });
            std::fs::write(
                self.path("cni").join(format!("cni-loopback-{cid}-lo")),
                lo.to_string(),
            )
            .expect("write CNI cache file");
        }
    }

    fn write_world(&self) {
        let mut y = String::new();
        for n in 0..self.pods.div_ceil(100) {
            y.push_str(&format!(
                "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-{n}\n  labels:\n    kubernetes.io/metadata.name: bench-{n}\n"
            ));
        }
        for i in 0..self.pods {
            let (a, b) = addr(i);
            let labels: String = selected(i)
                .iter()
                .map(|j| format!("    r{j}: \"y\"\n"))
                .collect();
            y.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{i}\n  namespace: bench-{n}\n  uid: {uid}\n  labels:\n{labels}  annotations:\n    k8s.ovn.org/pod-networks: '{{\"default\":{{\"ip_addresses\":[\"10.244.{a}.{b}/16\"],\"mac_address\":\"0a:58:0a:f4:{a:02x}:{b:02x}\",\"gateway_ips\":[\"10.244.0.1\"],\"ip_address\":\"10.244.{a}.{b}/16\",\"gateway_ip\":\"10.244.0.1\"}}}}'\nspec:\n  nodeName: node1\n  containers:\n  - name: main\n    image: busybox\nstatus:\n  phase: Running\n  podIP: 192.168.{a}.{b}\n  podIPs:\n  - ip: 192.168.{a}.{b}\n",
                n = i / 100,
                uid = uid(i),
            ));
        }
        std::fs::write(self.path("world.yaml"), y).expect("write world");
    }

    /// Writes Route `j` (atomically: temp file + rename, as an editor or a config sync does).
    pub fn write_route(&self, j: usize, variant: usize, rules: usize) {
        let mut y = format!(
            "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {{name: r{j}}}\nspec:\n  podSelector: {{matchLabels: {{r{j}: \"y\"}}}}\n  route:\n"
        );
        for k in 0..rules {
            y.push_str(&format!(
                "    - {{dst: \"{}\", dev: {}}}\n",
                rule_dst(j, k, variant),
                rule_dev(k)
            ));
        }
        y.push_str("  ovn:\n    nextHops: [\"100.64.0.2\"]\n");
        let tmp = self.path(&format!(".r{j}.tmp"));
        std::fs::write(&tmp, y).expect("write route");
        std::fs::rename(&tmp, self.path("routes").join(format!("r{j}.yaml"))).expect("rename");
    }

    /// `ovn_cluster_router` with the join port (so 100.64.0.2 is a valid next hop) and a
    /// switch with a port per pod, in one ovn-nbctl call.
    fn topology(&self) {
        let db = format!("unix:{}", self.server.sock.display());
        let mut args: Vec<String> = vec![
            "--db".into(),
            db,
            "lr-add".into(),
            "ovn_cluster_router".into(),
            "--".into(),
            "lrp-add".into(),
            "ovn_cluster_router".into(),
            "rtoj-ovn_cluster_router".into(),
            "0a:58:64:40:00:01".into(),
            "100.64.0.1/16".into(),
            "--".into(),
            "ls-add".into(),
            "node1".into(),
        ];
        for i in 0..self.pods {
            args.extend([
                "--".into(),
                "lsp-add".into(),
                "node1".into(),
                format!("bench-{}_pod-{i}", i / 100),
            ]);
        }
        let out = Command::new("ovn-nbctl")
            .args(&args)
            .output()
            .expect("ovn-nbctl");
        assert!(
            out.status.success(),
            "ovn-nbctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The routes pod `i` must carry: (destination, dev).
    pub fn expected(
        &self,
        i: usize,
        rules: usize,
        variants: &[usize],
    ) -> Vec<(String, &'static str)> {
        let mut v = Vec::new();
        for j in selected(i) {
            for k in 0..rules {
                v.push((rule_dst(j, k, variants[j]), rule_dev(k)));
            }
        }
        v
    }

    /// Our routes in pod `i` (`ip route show proto 136`), as destinations.
    pub fn ours(&self, i: usize) -> Vec<String> {
        let out = sh(&["ip", "-n", &self.ns(i), "route", "show", "proto", "136"]);
        let mut v: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect();
        v.sort();
        v
    }

    pub fn flush_ours(&self) {
        for ns in &self.nss {
            sh(&["ip", "-n", ns, "route", "flush", "proto", "136"]);
        }
    }

    /// The arguments `apply` and `run` share (everything but the command and the input).
    pub fn pod_args(&self) -> Vec<String> {
        vec![
            "--nb".into(),
            format!("unix:{}", self.server.sock.display()),
            "--node".into(),
            "node1".into(),
            "--cni-results".into(),
            path_str(&self.path("cni")),
            "--state-dir".into(),
            path_str(&self.path("state")),
        ]
    }
}

pub fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

impl Drop for Node {
    fn drop(&mut self) {
        let nss = std::mem::take(&mut self.nss);
        std::thread::scope(|s| {
            for chunk in nss.chunks(nss.len().div_ceil(4).max(1)) {
                s.spawn(move || {
                    for ns in chunk {
                        let _ = Command::new("ip").args(["netns", "del", ns]).status();
                    }
                });
            }
        });
    }
}
