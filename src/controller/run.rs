//! `run --source file:...`: the long-running loop. Level-driven: every pass recomputes the
//! whole plan from the current input and converges both sides to it.
//!
//! Triggers: a change to the input files (checked every second by size + mtime, no inotify
//! dependency and it works on every filesystem), a change in the NB replica (drift repair:
//! someone deleted or edited a row, or a router / switch port / load balancer appeared),
//! and a periodic resync. The pod side keeps routes true on its own from events inside the
//! pods (netlink) and from netns appearing (inotify); see `controller::pods::sync`.
//!
//! Bad input never tears down what is programmed: a Route whose new version does not load
//! or is invalid as a whole keeps being planned from its last good version.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::api::Route;
use crate::api::validate::validate;
use crate::config::{ConfigError, load_paths};
use crate::nb::reconcile::{NbError, NbIntent, NbReconciler};
use crate::netlink::PodRouteReconciler;
use crate::ovsdb::ReplicaEvent;
use crate::plan::{Plan, Summary, plan_reusing};

use super::keep::{keep_for, without_kept};
use super::metrics::Metrics;
use super::source::world_from;
use super::{ControllerError, Options, pods};

/// Size and modification time of every input file: a cheap change detector.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for p in paths {
        let entries: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default()
        } else {
            vec![p.clone()]
        };
        for e in entries {
            let meta = std::fs::metadata(&e).ok();
            out.push((
                e,
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            ));
        }
    }
    out.sort();
    out
}

/// The inputs of one pass, after last-good substitution.
struct Inputs {
    world: crate::cluster::World,
    routes: Vec<Route>,
    errors: Vec<ConfigError>,
}

fn load(paths: &[PathBuf], last_good: &mut BTreeMap<String, Route>) -> Inputs {
    let (docs, errors) = match load_paths(paths) {
        Ok(l) => (l.documents, l.errors),
        Err(e) => (crate::config::Documents::default(), vec![e]),
    };
    for e in &errors {
        tracing::error!(error = %e, "input rejected");
    }
    let (world, fresh) = world_from(&docs);
    let mut routes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in fresh {
        let name = r.metadata.name.clone().unwrap_or_default();
        seen.insert(name.clone());
        if validate(&r).is_invalid() {
            if let Some(good) = last_good.get(&name) {
                tracing::warn!(route = %name, "new version is invalid; keeping the last good one");
                routes.push(good.clone());
                continue;
            }
        } else {
            last_good.insert(name, r.clone());
        }
        routes.push(r);
    }
    for e in &errors {
        if let Some(name) = e.route_name()
            && !seen.contains(name)
            && let Some(good) = last_good.get(name)
        {
            seen.insert(name.to_owned());
            routes.push(good.clone());
        }
    }
    // A Route gone from readable input is deleted; when some input was unreadable, absence
    // proves nothing and the last good versions stay.
    if errors.iter().all(|e| e.route_name().is_some()) {
        last_good.retain(|name, _| seen.contains(name));
    }
    Inputs {
        world,
        routes,
        errors,
    }
}

struct Loop {
    opts: Options,
    nb: NbReconciler,
    pods: Option<PodRouteReconciler>,
    metrics: Arc<Metrics>,
    inputs: Inputs,
    plan: Plan,
    summaries: BTreeMap<String, Summary>,
}

impl Loop {
    fn replan(&mut self) {
        // Unchanged pods keep the previous plan's routes (one copy in memory, not two).
        let mut p = plan_reusing(
            &self.inputs.world,
            &self.inputs.routes,
            &self.opts.plan,
            &self.plan,
        );
        let keep = keep_for(&self.inputs.errors, &self.inputs.routes, &p);
        without_kept(&mut p, &keep);
        let m = &self.metrics;
        m.routes.store(p.reports.len() as u64, Ordering::Relaxed);
        let invalid = p
            .reports
            .values()
            .filter(|r| r.summary == Summary::Invalid)
            .count();
        m.routes_invalid.store(invalid as u64, Ordering::Relaxed);
        self.plan = p;
    }

    /// Logs each Route whose status word changed (the NB side's problems included).
    fn report_status(&mut self, nb_problems: &[crate::nb::diff::NbProblem]) {
        let mut now = BTreeMap::new();
        for (name, r) in &self.plan.reports {
            let summary = super::summary_with_nb(r, name, nb_problems);
            if self.summaries.get(name) != Some(&summary) {
                tracing::info!(route = %name, status = summary.as_str(), selected = r.selected,
                    programmable = r.programmable, problems = r.problems.len(), "route status");
                for pr in &r.problems {
                    tracing::warn!(route = %name, path = ?pr.path, pod = ?pr.pod, reason = %pr.reason, "{}", pr.message);
                }
                for pr in nb_problems.iter().filter(|p| &p.route == name) {
                    tracing::warn!(route = %name, reason = %pr.reason, "{}", pr.message);
                }
            }
            now.insert(name.clone(), summary);
        }
        self.summaries = now;
        let planner: usize = self
            .plan
            .reports
            .values()
            .map(|r| r.problems.len() + r.problems_omitted)
            .sum();
        let total = planner + nb_problems.len();
        self.metrics.problems.store(total as u64, Ordering::Relaxed);
    }

