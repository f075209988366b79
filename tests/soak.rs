//! A soak of `run` (issue 9): Routes and pods churned, the NB server restarted, drift
//! injected, for `OVNKR_SOAK_SECS` seconds (20 in CI; the recorded run used 1800). At the
//! end the NB must hold exactly what a clean apply of the final input writes (no
//! duplicate, no orphan), foreign rows untouched, the controller alive, and its memory and
//! file descriptors bounded. Figures are printed (`--nocapture`) for docs/reliability.md.
//!
//! File mode with `--skip-pods`: pods are churned as world objects (Address_Sets, Port
//! Groups follow them); kernel routes have their own tests and benchmark.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fixture::*;

fn ids(ovn: &Ovn) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for rows in ovn.dump().values() {
        for r in rows.values().filter(|r| is_owned(r)) {
            *out.entry(ext_id(r, "k8s.ovn.org/id").unwrap_or_default())
                .or_default() += 1;
        }
    }
    out
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// A small deterministic generator (no dependency, reproducible runs).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The world without the pods whose bit in `mask` is clear.
fn world(mask: u64) -> String {
    let full = world_yaml(&[NGINX]);
    let mut out = String::new();
    for doc in full.split("---\n").filter(|d| !d.trim().is_empty()) {
        let keep = match PODS
            .iter()
            .position(|p| doc.contains(&format!("name: {}\n", p.name)) && doc.contains("kind: Pod"))
        {
            Some(i) => mask & (1 << i) != 0,
            None => true,
        };
        if keep {
            out.push_str("---\n");
            out.push_str(doc);
        }
    }
    out
}

fn routes(rng: &mut Lcg) -> String {
    let mut docs: Vec<String> = Vec::new();
    for r in [ECMP, ENFORCE, MULTI, EXTRA, EVERYONE] {
        if rng.next(3) != 0 {
            docs.push(r.to_string());
        }
    }
    let n = rng.next(12);
    let mut rules = String::new();
    for i in 0..n {
        rules.push_str(&format!(
            "    - {{dst: \"172.21.{}.0/24\", dev: eth1}}\n",
            (i * 7 + rng.next(5)) % 250
        ));
    }
    if n > 0 {
        docs.push(format!(
            "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {{name: churn}}\nspec:\n  podSelector: {{matchLabels: {{app: client-b}}}}\n  route:\n{rules}  ovn:\n    nextHops: [\"100.64.0.3\"]\n"
        ));
    }
    docs.join("---\n")
}

#[test]
fn soak_churn_restarts_and_drift() {
    let secs: u64 = std::env::var("OVNKR_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let restart_every = Duration::from_secs((secs / 10).clamp(8, 180));
    let (mut ovn, inputs) = with_topology(Ovn::start());
    let foreign = ovn.foreign();
    let mut rng = Lcg(0x5eed);
    inputs.set_world(&world(u64::MAX));
    inputs.put("routes.yaml", &routes(&mut rng));
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);
    std::thread::sleep(Duration::from_secs(2));
    run.assert_alive();
    let pid = run.child.id();
    let (rss0, fds0) = (status_kib(pid, "VmRSS:"), fds(pid));
    let (mut rss_max, mut fds_max) = (rss0, fds0);
    let start = Instant::now();
    let mut last_restart = Instant::now();
    let (mut route_edits, mut pod_edits, mut restarts, mut drifts) = (0, 0, 0, 0);
    while start.elapsed() < Duration::from_secs(secs) {
        run.assert_alive();
        match rng.next(10) {
            0..=4 => {
                inputs.put("routes.yaml", &routes(&mut rng));
                route_edits += 1;
            }
            5..=8 => {
                inputs.set_world(&world(rng.next(1 << PODS.len()) | 1));
                pod_edits += 1;
            }
            _ => {
                // Drift: delete one of our rows behind the controller's back.
                let owned = "external_ids:\"k8s.ovn.org/owner-controller\"=ovnkube-route";
                let uuids = ovn.nbctl(&["--bare", "--columns=_uuid", "find", "Address_Set", owned]);
                if let Some(u) = uuids.lines().find(|l| !l.trim().is_empty()) {
                    let _ = std::process::Command::new("ovn-nbctl")
                        .args([
                            "--db",
                            &ovn.nb_remote(),
                            "--if-exists",
                            "destroy",
                            "Address_Set",
                            u.trim(),
                        ])
                        .output();
                    drifts += 1;
                }
            }
        }
        if last_restart.elapsed() >= restart_every {
            ovn.nb.kill();
            std::thread::sleep(Duration::from_millis(200));
            ovn.nb.start();
            restarts += 1;
            last_restart = Instant::now();
        }
        rss_max = rss_max.max(status_kib(pid, "VmRSS:"));
        fds_max = fds_max.max(fds(pid));
        std::thread::sleep(Duration::from_millis(300 + rng.next(700)));
    }
    // Quiet: the final input must converge to exactly what a clean apply writes.
    let final_routes = routes(&mut rng);
    inputs.put("routes.yaml", &final_routes);
    let settle = Instant::now();
    let want = {
        let (fresh, fresh_inputs) = with_topology(Ovn::start());
        fresh_inputs.set_world(&std::fs::read_to_string(inputs.world()).unwrap());
        fresh_inputs.put("routes.yaml", &final_routes);
        apply_nb(&fresh, &fresh_inputs);
        ids(&fresh)
    };
    let took = poll(30, "final convergence", || {
        run.assert_alive();
        let now = ids(&ovn);
        if now == want {
            Ok(())
        } else {
            Err(format!("{} ids, want {}", now.len(), want.len()))
        }
    });
    let _ = settle;
    let (rss1, fds1) = (status_kib(pid, "VmRSS:"), fds(pid));
    let log = run.log();
    let panics = log.matches("panicked").count();
    println!(
        "soak {secs} s: {route_edits} Route edits, {pod_edits} pod churns, {drifts} rows deleted behind its back, \
         {restarts} NB restarts; final convergence {:.3} s; RSS {rss0} KiB after start, max {rss_max}, end {rss1}; \
         fds {fds0} -> max {fds_max}, end {fds1}; {} warnings, {panics} panics",
        took.as_secs_f64(),
        log.matches("WARN").count()
    );
    assert_eq!(panics, 0);
    assert!(ids(&ovn).values().all(|n| *n == 1));
    assert!(fds1 <= fds0 + 8, "file descriptors grew: {fds0} -> {fds1}");
    assert!(rss1 < 256 * 1024, "RSS {rss1} KiB");
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}
