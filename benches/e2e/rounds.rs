//! One source's round at one size: a clean node (our routes flushed, a fresh NB and state
//! directory, the CNI cache files with this source's uids), the controller started, then
//! every figure in turn, checked through the probe. See `main.rs` for what is measured.
use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ovnkube_route::nb::observed::{ADDRESS_SET, POLICY};
use ovnkube_route::nb::reconcile::NbReconciler;
use ovnkube_route::plan::nb::{ID_KEY, NAME_KEY};

use super::kube::{Cluster, LEASE_NS};
use super::probe::{Ev, Listener, Tables, ip_routes};
use super::report::{Figures, load1};
use super::sandbox::{Pod, ROUTES, RULES, Sandbox, rule_dev, rule_dst, selected};
use super::{Args, OURS, bin, expected, flush};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Kubernetes,
    File,
}

/// The controller process; killed (it is our child) when dropped, also on a panic.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// The destinations of Route `j`'s policies in the NB, read from the benchmark's replica.
pub(super) fn policy_dsts(nb: &NbReconciler, j: usize) -> BTreeSet<String> {
    nb.snapshot()
        .find_by_external_id(POLICY, NAME_KEY, &format!("r{j}"))
        .iter()
        .filter_map(|r| {
            let m = r.column("match")?.as_str()?.to_owned();
            Some(m.rsplit("ip4.dst == ").next()?.to_owned())
        })
        .collect()
}

