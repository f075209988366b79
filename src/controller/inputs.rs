//! The loop's inputs: the world and the Routes, as the sources deliver them, one update at a
//! time (Kubernetes watch events) or all at once (a re-read of the input files).
//!
//! Owns: applying [`Update`]s, and the rule that bad input never replaces good input — a
//! Route whose new version is invalid as a whole keeps being planned from its last good
//! version. World objects go straight into the incremental planner ([`Engine`]), which
//! holds the world; Routes are kept as delivered and the loop hands their effective
//! versions to the planner ([`Inputs::take_route_changes`]). Must not: talk to a source.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::api::Route;
use crate::api::validate::validate;
use crate::cluster::{ObjectKind, Relisted, World, WorldObject, WorldRef};
use crate::config::ConfigError;
use crate::plan::PlanConfig;
use crate::plan::incremental::Engine;

/// One change a source reports.
#[derive(Debug)]
pub enum Update {
    /// The whole input, re-read (file mode).
    Replace {
        world: World,
        routes: Vec<Route>,
        errors: Vec<ConfigError>,
    },
    /// An object was added or changed.
    Apply(WorldObject),
    /// An object was deleted.
    Delete(WorldRef),
    /// A relist of one kind started: parts before it are dropped (a list that failed
    /// half-way is listed again from the start).
    RelistStart(ObjectKind),
    /// The first list of every pod of the cluster started (this instance became the NB
    /// writer, which writes nothing until that list is complete). Unlike a relist, its
    /// parts enter the world and are planned as they arrive, so that little is left to do
    /// when it completes; objects absent from it are still deleted only then.
    FirstListStart(ObjectKind),
    /// Some objects of a relist still arriving. Only those that differ from the world's are
    /// kept until it completes; nothing changes yet.
    RelistPart(ObjectKind, Vec<WorldObject>),
    /// A relist of one kind completed, with its last objects: with the parts before it, the
    /// complete set of objects of that kind. Objects absent from it are deleted only now,
    /// never while the list is still arriving.
    Relist(ObjectKind, Vec<WorldObject>),
    /// A Route was added or changed.
    RouteApplied(Box<Route>),
    /// A Route was deleted.
    RouteDeleted(String),
    /// A Route object that does not decode (a field of the wrong type or out of range that
    /// the API server let through): whatever its last readable version programmed stays,
    /// and its status says why.
    RouteUndecodable(Undecodable),
    /// A relist of Routes completed: the ones that decode, and the ones that do not.
    RoutesRelisted(Vec<Route>, Vec<Undecodable>),
    /// Every watch has delivered its first complete list: absence now means deletion.
    /// `cluster_pods` says whether the pods listed are every pod of the cluster (the NB
    /// writer in `central` mode) or this node's only.
    Synced { cluster_pods: bool },
    /// The source can no longer be trusted to be complete (the pod watch is being switched
    /// to another scope); passes wait for the next `Synced`.
    Unsynced,
    /// Updates that belong together (one re-read of some input files): applied in one go.
    Batch(Vec<Update>),
    /// What could not be loaded now (file mode, after a re-read of some files), and whether
    /// some of it may hide world objects whose last known state is not held either (a
    /// file that never read well since the start): see `keep::hold_selection`.
    Errors {
        errors: Vec<ConfigError>,
        world_unknown: bool,
    },
}

/// Which Routes changed since the loop last looked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteChanges {
    /// The whole list was replaced (file re-read, relist).
    All,
    /// These Routes were applied or deleted.
    Some(BTreeSet<String>),
}

/// A Route the source could not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    pub name: String,
    pub generation: Option<i64>,
    /// Why, bounded in length.
    pub error: String,
}

