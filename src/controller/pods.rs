//! The pod pass: every pod of this node gets exactly the routes the plan holds for it (none,
//! for pods the plan does not list), in its network namespace.
//!
//! Two ways in: [`program`] (one-shot `apply`: every pod, netns from a fresh discovery) and
//! [`sync`] (`run`: the reconciler made by [`watching_reconciler`] keeps routes true from
//! events and knows every netns; a pass only programs pods whose planned routes changed,
//! whose last pass failed, or which are new), and [`sync_some`], the same over the pods the
//! incremental planner marked dirty.
//!
//! Must not: log per pod (the reconciler does, once per distinct failure).
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use crate::cluster::ObjectKey;
use crate::netlink::{
    Discovery, DiscoveryConfig, PassSummary, PodRouteReconciler, ReconcilerConfig, discover,
};
use crate::plan::incremental::Engine;
use crate::plan::pod::{PodKey, PodRoutes};

use super::{ControllerError, PodOptions};

/// What a pod pass did.
#[derive(Debug, Default)]
pub struct PodPass {
    /// Pods reconciled (dumped and diffed, with or without changes).
    pub pods: usize,
    pub routes_changed: usize,
    pub routes_deleted: usize,
    /// Pods where some route failed, or the pod could not be reconciled at all.
    pub failed: Vec<(PodKey, String)>,
    /// Failures by error label (`NetlinkError::label`), for the failure counter.
    pub failed_by_label: std::collections::BTreeMap<&'static str, u64>,
    /// Pods of this node with routes planned but no network namespace found (not started
    /// yet, or gone): programmed as soon as their netns appears.
    pub no_netns: Vec<PodKey>,
    /// Routes skipped because the pod lacks their dev (counted, not an error).
    pub skipped_routes: usize,
}

impl From<PassSummary> for PodPass {
    fn from(s: PassSummary) -> Self {
        PodPass {
            pods: s.pods,
            routes_changed: s.added + s.replaced + s.restored,
            routes_deleted: s.deleted,
            failed: s.failed,
            failed_by_label: s.failed_by_label,
            no_netns: s.pending,
            skipped_routes: s.skipped_routes,
        }
    }
}

pub fn discovery_config(opts: &PodOptions) -> DiscoveryConfig {
    DiscoveryConfig {
        cni_cache: opts.cni_results.clone(),
        netns_dir: opts.netns_dir.clone(),
        proc_root: Some(opts.proc_root.clone()),
    }
}

pub fn reconciler(opts: &PodOptions) -> Result<PodRouteReconciler, ControllerError> {
    Ok(PodRouteReconciler::new(ReconcilerConfig {
        state_dir: opts.state_dir.join("pods"),
        recheck: opts.recheck,
        threads: opts.threads.max(1),
        ..ReconcilerConfig::default()
    })?)
}

/// The reconciler of `run`: it watches every programmed pod's netns (netlink
/// notifications) and the netns sources (inotify), and re-checks pods slowly in the
/// background (`PodOptions::recheck`). Needs a tokio runtime.
pub fn watching_reconciler(opts: &PodOptions) -> Result<PodRouteReconciler, ControllerError> {
    // `run` fails at start on a state dir it cannot create, not at the first record.
    let dir = opts.state_dir.join("pods");
    std::fs::create_dir_all(&dir).map_err(|e| {
        ControllerError::Netlink(crate::netlink::NetlinkError::State {
            path: dir.clone(),
            message: e.to_string(),
        })
    })?;
    let rec = reconciler(opts)?;
    rec.start_watching(discovery_config(opts))?;
    Ok(rec)
}

/// This node's non-hostNetwork pods with their planned routes (a shared empty set for pods
/// the planner gives none), and their uids.
fn node_pods(
    engine: &Engine,
    node: Option<&str>,
) -> (Vec<(PodKey, Arc<PodRoutes>)>, HashSet<String>) {
    let none = Arc::new(PodRoutes::default());
    let mut out = Vec::new();
    let mut live = HashSet::new();
    for pod in engine.world().pods() {
        if pod.host_network || node.is_some_and(|n| pod.node.as_deref() != Some(n)) {
            continue;
        }
        let key = PodKey {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        };
        live.insert(key.uid.clone());
        let desired = engine
            .pod_routes(&(key.namespace.clone(), key.name.clone()))
            .map_or_else(|| none.clone(), |(_, r)| r.clone());
        out.push((key, desired));
    }
    (out, live)
}

