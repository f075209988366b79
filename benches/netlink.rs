//! Pod route programming throughput: 200 network namespaces x 20 routes each, side by
//! side in one run:
//! - ours: `PodRouteReconciler::set_desired_many` (discovery not included), with one
//!   pool thread per CPU and with a single pool thread;
//! - peer: `ip -n NS -batch FILE`, one process per namespace;
//! - floor: a raw rtnetlink batch in one process and one thread (enter netns, open
//!   socket, send the 20 adds pipelined, next namespace).
//!
//! Each namespace holds a veth pair (eth1 with an OVN-like address, its peer beside it).
//! Needs root. Prints routes/s per method (best and median of the runs).
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use ovnkube_route::netlink::kernel::{KernelRoute, SCOPE_UNIVERSE, route_message};
use ovnkube_route::netlink::{PodRouteReconciler, ROUTE_PROTOCOL, ReconcilerConfig};
use ovnkube_route::plan::pod::{NextHop, PodKey, PodRoute, PodRoutes};

/// `cargo bench` passes `--bench`; under `cargo test --all-targets` the binary runs as a
/// quick smoke check of the same code (4 namespaces, 1 round) instead.
fn full() -> bool {
    static FULL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FULL.get_or_init(|| std::env::args().any(|a| a == "--bench"))
}

fn namespaces() -> usize {
    if full() { 200 } else { 4 }
}

fn runs() -> usize {
    if full() { 7 } else { 1 }
}
const ROUTES: usize = 20;

fn sh(args: &[&str]) {
    let ok = Command::new(args[0])
        .args(&args[1..])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{args:?} failed");
}

fn ip_batch(ns: &str, lines: &str) {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn ip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write");
    assert!(child.wait().expect("ip").success(), "ip -batch in {ns}");
}

struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn gw(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, (i % 250) as u8, 1)
}

fn dst(j: usize) -> IpNet {
    IpNet::new(IpAddr::V4(Ipv4Addr::new(10, 100 + j as u8, 0, 0)), 16).expect("prefix")
}

fn flush(nss: &[String]) {
    for ns in nss {
        sh(&[
            "ip",
            "-n",
            ns,
            "route",
            "flush",
            "proto",
            &ROUTE_PROTOCOL.to_string(),
        ]);
    }
}

fn report(name: &str, times: &mut [Duration]) -> f64 {
    times.sort();
    let routes = (namespaces() * ROUTES) as f64;
    let best = times[0].as_secs_f64();
    let median = times[times.len() / 2].as_secs_f64();
    println!(
        "{name:<28} best {:>8.1} ms ({:>9.0} routes/s)   median {:>8.1} ms ({:>9.0} routes/s)",
        best * 1e3,
        routes / best,
        median * 1e3,
        routes / median
    );
    routes / median
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the netlink benchmark needs root (real network namespaces)"
    );
    let prefix = format!("ovr-bench-{}", std::process::id());
    let mut nss = Namespaces(Vec::new());
    let setup = Instant::now();
    for i in 0..namespaces() {
        let ns = format!("{prefix}-{i}");
        sh(&["ip", "netns", "add", &ns]);
        nss.0.push(ns.clone());
        let k = i % 250;
        ip_batch(
            &ns,
            &format!(
                "link set lo up\nlink add eth1 type veth peer name peer1\nlink set peer1 up\nlink set eth1 up\n\
                 addr add 10.244.{k}.5/24 dev eth1\n"
            ),
        );
    }
    println!(
        "setup: {} namespaces in {:.1} s; {} routes per run",
        namespaces(),
        setup.elapsed().as_secs_f64(),
        namespaces() * ROUTES
    );
    // The caller's runtime only awaits results; the work runs on the pool's threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let state = tempfile::tempdir().expect("tempdir");
    let paths: Vec<PathBuf> = nss
        .0
        .iter()
        .map(|n| PathBuf::from("/var/run/netns").join(n))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<PathBuf> = (0..namespaces())
        .map(|i| {
            let path = dir.path().join(format!("{i}.batch"));
            let mut body = String::new();
            for j in 0..ROUTES {
                body.push_str(&format!(
                    "route add {} via {} dev eth1 proto {ROUTE_PROTOCOL}\n",
                    dst(j),
                    gw(i)
                ));
            }
            std::fs::write(&path, body).expect("batch file");
            path
        })
        .collect();
    let host = File::open("/proc/thread-self/ns/net").expect("host netns");

    // The three methods take turns in every round, so background load hits them alike.
    let (mut ours, mut ours1, mut peer, mut floor) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs() {
        let dir = state.path().join(format!("s{run}"));
        ours.push(run_ours(&rt, &paths, dir.clone(), threads));
        flush(&nss.0);
        // One pool thread: our per-pod overhead against the single-threaded floor.
        ours1.push(run_ours(&rt, &paths, dir, 1));
        flush(&nss.0);
        peer.push(run_peer(&nss.0, &files));
        flush(&nss.0);
        floor.push(run_floor(&rt, &paths, &host));
        flush(&nss.0);
    }

    println!(
        "pod route programming: {} namespaces x {ROUTES} routes, {} runs each",
        namespaces(),
        runs()
    );
    let o = report(&format!("ours ({threads} threads)"), &mut ours);
    report("ours (1 thread)", &mut ours1);
    report("ip -n NS -batch FILE", &mut peer);
    report("raw rtnetlink (floor)", &mut floor);
    if full() {
        let verdict = if o >= 60000.0 { "met" } else { "NOT met" };
        println!("goal >= 60000 routes/s (median, ours): {verdict}");
    } else {
        println!("smoke run (cargo test); run `cargo bench --bench netlink` for figures");
    }
}