/// The world (inside the planner) and the Routes as last delivered.
#[derive(Debug)]
pub struct Inputs {
    /// The planner; it owns the world and plans the effective Routes.
    pub engine: Engine,
    /// As delivered, sorted by name (stably: of several with one name, the first delivered
    /// stays first), so one is found by a binary search.
    routes: Vec<Arc<Route>>,
    /// The versions handed to the planner (the last good one where the delivered one is
    /// invalid as a whole), sorted by name like `routes`.
    effective: Vec<Arc<Route>>,
    last_good: LastGood,
    /// Routes changed and not yet handed to the planner.
    route_changes: Option<RouteChanges>,
    /// Documents that could not be loaded (file mode).
    pub errors: Vec<ConfigError>,
    /// Some world objects may be missing and their last known state is not held either
    /// (file mode): Routes keep their NB rows and pods their routes (see `keep`).
    pub world_unknown: bool,
    /// Route objects that do not decode (Kubernetes mode), by name; their last readable
    /// version, if any, stays in `routes`.
    pub undecodable: BTreeMap<String, Undecodable>,
    /// Every watch has listed once since the last `Unsynced`.
    pub synced: bool,
    /// The pods in the world are every pod of the cluster, not only this node's.
    pub cluster_pods: bool,
    /// Relists arriving in parts, by kind.
    relisting: BTreeMap<ObjectKind, Relisted>,
    /// Kinds whose list in progress is applied as it arrives ([`Update::FirstListStart`]),
    /// and whether what it applied so far changed the world. The planner settles each part
    /// as it comes, while the next pages are fetched.
    applying: BTreeMap<ObjectKind, bool>,
    /// Whether some input could not be read at all changed since the last full NB pass: rows
    /// of Routes absent from the input are kept or swept accordingly, which a pass over some
    /// Routes cannot do.
    sweep_owed: bool,
}

fn name(r: &Route) -> &str {
    r.metadata.name.as_deref().unwrap_or_default()
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs::new(PlanConfig::default())
    }
}

impl Inputs {
    pub fn new(cfg: PlanConfig) -> Inputs {
        Inputs {
            engine: Engine::new(cfg),
            routes: Vec::new(),
            effective: Vec::new(),
            last_good: LastGood::default(),
            route_changes: None,
            errors: Vec::new(),
            world_unknown: false,
            undecodable: BTreeMap::new(),
            synced: false,
            cluster_pods: false,
            sweep_owed: false,
            relisting: BTreeMap::new(),
            applying: BTreeMap::new(),
        }
    }

    pub fn world(&self) -> &World {
        self.engine.world()
    }

    fn route_changed(&mut self, name: &str) {
        match &mut self.route_changes {
            Some(RouteChanges::All) => {}
            Some(RouteChanges::Some(names)) => {
                names.insert(name.to_owned());
            }
            None => self.route_changes = Some(RouteChanges::Some([name.to_owned()].into())),
        }
    }

    /// The Routes changed since the last call, if any.
    pub fn take_route_changes(&mut self) -> Option<RouteChanges> {
        self.route_changes.take()
    }

    /// The Route of that name as delivered.
    pub fn route(&self, n: &str) -> Option<&Route> {
        self.delivered(n).map(|r| &**r)
    }

    fn delivered(&self, n: &str) -> Option<&Arc<Route>> {
        let at = self.routes.partition_point(|x| name(x) < n);
        self.routes.get(at).filter(|r| name(r) == n)
    }