/// Pods we programmed earlier that left the world (or this node): take our routes out.
async fn remove_gone(rec: &PodRouteReconciler, live: &HashSet<String>, pass: &mut PodPass) {
    for gone in rec
        .known_pods()
        .into_iter()
        .filter(|k| !live.contains(&k.uid))
    {
        let report = rec.remove(&gone).await;
        pass.pods += 1;
        pass.routes_deleted += report.deleted;
        pass.routes_changed += report.restored;
        if let Some(why) = crate::netlink::summary::failure(&report) {
            pass.failed.push((gone, why));
            *pass
                .failed_by_label
                .entry(crate::netlink::summary::failure_label(&report))
                .or_default() += 1;
        }
    }
    if let Err(e) = rec.prune_state(live).await {
        tracing::warn!(error = %e, "could not prune pod state");
    }
}

/// Programs every non-hostNetwork pod of `node` (all pods when `None`) found in the world,
/// in the netns `discovery` gives (one-shot `apply`).
pub async fn program(
    rec: &PodRouteReconciler,
    engine: &Engine,
    node: Option<&str>,
    discovery: &Discovery,
) -> PodPass {
    let (pods, live) = node_pods(engine, node);
    let mut pass = PodPass::default();
    remove_gone(rec, &live, &mut pass).await;
    let mut batch = Vec::new();
    for (key, desired) in pods {
        match discovery.get(&key.uid) {
            Some(ns) => batch.push((key, ns.netns.clone(), desired)),
            None if !desired.is_empty() => pass.no_netns.push(key),
            None => {}
        }
    }
    let mut s = PassSummary::new(crate::netlink::Trigger::Plan);
    for (key, report) in rec.set_desired_many(batch).await {
        s.add(&key, &report);
    }
    merge(pass, s.into())
}

/// The `run` pass: hands the plan's routes to the watching reconciler, which programs only
/// what changed (see [`PodRouteReconciler::sync`]); removes pods that left.
pub async fn sync(rec: &PodRouteReconciler, engine: &Engine, node: Option<&str>) -> PodPass {
    let (pods, live) = node_pods(engine, node);
    let mut pass = PodPass::default();
    remove_gone(rec, &live, &mut pass).await;
    merge(pass, rec.sync(pods).await.into())
}

fn merge(mut a: PodPass, b: PodPass) -> PodPass {
    a.pods += b.pods;
    a.routes_changed += b.routes_changed;
    a.routes_deleted += b.routes_deleted;
    a.failed.extend(b.failed);
    for (k, v) in b.failed_by_label {
        *a.failed_by_label.entry(k).or_default() += v;
    }
    a.no_netns.extend(b.no_netns);
    a.skipped_routes += b.skipped_routes;
    a
}

/// The incremental `run` pass: like [`sync`] over the pods `keys` (namespace, name) only,
/// each with what the planner holds for it now; a pod gone from the world (or from this
/// node), or recreated with a new uid, loses our routes under its old uid.
pub async fn sync_some(
    rec: &PodRouteReconciler,
    engine: &Engine,
    keys: &BTreeSet<ObjectKey>,
    node: Option<&str>,
) -> PodPass {
    let none = Arc::new(PodRoutes::default());
    let mut current: BTreeMap<&ObjectKey, &str> = BTreeMap::new();
    let mut pods = Vec::new();
    for k in keys {
        let Some(pod) = engine.world().pod_at(k) else {
            continue;
        };
        if pod.host_network || node.is_some_and(|n| pod.node.as_deref() != Some(n)) {
            continue;
        }
        current.insert(k, &pod.uid);
        let desired = engine
            .pod_routes(k)
            .map_or_else(|| none.clone(), |(_, r)| r.clone());
        pods.push((PodKey::of(pod), desired));
    }
    let mut pass = PodPass::default();
    let gone: Vec<PodKey> = rec
        .known_pods()
        .into_iter()
        .filter(|p| {
            let k = (p.namespace.clone(), p.name.clone());
            keys.contains(&k) && current.get(&k) != Some(&p.uid.as_str())
        })
        .collect();
    for g in gone {
        let report = rec.remove(&g).await;
        pass.pods += 1;
        pass.routes_deleted += report.deleted;
        pass.routes_changed += report.restored;
        if let Some(why) = crate::netlink::summary::failure(&report) {
            pass.failed.push((g, why));
        }
    }
    merge(pass, rec.sync(pods).await.into())
}

/// Discovery, logged.
pub fn find_netns(opts: &PodOptions) -> Discovery {
    let d = discover(&discovery_config(opts));
    tracing::debug!(
        pods = d.len(),
        skipped_files = d.skipped_files,
        "pod network namespaces discovered"
    );
    d
}
