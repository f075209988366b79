//! One engine, proved with the audit off. Random sequences of edits go through the real
//! `run` loop (in this process: `run_loop` with the file source's own reading of the inputs,
//! the real NB reconciler against a real ovsdb-server, and, in the pod test, the real pod
//! reconciler in real network namespaces). No timer runs: the audit is off, so whatever is
//! programmed after a step was programmed by that step's events.
//!
//! After every step the oracle is a fresh process, `ovnkube-route plan --nb ... -o json` on
//! the same inputs, NB and pods: it must find 0 NB changes and 0 pod changes. Then an audit
//! requested through the loop's control channel must repair nothing.
//!
//! The event mix: every kind of validation problem and partly invalid Routes; a Route that
//! selects every pod narrowed to some and widened back (static routes <-> policies, IPv6
//! included); Routes renamed, deleted and re-created; the same name in two files; an
//! unreadable document; guard rails lifted and not; the per-pod cap; Service IPs changing
//! and disappearing; next hops becoming reachable and unreachable (a router port added and
//! removed by hand); BFD; pod labels, pods deleted and re-created.
//!
//! Needs root (network namespaces) and Debian's ovn-central; fails loudly without them.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use fixture::*;
use ovnkube_route::controller::inputs::Update;
use ovnkube_route::controller::role::{Fence, Role};
use ovnkube_route::controller::{
    AuditOutcome, Control, Options, PodOptions, RunOptions, Wiring, run_loop,
};
use ovnkube_route::plan::PlanConfig;
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot, watch};

/// A small xorshift: the sequences are reproducible from the seed in a failure message.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const APPS: [&str; 4] = ["nginx", "client-a", "client-b", "other"];
/// Planner settings shared by the loop and the oracle's command line.
const CAP: usize = 4;
const CLUSTER_CIDR: &str = "10.244.0.0/16";
const SERVICE_CIDR: &str = "10.96.0.0/16";
/// A next hop on no router network until the test adds a port for it.
const LATE_HOP: &str = "100.99.0.2";

/// What the inputs say now: pod labels, which pods exist, the Service's address, and the
/// Route files.
struct World {
    labels: Vec<&'static str>,
    present: Vec<bool>,
    nginx_ip: Option<&'static str>,
    dual_stack: bool,
    /// File name -> content.
    files: std::collections::BTreeMap<String, String>,
}

impl World {
    fn new(dual_stack: bool) -> World {
        World {
            labels: PODS
                .iter()
                .map(|p| p.labels.trim_start_matches("app: "))
                .collect(),
            present: vec![true; PODS.len()],
            nginx_ip: Some("10.96.100.10"),
            dual_stack,
            files: Default::default(),
        }
    }

