//! The node agent's cost on the pod side (issue 11), measured on the release binary against
//! real network namespaces and a real NB (see [`node`] for the shape: N pods x 135-360 routes,
//! ~250 on average):
//! - scripted baseline: `ip -n NS -batch FILE` per pod (cold adds, then the same with
//!   `route replace`, the scripted "re-apply");
//! - `apply`: cold, then no-op (time and peak RSS of the process);
//! - `run`: time to the first full pass, idle CPU and RSS over a quiet window, log lines
//!   while idle, a route deleted by hand -> back, a link flap -> routes back, a Route edit ->
//!   every affected pod changed (from the file write, and from the moment `run` logged that
//!   it saw the change), log lines per edit, and RSS at two route densities (bytes per route).
//!
//! Run (root): `nice -n -5 cargo bench --bench podside -- --pods 500` (also `--pods 2000`,
//! `--idle-secs 60`). Under `cargo test --all-targets` a 6-pod smoke round runs instead.
//! Prints figures; asserts only correctness (every pod carries exactly its routes).
#![allow(clippy::unwrap_used)]

#[path = "../../tests/common/mod.rs"]
mod common;
mod heap;
#[path = "../../tests/netlink_support/mod.rs"]
mod netlink_support;
mod node;
mod probe;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use node::{Node, ROUTES, RULES, ip_batch, rule_dev, rule_dst, selected};
use probe::{Listener, cpu_secs, measured, mib, status_kib, wait_each};

const BIN: &str = env!("CARGO_BIN_EXE_ovnkube-route");

struct Args {
    full: bool,
    pods: usize,
    idle: u64,
    deletions: usize,
    flaps: usize,
    edits: usize,
    /// Seconds to pause after the cold apply (profiling by hand).
    hold: Option<u64>,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let full = argv.iter().any(|a| a == "--bench");
    let num = |name: &str, default: u64| -> u64 {
        argv.iter()
            .position(|a| a == name)
            .and_then(|p| argv.get(p + 1))
            .map(|v| v.parse().expect("number"))
            .unwrap_or(default)
    };
    Args {
        full,
        pods: num("--pods", if full { 500 } else { 6 }) as usize,
        idle: num("--idle-secs", if full { 60 } else { 3 }),
        deletions: num("--deletions", if full { 20 } else { 2 }) as usize,
        flaps: num("--flaps", if full { 5 } else { 1 }) as usize,
        edits: num("--edits", if full { 10 } else { 2 }) as usize,
        hold: argv.iter().any(|x| x == "--hold").then(|| num("--hold", 0)),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn spread(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "min {:.1} / p50 {:.1} / max {:.1}",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    )
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--child-measure") {
        probe::child_measure(&argv[2..]);
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the podside benchmark needs root (real network namespaces)"
    );
    common::require("ovsdb-server");
    common::require("ovn-nbctl");
    let a = args();
    println!(
        "podside benchmark: {} pods, {ROUTES} Routes x {RULES} rules; load average {}",
        a.pods,
        loadavg()
    );
    let setup = Instant::now();
    let node = Node::build(a.pods, RULES);
    let total: usize = (0..a.pods).map(|i| selected(i).len() * RULES).sum();
    println!(
        "setup: {:.1} s; {total} pod routes ({:.0} per pod on average)",
        setup.elapsed().as_secs_f64(),
        total as f64 / a.pods as f64
    );

    // 1. Scripted baseline: one `ip -batch` per pod.
    let (cold, again) = baseline(&node);
    println!(
        "baseline ip -n NS -batch: cold {:.3} s, re-apply (route replace) {:.3} s",
        cold.as_secs_f64(),
        again.as_secs_f64()
    );
    node.flush_ours();

