//! The loop's state and what each kind of event does to it. Every write is caused by an
//! event: a burst of source updates (a step over what the planner marked dirty), replica
//! changes (drift: the Routes they concern), a role change, the NB client connecting again
//! after a failed pass, and the inputs becoming complete (start, a new leader's cluster pod
//! list). The periodic audit (`audit`) only checks, and counts what it had to repair.
//!
//! Owns: the order of things within one event (planner, NB, pods, status). Must not: plan,
//! diff or program anything itself.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use crate::nb::drift::NbDrift;
use crate::ovsdb::ReplicaEvent;
use crate::plan::Summary;

use super::audit::AuditRun;
use super::inputs::{Inputs, Update};
use super::metrics::Metrics;
use super::nb_side::NbSide;
use super::pod_side::PodSide;
use super::role::Role;
use super::status::{NodeStatus, StatusCache, mark_undecodable};

/// Where this instance's view of Route status goes.
pub(super) enum StatusOut {
    /// Kubernetes mode: the node report and status writers.
    Kube(watch::Sender<Arc<NodeStatus>>),
    /// File mode: a log line per Route whose status word changed (the words last logged).
    Log(BTreeMap<String, Summary>),
}

pub(super) struct Loop {
    pub(super) inputs: Inputs,
    pub(super) nb: NbSide,
    pub(super) pods: PodSide,
    status: StatusOut,
    /// The last view's entries, so that a view rebuilds only the Routes that changed.
    status_cache: StatusCache,
    pub(super) metrics: Arc<Metrics>,
    /// The timer's audit, while its NB sweep runs between events.
    pub(super) audit_run: Option<AuditRun>,
}

impl Loop {
    pub(super) fn new(
        inputs: Inputs,
        nb: NbSide,
        pods: PodSide,
        status: StatusOut,
        metrics: Arc<Metrics>,
    ) -> Loop {
        Loop {
            inputs,
            nb,
            pods,
            status,
            status_cache: StatusCache::default(),
            metrics,
            audit_run: None,
        }
    }

    /// A burst of source updates: the planner settles once for all of them, then what it
    /// marked dirty is reconciled. The inputs becoming complete (start, a new leader's
    /// cluster-wide pod list, a world that was unknown read again) is a full pass.
    pub(super) async fn on_updates(&mut self, batch: Vec<Update>) {
        if batch.is_empty() {
            return;
        }
        let state = |i: &super::inputs::Inputs| (i.synced, i.cluster_pods, i.world_unknown);
        let before = state(&self.inputs);
        let changed = self.inputs.apply_all(batch);
        self.metrics
            .health
            .inputs_synced
            .store(self.inputs.synced, Ordering::Relaxed);
        if !changed || !self.inputs.synced {
            return;
        }
        let first = !self.metrics.health.first_pass_done.load(Ordering::Relaxed);
        // Until the first full pass is under way, and whenever the inputs become complete
        // (a world that was unknown read again included: it releases what was held, every
        // Route and every pod), everything; otherwise what changed.
        let starting = first && !self.nb.sweeping();
        if starting || before != state(&self.inputs) {
            self.full_pass().await;
        } else {
            self.step().await;
        }
    }

    /// Reconciles what the planner marked dirty since the last step.
    async fn step(&mut self) {
        let dirty = self.inputs.engine.take_dirty();
        self.count_routes();
        let sweep = self.inputs.take_sweep();
        if !dirty.is_empty() || sweep {
            tracing::debug!(
                nb = dirty.nb.len(),
                pods = dirty.pods.len(),
                reports = dirty.reports.len(),
                sweep,
                "step"
            );
            if sweep {
                // Rows of Routes no longer in the input: a full pass finds them.
                self.nb.begin_full(&self.inputs).await;
            }
            self.nb.pass(&self.inputs, &dirty.nb).await;
            self.pods.some(&self.inputs, &dirty.pods).await;
        }
        // A Route that stopped decoding keeps its plan and says so: status may change with
        // nothing to program.
        self.publish_status();
    }

    /// Everything from the planner's current state: every pod of this node, status, and a
    /// full NB pass started (every Route's rows and those of Routes that no longer exist;
    /// its batches run between events, see [`Loop::sweep_step`]).
    pub(super) async fn full_pass(&mut self) {
        self.inputs.engine.take_dirty();
        self.inputs.take_sweep();
        self.count_routes();
        let started = self.nb.begin_full(&self.inputs).await;
        self.pods.all(&self.inputs).await;
        self.publish_status();
        if !started {
            // This instance may not write the NB (not the writer, warming up): the pods are
            // done, which is all it owes.
            self.initial_pass_done();
        }
    }

    /// The next batch of the full NB pass under way; when it completes, status (and, the
    /// first time, readiness).
    /// An audit waiting for its sweep ends with it (or without its NB part, when the sweep
    /// could not complete).
    pub(super) async fn sweep_step(&mut self) {
        match self.nb.full_step(&self.inputs).await {
            Some(swept) => {
                self.publish_status();
                self.initial_pass_done();
                // A full pass follows a (re)list of everything: what the lists and the
                // pass freed goes back to the kernel once, not at every event.
                crate::heap::give_back_free();
                if let Some(run) = self.audit_run.take() {
                    let pass = swept.audit.then_some(swept.pass);
                    self.finish_audit(run, pass).await;
                }
            }
            None if !self.nb.sweeping() => {
                if let Some(run) = self.audit_run.take() {
                    self.finish_audit(run, None).await;
                }
            }
            None => {}
        }
    }