    async fn nb_pass(&mut self) {
        let keep = keep_for(&self.inputs.errors, &self.inputs.routes, &self.plan);
        let intent = NbIntent {
            desired: &self.plan.nb,
            service_ips: &self.plan.ovn_service_ips,
            keep: &keep,
        };
        let m = self.metrics.clone();
        match self.nb.reconcile(intent).await {
            Ok(pass) => {
                m.nb_passes.fetch_add(1, Ordering::Relaxed);
                m.nb_pass_micros_sum
                    .fetch_add(pass.elapsed.as_micros() as u64, Ordering::Relaxed);
                if pass.changes > 0 {
                    m.nb_transactions_ok.fetch_add(1, Ordering::Relaxed);
                    m.nb_changes
                        .fetch_add(pass.changes as u64, Ordering::Relaxed);
                }
                self.report_status(&pass.problems);
            }
            Err(e) => {
                m.nb_transactions_failed.fetch_add(1, Ordering::Relaxed);
                let level_conflict = matches!(e, NbError::Conflict(_));
                if level_conflict {
                    tracing::info!(error = %e, "NB pass retried on fresh data");
                } else {
                    tracing::warn!(error = %e, kind = e.label(), "NB pass failed; retried on the next trigger");
                }
            }
        }
        m.nb_connected
            .store(self.nb.client().is_connected(), Ordering::Relaxed);
    }

    async fn pod_pass(&self) {
        let Some(rec) = &self.pods else { return };
        let p = pods::sync(
            rec,
            &self.inputs.world,
            &self.plan,
            self.opts.plan.node.as_deref(),
        )
        .await;
        let m = &self.metrics;
        m.pod_passes.fetch_add(1, Ordering::Relaxed);
        m.pod_routes_added
            .fetch_add(p.routes_changed as u64, Ordering::Relaxed);
        m.pod_routes_deleted
            .fetch_add(p.routes_deleted as u64, Ordering::Relaxed);
        m.pod_failures
            .fetch_add(p.failed.len() as u64, Ordering::Relaxed);
        m.pods_programmed
            .store((p.pods - p.failed.len()) as u64, Ordering::Relaxed);
        // Failures were logged per pod by the reconciler (once per distinct failure).
    }
}

/// Connects, waiting as long as it takes (one log line per failed window).
async fn connect(opts: &Options, remotes: &str) -> Result<NbReconciler, ControllerError> {
    loop {
        match NbReconciler::connect(opts.client_config(remotes)?, Duration::from_secs(30)).await {
            Ok(nb) => return Ok(nb),
            Err(NbError::Unreachable { .. }) => {
                tracing::warn!(remotes, "NB database not reachable yet; still trying");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs until SIGINT / SIGTERM.
pub async fn run_files(
    paths: Vec<PathBuf>,
    opts: Options,
    metrics_addr: SocketAddr,
    resync: Duration,
) -> Result<(), ControllerError> {
    let metrics = Arc::new(Metrics::default());
    let server = tokio::spawn(super::metrics::serve(metrics_addr, metrics.clone()));
    let remotes = opts.nb.clone().unwrap_or_default();
    let nb = connect(&opts, &remotes).await?;
    metrics.nb_connected.store(true, Ordering::Relaxed);
    let pods = if opts.pods.skip {
        None
    } else {
        Some(pods::watching_reconciler(&opts.pods)?)
    };
    let mut last_good = BTreeMap::new();
    let inputs = load(&paths, &mut last_good);
    let mut fp = fingerprint(&paths);
    let mut subs = nb.subscribe();
    let mut lp = Loop {
        opts,
        nb,
        pods,
        metrics: metrics.clone(),
        inputs,
        plan: Plan::default(),
        summaries: BTreeMap::new(),
    };
    lp.replan();
    lp.nb_pass().await;
    lp.pod_pass().await;
    metrics.ready.store(true, Ordering::Relaxed);
    tracing::info!("initial pass done; watching inputs and the NB database");

    let mut files = tokio::time::interval(Duration::from_secs(1));
    let mut full = tokio::time::interval(resync);
    files.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    full.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ControllerError::Metrics)?;
    loop {
        tokio::select! {
            ev = subs.recv() => {
                // The replica's feed only ends when the client is shut down: without it there
                // is no drift repair, so stop loudly rather than carry on half blind.
                let Some(ev) = ev else {
                    return Err(ControllerError::Nb(NbError::Ovsdb(crate::ovsdb::Error::Closed)));
                };
                // Coalesce a burst of changes into one pass.
                let mut events = vec![ev];
                while let Some(more) = subs.try_recv() {
                    events.push(more);
                }
                let relevant = events.iter().any(|e| match e {
                    ReplicaEvent::Changes(c) => !c.is_empty(),
                    ReplicaEvent::Resync { .. } => true,
                });
                if relevant {
                    let start = Instant::now();
                    lp.nb_pass().await;
                    tracing::debug!(elapsed_ms = start.elapsed().as_secs_f64() * 1e3, "NB pass after replica change");
                }
            }
            _ = files.tick() => {
                let now = fingerprint(&paths);
                if now != fp {
                    fp = now;
                    tracing::info!("input files changed; replanning");
                    lp.inputs = load(&paths, &mut last_good);
                    lp.replan();
                    lp.nb_pass().await;
                    lp.pod_pass().await;
                }
            }
            _ = full.tick() => {
                lp.nb_pass().await;
                lp.pod_pass().await;
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("shutting down; programmed routes and rows stay in place");
    server.abort();
    Ok(())
}
