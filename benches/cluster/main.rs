//! Cluster scale: the central NB writer (the release binary, `run --mode central
//! --skip-pods --audit-mins 0`) over a generated cluster, with both sources, against a real
//! NB (ovsdb-server with the pinned schema) holding a switch per node and a port per pod.
//!
//! Size at 50,000 pods: 500 nodes x 100 pods, 100 namespaces, 5,000 Routes (podSelector,
//! namespaceSelector and Deployment targets mixed, a fifth with a Service rule and
//! `ovn.enforce`), 4 rules each, ECMP next hops (`world.rs`). Rounds at 5k, 10k, 25k and 50k
//! pods give the growth.
//!
//! Every figure is read from outside: the NB over raw OVSDB on the benchmark's own
//! connections (`nb.rs`: a `wait` transaction answered when the change is committed, a
//! monitor that sees every transaction), the API server's request log, /proc. Printed beside
//! the goals of issue 16; nothing is asserted on time.
//!
//! Run: `cargo bench --bench cluster` (root not needed). `CLUSTER_SIZES=5000,50000` picks
//! sizes, `CLUSTER_SAMPLES=N` the samples per latency figure, `CLUSTER_FILE=0` skips the
//! file source, `CLUSTER_TRACE=1` prints every latency sample with its wall-clock start
//! (to find it in the controller's log), `CLUSTER_ONLY_IDLE=1` stops each Kubernetes round
//! after the steady RSS (cold start, idle and memory only). Under `cargo test --all-targets`
//! it runs one smoke round of 1,000 pods with a few samples.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod figures;
mod gateways;
#[path = "../../tests/kube_api/mod.rs"]
mod kube_api;
mod kube_round;
mod mem;
mod nb;
mod proc;
mod report;
mod source;
mod world;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Listen, Server};

#[global_allocator]
static HEAP: mem::Counting = mem::Counting;
use report::Round;
use world::Spec;

pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn env_list(key: &str) -> Option<Vec<usize>> {
    std::env::var(key)
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
}

/// Samples per latency figure.
pub fn samples() -> usize {
    if !full() {
        return 3;
    }
    env_list("CLUSTER_SAMPLES")
        .and_then(|v| v.first().copied())
        .unwrap_or(30)
}

/// A fresh NB with the base topology, and how long loading it took.
pub fn fresh_nb(dir: &Path, name: &str, spec: &Spec) -> (Server, Duration) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let server = Server::create(&d, "nb", &common::schema(), Listen::Unix);
    let t = Instant::now();
    nb::load_base(&server.sock, spec);
    (server, t.elapsed())
}

fn main() {
    let sizes = if full() {
        env_list("CLUSTER_SIZES").unwrap_or_else(|| vec![5_000, 10_000, 25_000, 50_000])
    } else {
        println!("smoke round (cargo test); `cargo bench --bench cluster` for figures");
        vec![1_000]
    };
    let with_files = std::env::var("CLUSTER_FILE").map_or(true, |v| v != "0");
    let mut rounds: Vec<Round> = Vec::new();
    for &pods in &sizes {
        let spec = Spec { pods };
        println!(
            "== {} pods, {} nodes, {} namespaces, {} Routes",
            pods,
            spec.nodes(),
            spec.namespaces(),
            spec.routes()
        );
        let t = Instant::now();
        let held = mem::measure(&spec);
        println!(
            "   heap: World {:.0} bytes per pod; planner {:.0} bytes per pod + {:.0} bytes per Route (in-process, {:.1} s)",
            held.world_per_pod,
            held.planner_per_pod,
            held.planner_per_route,
            t.elapsed().as_secs_f64()
        );
        let dir = tempfile::tempdir().unwrap();
        let mut r = kube_round::kubernetes(&spec, dir.path());
        r.held = Some(held);
        report::print_round(&r);
        rounds.push(r);
        if with_files {
            let r = kube_round::files(&spec, dir.path());
            report::print_round(&r);
            rounds.push(r);
        }
    }
    report::print_summary(&rounds);
    if !full() {
        // The smoke round checks that every figure was measured at all.
        for r in &rounds {
            r.check();
        }
    }
}