    /// Runs the full NB pass under way to its end (a barrier: everything queued before it
    /// is reconciled).
    pub(super) async fn finish_sweep(&mut self) {
        while self.nb.sweeping() {
            self.sweep_step().await;
        }
    }

    fn initial_pass_done(&self) {
        let health = &self.metrics.health;
        if self.inputs.synced && !health.first_pass_done.load(Ordering::Relaxed) {
            health.first_pass_done.store(true, Ordering::Relaxed);
            self.metrics.ready.set(1);
            tracing::info!("initial pass done; watching inputs and the NB database");
        }
    }

    /// A full NB pass started (its batches run between events), then status.
    async fn nb_everything(&mut self) {
        self.nb.begin_full(&self.inputs).await;
        self.publish_status();
    }

    /// Replica changes: the Routes they concern are diffed again (drift repair; a resync or a
    /// reload after a reconnect is a full NB pass).
    pub(super) async fn on_replica(&mut self, events: Vec<ReplicaEvent>) {
        if events.is_empty() || !self.inputs.synced {
            return;
        }
        let d = self.nb.reconciler().drift(&events);
        if d.everything || self.nb.owed() {
            self.nb_everything().await;
            return;
        }
        let routes = self.routes_of(&d);
        if !routes.is_empty() {
            self.nb.pass(&self.inputs, &routes).await;
            self.publish_status();
        }
    }

    /// The Routes an NB change concerns.
    fn routes_of(&self, d: &NbDrift) -> BTreeSet<String> {
        let engine = &self.inputs.engine;
        let mut routes = d.routes.clone();
        for r in &d.routers {
            routes.extend(engine.routes_on_router(r));
        }
        for p in &d.switch_ports {
            routes.extend(engine.routes_with_port(p));
        }
        if d.load_balancers {
            routes.extend(engine.routes_with_service_ips());
        }
        if d.bfd {
            // A session of ours changed or went, or its state did (shown in the status).
            routes.extend(
                engine
                    .route_names()
                    .filter(|r| engine.validated(r).is_some_and(|v| v.ovn.bfd))
                    .cloned(),
            );
        }
        if d.router_ports {
            // A port does not name its router: every Route with rows on a router.
            routes.extend(
                engine
                    .route_names()
                    .filter(|r| engine.has_router_rows(r))
                    .cloned(),
            );
        }
        routes
    }

    /// This instance's role changed (leadership): a full NB pass when it may write.
    pub(super) async fn on_role(&mut self, role: Role) {
        if role == self.nb.role() {
            return;
        }
        tracing::info!(
            write_nb = role.write_nb,
            write_status = role.write_status,
            "role changed"
        );
        self.nb.set_role(role);
        if self.inputs.synced {
            self.nb_everything().await;
        }
    }

    /// The NB client connected again after a pass failed for want of a connection.
    pub(super) async fn on_reconnected(&mut self) {
        tracing::info!("NB client connected again; retrying the failed pass");
        self.nb_everything().await;
    }

    fn count_routes(&self) {
        self.metrics
            .count_routes(self.inputs.engine.reports().map(|(_, r)| r.summary));
    }

    /// Hands this instance's view of every Route to the status writer, or logs each Route
    /// whose status word changed (file mode).
    pub(super) fn publish_status(&mut self) {
        // Mid-sweep views would be written only to be overwritten when the sweep ends
        // (5,000 Routes twice at the client's rate limit); the sweep's end publishes.
        if !self.inputs.synced || self.nb.settling(&self.inputs) {
            return;
        }
        let bfd = crate::nb::bfd::states(&self.nb.reconciler().snapshot());
        let mut view = self.status_cache.view(
            self.inputs.effective(),
            &self.inputs.engine,
            self.nb.problems(),
            self.pods.outcome(),
            &bfd,
        );
        mark_undecodable(&mut view, self.inputs.undecodable.values());
        let total: usize = view
            .routes
            .values()
            .map(|r| r.route_problems.len() + r.route_problems_omitted + r.node_problems.len())
            .sum();
        self.metrics.problems.set(total as i64);
        match &mut self.status {
            StatusOut::Kube(tx) => {
                tx.send_if_modified(|old| {
                    if old.same(&view) {
                        false
                    } else {
                        *old = Arc::new(view);
                        true
                    }
                });
            }
            StatusOut::Log(summaries) => log_status(&view, summaries),
        }
    }
}

/// File mode's status: a line per Route whose status word changed, with its problems.
fn log_status(view: &NodeStatus, summaries: &mut BTreeMap<String, Summary>) {
    let mut now = BTreeMap::new();
    for (name, r) in &view.routes {
        if summaries.get(name) != Some(&r.summary) {
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
    *summaries = now;
}
