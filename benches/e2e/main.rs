//! End to end, the node agent as a user runs it: the real binary against a real NB and one
//! node's pods as real network namespaces (the shape of issue 17: about 250 routes per pod,
//! one Route selecting every other pod; see `sandbox.rs`), with each source in turn:
//! `run --source kubernetes --mode ic --node node1` against the tests' API server, and
//! `run --source file:` on the same pods. Every figure is checked through the benchmark's
//! own netlink sockets, `ip -n` and its own NB connection, never the controller's word
//! (`probe.rs`). In the same run, for each size: the scripted baseline (one chained
//! `ovn-nbctl`, one `ip -n NS -batch` per pod) and `apply` (cold, then no-op).
//!
//! One command, root: `cargo bench --bench e2e` (sizes 250, 500, 1,000, 2,000; prints the
//! table and writes it into docs/benchmarks.md between the `e2e` markers).
//! `E2E_SIZES=250,2000` picks sizes, `E2E_DOCS=0` leaves the docs alone, `E2E_RUN_ARGS`
//! adds arguments to both `run`s (e.g. `--audit-mins 0`), `E2E_LOG=info` their log level. Under `cargo test
//! --all-targets` the same binary runs one smoke round (12 pods, one sample of each figure,
//! both sources) and writes nothing.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod figures;
mod kube;
#[path = "../../tests/kube_api/mod.rs"]
mod kube_api;
mod probe;
mod report;
mod rounds;
mod sandbox;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use probe::{Listener, Tables};
use report::Size;
use sandbox::{Pod, ROUTES, RULES, Sandbox, rule_dev, rule_dst, selected};

/// Routing protocol of the routes ovnkube-route installs (`netlink::ROUTE_PROTOCOL`).
pub const OURS: u8 = 136;
/// The scripted baseline's routes.
const SCRIPTED: u8 = 200;

/// How much of everything a run does.
#[derive(Clone, Debug)]
pub struct Args {
    pub full: bool,
    pub sizes: Vec<usize>,
    pub edits: usize,
    pub labels: usize,
    pub new_pods: usize,
    pub drifts: usize,
    pub nb_drifts: usize,
    pub idle: Duration,
    pub settle: Duration,
}

fn args() -> Args {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        std::env::var("E2E_SIZES")
            .ok()
            .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![250, 500, 1000, 2000])
    } else {
        vec![12]
    };
    if full {
        Args {
            full,
            sizes,
            edits: 30,
            labels: 10,
            new_pods: 10,
            drifts: 20,
            nb_drifts: 10,
            idle: Duration::from_secs(30),
            settle: Duration::from_secs(5),
        }
    } else {
        Args {
            full,
            sizes,
            edits: 1,
            labels: 2,
            new_pods: 2,
            drifts: 1,
            nb_drifts: 1,
            idle: Duration::from_secs(1),
            settle: Duration::from_millis(500),
        }
    }
}

/// The destinations pod `i` must carry, labelled for `routes`, with Route variants.
pub fn expected(routes: &[usize], variants: &[usize]) -> BTreeSet<String> {
    routes
        .iter()
        .flat_map(|j| (0..RULES).map(move |k| rule_dst(*j, k, variants[*j])))
        .collect()
}

/// Child side of [`measured`]: runs the command and prints its time, its peak RSS (KiB)
/// and its exit code.
fn child_measure(cmd: &[String]) {
    let start = Instant::now();
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("spawn measured command");
    let took = start.elapsed();
    let ru = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    println!(
        "{} {} {}",
        took.as_secs_f64(),
        ru.max_rss(),
        status.code().unwrap_or(-1)
    );
}

/// Runs `cmd` under a child copy of this benchmark (its peak RSS alone): (time, peak KiB).
fn measured(cmd: &[String]) -> (Duration, u64) {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .arg("--child-measure")
        .args(cmd)
        .output()
        .expect("spawn measuring child");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert!(f.len() == 3, "measuring child: {text:?}");
    assert_eq!(f[2], "0", "{cmd:?} failed");
    (
        Duration::from_secs_f64(f[0].parse().expect("secs")),
        f[1].parse().expect("kib"),
    )
}

pub fn bin() -> String {
    std::env::var("OVNKR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ovnkube-route").into())
}