    /// Applies one update. Returns true when what the planner sees may have changed.
    pub fn apply(&mut self, u: Update) -> bool {
        match u {
            Update::Replace {
                world,
                routes,
                errors,
            } => {
                self.engine.replace_world(world);
                self.routes = routes.into_iter().map(Arc::new).collect();
                // Collected in place: give back the Routes' buffer (see `routes_relisted`).
                self.routes.shrink_to_fit();
                // Kept sorted by name (stable: of several with one name, the first read
                // stays first), so a Route is found by a binary search.
                self.routes.sort_by(|a, b| name(a).cmp(name(b)));
                // A whole read holds nothing from before: what it could not read is unknown.
                self.world_unknown = super::keep::world_unknown(&errors);
                self.errors = errors;
                self.route_changes = Some(RouteChanges::All);
                true
            }
            Update::Apply(o) => self.engine.apply(o),
            Update::Delete(r) => self.engine.delete(&r),
            Update::RelistStart(kind) => {
                self.relisting.insert(kind, Relisted::default());
                self.applying.remove(&kind);
                false
            }
            Update::FirstListStart(kind) => {
                self.relisting.insert(kind, Relisted::default());
                // What an attempt that failed half-way applied stays (each object as it was
                // listed); the next attempt's complete list decides what goes.
                let before = self.applying.get(&kind).copied().unwrap_or(false);
                self.applying.insert(kind, before);
                false
            }
            Update::RelistPart(kind, objects) => {
                if self.applying.contains_key(&kind) {
                    self.apply_listed(kind, objects);
                } else {
                    let r = self.relisting.entry(kind).or_default();
                    r.add(self.engine.world(), kind, objects);
                }
                false
            }
            Update::Relist(kind, objects) => {
                let applied = self.applying.contains_key(&kind);
                if applied {
                    self.apply_listed(kind, objects);
                } else {
                    let r = self.relisting.entry(kind).or_default();
                    r.add(self.engine.world(), kind, objects);
                }
                let changed = self.applying.remove(&kind).unwrap_or(false);
                let r = self.relisting.remove(&kind).unwrap_or_default();
                self.engine.replace_relisted(kind, r) || changed
            }
            Update::RouteUndecodable(u) => {
                let changed = self.undecodable.get(&u.name) != Some(&u);
                self.undecodable.insert(u.name.clone(), u);
                changed
            }
            Update::RouteApplied(r) => self.route_applied(*r),
            Update::RouteDeleted(n) => {
                let before = self.routes.len();
                self.routes.retain(|r| name(r) != n);
                let was_undecodable = self.undecodable.remove(&n).is_some();
                let changed = before != self.routes.len();
                if changed {
                    self.route_changed(&n);
                }
                changed || was_undecodable
            }
            Update::RoutesRelisted(routes, undecodable) => {
                self.routes_relisted(routes, undecodable)
            }
            Update::Synced { cluster_pods } => {
                let changed = !self.synced || self.cluster_pods != cluster_pods;
                self.synced = true;
                self.cluster_pods = cluster_pods;
                changed
            }
            Update::Unsynced => {
                self.synced = false;
                false
            }
            Update::Batch(updates) => updates
                .into_iter()
                .fold(false, |changed, u| self.apply(u) | changed),
            Update::Errors {
                errors,
                world_unknown,
            } => {
                let text =
                    |v: &[ConfigError]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
                let changed =
                    text(&errors) != text(&self.errors) || world_unknown != self.world_unknown;
                self.errors = errors;
                self.world_unknown = world_unknown;
                changed
            }
        }
    }

    /// A Route added or changed; true when it changed or was undecodable until now.
    fn route_applied(&mut self, r: Route) -> bool {
        let n = name(&r).to_owned();
        let was_undecodable = self.undecodable.remove(&n).is_some();
        // `routes` is sorted by name: a Route event costs a binary search, not a scan of
        // every Route (each status write of ours comes back as one).
        let at = self.routes.partition_point(|x| name(x) < name(&r));
        let changed = match self.routes.get_mut(at).filter(|x| name(x) == name(&r)) {
            Some(old) if **old == r => false,
            Some(old) => {
                *old = Arc::new(r);
                true
            }
            None => {
                self.routes.insert(at, Arc::new(r));
                true
            }
        };
        if changed {
            self.route_changed(&n);
        }
        changed || was_undecodable
    }

    /// Every Route listed again; an undecodable Route keeps its last readable version.
    fn routes_relisted(&mut self, routes: Vec<Route>, undecodable: Vec<Undecodable>) -> bool {
        let mut routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        // Collected in place: without this the vector keeps the decoded Routes' buffer
        // (10 MB at 5,000 Routes) as spare capacity for 8-byte pointers.
        routes.shrink_to_fit();
        for u in &undecodable {
            if let Some(old) = self.routes.iter().find(|r| name(r) == u.name) {
                routes.push(old.clone());
            }
        }
        routes.sort_by(|a, b| name(a).cmp(name(b)));
        let undecodable: BTreeMap<String, Undecodable> = undecodable
            .into_iter()
            .map(|u| (u.name.clone(), u))
            .collect();
        if routes == self.routes && undecodable == self.undecodable {
            return false;
        }
        self.routes = routes;
        self.undecodable = undecodable;
        self.route_changes = Some(RouteChanges::All);
        true
    }

    /// The Routes as delivered.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The Routes as planned (last good versions substituted).
    pub fn effective(&self) -> &[Arc<Route>] {
        &self.effective
    }

