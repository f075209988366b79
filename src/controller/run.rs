//! `run`: the long-running loop, the same for every source. Event-driven with a
//! level-driven safety net: each update from the source goes into the incremental planner
//! (`plan::incremental`), and only what it reports dirty is reconciled (the NB rows of those
//! Routes, those pods; see `step`). A full pass recomputes the plan from scratch, checks the
//! incremental one against it, and converges both sides to it: at start, periodically, after
//! a replica resync, on a role change and after a failed pass.
//!
//! Triggers: updates from the source (files re-read, or Kubernetes watch events), a change
//! in the NB replica (drift repair: someone deleted or edited a row, or a router / switch
//! port / load balancer appeared), a change of role (leadership), and a periodic resync.
//! The pod side keeps routes true on its own, from events inside the pods (netlink) and
//! netns appearing (inotify); a pod pass hands it the plan and it programs only what
//! changed (`controller::pods::sync`). Every timer: docs/timers.md.
//!
//! Nothing is deleted on incomplete knowledge: no pass runs before the source has delivered
//! a complete list of everything (`Update::Synced`), and in `central` mode the NB is written
//! only from a world that holds every pod of the cluster. Bad input never tears down what is
//! programmed (see `inputs::LastGood` and `keep`).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::api::Route;
use crate::nb::diff::NbProblem;
use crate::nb::reconcile::{NbError, NbIntent, NbReconciler};
use crate::netlink::PodRouteReconciler;
use crate::plan::{NbScope, Plan, Summary, plan_reusing};

use super::inputs::{Inputs, LastGood, Update};
use super::keep::{keep_for, without_kept};
use super::metrics::{ErrorLabel, Metrics, ResultLabel};
use super::role::{Fence, Role};
use super::status::{NodeStatus, PodOutcome, node_status};
use super::{ControllerError, Options, pods};

/// Settings of the long-running loop.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub metrics_addr: SocketAddr,
    /// Full re-check of NB rows and pod routes at least this often.
    pub resync: Duration,
    /// `/healthz` fails when the loop has not come round for this long.
    pub watchdog: Duration,
    /// Names this instance in the NB's transaction log.
    pub instance: String,
}

/// What the loop is connected to besides the NB and the pods.
pub struct Wiring {
    pub updates: mpsc::Receiver<Update>,
    pub role: watch::Receiver<Role>,
    pub fence: Fence,
    /// Where this instance's view of Route status goes (Kubernetes mode); `None` logs it.
    pub status: Option<watch::Sender<Arc<NodeStatus>>>,
    pub metrics: Arc<Metrics>,
}

pub(super) struct Loop {
    pub(super) opts: Options,
    pub(super) nb: NbReconciler,
    pub(super) pods: Option<PodRouteReconciler>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) inputs: Inputs,
    pub(super) last_good: LastGood,
    /// The effective Routes (last good versions substituted).
    pub(super) routes: Vec<Route>,
    /// Reports and pod routes are kept current event by event; the NB rows, next hops and
    /// Service IPs are those of the last full plan (`plan_stale` says whether events came
    /// since).
    pub(super) plan: Plan,
    /// Inputs changed since the last full plan. The plan is a pure function of the inputs
    /// and the options, so a periodic pass over unchanged inputs reuses it instead of
    /// planning every pod again (which would be the whole idle cost of a node: 73 ms per
    /// pass at 500 pods x 250 routes).
    pub(super) plan_stale: bool,
    pub(super) role: Role,
    pub(super) fence: Fence,
    pub(super) nb_problems: Vec<NbProblem>,
    pub(super) pod_outcome: PodOutcome,
    pub(super) status: Option<watch::Sender<Arc<NodeStatus>>>,
    /// Status words last logged (file mode).
    pub(super) summaries: BTreeMap<String, Summary>,
    /// The last NB pass failed: try again on the next trigger of any kind.
    pub(super) nb_retry: bool,
    /// The last NB pass failed for want of a connection: the client's connection count at
    /// its start. It is retried as soon as the client has connected again (at once if it
    /// already has), not on the next periodic resync.
    pub(super) retry_after: Option<u64>,
}

impl Loop {
    /// What must stay as it is: bad input never tears down what is programmed.
    pub(super) fn keep(&self, plan: &Plan) -> crate::nb::reconcile::Keep {
        let mut keep = keep_for(&self.inputs.errors, &self.routes, plan);
        keep.routes.extend(self.inputs.undecodable.keys().cloned());
        keep
    }