    // 2. apply: cold, then no-op.
    let apply = apply_args(&node);
    let (t, peak) = measured(&apply);
    println!(
        "apply cold: {:.3} s, peak RSS {:.1} MiB",
        t.as_secs_f64(),
        mib(peak)
    );
    let variants = vec![0; ROUTES];
    check_all(&node, &variants, RULES, a.full);
    if let Some(secs) = a.hold {
        // For profiling by hand: the node stays as it is until the hold file is removed
        // (or `secs` pass).
        let flag = node.path("hold");
        std::fs::write(&flag, "").unwrap();
        println!(
            "holding up to {secs} s (rm {} to go on); apply command: {}",
            flag.display(),
            apply.join(" ")
        );
        let until = Instant::now() + Duration::from_secs(secs);
        while flag.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let mut noop = Vec::new();
    for _ in 0..3 {
        let (t, peak) = measured(&apply);
        noop.push((t, peak));
    }
    println!(
        "apply no-op (3 runs): {}",
        noop.iter()
            .map(|(t, p)| format!("{:.3} s / peak {:.1} MiB", t.as_secs_f64(), mib(*p)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let paths: Vec<PathBuf> = (0..a.pods).map(|i| node.ns_path(i)).collect();
    let floors: Vec<(Duration, usize)> = (0..3).map(|_| probe::dump_floor(&paths)).collect();
    println!(
        "floor of a no-op check (one thread dumps every pod's table, {} routes): {}",
        floors[0].1,
        floors
            .iter()
            .map(|(t, _)| format!("{:.3} s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // 3. run.
    run_phase(&node, &a, total);
    println!("load average at the end: {}", loadavg());
}

fn apply_args(node: &Node) -> Vec<String> {
    let mut apply = vec![
        BIN.to_string(),
        "--log".into(),
        "warn".into(),
        "apply".into(),
    ];
    apply.extend([
        "-f".into(),
        node::path_str(&node.path("world.yaml")),
        "-f".into(),
        node::path_str(&node.path("routes")),
    ]);
    apply.extend(node.pod_args());
    apply
}

fn baseline(node: &Node) -> (Duration, Duration) {
    let mut files = Vec::new();
    for verb in ["add", "replace"] {
        let dir = node.path(&format!("batch-{verb}"));
        std::fs::create_dir_all(&dir).unwrap();
        let v: Vec<PathBuf> = (0..node.pods)
            .map(|i| {
                let mut body = String::new();
                for j in selected(i) {
                    for k in 0..RULES {
                        let via = if rule_dev(k) == "eth1" {
                            "10.244.0.1"
                        } else {
                            "169.254.1.1"
                        };
                        body.push_str(&format!(
                            "route {verb} {} via {via} dev {} proto 136\n",
                            rule_dst(j, k, 0),
                            rule_dev(k)
                        ));
                    }
                }
                let p = dir.join(format!("{i}.batch"));
                std::fs::write(&p, body).unwrap();
                p
            })
            .collect();
        files.push(v);
    }
    let mut times = Vec::new();
    for f in &files {
        let start = Instant::now();
        for (i, file) in f.iter().enumerate() {
            node::sh(&["ip", "-n", &node.ns(i), "-batch", &node::path_str(file)]);
        }
        times.push(start.elapsed());
    }
    (times[0], times[1])
}

/// Every pod (or 20 spread ones in a full run) carries exactly its routes.
fn check_all(node: &Node, variants: &[usize], rules: usize, full: bool) {
    let step = if full { (node.pods / 20).max(1) } else { 1 };
    for i in (0..node.pods).step_by(step) {
        let mut want: Vec<String> = node
            .expected(i, rules, variants)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        want.sort();
        assert_eq!(node.ours(i), want, "pod {i}: routes differ from the plan");
    }
}

struct Run {
    child: Child,
    log: PathBuf,
}

impl Run {
    fn start(node: &Node, tag: &str) -> Run {
        let log = node.path(&format!("run-{tag}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let port = common::free_port();
        let child = Command::new(BIN)
            .args(["--log", "info", "run", "--source"])
            .arg(format!(
                "file:{},{}",
                node.path("world.yaml").display(),
                node.path("routes").display()
            ))
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(node.pod_args())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .expect("start run");
        Run { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn lines(&self) -> Vec<String> {
        let f = std::fs::File::open(&self.log).unwrap();
        std::io::BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .collect()
    }

    fn wait_for(&mut self, text: &str, from_line: usize, secs: u64) -> Duration {
        let start = Instant::now();
        loop {
            if self
                .lines()
                .iter()
                .skip(from_line)
                .any(|l| l.contains(text))
            {
                return start.elapsed();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("run exited ({st}): {}", self.lines().join("\n"));
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "run: no {text:?} within {secs} s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// Seconds since the epoch of a log line's RFC 3339 timestamp (`2025-01-02T03:04:05.678901Z`).
fn log_time(line: &str) -> Option<f64> {
    // Without a terminal the log may still carry ANSI colour codes: drop them.
    let mut plain = String::with_capacity(line.len());
    let mut esc = false;
    for c in line.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    let ts = plain.split_whitespace().next()?;
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // Days from civil (proleptic Gregorian), as in Howard Hinnant's algorithm.
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + t[0] * 3600 + t[1] * 60 + t[2];
    Some(secs as f64 + format!("0.{frac}").parse::<f64>().ok()?)
}

/// A numeric field `name=value` of a log line (ANSI codes around it are skipped).
fn field(line: &str, name: &str) -> Option<f64> {
    let at = line.find(name)? + name.len();
    let rest = &line[at..];
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let num: String = rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.parse().ok()
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn run_phase(node: &Node, a: &Args, total: usize) {
    let mut run = Run::start(node, "main");
    let pid = run.pid();
    let t = run.wait_for("initial pass done", 0, 600);
    println!(
        "run: first full pass done after {:.2} s (pods already programmed); RSS {:.1} MiB, peak {:.1} MiB",
        t.as_secs_f64(),
        mib(status_kib(pid, "VmRSS")),
        mib(status_kib(pid, "VmHWM"))
    );

    // Idle window.
    std::thread::sleep(Duration::from_secs(2));
    let lines0 = run.lines().len();
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    let mut rss_max = 0;
    while t0.elapsed() < Duration::from_secs(a.idle) {
        std::thread::sleep(Duration::from_millis(250));
        rss_max = rss_max.max(status_kib(pid, "VmRSS"));
    }
    let cpu = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64();
    let idle_lines = run.lines().len() - lines0;
    let (rss, hwm) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    println!(
        "run idle {} s: CPU {:.2}% of a core; RSS {:.1} MiB (max seen {:.1}), peak {:.1} MiB; {idle_lines} log lines",
        a.idle,
        cpu * 100.0,
        mib(rss),
        mib(rss_max),
        mib(hwm)
    );

    // A route deleted by hand.
    let mut back = Vec::new();
    for d in 0..a.deletions {
        let i = (d * 7919 + 3) % node.pods;
        let j = selected(i)[0];
        let dst = rule_dst(j, 1, 0);
        let mut l = vec![Listener::open(&node.ns_path(i))];
        l[0].drain();
        let start = Instant::now();
        node::sh(&["ip", "-n", &node.ns(i), "route", "del", &dst]);
        let gone = wait_each(&mut l, start, Duration::from_secs(5), |_, ev| {
            ev.iter().any(|e| !e.added && e.dst == dst)
        })[0]
            .expect("deletion seen");
        let again = wait_each(&mut l, start, Duration::from_secs(30), |_, ev| {
            ev.iter().any(|e| e.added && e.ours && e.dst == dst)
        })[0];
        let again = again.unwrap_or_else(|| panic!("pod {i}: {dst} not back within 30 s"));
        back.push(ms(again - gone));
    }
    println!("route deleted by hand -> back (ms): {}", spread(back));

    // eth1 down and up: the kernel flushes the routes on it without route notifications.
    let mut flap = Vec::new();
    for f in 0..a.flaps {
        let i = (f * 4241 + 11) % node.pods;
        let want: Vec<String> = node
            .expected(i, RULES, &vec![0; ROUTES])
            .into_iter()
            .filter(|(_, dev)| *dev == "eth1")
            .map(|(d, _)| d)
            .collect();
        let mut l = vec![Listener::open(&node.ns_path(i))];
        ip_batch(Some(&node.ns(i)), "link set eth1 down\nlink set eth1 up\n");
        let start = Instant::now();
        let done = wait_each(&mut l, start, Duration::from_secs(30), |_, ev| {
            want.iter()
                .all(|w| ev.iter().any(|e| e.added && e.ours && &e.dst == w))
        })[0];
        let done = done.unwrap_or_else(|| panic!("pod {i}: routes not back after a link flap"));
        flap.push(ms(done));
    }
    println!(
        "link flap (eth1 down+up) -> all its eth1 routes back (ms): {}",
        spread(flap)
    );

    // Route edits: r0's first rule moves.
    let affected: Vec<usize> = (0..node.pods)
        .filter(|i| selected(*i).contains(&0))
        .collect();
    let (mut from_write, mut from_seen, mut lines_per_edit) = (Vec::new(), Vec::new(), Vec::new());
    let mut pod_pass = Vec::new();
    let mut variants = vec![0; ROUTES];
    for e in 1..=a.edits {
        let (old, new) = (rule_dst(0, 0, variants[0]), rule_dst(0, 0, e));
        let mut ls: Vec<Listener> = affected
            .iter()
            .map(|i| Listener::open(&node.ns_path(*i)))
            .collect();
        let lines0 = run.lines().len();
        let (start, wall) = (Instant::now(), now_epoch());
        node.write_route(0, e, RULES);
        let at = wait_each(&mut ls, start, Duration::from_secs(30), |_, ev| {
            ev.iter().any(|x| x.added && x.ours && x.dst == new)
                && ev.iter().any(|x| !x.added && x.dst == old)
        });
        let last = at
            .iter()
            .map(|t| t.expect("an affected pod did not get the edit within 30 s"))
            .max()
            .unwrap_or_default();
        variants[0] = e;
        from_write.push(ms(last));
        run.wait_for("input files changed", lines0, 10);
        let seen = run
            .lines()
            .iter()
            .skip(lines0)
            .find(|l| l.contains("input files changed"))
            .and_then(|l| log_time(l))
            .unwrap();
        from_seen.push((last.as_secs_f64() - (seen - wall)) * 1e3);
        std::thread::sleep(Duration::from_millis(500));
        let lines = run.lines();
        lines_per_edit.push((lines.len() - lines0) as f64);
        // The pod side's share: the plan pass's own summary line.
        if let Some(ms) = lines[lines0..]
            .iter()
            .filter(|l| l.contains("pod pass") && l.contains("plan"))
            .find_map(|l| field(l, "elapsed_ms"))
        {
            pod_pass.push(ms);
        }
    }
    println!(
        "Route edit ({} affected pods) -> all changed, from the file write (ms): {}",
        affected.len(),
        spread(from_write)
    );
    println!(
        "  same, from the moment run logged the change (ms): {}",
        spread(from_seen)
    );
    println!(
        "  of which the pod pass (its own summary line, ms): {}",
        spread(pod_pass)
    );
    println!("  log lines per edit: {}", spread(lines_per_edit));
    check_all(node, &variants, RULES, a.full);
    println!(
        "run after the events: RSS {:.1} MiB, peak {:.1} MiB",
        mib(status_kib(pid, "VmRSS")),
        mib(status_kib(pid, "VmHWM"))
    );
    drop(run);

    // Bytes per route: the same pods with a third of the rules, `run` started (like the
    // main one) on tables that already match, so both figures are steady states.
    let few = RULES / 3;
    for j in 0..ROUTES {
        node.write_route(j, 0, few);
    }
    measured(&apply_args(node));
    let mut small = Run::start(node, "small");
    small.wait_for("initial pass done", 0, 600);
    std::thread::sleep(Duration::from_secs(2 + a.idle.min(10)));
    check_all(node, &vec![0; ROUTES], few, a.full);
    let rss_small = status_kib(small.pid(), "VmRSS");
    let routes_small: usize = total / RULES * few;
    let per_route = (rss as f64 - rss_small as f64) * 1024.0 / (total - routes_small) as f64;
    println!(
        "RSS with {routes_small} routes: {:.1} MiB; with {total}: {:.1} MiB -> {:.0} bytes per route (slope)",
        mib(rss_small),
        mib(rss),
        per_route
    );
    drop(small);
    for j in 0..ROUTES {
        node.write_route(j, 0, RULES);
    }
    heap::per_route(node);
    let _ = std::io::stdout().flush();
}
