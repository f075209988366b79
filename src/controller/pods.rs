//! The pod pass: every pod of this node gets exactly the routes the plan holds for it (none,
//! for pods the plan does not list), in its network namespace found by discovery.
use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::cluster::{ObjectKey, World};
use crate::netlink::{
    Discovery, DiscoveryConfig, PodReport, PodRouteReconciler, ReconcilerConfig, discover,
};
use crate::plan::Plan;
use crate::plan::incremental::Engine;
use crate::plan::pod::{PodKey, PodRoutes};

use super::{ControllerError, PodOptions};

/// What a pod pass did.
#[derive(Debug, Default)]
pub struct PodPass {
    /// Pods reconciled (with or without changes).
    pub pods: usize,
    pub routes_changed: usize,
    pub routes_deleted: usize,
    /// Pods where some route failed, or the pod could not be reconciled at all.
    pub failed: Vec<(PodKey, String)>,
    /// Pods of this node with routes planned but no network namespace found (not started
    /// yet, or gone): skipped, retried next pass.
    pub no_netns: Vec<PodKey>,
    /// Routes skipped because the pod lacks their dev (counted, not an error).
    pub skipped_routes: usize,
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
        ..ReconcilerConfig::default()
    })?)
}

/// Programs every non-hostNetwork pod of `node` (all pods when `None`) found in the world.
pub async fn program(
    rec: &PodRouteReconciler,
    world: &World,
    plan: &Plan,
    node: Option<&str>,
    discovery: &Discovery,
) -> PodPass {
    let mut pass = PodPass::default();
    let mut batch = Vec::new();
    let mut live = HashSet::new();
    for pod in world.pods() {
        if pod.host_network || node.is_some_and(|n| pod.node.as_deref() != Some(n)) {
            continue;
        }
        let key = PodKey {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        };
        live.insert(key.uid.clone());
        let desired = plan
            .pods
            .get(&key)
            .cloned()
            .unwrap_or_else(PodRoutes::default);
        match discovery.get(&key.uid) {
            Some(ns) => batch.push((key, ns.netns.clone(), desired)),
            None if !desired.routes.is_empty() || !desired.default_routes.is_empty() => {
                pass.no_netns.push(key)
            }
            None => {}
        }
    }
    // Pods we programmed earlier that left the world (or this node): take our routes out.
    for gone in rec
        .known_pods()
        .into_iter()
        .filter(|k| !live.contains(&k.uid))
    {
        let report = rec.remove(&gone).await;
        account(&mut pass, gone, &report);
    }
    for (key, report) in rec.set_desired_many(batch).await {
        account(&mut pass, key, &report);
    }
    if let Err(e) = rec.prune_state(&live).await {
        tracing::warn!(error = %e, "could not prune pod state");
    }
    pass
}

/// Programs only the pods `keys` (namespace, name): each gets what the planner holds for
/// it now; a pod gone from the world (or from this node), or recreated with a new uid,
/// loses our routes under its old uid.
pub async fn program_some(
    rec: &PodRouteReconciler,
    engine: &Engine,
    keys: &BTreeSet<ObjectKey>,
    node: Option<&str>,
    discovery: &Discovery,
) -> PodPass {
    let mut pass = PodPass::default();
    let mut batch = Vec::new();
    let mut current: BTreeMap<&ObjectKey, &str> = BTreeMap::new();
    for k in keys {
        let Some(pod) = engine.world().pod(&k.0, &k.1) else {
            continue;
        };
        if pod.host_network || node.is_some_and(|n| pod.node.as_deref() != Some(n)) {
            continue;
        }
        current.insert(k, &pod.uid);
        let key = PodKey::of(pod);
        let desired = engine
            .pod_routes(k)
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        match discovery.get(&key.uid) {
            Some(ns) => batch.push((key, ns.netns.clone(), desired)),
            None if !desired.is_empty() => pass.no_netns.push(key),
            None => {}
        }
    }
    let gone = rec.known_pods().into_iter().filter(|p| {
        let k = (p.namespace.clone(), p.name.clone());
        keys.contains(&k) && current.get(&k) != Some(&p.uid.as_str())
    });
    for g in gone.collect::<Vec<_>>() {
        let report = rec.remove(&g).await;
        account(&mut pass, g, &report);
    }
    for (key, report) in rec.set_desired_many(batch).await {
        account(&mut pass, key, &report);
    }
    pass
}

fn account(pass: &mut PodPass, key: PodKey, report: &PodReport) {
    pass.pods += 1;
    pass.routes_changed += report.added + report.replaced + report.restored;
    pass.routes_deleted += report.deleted;
    pass.skipped_routes += report.skipped;
    if let Some(e) = &report.fatal {
        pass.failed.push((key, e.to_string()));
    } else if report.failed > 0 {
        let why: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        pass.failed.push((key, why.join("; ")));
    }
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
