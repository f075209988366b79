//! The loop's NB side: a pass over some Routes (the planner's desired rows, the one keep rule,
//! one transaction), a full pass as a sweep of such passes over every Route in bounded
//! batches, and what a failed or skipped pass leaves owed.
//!
//! A full pass is never one long transaction: every Route with rows of ours or wanting some
//! is taken [`SWEEP_BATCH`] at a time, each batch its own transaction over whole Routes (so
//! no Route is ever half old, half new). The next batch is sent while the server still works
//! on the one before ([`SWEEP_DEPTH`]), and the loop handles events between batches
//! (`driver`): an edit waits for the batch on its way, not behind the whole NB.
//!
//! Owns: the NB reconciler, whether this instance may write now (role, fence, warm-up), the
//! NB problems last found, the sweep in progress, and the retry state. Must not: plan (the
//! planner does) or decide what to keep (`keep` does).
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::nb::Scope;
use crate::nb::diff::NbProblem;
use crate::nb::reconcile::{Begun, NbError, NbIntent, NbPass, NbReconciler, Sent};
use crate::nb::route_names;
use crate::plan::NbScope;

use super::inputs::Inputs;
use super::keep::{drop_kept, hold_selection, keep};
use super::metrics::{ErrorLabel, Metrics, ResultLabel};
use super::role::{Fence, Role};

/// Routes per transaction of a full pass. At about 7 rows per Route this is a few hundred
/// rows, tens of milliseconds of ovsdb-server's time: what an event may wait behind.
pub(super) const SWEEP_BATCH: usize = 64;

/// Transactions of a full pass on their way at once: the next batch is diffed and sent
/// while the server still works on the one before (batches are disjoint Routes), so neither
/// the server nor the loop waits for the other. Any other pass first waits for them.
pub(super) const SWEEP_DEPTH: usize = 2;

/// A batch's transaction on its way.
struct InFlight {
    routes: BTreeSet<String>,
    sent: Sent,
    /// The client's connection count when it was sent.
    connections: u64,
    started: Instant,
    side: &'static str,
}

/// What became of a batch handed to [`NbSide::begin`].
enum Begin {
    Sent(InFlight),
    /// Nothing to write, or it could not be sent (a full pass is then owed).
    Done(Option<NbPass>),
    /// Its diff concerns BFD sessions and another transaction is on its way: it must be
    /// diffed again once that one is visible.
    Later,
}

/// A full pass in progress.
#[derive(Debug, Default)]
struct Sweep {
    /// The Routes still to go, a transaction each batch.
    batches: VecDeque<BTreeSet<String>>,
    /// What the batches done so far wrote.
    done: NbPass,
    /// The audit's own sweep (what it writes is counted as audit repairs); false once
    /// another full pass has joined it.
    audit: bool,
}

/// A full pass that has completed.
#[derive(Debug)]
pub(super) struct Swept {
    /// What the whole pass wrote.
    pub pass: NbPass,
    /// It was the audit's own sweep.
    pub audit: bool,
}

pub(super) struct NbSide {
    reconciler: NbReconciler,
    role: Role,
    fence: Fence,
    /// Desired rows that could not be written, and why (the last full pass's, patched by
    /// the passes over some Routes since).
    problems: Vec<NbProblem>,
    /// A pass failed or could not run: the next pass, whatever triggers it, starts a full
    /// pass.
    owed: bool,
    /// The full pass in progress, if any.
    sweep: Option<Sweep>,
    /// Its transactions on their way, oldest first (at most [`SWEEP_DEPTH`]).
    in_flight: VecDeque<InFlight>,
    /// The last pass failed for want of a connection: the client's connection count at its
    /// start. It is retried as soon as the client has connected again.
    retry_after: Option<u64>,
    metrics: Arc<Metrics>,
}

impl NbSide {
    pub(super) fn new(
        reconciler: NbReconciler,
        role: Role,
        fence: Fence,
        metrics: Arc<Metrics>,
    ) -> Self {
        NbSide {
            reconciler,
            role,
            fence,
            problems: Vec::new(),
            owed: false,
            sweep: None,
            in_flight: VecDeque::new(),
            retry_after: None,
            metrics,
        }
    }

