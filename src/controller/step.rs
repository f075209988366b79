//! The event-driven side of the loop: what one batch of updates, or one replica change,
//! costs. The incremental planner says what is dirty; only those Routes' NB rows (read by
//! the replica's name index) and only those pods are reconciled, and the loop's view of
//! the reports and pod routes is patched in place.
//!
//! Owns: handing effective Routes to the planner, mapping replica changes to the Routes
//! they concern, and the check of the incremental plan against a full one. Must not: decide
//! what to program (the planner does) or keep anything the full pass would not.
use std::collections::BTreeSet;
use std::time::Instant;

use crate::nb::reconcile::NbIntent;
use crate::nb::row::{Family, ROUTER, SWITCH_PORT};
use crate::ovsdb::{ReplicaEvent, ReplicaRow};
use crate::plan::Plan;
use crate::plan::incremental::Engine;
use crate::plan::nb::{NAME_KEY, OWNER_CONTROLLER, OWNER_CONTROLLER_KEY};

use super::inputs::RouteChanges;
use super::keep::keep_for_routes;
use super::pods;
use super::run::Loop;

/// What a batch of replica changes asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    Nothing,
    /// Diff these Routes' rows again.
    Routes(BTreeSet<String>),
    /// A full pass (a resync, or a change this mapping does not follow).
    Everything,
}

/// The Route a row of a table of ours belongs to, if it is ours.
fn our_route(row: &ReplicaRow) -> Option<String> {
    (row.external_id(OWNER_CONTROLLER_KEY) == Some(OWNER_CONTROLLER))
        .then(|| row.external_id(NAME_KEY).map(str::to_owned))
        .flatten()
}

/// The Route whose Address_Set / Port_Group name this is (`ovnkube_route_<name>[_v4|_v6]`,
/// `-` written as `_`; Kubernetes names never hold `_`, so the mapping is one to one).
fn route_of_name(name: &str) -> Option<String> {
    let ident = name.strip_prefix("ovnkube_route_")?;
    let ident = ident
        .strip_suffix("_v4")
        .or_else(|| ident.strip_suffix("_v6"))
        .unwrap_or(ident);
    Some(ident.replace('_', "-"))
}

/// Maps replica changes to the Routes they concern: rows of ours (edited or deleted by
/// someone, or our own write echoed back), names of ours taken or freed by others, routers
/// and switch ports Routes rely on, load balancers for Routes with Service IPs. Router
/// ports (their networks decide next-hop reachability) ask for every Route on any router.
pub fn drifted(engine: &Engine, events: &[ReplicaEvent]) -> Drift {
    let mut routes = BTreeSet::new();
    for ev in events {
        let ReplicaEvent::Changes(cs) = ev else {
            return Drift::Everything;
        };
        for c in &cs.changes {
            let rows = c.old.iter().chain(c.new.iter());
            let table = c.table.as_str();
            if Family::ALL.iter().any(|f| f.table() == table) {
                for row in rows {
                    match our_route(row) {
                        Some(r) => {
                            routes.insert(r);
                        }
                        None => {
                            let name = row.column("name").and_then(|n| n.as_str());
                            routes.extend(name.and_then(route_of_name));
                        }
                    }
                }
            } else if table == ROUTER {
                // A router's `policies` / `static_routes` sets change with every row added
                // or removed on it (ours come as their own row changes); only its
                // existence, name and ports concern the Routes on it.
                if router_moved(c.old.as_ref(), c.new.as_ref()) {
                    for row in rows {
                        if let Some(name) = row.column("name").and_then(|n| n.as_str()) {
                            routes.extend(engine.routes_on_router(name));
                        }
                    }
                }
            } else if table == SWITCH_PORT {
                for row in rows {
                    if let Some(name) = row.column("name").and_then(|n| n.as_str()) {
                        routes.extend(engine.routes_with_port(name));
                    }
                }
            } else if table == crate::nb::row::LOAD_BALANCER {
                routes.extend(engine.routes_with_service_ips());
            } else if table == crate::nb::row::ROUTER_PORT {
                // A port does not name its router: every Route with rows on a router.
                routes.extend(
                    engine
                        .route_names()
                        .filter(|r| engine.has_router_rows(r))
                        .cloned(),
                );
            }
        }
    }
    if routes.is_empty() {
        Drift::Nothing
    } else {
        Drift::Routes(routes)
    }
}

/// Whether a router row changed in a way the Routes on it depend on: it appeared or went,
/// or its name or ports changed.
fn router_moved(old: Option<&ReplicaRow>, new: Option<&ReplicaRow>) -> bool {
    let (Some(old), Some(new)) = (old, new) else {
        return true;
    };
    let name = |r: &ReplicaRow| r.column("name").and_then(|n| n.as_str()).map(str::to_owned);
    let ports = |r: &ReplicaRow| -> Vec<String> {
        r.column("ports")
            .map(|p| p.set_iter().map(|a| format!("{a:?}")).collect())
            .unwrap_or_default()
    };
    name(old) != name(new) || ports(old) != ports(new)
}