    /// Applies a burst of updates and hands the Routes they changed to the planner, which
    /// settles once for the whole burst. Returns true when what the planner sees may have
    /// changed.
    pub fn apply_all(&mut self, updates: impl IntoIterator<Item = Update>) -> bool {
        let before = self.kept();
        let unknown_before = self.world_unknown;
        self.engine.begin();
        let mut changed = false;
        for u in updates {
            changed |= self.apply(u);
        }
        self.sync_routes();
        self.engine.commit();
        // The keep rules follow the input's readability, which the planner does not see:
        // a Route that became (un)readable, or a whole file, changes what its rows may be.
        let after = self.kept();
        for name in before.0.symmetric_difference(&after.0) {
            self.engine.nb_drifted(name);
        }
        // Routes held for an unknown world are read from the NB at pass time: a full pass
        // holds or releases them.
        if before.1 != after.1 || unknown_before != self.world_unknown {
            self.sweep_owed = true;
        }
        changed
    }

    /// Objects of a list applied as it arrives ([`Update::FirstListStart`]): into the world
    /// now, and counted as listed for the deletions when the list completes.
    fn apply_listed(&mut self, kind: ObjectKind, objects: Vec<WorldObject>) {
        let r = self.relisting.entry(kind).or_default();
        let mut changed = false;
        for o in objects.into_iter().filter(|o| o.kind() == kind) {
            r.listed.insert(o.to_ref());
            changed |= self.engine.apply(o);
        }
        if let Some(c) = self.applying.get_mut(&kind) {
            *c |= changed;
        }
    }

    /// Routes whose rows stay as they are for unreadable input, and whether some input
    /// could not be read at all (see `keep`).
    fn kept(&self) -> (BTreeSet<String>, bool) {
        let mut names: BTreeSet<String> = self.undecodable.keys().cloned().collect();
        let mut absent = false;
        for e in &self.errors {
            match e.route_name() {
                Some(n) => {
                    names.insert(n.to_owned());
                }
                None => absent = true,
            }
        }
        (names, absent)
    }

    /// A full NB pass is owed because readability of the whole input changed; cleared.
    pub fn take_sweep(&mut self) -> bool {
        std::mem::take(&mut self.sweep_owed)
    }

    /// Hands the Routes changed since the last call to the planner, in their effective
    /// version (the last good one when the new one is invalid as a whole).
    fn sync_routes(&mut self) {
        match self.take_route_changes() {
            None => {}
            Some(RouteChanges::All) => {
                self.effective = self.last_good.effective(&self.routes, &self.errors);
                // Sorted by name (stably) like `routes`, so one is found by a binary search.
                self.effective.sort_by(|a, b| name(a).cmp(name(b)));
                self.engine.replace_routes(&self.effective);
            }
            Some(RouteChanges::Some(names)) => {
                for n in names {
                    self.sync_route(&n);
                }
            }
        }
    }

    fn sync_route(&mut self, n: &str) {
        let first = self.effective.partition_point(|r| name(r) < n);
        let at = Some(first).filter(|i| self.effective.get(*i).is_some_and(|r| name(r) == n));
        match self.delivered(n).cloned() {
            Some(r) => {
                let eff = self.last_good.effective_one(&r);
                self.engine.upsert_route(&eff);
                match at {
                    Some(i) => self.effective[i] = eff,
                    None => self.effective.insert(first, eff),
                }
            }
            None => {
                self.last_good.forget(n);
                self.engine.delete_route(n);
                if let Some(i) = at {
                    self.effective.remove(i);
                }
            }
        }
    }

    /// The same planner built from scratch from the same inputs (for the audit).
    pub fn fresh_engine(&self) -> Engine {
        Engine::build(
            self.engine.config().clone(),
            self.engine.world().clone(),
            &self.effective,
        )
    }
}

/// Remembers the last good version of every Route.
#[derive(Debug, Default)]
struct LastGood {
    routes: BTreeMap<String, Arc<Route>>,
}

impl LastGood {
    /// The Routes to plan: each Route as delivered, except that a version invalid as a whole
    /// is replaced by the last good one, and a Route whose document could not be read keeps
    /// its last good version. A Route absent from complete input is forgotten.
    fn effective(&mut self, routes: &[Arc<Route>], errors: &[ConfigError]) -> Vec<Arc<Route>> {
        let mut out = Vec::with_capacity(routes.len());
        let mut seen = BTreeSet::new();
        for r in routes {
            let n = name(r).to_owned();
            seen.insert(n.clone());
            if validate(r).is_invalid() {
                if let Some(good) = self.routes.get(&n) {
                    tracing::warn!(route = %n, "new version is invalid; keeping the last good one");
                    out.push(good.clone());
                    continue;
                }
            } else {
                self.routes.insert(n, r.clone());
            }
            out.push(r.clone());
        }
        for e in errors {
            if let Some(n) = e.route_name()
                && !seen.contains(n)
                && let Some(good) = self.routes.get(n)
            {
                seen.insert(n.to_owned());
                out.push(good.clone());
            }
        }
        // When some input was unreadable, absence proves nothing and the last good versions
        // stay.
        if errors.iter().all(|e| e.route_name().is_some()) {
            self.routes.retain(|n, _| seen.contains(n));
        }
        out
    }