fn run_ours(
    rt: &tokio::runtime::Runtime,
    paths: &[PathBuf],
    state_dir: PathBuf,
    threads: usize,
) -> Duration {
    let rec = PodRouteReconciler::new(ReconcilerConfig {
        state_dir,
        threads,
        ..Default::default()
    })
    .expect("reconciler");
    let batch: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let routes = (0..ROUTES)
                .map(|j| PodRoute {
                    dst: dst(j),
                    dev: "eth1".into(),
                    next_hop: NextHop::Via(IpAddr::V4(gw(i))),
                    owner: "bench".into(),
                })
                .collect();
            let key = PodKey {
                namespace: "bench".into(),
                name: format!("p{i}"),
                uid: format!("uid-{i}"),
            };
            (
                key,
                p.clone(),
                PodRoutes {
                    routes,
                    default_routes: vec![],
                },
            )
        })
        .collect();
    let start = Instant::now();
    let out = rt.block_on(rec.set_desired_many(batch));
    let took = start.elapsed();
    let added: usize = out.iter().map(|(_, r)| r.added).sum();
    assert_eq!(
        added,
        namespaces() * ROUTES,
        "ours: not every route was added"
    );
    took
}

fn run_peer(nss: &[String], files: &[PathBuf]) -> Duration {
    let start = Instant::now();
    for (ns, file) in nss.iter().zip(files) {
        let file = file.to_str().expect("utf8 path");
        sh(&["ip", "-n", ns, "-batch", file]);
    }
    start.elapsed()
}

/// One thread, one namespace after another: enter, open the socket, pipeline the adds.
fn run_floor(rt: &tokio::runtime::Runtime, paths: &[PathBuf], host: &File) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        for (i, path) in paths.iter().enumerate() {
            let ns = File::open(path).expect("netns");
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let (conn, handle, _) = rtnetlink::new_connection().expect("socket");
            nix::sched::setns(host.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns back");
            let task = tokio::spawn(conn);
            let routes: Vec<KernelRoute> = (0..ROUTES)
                .map(|j| KernelRoute {
                    dst: dst(j),
                    gateway: Some(IpAddr::V4(gw(i))),
                    oif: None,
                    protocol: ROUTE_PROTOCOL,
                    metric: 0,
                    scope: SCOPE_UNIVERSE,
                })
                .collect();
            let results = futures::future::join_all(
                routes
                    .iter()
                    .map(|r| handle.route().add(route_message(r)).execute()),
            )
            .await;
            assert!(results.iter().all(|r| r.is_ok()), "floor: add failed");
            task.abort();
        }
    });
    start.elapsed()
}
