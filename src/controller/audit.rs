//! The audit (`--audit-mins`): the only timer of the loop, and it only checks. It plans
//! everything again from scratch from the same inputs, compares that with the planner's
//! state, then runs a full NB pass and re-reads every pod's table, and counts each difference
//! it had to repair in `ovnkube_route_audit_repairs_total{side}` with an ERROR line naming
//! the Route and the row, or the pod. The event-driven path keeps everything right on its
//! own, so any repair here is a bug report, never what makes the state right.
//!
//! Drift made by others (a row deleted with `ovn-nbctl`, a route flushed by hand) is repaired
//! from its own event; the loop handles every event already queued before it audits, so such
//! drift is not counted here.
//!
//! Owns: the comparison and its accounting. Must not: run on a timer of its own (the loop
//! calls it).
use std::time::Instant;

use tokio::task::JoinHandle;

use crate::api::Route;
use crate::nb::reconcile::NbPass;
use crate::plan::Plan;
use crate::plan::incremental::Engine;

use super::driver::Loop;
use super::metrics::{ResultLabel, SideLabel};

/// What one audit had to repair, by side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditOutcome {
    /// Routes whose report (status) differed from a fresh plan.
    pub status: usize,
    /// NB rows created, updated or deleted.
    pub nb: usize,
    /// Pod routes added, replaced or deleted.
    pub pods: usize,
    /// The audit did not run: the inputs are not complete yet.
    pub skipped: bool,
}

impl AuditOutcome {
    pub fn repairs(&self) -> usize {
        self.status + self.nb + self.pods
    }
}

/// Most differences named one by one in the log per audit and side.
const MAX_LOGGED: usize = 20;

/// Routes whose report differs between the planner's state and a fresh plan (logged).
fn report_differences(now: &Plan, fresh: &Plan) -> usize {
    let names = now.reports.keys().chain(fresh.reports.keys());
    let mut differ: Vec<&String> = names
        .filter(|n| now.reports.get(*n) != fresh.reports.get(*n))
        .collect();
    differ.sort();
    differ.dedup();
    for name in differ.iter().take(MAX_LOGGED) {
        tracing::error!(route = %name, side = "status", "audit: the Route's report differs from a fresh plan; repaired");
    }
    if now.nb != fresh.nb {
        tracing::error!(
            side = "nb",
            "audit: the planner's NB rows differ from a fresh plan; repaired"
        );
    }
    let pods = now
        .pods
        .keys()
        .chain(fresh.pods.keys())
        .filter(|k| now.pods.get(*k) != fresh.pods.get(*k));
    for pod in pods.take(MAX_LOGGED) {
        tracing::error!(%pod, side = "pods", "audit: the pod's planned routes differ from a fresh plan; repaired");
    }
    differ.len()
}

/// The planner comparison's result: Routes whose report differed, and whether anything did.
#[derive(Debug, Default)]
pub(super) struct Compared {
    status: usize,
    differs: bool,
}

/// Plans `engine`'s World and `routes` again from scratch and compares with `engine`'s own
/// plan (runs on a blocking thread: the loop goes on meanwhile).
fn compare(engine: Engine, routes: Vec<std::sync::Arc<Route>>) -> Compared {
    let fresh = Engine::build(engine.config().clone(), engine.world().clone(), &routes);
    let (now_plan, fresh_plan) = (engine.plan(), fresh.plan());
    if now_plan == fresh_plan {
        return Compared::default();
    }
    Compared {
        status: report_differences(&now_plan, &fresh_plan),
        differs: true,
    }
}

/// An audit under way: what it found so far.
#[derive(Debug)]
pub(super) struct AuditRun {
    start: Instant,
    out: AuditOutcome,
}