    /// The version of one Route to plan (see [`LastGood::effective`]), for a single Route
    /// event.
    fn effective_one(&mut self, r: &Arc<Route>) -> Arc<Route> {
        let n = name(r).to_owned();
        if validate(r).is_invalid() {
            if let Some(good) = self.routes.get(&n) {
                tracing::warn!(route = %n, "new version is invalid; keeping the last good one");
                return good.clone();
            }
        } else {
            self.routes.insert(n, r.clone());
        }
        r.clone()
    }

    /// A Route was deleted: its last good version goes too.
    fn forget(&mut self, n: &str) {
        self.routes.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RouteRule, RouteSpec};

    fn route(name: &str, dst: &str) -> Route {
        let mut r = Route::new(
            name,
            RouteSpec {
                route: vec![RouteRule {
                    dst: dst.into(),
                    dev: "eth1".into(),
                    via: None,
                }],
                ..RouteSpec::default()
            },
        );
        r.metadata.generation = Some(1);
        r
    }

    fn names(routes: &[Arc<Route>]) -> Vec<&str> {
        routes.iter().map(|r| name(r)).collect()
    }

    fn pod(name: &str, app: &str) -> WorldObject {
        use crate::plan::testkit::{mk_pod, with_labels};
        WorldObject::Pod(Box::new(with_labels(
            mk_pod("default", name),
            &[("app", app)],
        )))
    }

    fn pods_and_apps(i: &Inputs) -> Vec<(String, String)> {
        i.world()
            .pods()
            .map(|p| (p.name.clone(), p.labels.get("app").unwrap_or("").to_owned()))
            .collect()
    }

    #[test]
    fn relisted_routes_do_not_keep_the_decoded_buffer() {
        let mut i = Inputs::default();
        let routes: Vec<Route> = (0..64)
            .map(|k| route(&format!("r{k}"), "10.0.0.0/8"))
            .collect();
        assert!(i.apply(Update::RoutesRelisted(routes.clone(), vec![])));
        // Collected in place, the 64 pointers would sit in room for 64 Routes.
        assert!(i.routes.capacity() < 128, "{}", i.routes.capacity());
        let mut j = Inputs::default();
        j.apply(Update::Replace {
            world: World::new(),
            routes,
            errors: vec![],
        });
        assert!(j.routes.capacity() < 128, "{}", j.routes.capacity());
    }

    #[test]
    fn a_relist_in_parts_keeps_only_what_changed_and_replaces_the_kind_once_complete() {
        let mut i = Inputs::default();
        for (n, app) in [("a", "x"), ("b", "x"), ("c", "x")] {
            i.apply(Update::Apply(pod(n, app)));
        }
        assert!(!i.apply(Update::RelistStart(ObjectKind::Pod)));
        // a unchanged, b relabelled: nothing changes yet, and only b is held.
        assert!(!i.apply(Update::RelistPart(
            ObjectKind::Pod,
            vec![pod("a", "x"), pod("b", "y")]
        )));
        let held = &i.relisting[&ObjectKind::Pod];
        assert_eq!(held.listed.len(), 2);
        assert_eq!(held.changed.len(), 1);
        assert_eq!(pods_and_apps(&i).len(), 3);
        assert_eq!(pods_and_apps(&i)[1], ("b".into(), "x".into()));
        // Complete with d: c was not listed and goes, b changes, d comes.
        assert!(i.apply(Update::Relist(ObjectKind::Pod, vec![pod("d", "x")])));
        let now: Vec<(String, String)> = ["a", "b", "d"]
            .iter()
            .zip(["x", "y", "x"])
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect();
        assert_eq!(pods_and_apps(&i), now);
        assert!(i.relisting.is_empty());
        // A list that starts again drops what its failed attempt delivered.
        i.apply(Update::RelistStart(ObjectKind::Pod));
        i.apply(Update::RelistPart(ObjectKind::Pod, vec![pod("e", "x")]));
        i.apply(Update::RelistStart(ObjectKind::Pod));
        let same = vec![pod("a", "x"), pod("b", "y"), pod("d", "x")];
        assert!(!i.apply(Update::Relist(ObjectKind::Pod, same)));
        assert_eq!(pods_and_apps(&i), now);
    }

