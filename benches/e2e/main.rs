//! End to end: the real binary (`run --source file:`) against a real NB and real pod
//! network namespaces, N pods x 20 routes each (N/20 Routes of 20 rules selecting 20 pods
//! each, reroute policies in the NB), every figure checked through the benchmark's own
//! netlink sockets, `ip -n` and its own NB connection, never the controller's word. The
//! same end state scripted the way an operator would (one chained `ovn-nbctl`, one
//! `ip -n NS -batch` per pod) is timed in the same run. Sizes N = 250, 500, 1,000, 2,000.
//!
//! One command, root: `cargo bench --bench e2e` (prints the table and writes it into
//! docs/benchmarks.md between the `e2e` markers). `E2E_SIZES=250,500` picks sizes,
//! `E2E_DOCS=0` leaves the docs alone, `E2E_AUDIT_MINS` sets `--audit-mins` (0 unless set:
//! figures come from events alone). Under `cargo test --all-targets` the same binary runs
//! one small smoke round (40 pods) and writes nothing.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod probe;
mod report;
mod sandbox;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ovnkube_route::nb::observed::{ADDRESS_SET, POLICY};
use ovnkube_route::nb::reconcile::NbReconciler;
use ovnkube_route::plan::nb::{ID_KEY, NAME_KEY};

use probe::Probe;
use report::{Figures, Size};
use sandbox::{Pod, RULES, Sandbox, dst};

/// Routing protocol of the routes ovnkube-route installs (`netlink::ROUTE_PROTOCOL`).
const OURS: u8 = 136;
/// The scripted baseline's routes.
const SCRIPTED: u8 = 200;

fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn sizes() -> Vec<usize> {
    if !full() {
        return vec![40];
    }
    std::env::var("E2E_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![250, 500, 1000, 2000])
}

/// Samples per latency figure: (edits, label changes, new pods, pod drift, NB drift).
fn samples() -> (usize, usize, usize, usize, usize) {
    if full() {
        (50, 20, 10, 10, 20)
    } else {
        (2, 2, 1, 1, 2)
    }
}

/// Waits for `done` (polled), at most `limit`.
async fn until<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut done: F) -> Instant {
    let start = Instant::now();
    loop {
        if done().await {
            return Instant::now();
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn group_dsts(g: usize, variant: usize) -> BTreeSet<String> {
    (0..RULES).map(|j| dst(g, j, variant)).collect()
}

/// The destinations of a Route's policies in the NB, read from the benchmark's replica.
fn policy_dsts(nb: &NbReconciler, g: usize) -> BTreeSet<String> {
    nb.snapshot()
        .find_by_external_id(POLICY, NAME_KEY, &format!("g-{g}"))
        .iter()
        .filter_map(|r| {
            let m = r.column("match")?.as_str()?.to_owned();
            Some(m.rsplit("ip4.dst == ").next()?.to_owned())
        })
        .collect()
}

fn address_set(nb: &NbReconciler, g: usize) -> BTreeSet<String> {
    nb.snapshot()
        .find_by_external_id(ADDRESS_SET, ID_KEY, &format!("g-{g}/address-set/ip4"))
        .first()
        .and_then(|r| {
            r.column("addresses").map(|c| {
                c.set_iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default()
}

fn proc_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the command name.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// Transactions in the NB's log carrying the controller's comment.
fn our_transactions(sb: &Sandbox) -> usize {
    let out = Command::new("ovsdb-tool")
        .args(["show-log", "-m"])
        .arg(&sb.nb.db)
        .output()
        .expect("ovsdb-tool");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("ovnkube-route:"))
        .count()
}

/// The controller process; killed (it is our child) when dropped, also on a panic.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_controller(sb: &Sandbox) -> Controller {
    let bin =
        std::env::var("OVNKR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ovnkube-route").into());
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg(format!("--source=file:{}", sb.input().display()))
        .arg(format!("--nb=unix:{}", sb.nb.sock.display()))
        .args(["--node", "node1", "--metrics-addr", "127.0.0.1:0"])
        .arg(format!("--cni-results={}", sb.cni().display()))
        .arg(format!("--state-dir={}", sb.state().display()))
        .args(["--log", "warn"]);
    // No audit: every figure comes from events alone.
    let mins = std::env::var("E2E_AUDIT_MINS").unwrap_or_else(|_| "0".into());
    cmd.arg(format!("--audit-mins={mins}"));
    cmd.stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Controller)
        .expect("spawn ovnkube-route")
}

/// One operator's script: the same end state with `ovn-nbctl` (one chained call) and
/// `ip -n NS -batch` (one per pod).
async fn scripted(sb: &Sandbox, probe: &Probe, nb: &NbReconciler) -> Duration {
    let mut args: Vec<String> = vec![format!("--db=unix:{}", sb.nb.sock.display())];
    for g in 0..sb.groups {
        let members: Vec<&Pod> = sb.pods.iter().filter(|p| p.group == g).collect();
        let ips: Vec<String> = members
            .iter()
            .map(|p| format!("\"{}\"", p.ovn_ip))
            .collect();
        args.extend(["--", "create", "Address_Set"].map(String::from));
        args.push(format!("name=scripted_g{g}"));
        args.push(format!("addresses={}", ips.join(",")));
        args.extend(["--", "pg-add"].map(String::from));
        args.push(format!("scripted_g{g}"));
        args.extend(members.iter().map(|p| p.lsp()));
        for d in group_dsts(g, 0) {
            args.extend(["--", "lr-policy-add", "ovn_cluster_router", "250"].map(String::from));
            args.push(format!("ip4.src == $scripted_g{g} && ip4.dst == {d}"));
            args.extend(["reroute", "100.64.0.2"].map(String::from));
        }
    }
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
    for p in &sb.pods {
        let lines: String = group_dsts(p.group, 0)
            .iter()
            .map(|d| format!("route add {d} via 10.244.0.1 dev eth1 proto {SCRIPTED}\n"))
            .collect();
        sandbox::ip_batch(Some(&p.netns), &lines);
    }
    let took = start.elapsed();
    // Checked like ours.
    let want = sb.groups * RULES;
    until("scripted policies", Duration::from_secs(30), async || {
        nb.snapshot().len(POLICY) >= want
    })
    .await;
    for p in &sb.pods {
        assert_eq!(
            probe.dsts(p.i, Some(SCRIPTED)).await,
            group_dsts(p.group, 0)
        );
    }
    took
}

async fn connect(sb: &Sandbox) -> NbReconciler {
    NbReconciler::connect(sb.config(), Duration::from_secs(10))
        .await
        .unwrap()
}

async fn pods_have(
    probe: &Probe,
    pods: &[&Pod],
    want: &BTreeSet<String>,
    gone: &BTreeSet<String>,
) -> bool {
    for p in pods {
        let have = probe.dsts(p.i, Some(OURS)).await;
        if !want.is_subset(&have) || !gone.is_disjoint(&have) {
            return false;
        }
    }
    true
}

async fn run_size(n: usize) -> Size {
    let t = Instant::now();
    let mut sb = Sandbox::new(n, &format!("{n}")).await;
    let setup = t.elapsed();
    let paths: Vec<_> = sb.pods.iter().map(|p| sb.netns_path(p)).collect();
    let mut probe = Probe::open(&paths);
    let mut f = Figures::default();

    // The scripted baseline, then a clean slate: its routes flushed, a fresh NB.
    let nb = connect(&sb).await;
    f.scripted = scripted(&sb, &probe, &nb).await;
    drop(nb);
    for p in &sb.pods {
        probe.flush(p.i, SCRIPTED).await;
    }
    sb.fresh_nb().await;
    let nb = connect(&sb).await;

    // Cold convergence.
    for g in 0..sb.groups {
        sb.write_route(g, 0);
    }
    let mut variants = vec![0usize; sb.groups];
    let start = Instant::now();
    let mut ctl = spawn_controller(&sb);
    let pid = ctl.0.id();
    let want_rows = sb.groups * RULES;
    let nb_done = until("cold NB", Duration::from_secs(120), async || {
        nb.snapshot()
            .find_by_external_id(POLICY, "k8s.ovn.org/owner-controller", "ovnkube-route")
            .len()
            == want_rows
    })
    .await;
    let all: Vec<&Pod> = sb.pods.iter().collect();
    let mut pods_done = start;
    for p in &all {
        let want = group_dsts(p.group, 0);
        pods_done = until("cold pods", Duration::from_secs(120), async || {
            pods_have(&probe, &[p], &want, &BTreeSet::new()).await
        })
        .await
        .max(pods_done);
    }
    f.cold = nb_done.max(pods_done) - start;
    f.cold_nb = nb_done - start;
    f.cold_pods = pods_done - start;
    f.cold_cpu = cpu_secs(pid);
    // The full check through `ip -n`, every pod.
    for p in &sb.pods {
        let have = probe::ip_routes(&p.netns);
        assert!(
            group_dsts(p.group, 0).is_subset(&have),
            "ip -n {}: {have:?}",
            p.netns
        );
    }
    for g in 0..sb.groups {
        assert_eq!(policy_dsts(&nb, g), group_dsts(g, 0));
    }
    f.rss_cold = proc_field(pid, "VmRSS:");

    let (edits, labels, new_pods, pod_drifts, nb_drifts) = samples();
    // Route edits: rule 0 of Route g moves; its 20 pods and its policies follow.
    for i in 0..edits {
        let g = (i * 7) % sb.groups;
        let (old, new) = (group_dsts(g, variants[g]), group_dsts(g, variants[g] ^ 1));
        variants[g] ^= 1;
        let gone: BTreeSet<String> = old.difference(&new).cloned().collect();
        let members: Vec<&Pod> = sb.pods.iter().filter(|p| p.group == g).collect();
        let t = Instant::now();
        sb.write_route(g, variants[g]);
        let done = until("edit", Duration::from_secs(30), async || {
            policy_dsts(&nb, g) == new && pods_have(&probe, &members, &new, &gone).await
        })
        .await;
        f.edit.push(done - t);
    }
    // Label changes: pod i leaves its Route for the next one (and comes back next time).
    let mut moved: Vec<(usize, usize)> = Vec::new();
    for i in 0..labels {
        let p = sb.pods[(i / 2 * 37) % n].clone();
        let to = if i % 2 == 0 {
            (p.group + 1) % sb.groups
        } else {
            p.group
        };
        let from = if i % 2 == 0 {
            p.group
        } else {
            (p.group + 1) % sb.groups
        };
        moved.retain(|(k, _)| *k != p.i);
        if to != p.group {
            moved.push((p.i, to));
        }
        let (want, gone) = (
            group_dsts(to, variants[to]),
            group_dsts(from, variants[from]),
        );
        let gone: BTreeSet<String> = gone.difference(&want).cloned().collect();
        let t = Instant::now();
        sb.write_world(&moved);
        let done = until("label change", Duration::from_secs(30), async || {
            address_set(&nb, to).contains(&p.ovn_ip)
                && !address_set(&nb, from).contains(&p.ovn_ip)
                && pods_have(&probe, &[&p], &want, &gone).await
        })
        .await;
        f.label.push(done - t);
    }
    // New pods: namespace, veths, CNI cache and switch port ready; then the pod appears in
    // the input.
    for _ in 0..new_pods {
        let p = sb.add_pod().await;
        probe.add(sb.netns_path(&p));
        let want = group_dsts(p.group, variants[p.group]);
        let t = Instant::now();
        sb.write_world(&moved);
        let done = until("new pod", Duration::from_secs(30), async || {
            pods_have(&probe, &[&p], &want, &BTreeSet::new()).await
                && address_set(&nb, p.group).contains(&p.ovn_ip)
        })
        .await;
        f.new_pod.push(done - t);
    }
    // A pod route deleted by hand.
    for i in 0..pod_drifts {
        let p = sb.pods[(i * 53) % n].clone();
        let d = dst(p.group, 3, 0);
        let t = Instant::now();
        assert!(probe.delete(p.i, &d).await, "no route {d} in {}", p.netns);
        let want = BTreeSet::from([d]);
        let done = until("pod route back", Duration::from_secs(30), async || {
            pods_have(&probe, &[&p], &want, &BTreeSet::new()).await
        })
        .await;
        f.pod_drift.push(done - t);
    }
    // An NB row deleted by hand.
    let db = format!("--db=unix:{}", sb.nb.sock.display());
    for i in 0..nb_drifts {
        let g = (i * 11) % sb.groups;
        let row = nb
            .snapshot()
            .find_by_external_id(POLICY, NAME_KEY, &format!("g-{g}"))[0]
            .clone();
        let (old, id) = (row.uuid(), row.external_id(ID_KEY).unwrap().to_owned());
        let out = Command::new("ovn-nbctl")
            .args([
                db.as_str(),
                "lr-policy-del",
                "ovn_cluster_router",
                &old.to_string(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let t = Instant::now();
        let done = until("NB row back", Duration::from_secs(30), async || {
            nb.snapshot()
                .find_by_external_id(POLICY, ID_KEY, &id)
                .iter()
                .any(|r| r.uuid() != old)
        })
        .await;
        f.nb_drift.push(done - t);
    }
    // Steady state a few seconds later.
    tokio::time::sleep(Duration::from_secs(if full() { 5 } else { 1 })).await;
    f.rss = proc_field(pid, "VmRSS:");
    f.hwm = proc_field(pid, "VmHWM:");
    f.cpu = cpu_secs(pid);
    f.transactions = our_transactions(&sb);
    assert!(ctl.0.try_wait().unwrap().is_none(), "the controller exited");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = ctl.0.wait();
    drop(probe);
    println!("  (N = {n}: sandbox built in {:.1} s)", setup.as_secs_f64());
    Size {
        n,
        routes: sb.groups,
        f,
    }
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end benchmark needs root"
    );
    for t in ["ip", "ovsdb-server", "ovsdb-tool", "ovn-nbctl"] {
        common::require(t);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for n in sizes() {
        println!("N = {n} pods ...");
        rows.push(rt.block_on(run_size(n)));
        report::print(rows.last().unwrap());
    }
    let table = report::table(&rows);
    println!("\n{table}");
    if full() && std::env::var("E2E_DOCS").as_deref() != Ok("0") {
        report::write_docs(&table);
    }
}