    fn replan(&mut self) {
        // Unchanged pods keep the previous plan's routes (one copy in memory, not two).
        let mut p = plan_reusing(
            self.inputs.world(),
            &self.routes,
            &self.opts.plan,
            &self.plan,
        );
        self.check_engine(&p);
        self.plan_stale = false;
        let keep = self.keep(&p);
        without_kept(&mut p, &keep);
        self.metrics
            .count_routes(p.reports.values().map(|r| r.summary));
        self.plan = p;
    }

    /// Whether this instance may write the NB now, and if not, why (for the log).
    pub(super) fn nb_blocked(&self) -> Option<&'static str> {
        if !self.role.write_nb {
            Some("not the NB writer")
        } else if !self.inputs.synced {
            Some("inputs not synced")
        } else if self.opts.plan.nb_scope == NbScope::Cluster && !self.inputs.cluster_pods {
            // A new leader warming up: its world holds only its node's pods yet.
            Some("warming up: the cluster's pods are not listed yet")
        } else if !self.fence.may_write() {
            Some("leadership not confirmed recently")
        } else {
            None
        }
    }

    async fn nb_pass(&mut self) {
        if let Some(why) = self.nb_blocked() {
            tracing::debug!(why, "NB pass skipped");
            return;
        }
        if self.plan_stale {
            self.replan();
        }
        let keep = self.keep(&self.plan);
        let intent = NbIntent {
            desired: &self.plan.nb,
            service_ips: &self.plan.ovn_service_ips,
            keep: &keep,
        };
        let start = Instant::now();
        let connections = self.nb.client().state().connections;
        self.retry_after = None;
        let result = self.nb.reconcile(intent).await;
        self.metrics.observe_pass("nb", start.elapsed());
        self.nb_done(result, None, connections);
    }

    /// Accounts for an NB pass over every Route (`scope` None) or over some.
    pub(super) fn nb_done(
        &mut self,
        result: Result<crate::nb::reconcile::NbPass, NbError>,
        scope: Option<&std::collections::BTreeSet<String>>,
        connections: u64,
    ) {
        let m = self.metrics.clone();
        match result {
            Ok(pass) => {
                if scope.is_none() {
                    self.nb_retry = false;
                }
                if pass.changes > 0 {
                    m.nb_transactions
                        .get_or_create(&ResultLabel { result: "ok" })
                        .inc();
                    m.nb_changes.inc_by(pass.changes as u64);
                }
                match scope {
                    None => self.nb_problems = pass.problems,
                    Some(routes) => {
                        self.nb_problems.retain(|p| !routes.contains(&p.route));
                        self.nb_problems.extend(pass.problems);
                        self.nb_problems.sort();
                    }
                }
            }
            Err(e) => {
                self.nb_retry = true;
                m.nb_transactions
                    .get_or_create(&ResultLabel { result: "error" })
                    .inc();
                m.nb_pass_failures
                    .get_or_create(&ErrorLabel { error: e.label() })
                    .inc();
                if e.retry_on_reconnect() {
                    self.retry_after = Some(connections);
                    tracing::warn!(error = %e, kind = e.label(), "NB pass failed; retried as soon as the NB client is connected again");
                } else if matches!(e, NbError::Conflict(_)) {
                    tracing::info!(error = %e, "NB pass retried on fresh data");
                } else {
                    tracing::warn!(error = %e, kind = e.label(), "NB pass failed; retried on the next trigger");
                }
            }
        }
        m.nb_connected
            .set(i64::from(self.nb.client().is_connected()));
    }

    async fn pod_pass(&mut self) {
        let Some(rec) = &self.pods else { return };
        if !self.inputs.synced {
            // Pods absent from an incomplete world would lose their routes.
            return;
        }
        let start = Instant::now();
        let p = pods::sync(
            rec,
            self.inputs.world(),
            &self.plan,
            self.opts.plan.node.as_deref(),
        )
        .await;
        let m = &self.metrics;
        m.observe_pass("pods", start.elapsed());
        m.pod_routes_added.inc_by(p.routes_changed as u64);
        m.pod_routes_deleted.inc_by(p.routes_deleted as u64);
        for (label, n) in &p.failed_by_label {
            m.pod_failures
                .get_or_create(&ErrorLabel { error: label })
                .inc_by(*n);
        }
        m.pods_programmed
            .set(p.pods.saturating_sub(p.failed.len()) as i64);
        // Failures were logged per pod by the reconciler, once per distinct failure.
        self.pod_outcome = PodOutcome {
            failed: p.failed.into_iter().collect(),
            no_netns: p.no_netns.into_iter().collect(),
        };
    }

    /// Hands this instance's view of every Route to the status writer, or logs each Route
    /// whose status word changed (file mode).
    pub(super) fn publish_status(&mut self) {
        if !self.inputs.synced {
            return;
        }
        let mut view = node_status(
            &self.routes,
            self.inputs.world(),
            &self.plan,
            &self.nb_problems,
            &self.pod_outcome,
        );
        super::status::mark_undecodable(&mut view, self.inputs.undecodable.values());
        let total: usize = view
            .routes
            .values()
            .map(|r| r.route_problems.len() + r.route_problems_omitted + r.node_problems.len())
            .sum();
        self.metrics.problems.set(total as i64);
        if let Some(tx) = &self.status {
            tx.send_if_modified(|old| {
                if **old == view {
                    false
                } else {
                    *old = Arc::new(view);
                    true
                }
            });
            return;
        }
        let mut now = BTreeMap::new();
        for (name, r) in &view.routes {
            if self.summaries.get(name) != Some(&r.summary) {
                let c = r.counts;
                tracing::info!(route = %name, status = r.summary.as_str(), selected = c.selected,
                    programmed = c.programmed, skipped = c.skipped, failed = c.failed,
                    pending = c.pending, "route status");
                for pr in r.route_problems.iter().chain(&r.node_problems) {
                    tracing::warn!(route = %name, path = ?pr.path, pod = ?pr.pod, reason = %pr.reason, "{}", pr.message);
                }
            }
            now.insert(name.clone(), r.summary);
        }
        self.summaries = now;
    }

    /// A full pass: plan, NB, pods, status.
    async fn pass(&mut self) {
        if self.plan_stale {
            self.replan();
            self.plan_stale = false;
        }
        self.nb_pass().await;
        self.pod_pass().await;
        self.publish_status();
        // Everything the incremental planner marked is covered by this pass.
        self.inputs.engine.take_dirty();
        if self.inputs.synced && !self.metrics.health.first_pass_done.load(Ordering::Relaxed) {
            self.metrics
                .health
                .first_pass_done
                .store(true, Ordering::Relaxed);
            self.metrics.ready.set(1);
            tracing::info!("initial pass done; watching inputs and the NB database");
        }
    }
}

