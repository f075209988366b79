//! The latency figures: a sample is the time from the commit of a change until the NB has
//! committed what the change asks for, on the clock of a monitor that sees every
//! transaction (see [`one`]). The namespace moves, two changes in flight at once, are timed
//! by `wait` transactions sent before the commits.
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use super::nb::{Conn, TxnLog, Wait};
use super::source::{Change, Source};
use super::world::{self, GROUP, NS_PODS, Spec};

/// Longest wait for one sample; a sample that takes longer counts as missed.
pub const LIMIT: Duration = Duration::from_secs(120);

/// Samples of one figure (`None`: not seen within [`LIMIT`]).
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<Option<Duration>>);

impl Samples {
    pub fn pct(&self, p: f64) -> Option<Duration> {
        let mut v: Vec<Duration> = self.0.iter().map(|s| s.unwrap_or(LIMIT * 10)).collect();
        if v.is_empty() {
            return None;
        }
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        Some(v[i.min(v.len() - 1)])
    }
    pub fn missed(&self) -> usize {
        self.0.iter().filter(|s| s.is_none()).count()
    }
    pub fn show(&self) -> String {
        let f = |d: Option<Duration>| match d {
            Some(d) if d >= LIMIT => "timeout".to_owned(),
            Some(d) => fmt_ms(d),
            None => "-".to_owned(),
        };
        let mut s = format!("{} / {}", f(self.pct(0.5)), f(self.pct(0.99)));
        if self.missed() > 0 {
            s.push_str(&format!(
                " ({} of {} not seen in {} s)",
                self.missed(),
                self.0.len(),
                LIMIT.as_secs()
            ));
        }
        s
    }
}

pub fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1e3)
    }
}

/// Commits `c` and returns how long until the NB committed what it asks for: the monitor's
/// time of the last transaction after the commit once the waits hold. They are checked
/// after each transaction the monitor sees (a `wait` with timeout 0), never by a `wait`
/// blocked in ovsdb-server while the change is on its way: ovsdb-server evaluates a blocked
/// `wait` again at every commit, and at 50,000 pods a scan of the 20,000 policies costs it
/// 2 ms, four times the cost of the transaction being timed (docs/benchmarks.md).
pub fn one(src: &mut dyn Source, nb: &mut Nb, c: &Change, waits: &[Wait]) -> Option<Duration> {
    let commit = src.prepare(c, &mut nb.main);
    let mut seen = nb.log.lock().unwrap().txns.len();
    let t = Instant::now();
    commit();
    let out = loop {
        if t.elapsed() > LIMIT {
            break None;
        }
        let n = nb.log.lock().unwrap().txns.len();
        if n == seen {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        seen = n;
        if nb.w1.holds(waits) {
            // The monitor may not have read every transaction the check saw yet.
            std::thread::sleep(Duration::from_millis(3));
            let log = nb.log.lock().unwrap();
            break log.txns.last().map(|x| x.0.saturating_duration_since(t));
        }
    };
    std::thread::sleep(Duration::from_millis(30));
    if std::env::var_os("CLUSTER_TRACE").is_some() {
        let at = std::time::SystemTime::now() - t.elapsed();
        let at = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        eprintln!(
            "sample at {}.{:06} took {:?}",
            at.as_secs(),
            at.subsec_micros(),
            out
        );
    }
    out
}

/// Conns the figures use: one for the benchmark's own NB writes, two for waits.
pub struct Nb {
    pub main: Conn,
    pub w1: Conn,
    pub w2: Conn,
    /// Every transaction touching our tables, with the monitor's time.
    pub log: Arc<Mutex<TxnLog>>,
}

fn ips(pods: std::ops::Range<usize>) -> Vec<String> {
    pods.map(|p| world::ovn_ip(p).to_string()).collect()
}

/// A label group whose Route selects by `app` label (sample `k`): 3 + 10k, and its
/// neighbour 4 + 10k.
fn label_groups(spec: &Spec, k: usize) -> (usize, usize) {
    let g = (3 + 10 * k) % (spec.routes() - 1);
    let g = g - g % 10 + 3;
    (g, g + 1)
}

pub fn route_edits(
    spec: &Spec,
    src: &mut dyn Source,
    nb: &mut Nb,
    n: usize,
    base: usize,
) -> Samples {
    let mut out = Samples::default();
    for k in 0..n {
        let i = (7 + 10 * (k + base)) % spec.routes();
        let i = i - i % 10 + 7;
        let mut dsts: Vec<String> = (0..world::RULES).map(|j| world::dst(i, j)).collect();
        let fresh = world::fresh_dst(k + base);
        let old = std::mem::replace(&mut dsts[0], fresh.clone());
        let waits = [
            Wait::Exists(
                "Logical_Router_Policy",
                "match",
                world::policy_match(i, &fresh),
            ),
            Wait::Gone(
                "Logical_Router_Policy",
                "match",
                world::policy_match(i, &old),
            ),
        ];
        out.0
            .push(one(src, nb, &Change::Edit(i, dsts.clone()), &waits));
        // Back, so that the next sample of this Route starts from the generated state.
        dsts[0] = old.clone();
        let back = [Wait::Exists(
            "Logical_Router_Policy",
            "match",
            world::policy_match(i, &old),
        )];
        let _ = one(src, nb, &Change::Edit(i, dsts), &back);
    }
    out
}

fn relabel_waits(p: usize, from: usize, to: usize) -> [Wait; 2] {
    let ip = vec![world::ovn_ip(p).to_string()];
    [
        Wait::Holds(world::address_set(to), ip.clone()),
        Wait::Lacks(world::address_set(from), ip),
    ]
}

pub fn relabels(spec: &Spec, src: &mut dyn Source, nb: &mut Nb, n: usize) -> Samples {
    let mut out = Samples::default();
    for k in 0..n {
        let (g, g2) = label_groups(spec, k);
        let p = g * GROUP + k % GROUP;
        out.0.push(one(
            src,
            nb,
            &Change::Relabel(p, g2),
            &relabel_waits(p, g, g2),
        ));
        let _ = one(src, nb, &Change::Relabel(p, g), &relabel_waits(p, g2, g));
    }
    out
}

fn extra_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 131, 0, 2)) + k as u32)
}