    #[test]
    fn a_first_cluster_list_enters_the_world_as_it_arrives_and_deletes_only_once_complete() {
        let mut i = Inputs::default();
        i.apply_all([Update::RoutesRelisted(
            vec![route("all", "10.0.0.0/8")],
            vec![],
        )]);
        i.apply_all([Update::Apply(pod("a", "x")), Update::Apply(pod("c", "x"))]);
        i.engine.take_dirty();
        assert!(!i.apply_all([Update::FirstListStart(ObjectKind::Pod)]));
        // a relabelled, b new: in the world at once; c, not listed yet, stays.
        assert!(!i.apply_all([Update::RelistPart(
            ObjectKind::Pod,
            vec![pod("a", "y"), pod("b", "x")]
        )]));
        let mid: Vec<(String, String)> = [("a", "y"), ("b", "x"), ("c", "x")]
            .iter()
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect();
        assert_eq!(pods_and_apps(&i), mid);
        // Planned as it arrives (b is selected now), reported as no change to act on yet.
        let early = i.engine.take_dirty();
        assert!(early.pods.iter().any(|k| k.1 == "b"), "{early:?}");
        // A failed attempt starts again: what it applied stays until a complete list.
        assert!(!i.apply_all([Update::FirstListStart(ObjectKind::Pod)]));
        assert_eq!(pods_and_apps(&i), mid);
        // Complete (a and b again, d last): c was not listed and goes only now.
        assert!(i.apply_all([
            Update::RelistPart(ObjectKind::Pod, vec![pod("a", "y"), pod("b", "x")]),
            Update::Relist(ObjectKind::Pod, vec![pod("d", "x")])
        ]));
        let now: Vec<(String, String)> = [("a", "y"), ("b", "x"), ("d", "x")]
            .iter()
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect();
        assert_eq!(pods_and_apps(&i), now);
        let dirty = i.engine.take_dirty();
        let pods: Vec<&str> = dirty.pods.iter().map(|k| k.1.as_str()).collect();
        assert_eq!(pods, ["c", "d"], "{dirty:?}");
        assert!(i.applying.is_empty() && i.relisting.is_empty());
        // A relist after that is held until complete, as any relist.
        assert!(!i.apply_all([
            Update::RelistStart(ObjectKind::Pod),
            Update::RelistPart(ObjectKind::Pod, vec![pod("a", "z")])
        ]));
        assert_eq!(pods_and_apps(&i), now);
    }

    #[test]
    fn route_events_keep_routes_sorted_and_report_changes() {
        let mut i = Inputs::default();
        assert!(i.apply(Update::RouteApplied(Box::new(route("b", "10.0.0.0/8")))));
        assert!(i.apply(Update::RouteApplied(Box::new(route("a", "10.0.0.0/8")))));
        assert!(!i.apply(Update::RouteApplied(Box::new(route("a", "10.0.0.0/8")))));
        assert!(i.apply(Update::RouteApplied(Box::new(route("a", "10.1.0.0/16")))));
        assert_eq!(names(i.routes()), ["a", "b"]);
        assert!(i.apply(Update::RouteDeleted("a".into())));
        assert!(!i.apply(Update::RouteDeleted("a".into())));
        assert!(!i.apply(Update::RoutesRelisted(
            vec![route("b", "10.0.0.0/8")],
            vec![]
        )));
        assert!(i.apply(Update::RoutesRelisted(
            vec![route("c", "10.0.0.0/8"), route("b", "10.0.0.0/8")],
            vec![]
        )));
        assert_eq!(names(i.routes()), ["b", "c"]);
    }

    fn undecodable(name: &str) -> Undecodable {
        Undecodable {
            name: name.into(),
            generation: Some(2),
            error: "spec.priority: invalid value".into(),
        }
    }

