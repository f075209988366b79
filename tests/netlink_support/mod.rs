//! Shared fixtures of the root netns tests: a "node" netns plus pod netns shaped like
//! the sandbox pods (eth0 Calico-like with gateway 169.254.1.1, eth1 OVN-like in
//! 10.244.<k>.0/24 with gateway .1 and fd00:10:244:<k>::/64), cleaned up on Drop even
//! when the test fails. Namespace names carry the test name and the process id.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ovnkube_route::plan::IpFamily;
use ovnkube_route::plan::pod::{DefaultRoute, NextHop, PodKey, PodRoute, PodRoutes};

/// Panics loudly unless we are root with iproute2 available: these tests must never
/// pass by skipping.
pub fn require_root() {
    let uid = nix::unistd::geteuid();
    assert!(
        uid.is_root(),
        "netlink tests need root (real network namespaces); running as uid {uid}"
    );
    let ok = Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "netlink tests need iproute2's `ip` in PATH");
}

/// Runs a command, panicking with its stderr on failure.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip [-n ns] -batch -` with the given lines.
pub fn ip_batch(ns: Option<&str>, lines: &str) {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ip -batch");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write batch");
    let out = child.wait_with_output().expect("ip -batch");
    assert!(
        out.status.success(),
        "ip -batch in {ns:?} failed: {}\n{lines}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One pod netns.
#[derive(Clone, Debug)]
pub struct PodNs {
    pub name: String,
    pub index: usize,
    pub key: PodKey,
}

impl PodNs {
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }
    /// This pod's OVN subnet third octet.
    pub fn k(&self) -> usize {
        self.index % 250 + 1
    }
    pub fn eth1_gw(&self) -> String {
        format!("10.244.{}.1", self.k())
    }
    pub fn eth1_gw6(&self) -> String {
        format!("fd00:10:244:{}::1", self.k())
    }
}

/// A node netns and its pods; everything is deleted on Drop.
pub struct TestNet {
    pub prefix: String,
    pub node: String,
    pub pods: Vec<PodNs>,
    created: Vec<String>,
}

impl TestNet {
    /// `tag` should be the test's name; the process id is appended.
    pub fn new(tag: &str) -> Self {
        require_root();
        let prefix = format!("ovr-{tag}-{}", std::process::id());
        let node = format!("{prefix}-node");
        let mut net = TestNet {
            prefix,
            node: node.clone(),
            pods: Vec::new(),
            created: Vec::new(),
        };
        sh(&["ip", "netns", "add", &node]);
        net.created.push(node);
        net
    }

    /// Adds `n` pods with eth0 and (if `with_eth1`) eth1.
    pub fn add_pods(&mut self, n: usize, with_eth1: bool) -> Vec<PodNs> {
        let start = self.pods.len();
        let mut node_lines = String::new();
        let mut new = Vec::new();
        for i in start..start + n {
            let name = format!("{}-p{i}", self.prefix);
            sh(&["ip", "netns", "add", &name]);
            self.created.push(name.clone());
            node_lines.push_str(&format!(
                "link add a{i} type veth peer name eth0 netns {name}\nlink set a{i} up\n"
            ));
            if with_eth1 {
                node_lines.push_str(&format!(
                    "link add b{i} type veth peer name eth1 netns {name}\nlink set b{i} up\n"
                ));
            }
            let pod = PodNs {
                name,
                index: i,
                key: PodKey {
                    namespace: "default".into(),
                    name: format!("pod-{i}"),
                    uid: format!(
                        "00000000-0000-4000-8000-{:012}",
                        std::process::id() as usize * 1000 + i
                    ),
                },
            };
            new.push(pod);
        }
        ip_batch(Some(&self.node), &node_lines);
        for pod in &new {
            let i = pod.index;
            let mut lines = format!(
                "link set lo up\nlink set eth0 up\naddr add 10.100.{}.{}/32 dev eth0\n\
                 route add 169.254.1.1 dev eth0 scope link\n\
                 route add default via 169.254.1.1 dev eth0\n",
                i / 250,
                i % 250 + 1
            );
            if with_eth1 {
                let k = pod.k();
                lines.push_str(&format!(
                    "link set eth1 up\naddr add 10.244.{k}.5/24 dev eth1\n\
                     addr add fd00:10:244:{k}::5/64 dev eth1 nodad\n"
                ));
            }
            ip_batch(Some(&pod.name), &lines);
        }
        self.pods.extend(new.iter().cloned());
        new
    }