/// Pods added, then the same pods deleted: (adds, deletes).
pub fn adds_and_deletes(
    spec: &Spec,
    src: &mut dyn Source,
    nb: &mut Nb,
    n: usize,
    base: usize,
) -> (Samples, Samples) {
    let (mut adds, mut dels) = (Samples::default(), Samples::default());
    for k in base..base + n {
        let (g, _) = label_groups(spec, k);
        let ip = extra_ip(k);
        let w = [Wait::Holds(world::address_set(g), vec![ip.to_string()])];
        adds.0.push(one(src, nb, &Change::Add(k, g, ip), &w));
        let w = [Wait::Lacks(world::address_set(g), vec![ip.to_string()])];
        dels.0.push(one(src, nb, &Change::Delete(k, g), &w));
    }
    (adds, dels)
}

pub fn service_ips(
    spec: &Spec,
    src: &mut dyn Source,
    nb: &mut Nb,
    n: usize,
    base: usize,
) -> Samples {
    let mut out = Samples::default();
    for k in 0..n {
        let i = (2 + 10 * (k + base)) % spec.routes();
        let i = i - i % 10 + 2;
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 97, 0, 2)) + (k + base) as u32);
        let w = [Wait::Exists("ACL", "match", world::acl_match(i, ip))];
        out.0.push(one(src, nb, &Change::ServiceIp(i, ip), &w));
        // Back to the generated address (not timed).
        let w = [Wait::Exists(
            "ACL",
            "match",
            world::acl_match(i, world::cluster_ip(i)),
        )];
        let _ = one(src, nb, &Change::ServiceIp(i, world::cluster_ip(i)), &w);
    }
    out
}

fn team_route(t: usize) -> usize {
    50 * t + 1
}

/// Namespace relabels that move 500 pods from one Route's selection to another's, each
/// followed at once by a pod relabel elsewhere: (the namespace moves, the pod relabels
/// that waited behind them).
pub fn namespace_moves(
    spec: &Spec,
    src: &mut dyn Source,
    nb: &mut Nb,
    n: usize,
) -> (Samples, Samples) {
    let (mut moves, mut behind) = (Samples::default(), Samples::default());
    let namespaces = spec.namespaces();
    if namespaces < 2 {
        return (moves, behind);
    }
    for k in 0..n {
        let ns = (k / 2) % namespaces;
        let other = (ns + 1) % namespaces;
        let (from, to) = if k % 2 == 0 { (ns, other) } else { (other, ns) };
        let pods = ips(ns * NS_PODS..(ns + 1) * NS_PODS);
        let waits = [
            Wait::Holds(world::address_set(team_route(to)), pods.clone()),
            Wait::Lacks(world::address_set(team_route(from)), pods),
        ];
        let commit = src.prepare(&Change::Team(ns, to), &mut nb.main);
        let id = nb.w1.start_wait(&waits, LIMIT);
        // The pod relabel right behind it, in another namespace.
        let (g, g2) = label_groups(spec, k + 7);
        let p = g * GROUP + (k + 3) % GROUP;
        std::thread::sleep(Duration::from_millis(2));
        let t = Instant::now();
        commit();
        let commit2 = src.prepare(&Change::Relabel(p, g2), &mut nb.main);
        let id2 = nb.w2.start_wait(&relabel_waits(p, g, g2), LIMIT);
        let t2 = Instant::now();
        commit2();
        // Both answers are read as they come, each on its own thread.
        let (w1, w2) = (&mut nb.w1, &mut nb.w2);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| w1.waited(id).then(|| t.elapsed()));
            let b = s.spawn(|| w2.waited(id2).then(|| t2.elapsed()));
            (a.join().unwrap(), b.join().unwrap())
        });
        moves.0.push(a);
        behind.0.push(b);
        std::thread::sleep(Duration::from_millis(30));
        let _ = one(src, nb, &Change::Relabel(p, g), &relabel_waits(p, g2, g));
    }
    (moves, behind)
}
