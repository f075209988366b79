//! The loop's pod side: hands the planner's routes to the watching pod reconciler (every
//! pod of this node, or the pods a step marked), and what the last passes left behind per
//! pod (failed, waiting for a netns), for status.
//!
//! Owns: the pod reconciler of `run` and the per-pod outcome. Must not: decide routes (the
//! planner does) or log per pod (the reconciler does, once per distinct failure).
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use crate::cluster::ObjectKey;
use crate::netlink::PodRouteReconciler;
use crate::netlink::program::PodReport;
use crate::plan::pod::PodKey;

use super::inputs::Inputs;
use super::metrics::{ErrorLabel, Metrics};
use super::pods::{self, PodPass};
use super::status::PodOutcome;

pub(super) struct PodSide {
    /// `None` with `--skip-pods`.
    reconciler: Option<PodRouteReconciler>,
    node: Option<String>,
    outcome: PodOutcome,
    metrics: Arc<Metrics>,
}

impl PodSide {
    pub(super) fn new(
        reconciler: Option<PodRouteReconciler>,
        node: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        PodSide {
            reconciler,
            node,
            outcome: PodOutcome::default(),
            metrics,
        }
    }

    pub(super) fn outcome(&self) -> &PodOutcome {
        &self.outcome
    }

    /// Every pod of this node gets the planner's routes (only pods whose routes changed,
    /// whose last pass failed or which are new are programmed). Returns the route changes.
    pub(super) async fn all(&mut self, inputs: &Inputs) -> usize {
        let Some(rec) = &self.reconciler else {
            return 0;
        };
        if !inputs.synced || inputs.world_unknown {
            // Pods absent from an incomplete world would lose their routes, and a pod's
            // selection may depend on what could not be read (its namespace's labels).
            return 0;
        }
        let start = Instant::now();
        let p = pods::sync(rec, &inputs.engine, self.node.as_deref()).await;
        self.metrics.observe_pass("pods", start.elapsed());
        let changes = p.routes_changed + p.routes_deleted;
        self.count(&p);
        self.metrics
            .pods_programmed
            .set(p.pods.saturating_sub(p.failed.len()) as i64);
        self.outcome = PodOutcome {
            failed: p.failed.into_iter().collect(),
            no_netns: p.no_netns.into_iter().collect(),
        };
        changes
    }

    /// The pods `keys` (namespace, name) only, each with what the planner holds for it now.
    pub(super) async fn some(&mut self, inputs: &Inputs, keys: &BTreeSet<ObjectKey>) {
        let Some(rec) = &self.reconciler else {
            return;
        };
        if keys.is_empty() || !inputs.synced || inputs.world_unknown {
            return;
        }
        let start = Instant::now();
        // The reconciler knows every pod's netns from its own watch (inotify); a pod whose
        // netns is not there yet is programmed by the reconciler when it appears.
        let p = pods::sync_some(rec, &inputs.engine, keys, self.node.as_deref()).await;
        self.metrics.observe_pass("pods_some", start.elapsed());
        self.count(&p);
        for (pod, why) in &p.failed {
            tracing::warn!(%pod, "pod routes failed: {why}");
        }
        let o = &mut self.outcome;
        let touched = |k: &PodKey| keys.contains(&(k.namespace.clone(), k.name.clone()));
        o.failed.retain(|k, _| !touched(k));
        o.no_netns.retain(|k| !touched(k));
        o.failed.extend(p.failed);
        o.no_netns.extend(p.no_netns);
    }

    fn count(&self, p: &PodPass) {
        let m = &self.metrics;
        m.pod_routes_added.inc_by(p.routes_changed as u64);
        m.pod_routes_deleted.inc_by(p.routes_deleted as u64);
        for (label, n) in &p.failed_by_label {
            m.pod_failures
                .get_or_create(&ErrorLabel { error: label })
                .inc_by(*n);
        }
    }

    /// Every watched pod's table read again and put right now (the audit's pod half): the
    /// pods where something had to change, with what.
    pub(super) async fn recheck(&self) -> Vec<(PodKey, PodReport)> {
        match &self.reconciler {
            Some(rec) => rec.resync_all().await,
            None => Vec::new(),
        }
    }
}