    fn yaml(&self) -> String {
        let mut y = String::new();
        for (ns, team) in [("default", "a"), ("kube-system", "sys")] {
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    team: {team}\n"
            );
        }
        for (i, p) in PODS.iter().enumerate() {
            if !self.present[i] {
                continue;
            }
            let n = &p.node[4..];
            let last = p.ovn_ip.rsplit('.').next().unwrap();
            let (ips, gws) = if self.dual_stack {
                (
                    format!(r#"["{}/24","fd00:10:244:{n}::{last}/64"]"#, p.ovn_ip),
                    format!(r#"["10.244.{n}.1","fd00:10:244:{n}::1"]"#),
                )
            } else {
                (
                    format!(r#"["{}/24"]"#, p.ovn_ip),
                    format!(r#"["10.244.{n}.1"]"#),
                )
            };
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  uid: {uid}\n  labels:\n    app: {app}\n  ownerReferences:\n  - {{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d9f8c, uid: u1, controller: true}}\n  annotations:\n    k8s.ovn.org/pod-networks: '{{\"default\":{{\"ip_addresses\":{ips},\"mac_address\":\"{mac}\",\"gateway_ips\":{gws}}}}}'\nspec:\n  nodeName: {node}\nstatus:\n  phase: Running\n  podIP: {cip}\n  podIPs:\n  - ip: {cip}\n",
                name = p.name,
                ns = p.ns,
                uid = p.uid(),
                app = self.labels[i],
                mac = mac(p.ovn_ip),
                node = p.node,
                cip = p.calico_ip,
            );
        }
        if let Some(ip) = self.nginx_ip {
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: nginx\n  namespace: default\nspec:\n  clusterIP: {ip}\n  clusterIPs: [{ip}]\n  ports: [{{port: 80}}]\n"
            );
        }
        y
    }

    /// The inputs as files of one directory (the loader reads a directory's files, not
    /// its subdirectories): `world.yaml` and one file per Route file.
    fn write(&self, dir: &Path) {
        for e in std::fs::read_dir(dir).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        std::fs::write(dir.join("world.yaml"), self.yaml()).unwrap();
        for (name, text) in &self.files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
}

/// A rule destination: valid IPv4 / IPv6 ones, and every kind of bad one.
fn dst(rng: &mut Rng, v6: bool) -> &'static str {
    const GOOD4: [&str; 5] = [
        "172.16.10.0/24",
        "172.16.20.0/24",
        "172.16.10.0/25",
        "192.168.50.0/24",
        "172.17.0.0/16",
    ];
    const GOOD6: [&str; 3] = ["fd00:200::/64", "fd00:201::/64", "fd00:200::/80"];
    const BAD: [&str; 4] = ["172.16.0.0/33", "not-a-cidr", "172.16.10.7/24", ""];
    if rng.chance(9) {
        return rng.pick(&BAD);
    }
    if v6 {
        rng.pick(&GOOD6)
    } else {
        rng.pick(&GOOD4)
    }
}

/// One random rule: sometimes with a via of the wrong family, an empty dev, or a
/// destination a guard rail refuses.
fn rule(rng: &mut Rng, dual: bool) -> String {
    let v6 = dual && rng.chance(3);
    let dev = match rng.below(10) {
        0 => "",
        1..=5 => "eth1",
        _ => "eth0",
    };
    let d = match rng.below(12) {
        // The pod's own OVN subnet over eth0 (CapturesPodSubnet) or the whole cluster
        // network (CapturesClusterNetwork).
        0 => "10.244.1.0/24",
        1 => CLUSTER_CIDR,
        _ => dst(rng, v6),
    };
    let via = match rng.below(8) {
        0 => r#", "via": "fd98::5""#,
        1 if !v6 => r#", "via": "10.244.1.1""#,
        _ => "",
    };
    format!(r#"{{"dst": "{d}", "dev": "{dev}"{via}}}"#)
}

fn selection(rng: &mut Rng) -> String {
    // Half the time no selection at all (select-all), so a broken selector stays rare.
    let n = if rng.chance(2) { 7 } else { 14 };
    match rng.below(n) {
        0 | 1 => String::new(),
        2 => format!(
            r#""podSelector": {{"matchLabels": {{"app": "{}"}}}},"#,
            rng.pick(&APPS)
        ),
        3 => r#""podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["client-a", "nginx"]}]},"#.into(),
        4 => r#""namespaceSelector": {"matchLabels": {"team": "a"}},"#.into(),
        5 => r#""targets": [{"kind": "Deployment", "namespace": "default", "name": "web"}],"#.into(),
        // A broken selector (invalid operator): the whole Route is invalid.
        6 => r#""podSelector": {"matchExpressions": [{"key": "app", "operator": "Near"}]},"#.into(),
        _ => String::new(),
    }
}

fn ovn(rng: &mut Rng, dual: bool) -> String {
    let mut hops: Vec<&str> = Vec::new();
    match rng.below(6) {
        0 | 1 => return String::new(),
        2 => hops.push("100.64.0.2"),
        3 => hops.extend(["100.64.0.2", "100.64.0.3"]),
        4 => hops.push(LATE_HOP),
        _ => hops.push("100.64.0.3"),
    }
    if dual && rng.chance(2) {
        hops.push("fd98::2");
    }
    let list = hops
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let extra = match rng.below(5) {
        0 => r#", "enforce": true"#,
        1 => r#", "bfd": true"#,
        2 => r#", "router": "missing-router""#,
        _ => "",
    };
    format!(r#""ovn": {{"nextHops": [{list}]{extra}}},"#)
}

/// A random Route document (JSON, which YAML reads too).
fn route_doc(rng: &mut Rng, name: &str, dual: bool) -> String {
    let rules: Vec<String> = (0..=rng.below(3)).map(|_| rule(rng, dual)).collect();
    let svc = match rng.below(5) {
        0 => r#""svc": [{"namespace": "default", "name": "nginx", "dev": "eth1"}],"#,
        1 => r#""svc": [{"namespace": "default", "name": "missing", "dev": "eth1"}],"#,
        _ => "",
    };
    let gate = match rng.below(4) {
        0 => {
            r#""feature_gate": {"allowPodSubnetCapture": "true", "allowClusterNetworkCapture": "true"},"#
        }
        _ => "",
    };
    let default_route = if rng.chance(8) {
        r#""defaultRoute": {"dev": "eth1"},"#
    } else {
        ""
    };
    let priority = rng.below(4) as i32 - 1;
    format!(
        r#"{{"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {{"name": "{name}"}},
"spec": {{{sel}{ovn}{svc}{gate}{default_route}"priority": {priority}, "route": [{rules}]}}}}"#,
        sel = selection(rng),
        ovn = ovn(rng, dual),
        rules = rules.join(", "),
    )
}

/// The issue's Route: every pod, one valid IPv6 rule with an IPv6 next hop and one invalid
/// rule (an IPv4 destination via an IPv6 address); `narrow` adds a pod selector.
fn wide_doc(narrow: bool) -> String {
    let sel = if narrow {
        r#""podSelector": {"matchLabels": {"app": "client-a"}},"#
    } else {
        ""
    };
    format!(
        r#"{{"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {{"name": "wide"}},
"spec": {{{sel}"ovn": {{"nextHops": ["fd98::2"]}},
"route": [{{"dst": "fd00:300::/64", "dev": "eth1"}}, {{"dst": "172.16.90.0/24", "dev": "eth1", "via": "fd98::5"}}]}}}}"#
    )
}