    pub(super) fn reconciler(&self) -> &NbReconciler {
        &self.reconciler
    }

    pub(super) fn problems(&self) -> &[NbProblem] {
        &self.problems
    }

    pub(super) fn role(&self) -> Role {
        self.role
    }

    pub(super) fn set_role(&mut self, role: Role) {
        self.role = role;
    }

    /// A full pass is owed (a pass failed or was skipped).
    pub(super) fn owed(&self) -> bool {
        self.owed
    }

    /// The connection count a failed pass waits to see passed.
    pub(super) fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    pub(super) fn forget_retry(&mut self) {
        self.retry_after = None;
    }

    /// Whether this instance may write the NB now, and if not, why (for the log).
    pub(super) fn blocked(&self, inputs: &Inputs) -> Option<&'static str> {
        if !self.role.write_nb {
            Some("not the NB writer")
        } else if !inputs.synced {
            Some("inputs not synced")
        } else if inputs.engine.config().nb_scope == NbScope::Cluster && !inputs.cluster_pods {
            // A new leader warming up: its world holds only its node's pods yet.
            Some("warming up: the cluster's pods are not listed yet")
        } else if !self.fence.may_write() {
            Some("leadership not confirmed recently")
        } else {
            None
        }
    }

    /// Whether a full pass is under way (the loop runs its next batch between events).
    pub(super) fn sweeping(&self) -> bool {
        self.sweep.is_some()
    }

    /// A full pass other than the audit's is under way (start, inputs complete again, a
    /// new leader, a failed pass made good), or this instance is the NB writer and still
    /// waits for the cluster's pods: until then its view of status is half old, half new,
    /// and not worth publishing.
    pub(super) fn settling(&self, inputs: &Inputs) -> bool {
        let warming_up = self.role.write_nb
            && inputs.engine.config().nb_scope == NbScope::Cluster
            && !inputs.cluster_pods;
        warming_up || self.sweep.as_ref().is_some_and(|s| !s.audit)
    }

    /// A pass over some Routes (and the start of a full pass when one is owed). `None` when
    /// this instance may not write now (a full pass is then owed).
    pub(super) async fn pass(
        &mut self,
        inputs: &Inputs,
        routes: &BTreeSet<String>,
    ) -> Option<NbPass> {
        if routes.is_empty() && !self.owed {
            return None;
        }
        if self.owed && !self.begin_full(inputs).await {
            return None;
        }
        if routes.is_empty() {
            return None;
        }
        self.batch(inputs, routes, "nb_routes").await
    }

    /// Starts a full pass: every Route with rows of ours in the NB, known to the planner, or
    /// with problems last time, in batches of [`SWEEP_BATCH`]. False when this instance may
    /// not write now (a full pass is then owed).
    pub(super) async fn begin_full(&mut self, inputs: &Inputs) -> bool {
        // The sweep's transactions on their way first (whatever comes next, their outcome
        // is accounted for), then our last writes visible: their rows name their Routes.
        self.drain().await;
        if let Some(why) = self.blocked(inputs) {
            tracing::debug!(why, "NB pass skipped");
            self.owed = true;
            self.sweep = None;
            return false;
        }
        if let Err(e) = self.reconciler.settle().await {
            self.failed(&e, self.reconciler.client().state().connections);
            return false;
        }
        let mut names = route_names(&self.reconciler.snapshot());
        names.extend(inputs.engine.route_names().cloned());
        names.extend(self.problems.iter().map(|p| p.route.clone()));
        // A full pass already under way goes on; what it has not queued yet is added.
        let sweep = self.sweep.get_or_insert_with(Sweep::default);
        sweep.audit = false;
        for queued in &sweep.batches {
            names.retain(|n| !queued.contains(n));
        }
        let mut names = names.into_iter().peekable();
        while names.peek().is_some() {
            sweep
                .batches
                .push_back(names.by_ref().take(SWEEP_BATCH).collect());
        }
        tracing::debug!(batches = sweep.batches.len(), "full NB pass started");
        self.owed = false;
        true
    }

    /// Starts the audit's full pass (none may be under way: the audit finishes it first).
    pub(super) async fn begin_audit_sweep(&mut self, inputs: &Inputs) -> bool {
        if !self.begin_full(inputs).await {
            return false;
        }
        if let Some(s) = self.sweep.as_mut() {
            s.audit = true;
        }
        true
    }

    /// The next batch of the full pass under way: batches are sent until [`SWEEP_DEPTH`]
    /// are on their way, then the oldest is waited for. `Some` when the pass has just
    /// completed; `None` while batches remain, when none is under way, or when a batch could
    /// not be written (a full pass is then owed).
    pub(super) async fn full_step(&mut self, inputs: &Inputs) -> Option<Swept> {
        self.sweep.as_ref()?;
        self.fill(inputs).await;
        if let Some(f) = self.in_flight.pop_front() {
            self.complete_into_sweep(f).await;
            if self.sweep.is_none() {
                // Failed, or lost the right to write: what is on its way still completes.
                self.drain().await;
            }
            return None;
        }
        let mut sweep = self.sweep.take()?;
        if !sweep.batches.is_empty() {
            // Not done: put back (a batch was held for BFD and nothing was on its way).
            self.sweep = Some(sweep);
            return None;
        }
        sweep.done.problems = self.problems.clone();
        tracing::debug!(
            changes = sweep.done.changes,
            elapsed_ms = sweep.done.elapsed.as_secs_f64() * 1e3,
            audit = sweep.audit,
            "full NB pass done"
        );
        Some(Swept {
            pass: sweep.done,
            audit: sweep.audit,
        })
    }

    /// Sends the sweep's next batches until [`SWEEP_DEPTH`] are on their way, or one that
    /// concerns BFD sessions is (it goes alone).
    async fn fill(&mut self, inputs: &Inputs) {
        while self.in_flight.len() < SWEEP_DEPTH
            && !self.in_flight.back().is_some_and(|f| f.sent.bfd())
        {
            let Some(batch) = self.sweep.as_mut().and_then(|s| s.batches.pop_front()) else {
                return;
            };
            if self.blocked(inputs).is_some() {
                // Lost the right to write half way: the rest is owed.
                self.owed = true;
                self.sweep = None;
                return;
            }
            let alone = self.in_flight.is_empty();
            match self.begin(inputs, &batch, "nb", alone).await {
                Begin::Sent(f) => self.in_flight.push_back(f),
                Begin::Done(pass) => {
                    if let (Some(pass), Some(sweep)) = (pass, self.sweep.as_mut()) {
                        add(&mut sweep.done, pass);
                    }
                }
                Begin::Later => {
                    if let Some(s) = self.sweep.as_mut() {
                        s.batches.push_front(batch);
                    }
                    return;
                }
            }
        }
    }

    /// Waits for every transaction on its way (a pass that reads the NB or writes other
    /// Routes comes after them).
    async fn drain(&mut self) {
        while let Some(f) = self.in_flight.pop_front() {
            self.complete_into_sweep(f).await;
        }
    }

    async fn complete_into_sweep(&mut self, f: InFlight) {
        let pass = self.complete(f).await;
        if let (Some(pass), Some(sweep)) = (pass, self.sweep.as_mut()) {
            add(&mut sweep.done, pass);
        }
    }

    /// A whole full pass at once (the audit): `None` when it could not complete.
    pub(super) async fn full_now(&mut self, inputs: &Inputs) -> Option<NbPass> {
        if !self.begin_full(inputs).await {
            return None;
        }
        while self.sweep.is_some() {
            if let Some(done) = self.full_step(inputs).await {
                return Some(done.pass);
            }
        }
        None
    }

    /// One transaction over `routes`, after those on their way; `side` names it in the
    /// pass-duration metric.
    async fn batch(
        &mut self,
        inputs: &Inputs,
        routes: &BTreeSet<String>,
        side: &'static str,
    ) -> Option<NbPass> {
        self.drain().await;
        match self.begin(inputs, routes, side, true).await {
            Begin::Sent(f) => self.complete(f).await,
            Begin::Done(pass) => pass,
            Begin::Later => None,
        }
    }

    /// Diffs `routes` and sends their transaction. `alone`: nothing else is on its way, so
    /// our last writes are waited for first and a diff that concerns BFD sessions may go;
    /// otherwise such a diff is [`Begin::Later`].
    async fn begin(
        &mut self,
        inputs: &Inputs,
        routes: &BTreeSet<String>,
        side: &'static str,
        alone: bool,
    ) -> Begin {
        if let Some(why) = self.blocked(inputs) {
            tracing::debug!(why, "NB pass skipped");
            // What these Routes needed is caught up by a full pass when writing resumes.
            self.owed = true;
            self.sweep = None;
            return Begin::Done(None);
        }
        tracing::trace!(routes = routes.len(), side, alone, "NB pass");
        let started = Instant::now();
        let connections = self.reconciler.client().state().connections;
        self.retry_after = None;
        if alone && let Err(e) = self.reconciler.settle().await {
            self.failed(&e, connections);
            return Begin::Done(None);
        }
        let scope = Scope::Routes(routes);
        let engine = &inputs.engine;
        let mut keep = keep(&inputs.errors, inputs.undecodable.keys(), engine, scope);
        if inputs.world_unknown {
            let held = hold_selection(
                &mut keep,
                crate::nb::route_names(&self.reconciler.snapshot()),
            );
            tracing::debug!(routes = held.len(), "world unknown: NB rows of Routes held");
        }
        let (mut desired, ips) = engine.desired_nb(routes);
        drop_kept(&mut desired, &keep);
        let intent = NbIntent {
            desired: &desired,
            service_ips: &ips,
            keep: &keep,
        };
        let d = self.reconciler.preview(intent, scope);
        if !alone && d.touches_bfd() {
            return Begin::Later;
        }
        let sent = match self.reconciler.send(d, started) {
            Ok(Begun::Sent(sent)) => sent,
            Ok(Begun::Done(pass)) => {
                self.metrics.observe_pass(side, started.elapsed());
                return Begin::Done(self.done(Ok(pass), routes, connections));
            }
            Err(e) => {
                self.metrics.observe_pass(side, started.elapsed());
                return Begin::Done(self.done(Err(e), routes, connections));
            }
        };
        Begin::Sent(InFlight {
            routes: routes.clone(),
            sent,
            connections,
            started,
            side,
        })
    }

    /// Waits for a transaction's reply and accounts for it.
    async fn complete(&mut self, f: InFlight) -> Option<NbPass> {
        let result = self.reconciler.finish(f.sent).await;
        self.metrics.observe_pass(f.side, f.started.elapsed());
        self.done(result, &f.routes, f.connections)
    }

    /// Accounts for a pass over `routes`.
    fn done(
        &mut self,
        result: Result<NbPass, NbError>,
        routes: &BTreeSet<String>,
        connections: u64,
    ) -> Option<NbPass> {
        let m = self.metrics.clone();
        let out = match result {
            Ok(pass) => {
                if pass.changes > 0 {
                    m.nb_transactions
                        .get_or_create(&ResultLabel { result: "ok" })
                        .inc();
                    m.nb_changes.inc_by(pass.changes as u64);
                }
                self.problems.retain(|p| !routes.contains(&p.route));
                self.problems.extend(pass.problems.iter().cloned());
                self.problems.sort();
                Some(pass)
            }
            Err(e) => {
                self.failed(&e, connections);
                None
            }
        };
        m.nb_connected
            .set(i64::from(self.reconciler.client().is_connected()));
        out
    }

    fn failed(&mut self, e: &NbError, connections: u64) {
        let m = &self.metrics;
        self.owed = true;
        self.sweep = None;
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
            tracing::warn!(error = %e, kind = e.label(), "NB pass failed; retried on the next event");
        }
    }
}

/// Adds a batch's pass to the full pass's.
fn add(done: &mut NbPass, pass: NbPass) {
    done.changes += pass.changes;
    done.operations += pass.operations;
    done.changed.extend(pass.changed);
    done.elapsed += pass.elapsed;
}
