//! One round per source: set the cluster up, start the controller, and take every figure.
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::json;

use super::figures::{self, Nb};
use super::kube_api::{ApiServer, Background};
use super::nb::{self, Conn, TxnLog};
use super::proc::{self, Controller};
use super::report::{Churn, Round};
use super::source::{Files, Kube, Source};
use super::world::{self, GROUP, Spec};
use super::{fresh_nb, full, samples};

const IDENTITY: &str = "bench-0";
const STATUS_INTERVAL_MS: u64 = 1000;

fn populate(api: &ApiServer, spec: &Spec) {
    for n in 0..spec.namespaces() {
        for o in world::namespace_objects(spec, n, n) {
            let status = o.get("status").cloned();
            let stored = api.create(o).unwrap();
            if let Some(s) = status {
                api.set_status(&stored, s).unwrap();
            }
        }
    }
    for i in 0..spec.routes() {
        api.create(world::route(spec, i, None)).unwrap();
    }
}

/// Waits until the NB holds every row; returns when the last transaction before that was
/// committed (the monitor's clock), and the Lease / readiness moments seen on the way.
fn converge(
    ctl: &mut Controller,
    conn: &mut Conn,
    spec: &Spec,
    log: &Arc<Mutex<TxnLog>>,
    lease: &dyn Fn() -> bool,
) -> (Option<Instant>, Option<Instant>, Option<Instant>) {
    let (mut leased, mut ready) = (None, None);
    let mut last_check = Instant::now() - Duration::from_secs(1);
    let limit = Duration::from_secs(if full() { 900 } else { 120 });
    while ctl.started.elapsed() < limit {
        ctl.alive();
        if leased.is_none() && lease() {
            leased = Some(Instant::now());
        }
        if ready.is_none() && ctl.ready() {
            ready = Some(Instant::now());
        }
        if last_check.elapsed() >= Duration::from_millis(250) {
            last_check = Instant::now();
            if nb::converged(conn, spec) {
                let seen = Instant::now();
                let last = log
                    .lock()
                    .unwrap()
                    .txns
                    .iter()
                    .map(|t| t.0)
                    .filter(|t| *t <= seen)
                    .max();
                return (leased, ready, last.or(Some(seen)));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (leased, ready, None)
}

async fn list_pages<F, Fut>(mut page: F) -> usize
where
    F: FnMut(ListParams) -> Fut,
    Fut: std::future::Future<Output = (usize, Option<String>)>,
{
    let mut lp = ListParams::default().limit(500);
    let mut n = 0;
    loop {
        let (got, next) = page(lp.clone()).await;
        n += got;
        match next.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return n,
        }
    }
}

/// Listing every kind the controller watches, as kube-rs lists (500 objects a page).
fn listing(bg: &Background) -> Duration {
    bg.rt.block_on(async {
        let c = bg.api.client();
        let t = Instant::now();
        let pods: Api<Pod> = Api::all(c.clone());
        let n = list_pages(|lp| {
            let a = pods.clone();
            async move {
                let l = a.list(&lp).await.unwrap();
                (l.items.len(), l.metadata.continue_)
            }
        })
        .await;
        assert!(n >= 1);
        let svcs: Api<Service> = Api::all(c.clone());
        list_pages(|lp| {
            let a = svcs.clone();
            async move {
                let l = a.list(&lp).await.unwrap();
                (l.items.len(), l.metadata.continue_)
            }
        })
        .await;
        let nss: Api<Namespace> = Api::all(c.clone());
        list_pages(|lp| {
            let a = nss.clone();
            async move {
                let l = a.list_metadata(&lp).await.unwrap();
                (l.items.len(), l.metadata.continue_)
            }
        })
        .await;
        let rss: Api<ReplicaSet> = Api::all(c.clone());
        list_pages(|lp| {
            let a = rss.clone();
            async move {
                let l = a.list_metadata(&lp).await.unwrap();
                (l.items.len(), l.metadata.continue_)
            }
        })
        .await;
        let ar = ApiResource::erase::<ovnkube_route::api::Route>(&());
        let routes: Api<DynamicObject> = Api::all_with(c.clone(), &ar);
        list_pages(|lp| {
            let a = routes.clone();
            async move {
                let l = a.list(&lp).await.unwrap();
                (l.items.len(), l.metadata.continue_)
            }
        })
        .await;
        t.elapsed()
    })
}

/// The raw single-transaction floor: the rows the controller wrote, inserted into a fresh NB
/// with the same base topology in one transaction.
fn floor(from: &mut Conn, dir: &Path, spec: &Spec, name: &str) -> (Duration, usize) {
    let mut ops = nb::floor_ops(from);
    let (server, _) = fresh_nb(dir, &format!("nb-floor-{name}"), spec);
    let mut c = Conn::open(&server.sock);
    nb::resolve_ports(&mut c, &mut ops);
    let n = ops.len();
    (nb::timed(&mut c, ops), n)
}

/// CPU share while nothing changes, and NB transactions meanwhile.
fn idle(ctl: &Controller, log: &Arc<Mutex<TxnLog>>) -> (f64, usize) {
    std::thread::sleep(Duration::from_secs(if full() { 5 } else { 1 }));
    let window = Duration::from_secs(if full() { 30 } else { 2 });
    let before = log.lock().unwrap().txns.len();
    let c0 = proc::cpu_secs(ctl.pid());
    std::thread::sleep(window);
    let c1 = proc::cpu_secs(ctl.pid());
    let txns = log.lock().unwrap().txns.len() - before;
    ((c1 - c0) / window.as_secs_f64() * 100.0, txns)
}

/// Every latency figure through `src`.
fn latencies(r: &mut Round, spec: &Spec, src: &mut dyn Source, sock: &Path) {
    let mut c = Nb {
        main: Conn::open(sock),
        w1: Conn::open(sock),
        w2: Conn::open(sock),
        log: nb::monitor_all(sock),
    };
    let n = samples();
    println!("   latency figures: {n} samples of each");
    let t = Instant::now();
    r.edit = figures::route_edits(spec, src, &mut c, n, 0);
    r.relabel = figures::relabels(spec, src, &mut c, n);
    let (a, d) = figures::adds_and_deletes(spec, src, &mut c, n, 0);
    r.add = a;
    r.delete = d;
    r.service = figures::service_ips(spec, src, &mut c, n, 0);
    let (m, b) = figures::namespace_moves(spec, src, &mut c, n.min(2 * spec.namespaces()).max(2));
    r.ns_move = m;
    r.behind = b;
    println!("   latency figures took {:.1} s", t.elapsed().as_secs_f64());
}

fn finish(r: &mut Round, ctl: &Controller, server_pid: Option<u32>, log: &Arc<Mutex<TxnLog>>) {
    r.hwm = proc::status_kib(ctl.pid(), "VmHWM:");
    if r.ovsdb_rss == 0 {
        r.ovsdb_rss = server_pid.map_or(0, |p| proc::status_kib(p, "VmRSS:"));
    }
    let l = log.lock().unwrap();
    r.largest_txn = l.txns.iter().map(|t| t.1).max().unwrap_or(0);
    r.txns = l.txns.len();
}

pub fn kubernetes(spec: &Spec, dir: &Path) -> Round {
    let mut r = Round {
        source: "kubernetes",
        pods: spec.pods,
        routes: spec.routes(),
        ..Round::default()
    };
    let bg = Background::start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    bg.api.create_crds(&root.join("deploy/crd.yaml"));
    bg.api.create_crds(&root.join("deploy/crd-nodereport.yaml"));
    let t = Instant::now();
    populate(&bg.api, spec);
    r.setup = t.elapsed();
    println!("   API server populated in {:.1} s", r.setup.as_secs_f64());
    if std::env::var("CLUSTER_ONLY_LIST").is_ok() {
        println!("   listing {:.2} s", listing(&bg).as_secs_f64());
        return r;
    }
    let kc = bg.api.kubeconfig(dir);
    let (server, load) = fresh_nb(dir, "nb-kube", spec);
    r.nb_load = load;
    let log = nb::monitor(&server.sock);
    let mut conn = Conn::open(&server.sock);
    let args: Vec<String> = [
        "--source",
        "kubernetes",
        "--mode",
        "central",
        "--node",
        "node-0",
        "--status-interval-ms",
        &STATUS_INTERVAL_MS.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--nb".into(), format!("unix:{}", server.sock.display())])
    .collect();
    let env = [
        ("KUBECONFIG", kc.display().to_string()),
        ("POD_NAMESPACE", "default".into()),
        ("POD_NAME", IDENTITY.into()),
    ];
    let mut ctl = proc::start(dir, "kube", &args, &env);
    let api = bg.api.clone();
    let lease = move || {
        api.get(
            "coordination.k8s.io/v1",
            "Lease",
            Some("default"),
            "ovnkube-route",
        )
        .is_some_and(|l| l["spec"]["holderIdentity"] == json!(IDENTITY))
    };
    let (leased, ready, conv) = converge(&mut ctl, &mut conn, spec, &log, &lease);
    r.cold = conv
        .zip(leased)
        .map(|(c, l)| c.saturating_duration_since(l));
    r.ready = ready.map(|t| t - ctl.started);
    println!(
        "   converged: {:?} after the Lease; lease at {:?}",
        r.cold,
        leased.map(|l| l - ctl.started)
    );
    if r.cold.is_none() {
        println!(
            "{}",
            ctl.log_text()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
        return r;
    }
    r.statuses = statuses(&bg.api, spec, leased.unwrap_or(ctl.started));
    r.listing = Some(listing(&bg));
    (r.floor, r.floor_ops) = floor(&mut conn, dir, spec, r.source);
    let idle_from = Instant::now();
    (r.idle_cpu, r.idle_txns) = idle(&ctl, &log);
    r.idle_api_writes = Some(
        bg.api
            .requests()
            .iter()
            .filter(|l| {
                l.at >= idle_from && matches!(l.verb.as_str(), "patch" | "update" | "create")
            })
            .filter(|l| l.resource != "leases")
            .count(),
    );
    r.rss = proc::status_kib(ctl.pid(), "VmRSS:");
    // Before the latency figures' own monitor (every column of our tables) adds to it.
    r.ovsdb_rss = server.pid().map_or(0, |p| proc::status_kib(p, "VmRSS:"));
    if std::env::var("CLUSTER_ONLY_IDLE").is_ok() {
        println!(
            "   idle {:.2}%, RSS {} KiB (ovsdb-server {} KiB)",
            r.idle_cpu, r.rss, r.ovsdb_rss
        );
        finish(&mut r, &ctl, server.pid(), &log);
        return r;
    }
    let mut src = Kube {
        api: bg.api.clone(),
        spec: *spec,
    };
    latencies(&mut r, spec, &mut src, &server.sock);
    let mut waiter = Conn::open(&server.sock);
    let t = Instant::now();
    r.gateways = Some(super::gateways::churn(
        &bg.api,
        &mut waiter,
        3,
        super::samples(),
    ));
    println!("   gateway figures took {:.1} s", t.elapsed().as_secs_f64());
    r.report_bytes = bg
        .api
        .get("k8s.ovn.org/v1", "RouteNodeReport", None, "node-0")
        .map(|v| serde_json::to_vec(&v).unwrap().len());
    r.relist = Some(relist(&bg.api, spec, &mut src, &server.sock, &log));
    r.churn = Some(churn(&bg.api, spec));
    ctl.alive();
    finish(&mut r, &ctl, server.pid(), &log);
    r
}

/// Waits until every Route's status was written once; the time since `from`, and how many
/// status writes that took (one per Route when no half-done view was written).
fn statuses(api: &ApiServer, spec: &Spec, from: Instant) -> Option<(Duration, usize)> {
    let limit = Duration::from_secs(if full() { 300 } else { 30 });
    let t = Instant::now();
    while t.elapsed() < limit {
        let reqs = api.requests();
        let written: std::collections::BTreeSet<&str> = reqs
            .iter()
            .filter(|l| l.verb == "patch" && l.resource == "routes/status" && l.code < 300)
            .map(|l| {
                l.path
                    .trim_end_matches("/status")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
            })
            .collect();
        if written.len() >= spec.routes() {
            let writes: Vec<Instant> = reqs
                .iter()
                .filter(|l| l.verb == "patch" && l.resource == "routes/status")
                .map(|l| l.at)
                .collect();
            let last = writes.iter().max()?;
            return Some((last.saturating_duration_since(from), writes.len()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

/// Compaction and dropped watches: every watch relists. A pod relabel made just after must
/// reach the NB, and nothing may be deleted on the way.
fn relist(
    api: &ApiServer,
    spec: &Spec,
    src: &mut dyn Source,
    sock: &Path,
    log: &Arc<Mutex<TxnLog>>,
) -> (Option<Duration>, usize) {
    let mut c = Nb {
        main: Conn::open(sock),
        w1: Conn::open(sock),
        w2: Conn::open(sock),
        log: nb::monitor_all(sock),
    };
    let before = log.lock().unwrap().txns.len();
    let members = nb::members(&mut c.main);
    // An object no watch sees moves the resourceVersion past every watch's, so that after
    // the compaction each of them gets 410 Gone and lists again.
    api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "relist-marker", "namespace": "default"}}))
        .unwrap();
    api.compact();
    api.drop_watches();
    let s = figures::relabels(spec, src, &mut c, 1);
    std::thread::sleep(Duration::from_secs(2));
    let deleted: usize = log.lock().unwrap().txns[before..].iter().map(|t| t.2).sum();
    assert_eq!(
        nb::members(&mut c.main),
        members,
        "address set members changed across the relist"
    );
    (s.0.first().copied().flatten(), deleted)
}

/// 1,000 pod label changes a second (200 in the smoke round) for 5 s (1 s): Route status
/// writes per Route, from the API server's request log.
fn churn(api: &ApiServer, spec: &Spec) -> Churn {
    let (rate, secs) = if full() { (1000, 5) } else { (200, 1) };
    let total = rate * secs;
    let t0 = Instant::now();
    // The pods of this instance's node (node-0): only their changes move this node's share
    // of a Route's status. Each flips between its own group and label group 3 + 10k.
    let here: Vec<usize> = (0..spec.pods).step_by(spec.nodes()).collect();
    let mut away = vec![false; here.len()];
    for m in 0..total {
        let k = m % here.len();
        let p = here[k];
        let h = (3 + 10 * k) % spec.routes();
        away[k] = !away[k];
        let to = if away[k] { h } else { p / GROUP };
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": world::pod_name(p), "namespace": world::ns_of(p)}});
        api.merge(
            &obj,
            json!({"metadata": {"labels": {"app": format!("a{to}")}}}),
        )
        .unwrap();
        let due = t0 + Duration::from_secs_f64((m + 1) as f64 / rate as f64);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let elapsed = t0.elapsed();
    std::thread::sleep(Duration::from_millis(3 * STATUS_INTERVAL_MS));
    let reqs = api.requests();
    let mut per: std::collections::BTreeMap<String, usize> = Default::default();
    let mut report_writes = 0;
    for l in reqs.iter().filter(|l| l.at >= t0 && l.verb == "patch") {
        if l.resource == "routes/status" {
            let name = l
                .path
                .trim_end_matches("/status")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned();
            *per.entry(name).or_default() += 1;
        } else if l.resource == "routenodereports" {
            report_writes += 1;
        }
    }
    let window = elapsed + Duration::from_millis(3 * STATUS_INTERVAL_MS);
    Churn {
        changes: total,
        secs: elapsed.as_secs_f64(),
        status_writes: per.values().sum(),
        routes_written: per.len(),
        max_per_route: per.values().copied().max().unwrap_or(0),
        bound: (window.as_millis() as u64).div_ceil(STATUS_INTERVAL_MS) as usize + 1,
        report_writes,
    }
}

pub fn files(spec: &Spec, dir: &Path) -> Round {
    let mut r = Round {
        source: "file",
        pods: spec.pods,
        routes: spec.routes(),
        ..Round::default()
    };
    let (wdir, rdir) = (dir.join("world"), dir.join("routes"));
    let t = Instant::now();
    r.input_bytes = world::write_files(spec, &wdir, &rdir, &Default::default());
    r.setup = t.elapsed();
    let (server, load) = fresh_nb(dir, "nb-file", spec);
    r.nb_load = load;
    let log = nb::monitor(&server.sock);
    let mut conn = Conn::open(&server.sock);
    let args: Vec<String> = vec![
        "--source".into(),
        format!("file:{},{}", wdir.display(), rdir.display()),
        "--mode".into(),
        "central".into(),
        "--node".into(),
        "node-0".into(),
        "--max-input-bytes".into(),
        (r.input_bytes * 2).to_string(),
        "--nb".into(),
        format!("unix:{}", server.sock.display()),
    ];
    let mut ctl = proc::start(dir, "file", &args, &[]);
    let started = Instant::now();
    let (_, ready, conv) = converge(&mut ctl, &mut conn, spec, &log, &|| true);
    r.cold = conv.map(|c| c.saturating_duration_since(started));
    r.ready = ready.map(|t| t - ctl.started);
    println!("   converged: {:?}", r.cold);
    if r.cold.is_none() {
        println!(
            "{}",
            ctl.log_text()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
        return r;
    }
    (r.floor, r.floor_ops) = floor(&mut conn, dir, spec, r.source);
    (r.idle_cpu, r.idle_txns) = idle(&ctl, &log);
    r.rss = proc::status_kib(ctl.pid(), "VmRSS:");
    // Before the latency figures' own monitor (every column of our tables) adds to it.
    r.ovsdb_rss = server.pid().map_or(0, |p| proc::status_kib(p, "VmRSS:"));
    let mut src = Files {
        spec: *spec,
        world: wdir,
        routes: rdir,
        edits: Default::default(),
    };
    latencies(&mut r, spec, &mut src, &server.sock);
    ctl.alive();
    finish(&mut r, &ctl, server.pid(), &log);
    r
}