/// Connects, waiting as long as it takes (one log line per failed window), keeping the
/// health endpoint alive meanwhile: an unreachable NB is an outage, not a stuck process.
async fn connect(opts: &Options, metrics: &Arc<Metrics>) -> Result<NbReconciler, ControllerError> {
    let remotes = opts.nb.clone().unwrap_or_default();
    let tls_hook = super::tls::reporter(metrics.clone());
    loop {
        metrics.health.beat();
        let mut config = opts.client_config(&remotes)?;
        config.on_tls_failure = Some(tls_hook.clone());
        match NbReconciler::connect(config, Duration::from_secs(10)).await {
            Ok(nb) => return Ok(nb),
            Err(NbError::Unreachable { .. }) => {
                tracing::warn!(%remotes, "NB database not reachable yet; still trying");
            }
            // Reported by the hook; the next client reads the TLS files again, so a fixed
            // certificate is picked up.
            Err(NbError::Ovsdb(crate::ovsdb::Error::TlsHandshake { .. })) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs until SIGINT / SIGTERM, or until the NB replica's feed ends.
pub async fn run_loop(
    opts: Options,
    run: RunOptions,
    wiring: Wiring,
) -> Result<(), ControllerError> {
    let Wiring {
        mut updates,
        role: mut roles,
        fence,
        status,
        metrics,
    } = wiring;
    metrics.health.set_bound(run.watchdog);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ControllerError::Signal)?;
    let mut nb = tokio::select! {
        nb = connect(&opts, &metrics) => nb?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
        _ = term.recv() => return Ok(()),
    };
    nb.set_writer(run.instance.clone());
    metrics.nb_connected.set(1);
    metrics.health.nb_synced.store(true, Ordering::Relaxed);
    let pods = if opts.pods.skip {
        None
    } else {
        Some(pods::watching_reconciler(&opts.pods)?)
    };
    let mut subs = nb.subscribe();
    let role = *roles.borrow_and_update();
    let plan_cfg = opts.plan.clone();
    let mut lp = Loop {
        opts,
        nb,
        pods,
        metrics: metrics.clone(),
        inputs: Inputs::new(plan_cfg),
        last_good: LastGood::default(),
        routes: Vec::new(),
        plan: Plan::default(),
        role,
        fence,
        nb_problems: Vec::new(),
        pod_outcome: PodOutcome::default(),
        status,
        summaries: BTreeMap::new(),
        plan_stale: true,
        nb_retry: false,
        retry_after: None,
    };
    let mut full = tokio::time::interval(run.resync);
    full.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut roles_open = true;
    let client = lp.nb.client().clone();
    loop {
        metrics.health.beat();
        let retry = lp.retry_after;
        tokio::select! {
            r = client.wait_reconnected(retry.unwrap_or(u64::MAX)), if retry.is_some() => {
                if r.is_ok() {
                    tracing::info!("NB client connected again; retrying the failed pass");
                    lp.nb_pass().await;
                    lp.publish_status();
                } else {
                    // The client is shut down; the replica feed ending stops the loop.
                    lp.retry_after = None;
                }
            }
            u = updates.recv() => {
                let Some(u) = u else {
                    return Err(ControllerError::SourceEnded);
                };
                // Coalesce a burst of updates into one step.
                let before = (lp.inputs.synced, lp.inputs.cluster_pods);
                // The planner settles once for the whole burst.
                lp.inputs.engine.begin();
                let mut changed = lp.inputs.apply(u);
                while let Ok(more) = updates.try_recv() {
                    changed |= lp.inputs.apply(more);
                }
                lp.sync_routes();
                lp.inputs.engine.commit();
                lp.plan_stale |= changed;
                lp.metrics.health.inputs_synced.store(lp.inputs.synced, Ordering::Relaxed);
                let first = !lp.metrics.health.first_pass_done.load(Ordering::Relaxed);
                if changed && lp.inputs.synced {
                    if first || before != (lp.inputs.synced, lp.inputs.cluster_pods) {
                        lp.pass().await;
                    } else {
                        lp.step().await;
                    }
                }
            }
            ev = subs.recv() => {
                // The replica's feed only ends when the client is shut down: without it there
                // is no drift repair, so stop loudly rather than carry on half blind.
                let Some(ev) = ev else {
                    return Err(ControllerError::Nb(NbError::Ovsdb(crate::ovsdb::Error::Closed)));
                };
                let mut events = vec![ev];
                while let Some(more) = subs.try_recv() {
                    events.push(more);
                }
                if lp.nb_retry {
                    lp.nb_pass().await;
                    lp.publish_status();
                } else {
                    match super::step::drifted(&lp.inputs.engine, &events) {
                        super::step::Drift::Nothing => {}
                        super::step::Drift::Routes(routes) => {
                            lp.nb_pass_routes(&routes).await;
                            lp.publish_status();
                        }
                        super::step::Drift::Everything => {
                            lp.nb_pass().await;
                            lp.publish_status();
                        }
                    }
                }
            }
            changed = roles.changed(), if roles_open => {
                if changed.is_err() {
                    // The elector is gone (shutting down): keep the last role, fenced.
                    roles_open = false;
                    continue;
                }
                let new = *roles.borrow_and_update();
                if new != lp.role {
                    tracing::info!(write_nb = new.write_nb, write_status = new.write_status, "role changed");
                    lp.role = new;
                    if lp.inputs.synced {
                        lp.nb_pass().await;
                        lp.publish_status();
                    }
                }
            }
            _ = full.tick() => {
                if lp.inputs.synced {
                    lp.pass().await;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("shutting down; programmed routes and rows stay in place");
    Ok(())
}

/// `run --source file:...`: the file source feeding the loop; this instance writes everything.
pub async fn run_files(
    paths: Vec<std::path::PathBuf>,
    opts: Options,
    run: RunOptions,
) -> Result<(), ControllerError> {
    let metrics = Arc::new(Metrics::new());
    metrics.set_info(opts.plan.nb_scope, "file");
    // No Lease with files: this instance is the one writer of everything.
    metrics.leader.set(1);
    let server = super::metrics::serve(run.metrics_addr, metrics.clone())
        .await
        .map_err(ControllerError::Metrics)?;
    let (tx, rx) = mpsc::channel(64);
    let source = super::source::spawn_files(paths, opts.input, tx);
    let (_role_tx, role_rx) = watch::channel(Role::ALL);
    let wiring = Wiring {
        updates: rx,
        role: role_rx,
        fence: Fence::always(),
        status: None,
        metrics,
    };
    let result = run_loop(opts, run, wiring).await;
    source.abort();
    server.abort();
    result
}