/// One operator's script: the same end state with `ovn-nbctl` (one chained call) and
/// `ip -n NS -batch` (one per pod), timed from the first command to the last.
fn scripted(sb: &Sandbox) -> Duration {
    let mut args: Vec<String> = vec![format!("--db=unix:{}", sb.nb.sock.display())];
    for j in 0..ROUTES {
        let members: Vec<&Pod> = sb
            .pods
            .iter()
            .filter(|p| selected(p.i).contains(&j))
            .collect();
        let ips: Vec<String> = members
            .iter()
            .map(|p| format!("\"{}\"", p.ovn_ip))
            .collect();
        args.extend(["--", "create", "Address_Set"].map(String::from));
        args.push(format!("name=scripted_r{j}"));
        args.push(format!("addresses=[{}]", ips.join(",")));
        args.extend(["--", "pg-add"].map(String::from));
        args.push(format!("scripted_r{j}"));
        args.extend(members.iter().map(|p| p.lsp()));
        for k in 0..RULES {
            args.extend(["--", "lr-policy-add", "ovn_cluster_router", "250"].map(String::from));
            args.push(format!(
                "ip4.src == $scripted_r{j} && ip4.dst == {}",
                rule_dst(j, k, 0)
            ));
            args.extend(["reroute", "100.64.0.2"].map(String::from));
        }
    }
    let batches: Vec<String> = sb
        .pods
        .iter()
        .map(|p| {
            let mut lines = String::new();
            for j in selected(p.i) {
                for k in 0..RULES {
                    let via = if rule_dev(k) == "eth1" {
                        "10.244.0.1"
                    } else {
                        "169.254.1.1"
                    };
                    lines.push_str(&format!(
                        "route add {} via {via} dev {} proto {SCRIPTED}\n",
                        rule_dst(j, k, 0),
                        rule_dev(k)
                    ));
                }
            }
            lines
        })
        .collect();
    let start = Instant::now();
    let out = Command::new("ovn-nbctl")
        .args(&args)
        .output()
        .expect("ovn-nbctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (p, lines) in sb.pods.iter().zip(&batches) {
        sandbox::ip_batch(Some(&p.netns), lines);
    }
    start.elapsed()
}

/// Every pod's routes with `protocol` gone, 64 pods at a time.
pub async fn flush(tables: &Tables, pods: &[Pod], protocol: u8) {
    for chunk in pods.chunks(64) {
        futures::future::join_all(chunk.iter().map(|p| tables.flush(p.i, protocol))).await;
    }
}

fn apply_args(sb: &Sandbox, state: &std::path::Path) -> Vec<String> {
    vec![
        bin(),
        "--log".into(),
        "warn".into(),
        "apply".into(),
        "-f".into(),
        sb.input().display().to_string(),
        format!("--nb=unix:{}", sb.nb.sock.display()),
        "--node=node1".into(),
        format!("--cni-results={}", sb.cni().display()),
        format!("--state-dir={}", state.display()),
    ]
}

async fn run_size(n: usize, a: &Args) -> Size {
    let t = Instant::now();
    let mut sb = Sandbox::new(n, &format!("{n}")).await;
    let mut tables = Tables::new();
    let paths: Vec<_> = sb.pods.iter().map(|p| (p.i, sb.netns_path(p))).collect();
    tables.open(&paths);
    let mut listener = Listener::start();
    let all: Vec<&Pod> = sb.pods.iter().collect();
    listener.hear(&sb.nsids(&all));
    println!(
        "  sandbox of {n} pods built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut size = Size {
        n,
        routes: sb.pods.iter().map(|p| selected(p.i).len() * RULES).sum(),
        ..Size::default()
    };

    size.scripted = scripted(&sb);
    for p in &sb.pods {
        assert_eq!(
            tables.dsts(p.i, SCRIPTED).await,
            expected(&selected(p.i), &[0; ROUTES])
        );
    }
    flush(&tables, &sb.pods, SCRIPTED).await;

    // `apply` with the file input: cold, then no-op.
    sb.fresh_nb("apply").await;
    let state = tempfile::tempdir().unwrap();
    let all: Vec<&Pod> = sb.pods.iter().collect();
    sb.write_world(&all, selected);
    for j in 0..ROUTES {
        sb.write_route(j, 0);
    }
    for p in &sb.pods {
        sb.cni_file(p, &p.file_uid());
    }
    let cmd = apply_args(&sb, state.path());
    (size.apply_cold, size.apply_cold_peak) = measured(&cmd);
    for p in sb.pods.iter().step_by((n / 20).max(1)) {
        assert_eq!(
            tables.dsts(p.i, OURS).await,
            expected(&selected(p.i), &[0; ROUTES])
        );
    }
    for _ in 0..3 {
        let (t, peak) = measured(&cmd);
        size.apply_noop.push(t);
        size.apply_noop_peak = size.apply_noop_peak.max(peak);
    }
    flush(&tables, &sb.pods, OURS).await;

    size.kube = rounds::round(
        &mut sb,
        &mut tables,
        &mut listener,
        rounds::Source::Kubernetes,
        a,
    )
    .await;
    size.file = rounds::round(&mut sb, &mut tables, &mut listener, rounds::Source::File, a).await;
    size
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--child-measure") {
        child_measure(&argv[2..]);
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end benchmark needs root"
    );
    for t in ["ip", "ovsdb-server", "ovsdb-tool", "ovn-nbctl"] {
        common::require(t);
    }
    let a = args();
    if !a.full {
        println!("smoke round (cargo test); run `cargo bench --bench e2e` for figures");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for n in a.sizes.clone() {
        println!("N = {n} pods (load average {:.1}) ...", report::load1());
        rows.push(rt.block_on(run_size(n, &a)));
        report::print(rows.last().unwrap());
    }
    let table = report::table(&rows);
    println!("\n{table}");
    if a.full && std::env::var("E2E_DOCS").as_deref() != Ok("0") {
        report::write_docs(&table);
    }
}