impl Loop {
    /// Hands the Routes changed since the last call to the planner, in their effective
    /// version (the last good one when the new one is invalid as a whole).
    pub(super) fn sync_routes(&mut self) {
        match self.inputs.take_route_changes() {
            None => {}
            Some(RouteChanges::All) => {
                self.routes = self.last_good.effective(&self.inputs);
                self.inputs.engine.replace_routes(&self.routes);
            }
            Some(RouteChanges::Some(names)) => {
                for n in names {
                    let route = self.inputs.route(&n).cloned();
                    let at = self
                        .routes
                        .iter()
                        .position(|r| r.metadata.name.as_deref() == Some(n.as_str()));
                    match route {
                        Some(r) => {
                            let eff = self.last_good.effective_one(&r);
                            self.inputs.engine.upsert_route(&eff);
                            match at {
                                Some(i) => self.routes[i] = eff,
                                None => self.routes.push(eff),
                            }
                        }
                        None => {
                            self.last_good.forget(&n);
                            self.inputs.engine.delete_route(&n);
                            if let Some(i) = at {
                                self.routes.remove(i);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Reconciles what the planner marked dirty since the last step.
    pub(super) async fn step(&mut self) {
        let dirty = self.inputs.engine.take_dirty();
        if dirty.is_empty() {
            // Nothing to program; the status may still have changed (a Route that stopped
            // decoding keeps its plan and says so).
            self.publish_status();
            return;
        }
        tracing::debug!(
            nb = dirty.nb.len(),
            pods = dirty.pods.len(),
            reports = dirty.reports.len(),
            "incremental step"
        );
        self.plan_stale = true;
        let engine = &self.inputs.engine;
        for r in &dirty.reports {
            match engine.report(r) {
                Some(rep) => {
                    self.plan.reports.insert(r.clone(), rep.clone());
                }
                None => {
                    self.plan.reports.remove(r);
                }
            }
        }
        for k in &dirty.pods {
            let stale: Vec<_> = self
                .plan
                .pods
                .keys()
                .filter(|p| p.namespace == k.0 && p.name == k.1)
                .cloned()
                .collect();
            for p in stale {
                self.plan.pods.remove(&p);
            }
            if let Some((pk, routes)) = engine.pod_routes(k) {
                self.plan.pods.insert(pk, routes.clone());
            }
        }
        self.count_routes();
        self.nb_pass_routes(&dirty.nb).await;
        self.pod_pass_some(&dirty.pods).await;
        self.publish_status();
    }

    fn count_routes(&self) {
        self.metrics
            .count_routes(self.plan.reports.values().map(|r| r.summary));
    }

    /// An NB pass over some Routes' rows only.
    pub(super) async fn nb_pass_routes(&mut self, routes: &BTreeSet<String>) {
        if routes.is_empty() {
            return;
        }
        if let Some(why) = self.nb_blocked() {
            tracing::debug!(why, "NB pass skipped");
            // What these Routes needed is caught up by a full pass when writing resumes.
            self.nb_retry = true;
            return;
        }
        let engine = &self.inputs.engine;
        let mut keep = keep_for_routes(&self.inputs.errors, engine, routes);
        // A Route that no longer decodes keeps what its last readable version wrote.
        keep.routes.extend(
            self.inputs
                .undecodable
                .keys()
                .filter(|n| routes.contains(*n))
                .cloned(),
        );
        let (mut desired, ips) = engine.desired_nb(routes);
        crate::controller::keep::drop_kept(&mut desired, &keep);
        let start = Instant::now();
        let connections = self.nb.client().state().connections;
        self.retry_after = None;
        let result = self
            .nb
            .reconcile_routes(
                NbIntent {
                    desired: &desired,
                    service_ips: &ips,
                    keep: &keep,
                },
                routes,
            )
            .await;
        self.metrics.observe_pass("nb_routes", start.elapsed());
        if result.is_err() {
            // The full pass is the safety net.
            self.nb_retry = true;
        }
        self.nb_done(result, Some(routes), connections);
    }

    /// A pod pass over some pods only.
    async fn pod_pass_some(&mut self, keys: &BTreeSet<crate::cluster::ObjectKey>) {
        let Some(rec) = &self.pods else { return };
        if keys.is_empty() || !self.inputs.synced {
            return;
        }
        let start = Instant::now();
        // The reconciler knows every pod's netns from its own watch (inotify); a pod whose
        // netns is not there yet is programmed by the reconciler when it appears.
        let p = pods::sync_some(
            rec,
            &self.inputs.engine,
            keys,
            self.opts.plan.node.as_deref(),
        )
        .await;
        let m = &self.metrics;
        m.observe_pass("pods_some", start.elapsed());
        m.pod_routes_added.inc_by(p.routes_changed as u64);
        m.pod_routes_deleted.inc_by(p.routes_deleted as u64);
        for (label, n) in &p.failed_by_label {
            m.pod_failures
                .get_or_create(&super::metrics::ErrorLabel { error: label })
                .inc_by(*n);
        }
        for (pod, why) in &p.failed {
            tracing::warn!(%pod, "pod routes failed: {why}");
        }
        let o = &mut self.pod_outcome;
        o.failed
            .retain(|k, _| !keys.contains(&(k.namespace.clone(), k.name.clone())));
        o.no_netns
            .retain(|k| !keys.contains(&(k.namespace.clone(), k.name.clone())));
        o.failed.extend(p.failed);
        o.no_netns.extend(p.no_netns);
    }

    /// The incremental plan must equal the full one; if it ever does not (a bug), say so and
    /// start the planner over from the same inputs.
    pub(super) fn check_engine(&mut self, full: &Plan) {
        let engine = &self.inputs.engine;
        if engine.plan() == *full {
            return;
        }
        tracing::error!(
            "the incremental plan differs from the full plan; planning again from scratch"
        );
        self.inputs.engine = engine.rebuilt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_back_to_routes() {
        assert_eq!(
            route_of_name("ovnkube_route_web_app_v4").as_deref(),
            Some("web-app")
        );
        assert_eq!(route_of_name("ovnkube_route_db").as_deref(), Some("db"));
        assert_eq!(route_of_name("a1234"), None);
    }
}
