//! `run --source file:...`: the long-running loop. Level-driven: every pass recomputes the
//! whole plan from the current input and converges both sides to it.
//!
//! Triggers: a change to the input files (`files::FileSource`: inotify, loading off the
//! loop, bounded and regular files only), a change in the NB replica (drift repair:
//! someone deleted or edited a row, or a router / switch port / load balancer appeared),
//! and a periodic resync. The pod side also re-checks every pod on its own timer
//! (`netlink::DEFAULT_RESYNC`), which repairs routes flushed by link flaps.
//!
//! Bad input never tears down what is programmed: a Route whose new version does not load
//! or is invalid as a whole keeps being planned from its last good version.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::nb::reconcile::{NbError, NbIntent, NbReconciler};
use crate::netlink::PodRouteReconciler;
use crate::ovsdb::ReplicaEvent;
use crate::plan::{Plan, Summary, plan};

use super::files::{FileSource, Input as Inputs};
use super::keep::{keep_for, without_kept};
use super::metrics::Metrics;
use super::{ControllerError, Options, pods};

struct Loop {
    opts: Options,
    nb: NbReconciler,
    pods: Option<PodRouteReconciler>,
    metrics: Arc<Metrics>,
    inputs: Inputs,
    plan: Plan,
    summaries: BTreeMap<String, Summary>,
    /// Set when the last NB pass failed for want of a connection: the client's connection
    /// count at the start of that pass. The pass is retried once the client has connected
    /// again (at once if it already has), not on the next periodic resync.
    retry_after: Option<u64>,
}

impl Loop {
    fn replan(&mut self) {
        let mut p = plan(&self.inputs.world, &self.inputs.routes, &self.opts.plan);
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
        let connections = self.nb.client().state().connections;
        self.retry_after = None;
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
                if e.retry_on_reconnect() {
                    self.retry_after = Some(connections);
                    tracing::warn!(error = %e, kind = e.label(), "NB pass failed; retried as soon as the NB client is connected again");
                } else if level_conflict {
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
        let discovery = pods::find_netns(&self.opts.pods);
        let p = pods::program(
            rec,
            &self.inputs.world,
            &self.plan,
            self.opts.plan.node.as_deref(),
            &discovery,
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
        for (pod, why) in &p.failed {
            tracing::warn!(%pod, "pod routes failed: {why}");
        }
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
        Some(pods::reconciler(&opts.pods)?)
    };
    let pod_resync = pods.as_ref().map(PodRouteReconciler::spawn_resync);
    let mut source = FileSource::watch(paths, opts.input);
    let inputs = source.load().await;
    let mut subs = nb.subscribe();
    let mut lp = Loop {
        opts,
        nb,
        pods,
        metrics: metrics.clone(),
        inputs,
        plan: Plan::default(),
        summaries: BTreeMap::new(),
        retry_after: None,
    };
    lp.replan();
    lp.nb_pass().await;
    lp.pod_pass().await;
    metrics.ready.store(true, Ordering::Relaxed);
    tracing::info!("initial pass done; watching inputs and the NB database");

    let mut full = tokio::time::interval(resync);
    full.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ControllerError::Metrics)?;
    let client = lp.nb.client().clone();
    loop {
        let retry = lp.retry_after;
        tokio::select! {
            r = client.wait_reconnected(retry.unwrap_or(u64::MAX)), if retry.is_some() => {
                if r.is_ok() {
                    tracing::info!("NB client connected again; retrying the failed pass");
                    lp.nb_pass().await;
                } else {
                    // The client is shut down; the replica feed ending stops the loop.
                    lp.retry_after = None;
                }
            }
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
            () = source.changed() => {
                tracing::info!("input files changed; replanning");
                lp.inputs = source.load().await;
                lp.replan();
                lp.nb_pass().await;
                lp.pod_pass().await;
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
    if let Some(h) = pod_resync {
        h.abort();
    }
    server.abort();
    Ok(())
}