    /// Forgets a netns someone else deleted (no cleanup on Drop).
    pub fn delete_pod_ns_forget(&mut self, name: &str) {
        self.created.retain(|n| n != name);
    }

    /// Deletes a pod's netns now (it is then no longer cleaned up on Drop).
    pub fn delete_pod_ns(&mut self, name: &str) {
        sh(&["ip", "netns", "del", name]);
        self.created.retain(|n| n != name);
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn routes_of(ns: &str, family: &str) -> Vec<String> {
    let out = sh(&["ip", "-n", ns, family, "route", "show", "table", "main"]);
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

/// The IPv4 main table, one normalized line per route, sorted.
pub fn table4(ns: &str) -> Vec<String> {
    routes_of(ns, "-4")
}

/// The IPv6 main table without the kernel's link-local and multicast entries.
pub fn table6(ns: &str) -> Vec<String> {
    routes_of(ns, "-6")
        .into_iter()
        .filter(|l| !l.starts_with("fe80::/64") && !l.starts_with("multicast"))
        .collect()
}

/// Sorted owned lines for comparisons.
pub fn lines(v: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

/// The base IPv4 table of a sandbox-like pod.
pub fn base4(pod: &PodNs) -> Vec<String> {
    let k = pod.k();
    let mut v = vec![
        "default via 169.254.1.1 dev eth0".to_string(),
        format!("10.244.{k}.0/24 dev eth1 proto kernel scope link src 10.244.{k}.5"),
        "169.254.1.1 dev eth0 scope link".to_string(),
    ];
    v.sort();
    v
}

pub fn route(dst: &str, dev: &str, via: Option<&str>) -> PodRoute {
    PodRoute {
        dst: dst.parse().expect("dst"),
        dev: dev.into(),
        next_hop: match via {
            Some(v) => NextHop::Via(v.parse().expect("via")),
            None => NextHop::DevGateway,
        },
        owner: "test".into(),
    }
}

pub fn default_route(ipv6: bool, dev: &str, via: Option<&str>) -> DefaultRoute {
    DefaultRoute {
        family: if ipv6 { IpFamily::V6 } else { IpFamily::V4 },
        dev: dev.into(),
        next_hop: match via {
            Some(v) => NextHop::Via(v.parse().expect("via")),
            None => NextHop::DevGateway,
        },
        owner: "test".into(),
    }
}

pub fn routes(routes: Vec<PodRoute>) -> PodRoutes {
    PodRoutes {
        routes,
        default_routes: Vec::new(),
    }
}

/// Polls `f` every 100 ms for up to `secs` seconds.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    f()
}

/// Writes the CNI cache `-lo` file that names `pod`'s netns into `dir` (as libcni does after
/// a successful ADD: to a temp name, then renamed into place).
pub fn write_cni_cache(dir: &std::path::Path, pod: &PodNs) {
    let cid = format!("{:064x}", pod.index + 1);
    let body = serde_json::json!({
        "kind": "cniCacheV1", "containerId": cid, "ifName": "lo", "networkName": "cni-loopback",
        "cniArgs": [["K8S_POD_NAMESPACE", pod.key.namespace], ["K8S_POD_NAME", pod.key.name],
                    ["K8S_POD_UID", pod.key.uid], ["IgnoreUnknown", "1"]],
        "result": {"cniVersion": "0.3.1",
                   "interfaces": [{"name": "lo", "sandbox": pod.path()}]}
    });
    let tmp = dir.join(format!(".tmp-{cid}"));
    std::fs::write(&tmp, body.to_string()).expect("write CNI cache file");
    std::fs::rename(&tmp, dir.join(format!("cni-loopback-{cid}-lo"))).expect("rename");
}

/// Links of a netns, by name.
pub fn links(ns: &str) -> Vec<String> {
    sh(&["ip", "-n", ns, "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// Waits until no IPv6 address in `ns` is tentative (duplicate address detection of new
/// links sends address events for a second or two; tests that count events wait for it).
pub async fn settle(ns: &str) {
    let done = eventually(10, || {
        !sh(&["ip", "-n", ns, "-6", "addr", "show", "tentative"])
            .lines()
            .any(|l| l.contains("inet6"))
    })
    .await;
    assert!(done, "IPv6 addresses in {ns} stay tentative");
}