/// The loop under test, in this process, with its control channel.
struct Harness {
    ovn: Ovn,
    dir: tempfile::TempDir,
    tx: mpsc::Sender<Update>,
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<()>,
    pods: Option<PodNet>,
    late_port: bool,
    /// The inputs as the loop holds them, rebuilt here with the library's own `Inputs`
    /// from the same updates: it remembers each Route's last good version.
    model: ovnkube_route::controller::inputs::Inputs,
    /// The Routes the loop plans are those a reader without history gets from the files
    /// (no last good version stands in for an invalid or unreadable one): only then can a
    /// fresh `plan` process, which has no history, be the oracle. The audit always is.
    history_free: bool,
    /// Steps checked by a fresh `plan` process.
    oracle_steps: usize,
    metrics: std::sync::Arc<ovnkube_route::controller::metrics::Metrics>,
}

fn plan_config(node: Option<&str>) -> PlanConfig {
    PlanConfig {
        node: node.map(str::to_owned),
        max_routes_per_pod: CAP,
        cluster_networks: vec![CLUSTER_CIDR.parse().unwrap()],
        service_networks: vec![SERVICE_CIDR.parse().unwrap()],
        ..PlanConfig::default()
    }
}

impl Harness {
    async fn start(pods: Option<PodNet>) -> Harness {
        Harness::start_with(pods, None).await
    }