    #[test]
    fn an_undecodable_route_keeps_its_last_readable_version() {
        let mut i = Inputs::default();
        i.apply(Update::RouteApplied(Box::new(route("a", "10.0.0.0/8"))));
        assert!(i.apply(Update::RouteUndecodable(undecodable("a"))));
        assert!(!i.apply(Update::RouteUndecodable(undecodable("a"))));
        assert_eq!(names(i.routes()), ["a"], "the readable version stays");
        assert!(i.undecodable.contains_key("a"));
        // A relist in which it still does not decode keeps it; a readable one clears it.
        assert!(!i.apply(Update::RoutesRelisted(vec![], vec![undecodable("a")])));
        assert_eq!(names(i.routes()), ["a"]);
        assert!(i.apply(Update::RouteApplied(Box::new(route("a", "10.0.0.0/8")))));
        assert!(i.undecodable.is_empty());
        // Deleted while undecodable: gone, with its error.
        i.apply(Update::RouteUndecodable(undecodable("a")));
        assert!(i.apply(Update::RouteDeleted("a".into())));
        assert!(i.routes().is_empty() && i.undecodable.is_empty());
        // Never readable: nothing to plan, but known.
        assert!(i.apply(Update::RoutesRelisted(vec![], vec![undecodable("z")])));
        assert!(i.routes().is_empty() && i.undecodable.contains_key("z"));
    }

    #[test]
    fn route_changes_name_what_the_planner_must_look_at() {
        let mut i = Inputs::default();
        assert_eq!(i.take_route_changes(), None);
        i.apply(Update::RouteApplied(Box::new(route("a", "10.0.0.0/8"))));
        i.apply(Update::RouteApplied(Box::new(route("a", "10.0.0.0/8"))));
        i.apply(Update::RouteDeleted("b".into()));
        i.apply(Update::RouteApplied(Box::new(route("c", "10.0.0.0/8"))));
        assert_eq!(
            i.take_route_changes(),
            Some(RouteChanges::Some(["a".into(), "c".into()].into()))
        );
        assert_eq!(i.take_route_changes(), None);
        i.apply(Update::RouteDeleted("a".into()));
        i.apply(Update::RoutesRelisted(
            vec![route("d", "10.0.0.0/8")],
            vec![],
        ));
        assert_eq!(i.take_route_changes(), Some(RouteChanges::All));
        // World objects go to the planner, which reports whether anything changed.
        let ns = crate::cluster::NamespaceInfo {
            name: "x".into(),
            labels: Default::default(),
        };
        assert!(i.apply(Update::Apply(ns.clone().into())));
        assert!(!i.apply(Update::Apply(ns.into())));
        assert!(i.world().namespace("x").is_some());
    }

    #[test]
    fn synced_and_unsynced() {
        let mut i = Inputs::default();
        assert!(!i.synced);
        assert!(i.apply(Update::Synced {
            cluster_pods: false
        }));
        assert!(!i.apply(Update::Synced {
            cluster_pods: false
        }));
        assert!(i.apply(Update::Synced { cluster_pods: true }));
        assert!(i.cluster_pods);
        i.apply(Update::Unsynced);
        assert!(!i.synced);
    }

    #[test]
    fn an_invalid_new_version_is_replaced_by_the_last_good_one() {
        let mut i = Inputs::default();
        let dst = |i: &Inputs| i.effective()[0].spec.route[0].dst.clone();
        i.apply_all([Update::RouteApplied(Box::new(route("a", "10.0.0.0/8")))]);
        assert_eq!(dst(&i), "10.0.0.0/8");
        i.apply_all([Update::RouteApplied(Box::new(route("a", "not-a-cidr")))]);
        assert_eq!(dst(&i), "10.0.0.0/8");
        assert!(
            i.engine
                .validated("a")
                .is_some_and(|v| v.problems.is_empty())
        );
        // deleted: forgotten, and a later invalid version has nothing to fall back to
        i.apply_all([Update::RouteDeleted("a".into())]);
        assert!(i.effective().is_empty());
        i.apply_all([Update::RouteApplied(Box::new(route("a", "not-a-cidr")))]);
        assert_eq!(dst(&i), "not-a-cidr");
        // A relist (whole list) goes through the same rule.
        i.apply_all([Update::RoutesRelisted(
            vec![route("a", "10.1.0.0/16")],
            vec![],
        )]);
        i.apply_all([Update::RoutesRelisted(vec![route("a", "nope")], vec![])]);
        assert_eq!(dst(&i), "10.1.0.0/16");
    }
}
