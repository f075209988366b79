//! What Kubernetes mode costs in memory (prints figures, asserts nothing on size or time):
//! the real binary (`run --source kubernetes --skip-pods`) against the Kubernetes API test
//! server holding a cluster of 10,000 pods on 100 nodes (100 namespaces, 200 Services,
//! 100 ReplicaSets, 20 Routes), and a real NB ovsdb-server:
//! - `ic` mode: one node's instance, which watches its node's 100 pods;
//! - `central` mode, the leader, which watches all 10,000 pods and writes the NB;
//! - the same binary with an empty cluster, as the base.
//!
//! VmRSS after the first pass settles and VmHWM (peak) come from /proc/<pid>/status.
//!
//! Run: `cargo bench --bench kube`. Under `cargo test --all-targets` it runs a smoke round
//! with 200 pods instead.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/kube_api/mod.rs"]
mod kube_api;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Listen, Server};
use kube_api::Background;
use serde_json::json;

fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

/// A cluster of `pods` pods on `nodes` nodes.
fn populate(bg: &Background, pods: usize, nodes: usize) {
    let api = &bg.api;
    let namespaces = (pods / 100).max(1);
    for n in 0..namespaces {
        api.create(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": format!("ns-{n}"), "labels": {"team": format!("t{}", n % 10)}}}))
            .unwrap();
        api.create(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{n}"), "namespace": format!("ns-{n}"),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "web"}}}}))
            .unwrap();
        for s in 0..2 {
            api.create(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{s}"), "namespace": format!("ns-{n}")},
                "spec": {"clusterIP": format!("10.96.{}.{}", n / 250, n % 250 * 2 + s + 1),
                         "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}}))
                .unwrap();
        }
    }
    for i in 0..pods {
        let ns = format!("ns-{}", i % namespaces);
        let (a, b) = (i / 250, i % 250 + 2);
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("web-{i}"), "namespace": ns,
                "labels": {"app": "web", "tier": format!("t{}", i % 4), "pod-template-hash": "5d9f7c"},
                "annotations": {"k8s.ovn.org/pod-networks": format!(
                    "{{\"default\":{{\"ip_addresses\":[\"10.124.{a}.{b}/16\"],\"mac_address\":\"0a:58:0a:7c:{a:02x}:{b:02x}\",\"gateway_ips\":[\"10.124.0.1\"]}}}}")},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("web-{}", i % namespaces), "uid": "rs", "controller": true}]},
            "spec": {"nodeName": format!("node-{}", i % nodes),
                     "containers": [{"name": "web", "image": "registry.example.com/web:1.2.3",
                                     "ports": [{"containerPort": 8080}],
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Running", "podIP": format!("192.168.{a}.{b}"),
                       "podIPs": [{"ip": format!("192.168.{a}.{b}")}],
                       "conditions": [{"type": "Ready", "status": "True"}]}});
        let status = pod["status"].clone();
        let stored = api.create(pod).unwrap();
        api.set_status(&stored, status).unwrap();
    }
    for r in 0..20 {
        let spec = match r % 4 {
            0 => json!({"podSelector": {"matchLabels": {"tier": format!("t{}", r % 4)}}}),
            1 => json!({"namespaceSelector": {"matchLabels": {"team": format!("t{}", r % 10)}}}),
            2 => {
                json!({"targets": [{"kind": "Deployment", "namespace": format!("ns-{r}"), "name": "web"}]})
            }
            _ => json!({"podSelector": {"matchLabels": {"app": "web", "tier": "t3"}}}),
        };
        let mut spec = spec;
        spec["route"] = json!([{"dst": format!("172.16.{r}.0/24"), "dev": "eth1"}]);
        spec["svc"] = json!([{"namespace": format!("ns-{r}"), "name": "svc-0", "dev": "eth1"}]);
        api.create(json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": format!("r{r}")}, "spec": spec}))
            .unwrap();
    }
}

struct Run {
    child: Child,
    port: u16,
}

impl Drop for Run {
    /// SIGTERM, so a leader releases its Lease for the next run; SIGKILL after 10 s.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, kubeconfig: &Path, nb: &str, mode: &str, node: &str) -> Run {
    let port = common::free_port();
    let log = std::fs::File::create(dir.join(format!("{mode}-{node}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ovnkube-route"))
        .args([
            "--log",
            "warn",
            "run",
            "--source",
            "kubernetes",
            "--skip-pods",
        ])
        .args(["--nb", nb, "--mode", mode, "--node", node])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args([
            "--state-dir",
            dir.join(format!("state-{node}")).to_str().unwrap(),
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAMESPACE", "default")
        .env("POD_NAME", node)
        .env_remove("NODE_NAME")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Run { child, port }
}

/// Waits for readiness (and, for a leader, leadership), lets it settle, returns
/// (seconds to ready, VmRSS MiB, VmHWM MiB).
fn measure(run: &mut Run, leader: bool) -> (f64, f64, f64) {
    let t = Instant::now();
    loop {
        assert!(
            run.child.try_wait().unwrap().is_none(),
            "the controller exited"
        );
        let ready = http_get(run.port, "/readyz").0 == 200;
        let leads = !leader
            || http_get(run.port, "/metrics")
                .1
                .lines()
                .any(|l| l == "ovnkube_route_leader 1");
        if ready && leads {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "not ready in 300 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = t.elapsed().as_secs_f64();
    // Let the leader's cluster-wide pod list and first NB write finish.
    std::thread::sleep(Duration::from_secs(if leader { 8 } else { 3 }));
    let pid = run.child.id();
    let mib = |k| status_kib(pid, k) as f64 / 1024.0;
    (ready, mib("VmRSS:"), mib("VmHWM:"))
}

fn main() {
    let (pods, nodes) = if full() { (10_000, 100) } else { (200, 4) };
    if !full() {
        println!("smoke run (cargo test); run `cargo bench --bench kube` for figures");
    }
    let dir = tempfile::tempdir().unwrap();
    let nb = Server::create(dir.path(), "nb", &common::schema(), Listen::Unix);
    let empty = Background::start();
    empty
        .api
        .create_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd.yaml"));
    empty
        .api
        .create_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd-nodereport.yaml"));
    let kc_empty = {
        let d = dir.path().join("empty");
        std::fs::create_dir(&d).unwrap();
        empty.api.kubeconfig(&d)
    };
    let bg = Background::start();
    bg.api
        .create_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd.yaml"));
    bg.api
        .create_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd-nodereport.yaml"));
    let t = Instant::now();
    populate(&bg, pods, nodes);
    println!(
        "cluster: {pods} pods on {nodes} nodes, {} namespaces, 20 Routes (built in {:.1} s)",
        pods / 100,
        t.elapsed().as_secs_f64()
    );
    let kc = bg.api.kubeconfig(dir.path());
    let remote = nb.remote();
    println!("| instance | pods watched | ready after | VmRSS | VmHWM (peak) |");
    println!("|---|---|---|---|---|");
    let mut base = start(dir.path(), &kc_empty, &remote, "ic", "node-0");
    let (r, rss, hwm) = measure(&mut base, false);
    println!("| base: empty cluster | 0 | {r:.2} s | {rss:.1} MiB | {hwm:.1} MiB |");
    drop(base);
    let mut ic = start(dir.path(), &kc, &remote, "ic", "node-7");
    let (r, ic_rss, hwm) = measure(&mut ic, false);
    println!(
        "| ic, one node | {} | {r:.2} s | {ic_rss:.1} MiB | {hwm:.1} MiB |",
        pods / nodes
    );
    drop(ic);
    let mut central = start(dir.path(), &kc, &remote, "central", "node-3");
    let (r, c_rss, hwm) = measure(&mut central, true);
    println!("| central leader | {pods} | {r:.2} s | {c_rss:.1} MiB | {hwm:.1} MiB |");
    let per_pod = (c_rss - ic_rss) * 1024.0 * 1024.0 / (pods - pods / nodes) as f64;
    println!(
        "every pod watched beyond one node's costs about {per_pod:.0} bytes of RSS (leader's world, plan and NB rows)"
    );
    let (_, metrics) = http_get(central.port, "/metrics");
    let writes = metrics
        .lines()
        .find(|l| l.starts_with("ovnkube_route_nb_transactions_total{result=\"ok\"}"))
        .unwrap_or("");
    println!("leader NB transactions: {writes}");
    if writes.is_empty() {
        let log =
            std::fs::read_to_string(dir.path().join("central-node-3.log")).unwrap_or_default();
        println!("leader log:\n{log}");
    }
}