impl Loop {
    /// One audit from start to end, holding the loop (the control channel's request: it is
    /// answered once the audit is done). The timer's audit goes step by step instead
    /// ([`Loop::begin_audit`]).
    pub(super) async fn audit(&mut self) -> AuditOutcome {
        let Some((mut run, check)) = self.begin_audit() else {
            return AuditOutcome {
                skipped: true,
                ..AuditOutcome::default()
            };
        };
        let compared = check.await.unwrap_or_default();
        self.checked(&mut run, compared);
        let pass = self.nb.full_now(&self.inputs).await;
        self.finish_audit(run, pass).await
    }

    /// Starts an audit: the planner comparison on a blocking thread (the loop only clones
    /// the planner's state). `None` when the inputs are not complete yet.
    pub(super) fn begin_audit(&self) -> Option<(AuditRun, JoinHandle<Compared>)> {
        if !self.inputs.synced {
            return None;
        }
        let run = AuditRun {
            start: Instant::now(),
            out: AuditOutcome::default(),
        };
        let (engine, routes) = (self.inputs.engine.clone(), self.inputs.effective().to_vec());
        Some((
            run,
            tokio::task::spawn_blocking(move || compare(engine, routes)),
        ))
    }

    /// The comparison is back: where the planner's state was wrong it is planned again from
    /// scratch (from the inputs as they are now).
    pub(super) fn checked(&mut self, run: &mut AuditRun, compared: Compared) {
        run.out.status = compared.status;
        if compared.differs {
            self.inputs.engine = self.inputs.fresh_engine();
        }
    }

    /// The timer's audit after the comparison: its NB part runs as a sweep between events
    /// ([`Loop::audit_swept`] ends it); `None` when the audit is over already (this
    /// instance may not write the NB).
    pub(super) async fn audit_nb(
        &mut self,
        mut run: AuditRun,
        compared: Compared,
    ) -> Option<AuditRun> {
        self.checked(&mut run, compared);
        // A full pass under way first: what it writes is not the audit's to count.
        self.finish_sweep().await;
        if self.nb.begin_audit_sweep(&self.inputs).await {
            return Some(run);
        }
        self.finish_audit(run, None).await;
        None
    }

    /// The audit's sweep is over (`pass`: what it wrote, `None` when it could not complete
    /// or was merged with another full pass): the pods, then the accounting.
    pub(super) async fn finish_audit(
        &mut self,
        mut run: AuditRun,
        pass: Option<NbPass>,
    ) -> AuditOutcome {
        if let Some(pass) = pass {
            run.out.nb = pass.changes;
            for (table, owner, what) in pass.changed.iter().take(MAX_LOGGED) {
                tracing::error!(route = %owner.route, table, id = %owner.id, change = what, side = "nb",
                    "audit: NB row was not as planned; repaired");
            }
        }
        run.out.pods = self.pods.all(&self.inputs).await;
        for (pod, r) in self.pods.recheck().await {
            run.out.pods += r.changes();
            if r.changes() > 0 {
                tracing::error!(%pod, added = r.added, replaced = r.replaced, deleted = r.deleted,
                    restored = r.restored, side = "pods", "audit: the pod's routes were not as planned; repaired");
            }
        }
        self.publish_status();
        self.account(&run.out, run.start);
        run.out
    }

    fn account(&self, out: &AuditOutcome, start: Instant) {
        let m = &self.metrics;
        for (side, n) in [("status", out.status), ("nb", out.nb), ("pods", out.pods)] {
            m.audit_repairs
                .get_or_create(&SideLabel { side })
                .inc_by(n as u64);
        }
        let result = if out.repairs() == 0 { "ok" } else { "repaired" };
        m.audits.get_or_create(&ResultLabel { result }).inc();
        m.observe_pass("audit", start.elapsed());
        if out.repairs() == 0 {
            tracing::debug!(
                elapsed_ms = start.elapsed().as_secs_f64() * 1e3,
                "audit: nothing to repair"
            );
        } else {
            tracing::error!(
                status = out.status,
                nb = out.nb,
                pods = out.pods,
                "audit repaired differences the event-driven path missed (a bug: please report it)"
            );
        }
    }
}
