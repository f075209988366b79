//! The loop's NB side: one pass over some Routes or over every Route, written the same way
//! (the planner's desired rows, the one keep rule, one transaction), and what a failed or
//! skipped pass leaves owed.
//!
//! Owns: the NB reconciler, whether this instance may write now (role, fence, warm-up), the
//! NB problems last found, and the retry state. Must not: plan (the planner does) or decide
//! what to keep (`keep` does).
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use crate::nb::Scope;
use crate::nb::diff::NbProblem;
use crate::nb::reconcile::{NbError, NbIntent, NbPass, NbReconciler};
use crate::plan::NbScope;

use super::inputs::Inputs;
use super::keep::{drop_kept, hold_selection, keep};
use super::metrics::{ErrorLabel, Metrics, ResultLabel};
use super::role::{Fence, Role};

pub(super) struct NbSide {
    reconciler: NbReconciler,
    role: Role,
    fence: Fence,
    /// Desired rows that could not be written, and why (the last full pass's, patched by
    /// the passes over some Routes since).
    problems: Vec<NbProblem>,
    /// A pass failed or could not run: the next pass, whatever triggers it, covers every
    /// Route.
    owed: bool,
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

    /// A pass over `scope`, or over every Route when one is owed. `None` when this
    /// instance may not write now (a full pass is then owed).
    pub(super) async fn pass(&mut self, inputs: &Inputs, scope: Scope<'_>) -> Option<NbPass> {
        if let Scope::Routes(r) = scope
            && r.is_empty()
            && !self.owed
        {
            return None;
        }
        if let Some(why) = self.blocked(inputs) {
            tracing::debug!(why, "NB pass skipped");
            // What these Routes needed is caught up by a full pass when writing resumes.
            self.owed = true;
            return None;
        }
        let scope = if self.owed { Scope::All } else { scope };
        tracing::trace!(?scope, "NB pass");
        let engine = &inputs.engine;
        let mut keep = keep(&inputs.errors, inputs.undecodable.keys(), engine, scope);
        if inputs.world_unknown {
            let held = hold_selection(
                &mut keep,
                crate::nb::route_names(&self.reconciler.snapshot()),
            );
            tracing::debug!(routes = held.len(), "world unknown: NB rows of Routes held");
        }
        let (mut desired, ips) = match scope {
            Scope::All => engine.desired_nb_all(),
            Scope::Routes(r) => engine.desired_nb(r),
        };
        drop_kept(&mut desired, &keep);
        let intent = NbIntent {
            desired: &desired,
            service_ips: &ips,
            keep: &keep,
        };
        let start = Instant::now();
        let connections = self.reconciler.client().state().connections;
        self.retry_after = None;
        let result = self.reconciler.reconcile(intent, scope).await;
        let side = match scope {
            Scope::All => "nb",
            Scope::Routes(_) => "nb_routes",
        };
        self.metrics.observe_pass(side, start.elapsed());
        let routes = match scope {
            Scope::All => None,
            Scope::Routes(r) => Some(r),
        };
        self.done(result, routes, connections)
    }

    /// Accounts for a pass over every Route (`scope` None) or over some.
    fn done(
        &mut self,
        result: Result<NbPass, NbError>,
        scope: Option<&BTreeSet<String>>,
        connections: u64,
    ) -> Option<NbPass> {
        let m = self.metrics.clone();
        let out = match result {
            Ok(pass) => {
                if scope.is_none() {
                    self.owed = false;
                }
                if pass.changes > 0 {
                    m.nb_transactions
                        .get_or_create(&ResultLabel { result: "ok" })
                        .inc();
                    m.nb_changes.inc_by(pass.changes as u64);
                }
                match scope {
                    None => self.problems = pass.problems.clone(),
                    Some(routes) => {
                        self.problems.retain(|p| !routes.contains(&p.route));
                        self.problems.extend(pass.problems.iter().cloned());
                        self.problems.sort();
                    }
                }
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