pub(super) fn address_set(nb: &NbReconciler, j: usize) -> BTreeSet<String> {
    nb.snapshot()
        .find_by_external_id(ADDRESS_SET, ID_KEY, &format!("r{j}/address-set/ip4"))
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

/// Polls `done` every millisecond, at most `limit`; returns when it first held.
pub(super) async fn until<F: AsyncFnMut() -> bool>(
    what: &str,
    limit: Duration,
    mut done: F,
) -> Instant {
    let start = Instant::now();
    loop {
        if done().await {
            return Instant::now();
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        if start.elapsed() > Duration::from_secs(10) && std::env::var("E2E_LOG").is_ok() {
            eprintln!("still waiting: {what}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(super) struct Round<'a> {
    pub(super) sb: &'a mut Sandbox,
    pub(super) tables: &'a mut Tables,
    pub(super) listener: &'a mut Listener,
    pub(super) source: Source,
    pub(super) cluster: Option<Cluster>,
    pub(super) nb: NbReconciler,
    /// Per pod: the Routes it is labelled for.
    pub(super) labels: Vec<Vec<usize>>,
    /// Per Route: the variant of rule 0.
    pub(super) variants: Vec<usize>,
    pub(super) uids: Vec<String>,
    pub(super) base: usize,
    dir: tempfile::TempDir,
    pub(super) f: Figures,
}

pub async fn round(
    sb: &mut Sandbox,
    tables: &mut Tables,
    listener: &mut Listener,
    source: Source,
    a: &Args,
) -> Figures {
    let tag = match source {
        Source::Kubernetes => "kube",
        Source::File => "file",
    };
    println!("  {tag} source ...");
    let load0 = load1();
    let base = sb.pods.len();
    let mut r = Round::prepare(sb, tables, listener, source, tag).await;
    let trace = |what: &str| {
        if std::env::var("E2E_LOG").is_ok() {
            eprintln!("    {what}");
        }
    };
    let ctl = r.start();
    let pid = ctl.0.id();
    trace("cold");
    r.cold(pid).await;
    trace("idle");
    r.idle(pid, a).await;
    trace("edits, labels, new pods, drift");
    for e in 0..a.edits {
        r.edit(e + 1).await;
    }
    for s in 0..a.labels {
        r.relabel(s).await;
    }
    for s in 0..a.new_pods {
        r.new_pod(s).await;
    }
    for s in 0..a.drifts {
        r.pod_drift(s).await;
    }
    for s in 0..a.nb_drifts {
        r.nb_drift(s).await;
    }
    r.listener.hear_routes(false);
    r.verify_all().await;
    tokio::time::sleep(a.settle).await;
    r.f.rss = proc_field(pid, "VmRSS:");
    r.f.hwm = proc_field(pid, "VmHWM:");
    let mut ctl = ctl;
    assert!(ctl.0.try_wait().unwrap().is_none(), "the controller exited");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = ctl.0.wait();
    r.f.load = (load0, load1());
    let f = std::mem::take(&mut r.f);
    if let Some(c) = r.cluster.take() {
        std::thread::spawn(move || drop(c)).join().unwrap();
    }
    drop(r);
    sb.drop_added(base);
    tables.forget_from(base);
    f
}

impl<'a> Round<'a> {
    /// A clean node for this source.
    async fn prepare(
        sb: &'a mut Sandbox,
        tables: &'a mut Tables,
        listener: &'a mut Listener,
        source: Source,
        tag: &str,
    ) -> Round<'a> {
        flush(tables, &sb.pods, OURS).await;
        sb.fresh_nb(tag).await;
        sb.clear_cni();
        let dir = tempfile::tempdir().unwrap();
        let labels: Vec<Vec<usize>> = sb.pods.iter().map(|p| selected(p.i)).collect();
        let (cluster, uids) = match source {
            Source::Kubernetes => {
                // The API server has a runtime of its own: made (and later dropped) on a
                // thread outside ours.
                let path = dir.path().to_path_buf();
                let mut c = std::thread::spawn(move || Cluster::start(&path))
                    .join()
                    .unwrap();
                let uids = c.populate(&sb.pods);
                (Some(c), uids)
            }
            Source::File => {
                let all: Vec<&Pod> = sb.pods.iter().collect();
                sb.write_world(&all, selected);
                for j in 0..ROUTES {
                    sb.write_route(j, 0);
                }
                (None, sb.pods.iter().map(Pod::file_uid).collect())
            }
        };
        for (p, uid) in sb.pods.iter().zip(&uids) {
            sb.cni_file(p, uid);
        }
        let nb = NbReconciler::connect(sb.config(), Duration::from_secs(10))
            .await
            .unwrap();
        let base = sb.pods.len();
        Round {
            sb,
            tables,
            listener,
            source,
            cluster,
            nb,
            labels,
            variants: vec![0; ROUTES],
            uids,
            base,
            dir,
            f: Figures::default(),
        }
    }

    fn start(&mut self) -> Controller {
        let mut cmd = Command::new(bin());
        let log = std::env::var("E2E_LOG").unwrap_or_else(|_| "warn".into());
        cmd.args(["--log", &log, "run"]);
        match self.source {
            Source::File => {
                cmd.arg(format!("--source=file:{}", self.sb.input().display()));
            }
            Source::Kubernetes => {
                let c = self.cluster.as_ref().unwrap();
                cmd.args(["--source", "kubernetes", "--mode", "ic"])
                    .env("KUBECONFIG", &c.kubeconfig)
                    .env("POD_NAMESPACE", LEASE_NS)
                    .env("POD_NAME", "node1")
                    .env("POD_UID", "uid-node1")
                    .env_remove("NODE_NAME");
            }
        }
        cmd.arg(format!("--nb=unix:{}", self.sb.nb.sock.display()))
            .args(["--node", "node1", "--metrics-addr", "127.0.0.1:0"])
            .arg(format!("--cni-results={}", self.sb.cni().display()))
            .arg(format!(
                "--state-dir={}",
                self.dir.path().join("state").display()
            ));
        if let Ok(extra) = std::env::var("E2E_RUN_ARGS") {
            cmd.args(extra.split_whitespace());
        }
        // The cold start is timed from dumps (see `Listener::hear_routes`).
        self.listener.drain();
        cmd.stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map(Controller)
            .expect("spawn ovnkube-route")
    }

    /// The destinations of Route `j`'s reroute policies: its rules over eth1.
    pub(super) fn policies_of(&self, j: usize) -> BTreeSet<String> {
        (0..RULES)
            .filter(|k| rule_dev(*k) == "eth1")
            .map(|k| rule_dst(j, k, self.variants[j]))
            .collect()
    }

    pub(super) fn want(&self, i: usize) -> BTreeSet<String> {
        expected(&self.labels[i], &self.variants)
    }

    /// After `heard` (the listener's answer): when it said, or from dumps when it lost
    /// notifications.
    pub(super) async fn or_dumps(&mut self, heard: Option<Instant>, pods: &[usize]) -> Instant {
        match heard {
            Some(at) => at,
            None => self.by_dumps(pods).await,
        }
    }

    /// Waits until every pod in `pods` carries exactly its routes, read from dumps.
    async fn by_dumps(&mut self, pods: &[usize]) -> Instant {
        self.f.by_dump += 1;
        let mut at = Instant::now();
        for &p in pods {
            let want = self.want(p);
            let tables = &*self.tables;
            at = until("routes by dumps", Duration::from_secs(300), async || {
                tables.dsts(p, OURS).await == want
            })
            .await;
        }
        self.listener.drain();
        at
    }

    pub(super) async fn check(&self, pods: &[usize]) {
        for &p in pods {
            assert_eq!(self.tables.dsts(p, OURS).await, self.want(p), "pod {p}");
        }
    }

    async fn cold(&mut self, pid: u32) {
        let start = Instant::now();
        // In the order the agent takes them (namespace, then name, as text): a pod checked
        // too early is checked again 20 ms later, and the last ones are not found late.
        let mut pods: Vec<usize> = (0..self.base).collect();
        pods.sort_by_key(|p| {
            (
                self.sb.pods[*p].namespace.clone(),
                self.sb.pods[*p].name.clone(),
            )
        });
        // Reroute policies are for the rules over the OVN interface (eth1) only, for every
        // Route (one selecting no pod of this node too).
        let want_rows = ROUTES * self.policies_of(0).len();
        let nb = &self.nb;
        let wants: Vec<BTreeSet<String>> = pods.iter().map(|p| self.want(*p)).collect();
        let tables = &*self.tables;
        let (pods_at, nb_at) = tokio::join!(
            async {
                // Each pod polled every 20 ms until it carries its routes: a few dumps per
                // pod, however long the start takes.
                let mut at = Instant::now();
                for (p, want) in pods.iter().zip(&wants) {
                    loop {
                        if tables.dsts(*p, OURS).await == *want {
                            at = Instant::now();
                            break;
                        }
                        assert!(start.elapsed() < Duration::from_secs(600), "cold: pod {p}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                at
            },
            until("cold NB", Duration::from_secs(600), async || {
                nb.snapshot()
                    .find_by_external_id(POLICY, "k8s.ovn.org/owner-controller", "ovnkube-route")
                    .len()
                    == want_rows
            })
        );
        self.listener.hear_routes(true);
        self.f.cold = pods_at.max(nb_at) - start;
        self.f.cold_nb = nb_at - start;
        self.f.cold_cpu = cpu_secs(pid);
        self.f.rss_cold = proc_field(pid, "VmRSS:");
        for p in pods.iter().step_by((self.base / 10).max(1)) {
            let netns = &self.sb.pods[*p].netns;
            assert_eq!(ip_routes(netns, OURS), self.want(*p), "ip -n {netns}");
        }
        self.listener.drain();
    }

    async fn idle(&mut self, pid: u32, a: &Args) {
        tokio::time::sleep(a.settle).await;
        let (c0, t0) = (cpu_secs(pid), Instant::now());
        tokio::time::sleep(a.idle).await;
        self.f.idle = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64();
    }

    /// Every pod exactly right, every Route's policies in the NB.
    async fn verify_all(&self) {
        let pods: Vec<usize> = (0..self.sb.pods.len()).collect();
        self.check(&pods).await;
        for j in 0..ROUTES {
            assert_eq!(
                policy_dsts(&self.nb, j),
                self.policies_of(j),
                "r{j}'s policies"
            );
        }
    }
}

/// Waits until each pod's count of our routes has moved by its `counts` entry (added
/// minus deleted), from notifications; None when they were lost.
pub(super) async fn heard(
    listener: &mut Listener,
    mut left: HashMap<usize, i64>,
) -> Option<Instant> {
    left.retain(|_, c| *c != 0);
    let mut pending = left.len();
    if pending == 0 {
        return Some(Instant::now());
    }
    listener
        .until(Duration::from_secs(300), |ev: &Ev| {
            if ev.protocol != OURS {
                return false;
            }
            if let Some(c) = left.get_mut(&ev.pod) {
                let was = *c;
                *c -= if ev.added { 1 } else { -1 };
                if was != 0 && *c == 0 {
                    pending -= 1;
                } else if was == 0 && *c != 0 {
                    pending += 1;
                }
            }
            pending == 0
        })
        .await
}