    /// `audit`: the timer's audit period (`None`: off, as in every other test).
    async fn start_with(pods: Option<PodNet>, audit: Option<Duration>) -> Harness {
        let ovn = Ovn::start();
        ovn.build_topology();
        // An IPv6 router network, so IPv6 next hops are reachable.
        ovn.nbctl(&[
            "lrp-add",
            "ovn_cluster_router",
            "rtoj6-ovn_cluster_router",
            "0a:58:64:40:00:09",
            "fd98::1/64",
        ]);
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let pod_opts = match &pods {
            Some(net) => PodOptions {
                cni_results: net.cni_results.path().into(),
                netns_dir: "/var/run/netns".into(),
                proc_root: "/proc".into(),
                state_dir: net.state.path().into(),
                skip: false,
                recheck: Duration::ZERO,
                threads: 2,
            },
            None => PodOptions {
                cni_results: dir.path().join("no-cni"),
                netns_dir: dir.path().join("no-netns"),
                proc_root: "/proc".into(),
                state_dir: state.path().into(),
                skip: true,
                recheck: Duration::ZERO,
                threads: 2,
            },
        };
        let node = pods.as_ref().map(|_| "node1");
        let opts = Options {
            nb: Some(ovn.nb_remote()),
            nb_private_key: None,
            nb_certificate: None,
            nb_ca_cert: None,
            nb_allow_follower: false,
            nb_probe_interval: Duration::from_secs(5),
            plan: plan_config(node),
            pods: pod_opts,
            input: Default::default(),
        };
        let run = RunOptions {
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            audit,
            watchdog: Duration::from_secs(600),
            instance: "one-engine-test".into(),
        };
        let metrics = std::sync::Arc::new(ovnkube_route::controller::metrics::Metrics::new());
        let (tx, updates) = mpsc::channel(64);
        let (control, control_rx) = mpsc::channel(4);
        let (_role_tx, role) = watch::channel(Role::ALL);
        let wiring = Wiring {
            updates,
            role,
            fence: Fence::always(),
            status: None,
            metrics: metrics.clone(),
            control: Some(control_rx),
        };
        let task = tokio::spawn(async move {
            let _keep = (_role_tx, state);
            run_loop(opts, run, wiring).await.unwrap();
        });
        Harness {
            ovn,
            dir,
            tx,
            control,
            task,
            model: ovnkube_route::controller::inputs::Inputs::new(plan_config(node)),
            pods,
            late_port: false,
            history_free: true,
            oracle_steps: 0,
            metrics,
        }
    }

    /// The sum of a counter's series (`ovnkube_route_<name>_total`), from /metrics' text.
    fn counter(&self, name: &str) -> u64 {
        let prefix = format!("ovnkube_route_{name}_total");
        self.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Writes the inputs and hands the loop what the file source reads from them, then
    /// waits until the loop has handled it.
    async fn feed(&mut self, w: &World) {
        w.write(self.dir.path());
        let read = || {
            ovnkube_route::controller::source::read(
                &[self.dir.path().to_path_buf()],
                &Default::default(),
            )
        };
        self.model.apply_all([read()]);
        let mut fresh =
            ovnkube_route::controller::inputs::Inputs::new(self.model.engine.config().clone());
        fresh.apply_all([read()]);
        self.history_free = fresh.effective() == self.model.effective();
        if std::env::var("ONE_ENGINE_DEBUG").is_ok() && !self.history_free {
            let names = |i: &ovnkube_route::controller::inputs::Inputs| -> Vec<String> {
                i.effective()
                    .iter()
                    .map(|r| {
                        format!(
                            "{}:{}",
                            r.metadata.name.clone().unwrap_or_default(),
                            serde_json::to_string(&r.spec).unwrap().len()
                        )
                    })
                    .collect()
            };
            eprintln!(
                "history differs: model {:?} fresh {:?} errors {:?}",
                names(&self.model),
                names(&fresh),
                self.model
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
            );
        }
        self.tx.send(read()).await.unwrap();
        self.tx
            .send(Update::Synced { cluster_pods: true })
            .await
            .unwrap();
        let (done, wait) = oneshot::channel();
        self.control.send(Control::Barrier(done)).await.unwrap();
        wait.await.unwrap();
    }

    async fn audit(&self) -> AuditOutcome {
        let (done, wait) = oneshot::channel();
        self.control.send(Control::Audit(done)).await.unwrap();
        wait.await.unwrap()
    }

    /// Adds or removes the router port that makes [`LATE_HOP`] reachable (by hand, as an
    /// operator would: the loop sees it through its NB monitor).
    fn toggle_late_port(&mut self) {
        if self.late_port {
            self.ovn.nbctl(&["lrp-del", "rtoj-late"]);
        } else {
            self.ovn.nbctl(&[
                "lrp-add",
                "ovn_cluster_router",
                "rtoj-late",
                "0a:58:64:63:00:01",
                "100.99.0.1/24",
            ]);
        }
        self.late_port = !self.late_port;
    }

    fn oracle_args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "plan",
            "-o",
            "json",
            "--nb",
            &self.ovn.nb_remote(),
            "--max-routes-per-pod",
            &CAP.to_string(),
            "--cluster-cidr",
            CLUSTER_CIDR,
            "--service-cidr",
            SERVICE_CIDR,
            "-f",
            self.dir.path().to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match &self.pods {
            Some(net) => a.extend(net.args()),
            None => a.push("--skip-pods".into()),
        }
        a
    }

    /// The oracle: a fresh `plan` process finds nothing to change. The NB monitor delivers
    /// a hand-made change (a router port) to the loop a moment after `ovn-nbctl` returns, so
    /// the check is repeated for a while; nothing but that event can put things right (no
    /// timer runs), so a bug never passes.
    fn converged(&self, ctx: &str) -> Result<(), String> {
        let args = self.oracle_args();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = ovnkube(&refs);
            assert!(
                r.code == 0 || r.code == 1,
                "{ctx}: plan failed (exit {}):\n{r}",
                r.code
            );
            let v: Json = serde_json::from_str(&r.stdout)
                .unwrap_or_else(|e| panic!("{ctx}: plan -o json: {e}\n{r}"));
            let nb = v["nb"].as_array().map_or(0, Vec::len);
            let pods = v["podChanges"].as_u64().unwrap();
            if nb == 0 && pods == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                let lines: Vec<&Json> = v["pods"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["changes"].as_u64() != Some(0))
                    .collect();
                return Err(format!(
                    "{ctx}: a fresh plan still finds {nb} NB change(s) and {pods} pod change(s)\nNB: {:#}\npods: {:#?}",
                    v["nb"], lines
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `plan`'s text output on the same inputs (for failure messages).
    fn plan_text(&self) -> String {
        let args: Vec<String> = self
            .oracle_args()
            .into_iter()
            .filter(|a| a != "json" && a != "-o")
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ovnkube(&refs).to_string()
    }

    async fn check(&mut self, ctx: &str) {
        let oracle = if self.history_free {
            self.oracle_steps += 1;
            self.converged(ctx)
        } else {
            Ok(())
        };
        if let Err(e) = oracle {
            // What the audit finds tells a planner bug (status) from an NB pass that did
            // not cover a Route (nb only).
            let a = self.audit().await;
            panic!("{e}\naudit then repaired: {a:?}");
        }
        let a = self.audit().await;
        assert!(!a.skipped, "{ctx}: the audit did not run");
        assert_eq!(a.repairs(), 0, "{ctx}: the audit had to repair {a:?}");
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// One random edit of the inputs (or of the NB's router ports); returns what it was.
/// Whether a Route file is unreadable or invalid as a whole (its last good version, if any,
/// stands in for it in `run`).
fn broken(text: &str) -> bool {
    serde_json::from_str::<ovnkube_route::api::Route>(text).map_or(true, |r| {
        ovnkube_route::api::validate::validate(&r).is_invalid()
    })
}

fn edit(rng: &mut Rng, w: &mut World, h: &mut Harness, dual: bool) -> String {
    let name = format!("r{}", rng.below(5));
    let file = format!("{name}.json");
    // Broken files are put right as often as they are made, so that most steps are ones a
    // reader without history sees as the loop does.
    if rng.chance(4)
        && let Some(f) = w.files.keys().find(|f| f.starts_with("dup-")).cloned()
    {
        w.files.remove(&f);
        return format!("drop {f}");
    }
    if rng.chance(4)
        && let Some(f) = w
            .files
            .iter()
            .find(|(_, t)| broken(t))
            .map(|(f, _)| f.clone())
    {
        let n = f
            .trim_start_matches("dup-")
            .trim_end_matches(".json")
            .to_owned();
        let mut doc = route_doc(rng, &n, dual);
        while broken(&doc) {
            doc = route_doc(rng, &n, dual);
        }
        w.files.insert(f.clone(), doc);
        return format!("repair {f}");
    }
    match rng.below(16) {
        0..=4 => {
            w.files.insert(file.clone(), route_doc(rng, &name, dual));
            format!("edit {file}")
        }
        5 => {
            w.files.remove(&file);
            format!("delete {file}")
        }
        6 => {
            // Rename: the same content under another Route name.
            let to = format!("r{}", rng.below(5));
            let Some(text) = w.files.remove(&file) else {
                return "rename of a missing file".into();
            };
            let renamed = text.replacen(
                &format!("\"name\": \"{name}\""),
                &format!("\"name\": \"{to}\""),
                1,
            );
            w.files.insert(format!("{to}.json"), renamed);
            format!("rename {name} -> {to}")
        }
        7 => {
            // The same Route name in a second file.
            w.files
                .insert(format!("dup-{file}"), route_doc(rng, &name, dual));
            format!("second file for {name}")
        }
        8 => {
            // Any second file there is.
            let dup = w.files.keys().find(|f| f.starts_with("dup-")).cloned();
            match dup {
                Some(f) => {
                    w.files.remove(&f);
                    format!("drop {f}")
                }
                None => "no second file to drop".into(),
            }
        }
        9 if rng.chance(2) => {
            w.files.insert(
                file.clone(),
                format!("{{\"apiVersion\": \"k8s.ovn.org/v1\", \"kind\": \"Route\", \"metadata\": {{\"name\": \"{name}\"}}, \"spec\": "),
            );
            format!("unreadable {file}")
        }
        10 => {
            let narrow = !w
                .files
                .get("wide.json")
                .is_some_and(|t| t.contains("podSelector"));
            w.files.insert("wide.json".into(), wide_doc(narrow));
            format!("wide narrowed={narrow}")
        }
        11 | 12 => {
            let i = rng.below(PODS.len());
            w.labels[i] = rng.pick(&APPS);
            format!("label of {} = {}", PODS[i].name, w.labels[i])
        }
        13 => {
            let i = rng.below(PODS.len());
            w.present[i] = !w.present[i];
            format!("pod {} present={}", PODS[i].name, w.present[i])
        }
        14 => {
            w.nginx_ip = rng.pick(&[None, Some("10.96.100.10"), Some("10.96.100.99")]);
            format!("nginx ip {:?}", w.nginx_ip)
        }
        _ => {
            h.toggle_late_port();
            format!("late port present={}", h.late_port)
        }
    }
}

async fn sequence(seed: u64, steps: usize, pods: bool) {
    if let Ok(filter) = std::env::var("ONE_ENGINE_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let dual = !pods;
    let net = pods.then(|| PodNet::new(&format!("1e{}", seed % 1000)));
    let mut h = Harness::start(net).await;
    let mut rng = Rng(seed);
    let mut w = World::new(dual);
    w.files.insert("wide.json".into(), wide_doc(false));
    h.feed(&w).await;
    h.check(&format!("seed {seed:#x} start")).await;
    let foreign = h.ovn.foreign();
    let mut log = Vec::new();
    for step in 0..steps {
        let what = edit(&mut rng, &mut w, &mut h, dual);
        log.push(what.clone());
        h.feed(&w).await;
        let ctx = format!(
            "seed {seed:#x} step {step} ({what}); steps so far: {}",
            log.join("; ")
        );
        h.check(&ctx).await;
    }
    assert!(
        h.oracle_steps * 3 > steps,
        "seed {seed:#x}: only {} of {steps} steps could be checked by a fresh process",
        h.oracle_steps
    );
    // Everything gone: every row of ours and every route of ours goes.
    w.files.clear();
    h.feed(&w).await;
    h.check(&format!("seed {seed:#x} end")).await;
    assert!(
        h.ovn.owned().values().all(Vec::is_empty),
        "rows of ours left: {:?}",
        h.ovn.owned()
    );
    if h.late_port {
        h.toggle_late_port();
    }
    assert_foreign_unchanged(&foreign, &h.ovn.foreign());
    h.stop().await;
}

fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("ONE_ENGINE_SEED") {
        Ok(s) => vec![u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()],
        Err(_) => default.to_vec(),
    }
}

fn steps() -> usize {
    std::env::var("ONE_ENGINE_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nb_rows_after_every_event_are_what_a_fresh_plan_computes() {
    for seed in seeds(&[
        0x9e37_79b9_7f4a_7c15,
        0x2545_f491_4f6c_dd1d,
        0xdead_beef_cafe_f00d,
    ]) {
        sequence(seed, steps(), false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_routes_after_every_event_are_what_a_fresh_plan_computes() {
    for seed in seeds(&[0x5851_f42d_4c95_7f2d, 0x1405_7b7e_f767_814f]) {
        sequence(seed, steps(), true).await;
    }
}

/// The defect that started it: a select-all Route with a valid IPv6 rule and an invalid
/// rule, narrowed while `run` watches, kept its select-all static route (every pod still
/// rerouted); widened back, the stale policy stayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_invalid_select_all_route_narrowed_and_widened_leaves_nothing_stale() {
    let mut h = Harness::start(None).await;
    let mut w = World::new(true);
    w.files.insert("wide.json".into(), wide_doc(false));
    h.feed(&w).await;
    h.check("select-all").await;
    let statics = static_routes(&h.ovn);
    assert!(
        statics.iter().any(|s| s.contains("fd00:300::/64")),
        "{statics:?}\n{}",
        h.plan_text()
    );
    w.files.insert("wide.json".into(), wide_doc(true));
    h.feed(&w).await;
    h.check("narrowed").await;
    assert!(
        !static_routes(&h.ovn)
            .iter()
            .any(|s| s.contains("fd00:300::/64")),
        "the select-all static route stayed: {:?}",
        static_routes(&h.ovn)
    );
    assert!(
        matches(&h.ovn)
            .iter()
            .any(|m| m.contains("ip6.dst == fd00:300::/64")),
        "{:?}",
        matches(&h.ovn)
    );
    w.files.insert("wide.json".into(), wide_doc(false));
    h.feed(&w).await;
    h.check("widened").await;
    assert!(
        !matches(&h.ovn).iter().any(|m| m.contains("fd00:300::/64")),
        "the stale policy stayed: {:?}",
        matches(&h.ovn)
    );
    h.stop().await;
}

/// The timer's audit (the planner comparison on a blocking thread, its NB pass a sweep
/// between events) runs to its end again and again while edits go on, and finds nothing to
/// repair; the NB stays what a fresh `plan` computes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timer_audit_runs_between_events_and_repairs_nothing() {
    let mut h = Harness::start_with(None, Some(Duration::from_millis(100))).await;
    let mut rng = Rng(0x0ddb_a11c_0ffe_e123);
    let mut w = World::new(true);
    w.files.insert("wide.json".into(), wide_doc(false));
    h.feed(&w).await;
    let mut done = 0;
    for step in 0..10 {
        let what = edit(&mut rng, &mut w, &mut h, true);
        h.feed(&w).await;
        // Room for a timer audit to start, and edits to arrive while it runs.
        tokio::time::sleep(Duration::from_millis(120)).await;
        if h.history_free {
            h.converged(&format!("step {step} ({what})"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        done = h.counter("audits");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while h.counter("audits") < done + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the timer's audit stopped completing: {} audits",
            h.counter("audits")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(h.counter("audits") >= 3, "audits: {}", h.counter("audits"));
    assert_eq!(
        h.counter("audit_repairs"),
        0,
        "the timer's audit repaired something:\n{}",
        h.metrics.render()
    );
    h.stop().await;
}
