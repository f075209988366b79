//! The incremental planner: the plan kept up to date event by event. Pure: no I/O, no
//! clock. Owns the World, the Routes and each Route's cached plan, and indexes from what can
//! change (a pod, a namespace's labels, a workload, a Service, a destination, a router) to
//! the Routes it can concern. Each entry point applies one change and accumulates what it
//! made dirty ([`Dirty`]: Routes whose NB rows or report changed, pods whose routes
//! changed); [`Engine::take_dirty`] hands it to the I/O side.
//!
//! It is the only planner: a full plan ([`super::plan`], `Engine::build`) is this engine fed
//! every object at once. The result after any sequence of events equals the engine built from
//! scratch from the same World and Routes (a property test checks this after every step of
//! random event sequences; the controller's audit checks it in production).
//!
//! Must not: read files, talk to Kubernetes or OVN, or know about the keep rules for bad
//! input (the controller applies those to what it reads from here).
mod index;
mod pod_index;
mod settle;
mod shared;
mod slots;
mod sorted;
#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::api::Route;
use crate::api::validate::{ValidatedRoute, validate};
use crate::cluster::{ObjectKey, ObjectKind, Relisted, SharedKey, World, WorldObject, WorldRef};

use super::merge::{Conflict, PodMerge, Traced, merge_traced};
use super::nb::DesiredNb;
use super::ovn::{ClaimKind, NbKept, RouteNb, Slot, route_nb};
use super::pod::{PodKey, PodRoutes};
use super::routes::{Prepared, prepare};
use super::select::{PairSel, SelCounts, namespace_labels};
use super::{Plan, PlanConfig, Precedence, RouteReport};

use index::{Index, Key};
use settle::Touched;
use shared::RouteSets;
use slots::SlotIndex;

/// What changed since the last [`Engine::take_dirty`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dirty {
    /// Routes whose NB rows (or Service IPs) changed or drifted: diff their rows again.
    /// A Route deleted since is included (its rows go).
    pub nb: BTreeSet<String>,
    /// Pods `(namespace, name)` to program again: their routes changed, their netns
    /// appeared, or they are gone ([`Engine::pod_routes`] says `None`).
    pub pods: BTreeSet<ObjectKey>,
    /// Routes whose report (status) changed, deleted ones included.
    pub reports: BTreeSet<String>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.nb.is_empty() && self.pods.is_empty() && self.reports.is_empty()
    }

    /// Adds another batch (later events on top of earlier ones).
    pub fn merge(&mut self, other: Dirty) {
        self.nb.extend(other.nb);
        self.pods.extend(other.pods);
        self.reports.extend(other.reports);
    }
}

/// Rules of one rule path refused in one pod: (times, the first one's message).
type RefusedIn = (usize, String);

/// One Route and its cached plan.
#[derive(Clone, Debug)]
struct RouteEntry {
    prec: Precedence,
    p: Prepared,
    claims: Vec<(Slot, ClaimKind)>,
    /// Pods it selects, and what it makes of each.
    pairs: BTreeMap<SharedKey, PairSel>,
    counts: SelCounts,
    /// Pods (of this node) where it won at least one destination.
    programmable: usize,
    /// Claims it lost: conflict -> pod -> times.
    lost: BTreeMap<Conflict, BTreeMap<SharedKey, usize>>,
    /// Rules a guard rail refused: (rule path, reason) -> pod -> (times, message).
    refused: BTreeMap<(String, &'static str), BTreeMap<SharedKey, RefusedIn>>,
    /// Pods where routes were left out for the per-pod cap -> how many.
    capped: BTreeMap<SharedKey, usize>,
    /// Its rows' fingerprint (the rows are rebuilt when asked for: [`rows_of`]).
    nb: NbKept,
    /// Replaced only when it changes: the status view compares it by pointer.
    report: Arc<RouteReport>,
}

/// A Route's rows now: from its members and how its slots are shared, as the settle that
/// last fingerprinted them computed them.
fn rows_of(e: &RouteEntry, world: &World, slots: &SlotIndex, cfg: &PlanConfig) -> RouteNb {
    let members = e
        .pairs
        .iter()
        .filter(|(_, s)| s.is_member())
        .filter_map(|(k, _)| world.pod_at(k));
    route_nb(&e.p, members, slots, cfg)
}

/// One pod's share of the plan.
#[derive(Clone, Debug, Default)]
struct PodEntry {
    /// Routes selecting it (members or skipped).
    selected_by: sorted::SortedVec<std::sync::Arc<str>>,
    /// Routes having it as a member, in precedence order.
    members: sorted::SortedVec<Precedence>,
    /// Its merged routes (pods of this node with members only), and the uid they are for.
    /// Boxed: only this node's pods have one, and every pod has an entry.
    merge: Option<Box<(String, PodMerge)>>,
}

/// What the controller's keep rules read of a validated Route (`controller::keep`).
fn keep_view(r: &ValidatedRoute) -> (bool, bool, Vec<&crate::api::validate::Destination>) {
    (
        r.is_invalid(),
        r.problems.is_empty(),
        r.rules.iter().map(|x| &x.dst).collect(),
    )
}

/// One pod as the engine decided it (see [`Engine::decisions`]).
pub(crate) struct PodDecisions<'a> {
    pub pod: &'a crate::cluster::PodInfo,
    /// Every Route in precedence order, with its pair (`None`: not selected).
    pub routes: Vec<(&'a Prepared, Option<PairSel>)>,
    /// The fate of every claim of the member Routes, in merge order.
    pub fates: Vec<Traced>,
    /// The routes the merge gives the pod.
    pub planned: Arc<PodRoutes>,
}

/// The incremental planner (see the module comment).
#[derive(Clone, Debug)]
pub struct Engine {
    cfg: PlanConfig,
    world: World,
    /// Boxed: a `RouteEntry` is ~1.5 KB, and map nodes hold eleven whether used or not.
    routes: BTreeMap<String, Box<RouteEntry>>,
    pods: BTreeMap<SharedKey, PodEntry>,
    index: Index,
    /// Pods by label and namespace: what a Route's selection can match.
    pod_index: pod_index::PodIndex,
    slots: SlotIndex,
    /// One shared copy of each distinct set of pod routes.
    shared: RouteSets,
    dirty: Dirty,
    /// Inside [`Engine::begin`] .. [`Engine::commit`]: what the changes so far ask to look
    /// at again, settled once at the commit.
    batch: Option<Touched>,
}

impl Engine {
    pub fn new(cfg: PlanConfig) -> Engine {
        Engine {
            cfg,
            world: World::new(),
            routes: BTreeMap::new(),
            pods: BTreeMap::new(),
            index: Index::default(),
            pod_index: pod_index::PodIndex::default(),
            slots: SlotIndex::default(),
            shared: RouteSets::default(),
            dirty: Dirty::default(),
            batch: None,
        }
    }

    /// Starts a batch: the changes until [`Engine::commit`] are recorded, and the plan is
    /// brought up to date once for all of them (a Route with a thousand members re-planned
    /// once for a burst of pod events, not once per event). Reads in between see the plan
    /// as it was before the batch.
    pub fn begin(&mut self) {
        if self.batch.is_none() {
            self.batch = Some(Touched::default());
        }
    }

    /// Settles what an open batch holds so far (the batch stays open). Route events call it
    /// first: a pod's cached merge names Routes, and its share of a Route's report must be
    /// taken from the entry it was given to, not from a new entry of the same name.
    fn settle_batch_so_far(&mut self) {
        if let Some(t) = self.batch.take() {
            self.settle_now(t);
            self.batch = Some(Touched::default());
        }
    }

    /// Ends a batch (see [`Engine::begin`]); nothing when none is open.
    pub fn commit(&mut self) {
        if let Some(t) = self.batch.take() {
            self.settle_now(t);
        }
    }

    pub fn config(&self) -> &PlanConfig {
        &self.cfg
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Everything dirty since the last call.
    pub fn take_dirty(&mut self) -> Dirty {
        std::mem::take(&mut self.dirty)
    }

    // ----- world events -----

    /// A pod, Service, EndpointSlice, namespace or workload link was added or changed.
    /// Returns true when the world changed.
    pub fn apply(&mut self, obj: impl Into<WorldObject>) -> bool {
        let obj = obj.into();
        let mut t = Touched::default();
        match &obj {
            WorldObject::Pod(p) => {
                let key = (p.namespace.clone(), p.name.clone());
                let old = self.world.pod_at(&key).cloned();
                if !self.world.apply(obj) {
                    return false;
                }
                let Some((key, new)) = self.world.keyed_pod(&key) else {
                    return false;
                };
                let (key, new) = (key.clone(), Some(new));
                if old
                    .as_ref()
                    .zip(new)
                    .is_some_and(|(o, n)| o.same_but_readiness(n))
                {
                    // Readiness only decides gateway next hops: no selection, route or
                    // address changes (a flap of any pod costs a lookup, not a re-plan).
                    self.gateways_changed(&key, old.as_ref(), &mut t);
                } else {
                    self.pod_index.update(&key, old.as_ref(), new);
                    self.pod_changed(&key, old.as_ref(), &mut t);
                }
            }
            WorldObject::Service(s) => {
                let key = (s.namespace.clone(), s.name.clone());
                if !self.world.apply(obj) {
                    return false;
                }
                self.services_changed([key], &mut t);
            }
            WorldObject::EndpointSlice(s) => {
                let key = (s.namespace.clone(), s.name.clone());
                let old = self.slice_service(&key);
                let new = s.service.clone().map(|n| (s.namespace.clone(), n));
                if !self.world.apply(obj) {
                    return false;
                }
                self.services_changed(old.into_iter().chain(new), &mut t);
            }
            WorldObject::Namespace(n) => {
                let name = n.name.clone();
                let old = namespace_labels(&self.world, &name);
                if !self.world.apply(obj) {
                    return false;
                }
                self.namespace_relabelled(&name, &old, &mut t);
            }
            WorldObject::Link(_, l) => {
                let ns = l.namespace.clone();
                if !self.world.apply(obj) {
                    return false;
                }
                self.namespace_changed(&ns, Key::Links(ns.clone()), &mut t);
            }
        }
        self.settle(t);
        true
    }

    /// A pod, Service, EndpointSlice, namespace or workload link was deleted. Returns true
    /// when it was known.
    pub fn delete(&mut self, r: &WorldRef) -> bool {
        let mut t = Touched::default();
        match r {
            WorldRef::Pod(key) => {
                let Some((key, old)) = self.world.keyed_pod(key) else {
                    return false;
                };
                let (key, old) = (key.clone(), old.clone());
                self.world.delete(r);
                self.pod_index.update(&key, Some(&old), None);
                self.pod_changed(&key, Some(&old), &mut t);
            }
            WorldRef::Service(key) => {
                if !self.world.delete(r) {
                    return false;
                }
                self.services_changed([key.clone()], &mut t);
            }
            WorldRef::EndpointSlice(key) => {
                let old = self.slice_service(key);
                if !self.world.delete(r) {
                    return false;
                }
                self.services_changed(old, &mut t);
            }
            WorldRef::Namespace(n) => {
                let old = namespace_labels(&self.world, n);
                if !self.world.delete(r) {
                    return false;
                }
                self.namespace_relabelled(n, &old, &mut t);
            }
            WorldRef::Link(_, (ns, _)) => {
                if !self.world.delete(r) {
                    return false;
                }
                self.namespace_changed(ns, Key::Links(ns.clone()), &mut t);
            }
        }
        self.settle(t);
        true
    }

    /// A relist of one kind completed: `objects` is every object of that kind. Objects
    /// absent from it are deleted (a relist is not a deletion until it is complete, so the
    /// caller passes only complete lists). Unchanged objects cost a comparison. Returns true
    /// when the world changed.
    pub fn replace_kind(&mut self, kind: ObjectKind, objects: Vec<WorldObject>) -> bool {
        let mut r = Relisted::default();
        r.add(&self.world, kind, objects);
        self.replace_relisted(kind, r)
    }

    /// A complete relist of `kind` that came in parts (see [`Relisted`]) replaces the
    /// kind: what it lacks is deleted, what changed is applied, as [`Engine::replace_kind`].
    pub fn replace_relisted(&mut self, kind: ObjectKind, r: Relisted) -> bool {
        let outer = self.batch.is_some();
        self.begin();
        let mut changed = false;
        for stale in &self.world.stale(kind, &r.listed) {
            changed |= self.delete(stale);
        }
        for o in r.changed {
            changed |= self.apply(o);
        }
        if !outer {
            self.commit();
        }
        changed
    }

    /// The whole world replaced (files re-read): every kind replaced as by
    /// [`Engine::replace_kind`], so only what differs is planned again. Returns true when
    /// the world changed.
    pub fn replace_world(&mut self, world: World) -> bool {
        let outer = self.batch.is_some();
        self.begin();
        let mut by_kind: BTreeMap<ObjectKind, Vec<WorldObject>> = BTreeMap::new();
        for o in world.into_objects() {
            by_kind.entry(o.kind()).or_default().push(o);
        }
        let mut changed = false;
        for kind in ObjectKind::ALL {
            changed |= self.replace_kind(kind, by_kind.remove(&kind).unwrap_or_default());
        }
        if !outer {
            self.commit();
        }
        changed
    }

    /// An engine holding `world` and `routes`, planned from scratch (nothing dirty): the
    /// full plan.
    pub fn build<R: Borrow<Route>>(cfg: PlanConfig, world: World, routes: &[R]) -> Engine {
        let mut e = Engine::new(cfg);
        // No Route yet: nothing to settle for the pods.
        e.set_world(world);
        e.replace_routes(routes);
        e.dirty = Dirty::default();
        e
    }

    /// An engine without Routes takes a whole World as it is (nothing to settle).
    fn set_world(&mut self, world: World) {
        for (key, p) in world.keyed_pods() {
            self.pod_index.update(key, None, Some(p));
        }
        self.world = world;
    }

    /// The same World and Routes planned from scratch into a new engine (nothing dirty):
    /// what the audit compares this one with.
    pub fn rebuilt(&self) -> Engine {
        let mut fresh = Engine::new(self.cfg.clone());
        fresh.set_world(self.world.clone());
        fresh.replace_validated(self.routes.values().map(|e| e.p.route.clone()).collect());
        fresh.dirty = Dirty::default();
        fresh
    }

    // ----- Route events -----

    /// A Route was added or changed.
    pub fn upsert_route(&mut self, route: &Route) {
        self.settle_batch_so_far();
        let mut t = Touched::default();
        self.set_route(prepare(&self.world, validate(route), &self.cfg), &mut t);
        self.settle(t);
    }

    /// A Route was deleted.
    pub fn delete_route(&mut self, name: &str) {
        self.settle_batch_so_far();
        let mut t = Touched::default();
        self.remove_route(name, &mut t);
        self.settle(t);
    }

    /// A complete list of the Routes (start, relist, file reload): Routes absent from it are
    /// deleted. Of several Routes with one name, the one with precedence is kept.
    pub fn replace_routes<R: Borrow<Route>>(&mut self, routes: &[R]) {
        self.replace_validated(routes.iter().map(|r| validate(r.borrow())).collect());
    }

    fn replace_validated(&mut self, routes: Vec<ValidatedRoute>) {
        let mut by_name: BTreeMap<String, ValidatedRoute> = BTreeMap::new();
        for v in routes {
            match by_name.get(&v.name) {
                Some(have) if Precedence::of(have) <= Precedence::of(&v) => {}
                _ => {
                    by_name.insert(v.name.clone(), v);
                }
            }
        }
        self.settle_batch_so_far();
        let mut t = Touched::default();
        let gone: Vec<String> = self
            .routes
            .keys()
            .filter(|n| !by_name.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.remove_route(&name, &mut t);
        }
        for v in by_name.into_values() {
            self.set_route(prepare(&self.world, v, &self.cfg), &mut t);
        }
        self.settle(t);
    }

    // ----- I/O side events -----

    /// The NB rows of a Route drifted (someone edited or deleted them): diff them again.
    pub fn nb_drifted(&mut self, route: &str) {
        self.dirty.nb.insert(route.to_owned());
    }

    /// A pod's network namespace appeared (its CNI result was written): program it.
    pub fn netns_appeared(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        if self.world.pod(namespace, name).is_some() {
            self.dirty.pods.insert(key);
        }
    }

    // ----- reads -----

    /// The routes pod `(namespace, name)` should carry; `None` when it should carry none of
    /// ours (unknown, not on this node, or selected by no Route with a usable rule).
    pub fn pod_routes(&self, key: &ObjectKey) -> Option<(PodKey, &Arc<PodRoutes>)> {
        let (uid, m) = self.pods.get(key)?.merge.as_deref()?;
        if m.routes.is_empty() {
            return None;
        }
        let pk = PodKey {
            namespace: key.0.clone(),
            name: key.1.clone(),
            uid: uid.clone(),
        };
        Some((pk, &m.routes))
    }

    /// Every Route's report, by name.
    pub fn reports(&self) -> impl Iterator<Item = (&String, &Arc<RouteReport>)> {
        self.routes.iter().map(|(n, e)| (n, &e.report))
    }

    /// The pods (of this node) that should carry routes of ours, with those routes.
    pub fn planned_pods(&self) -> impl Iterator<Item = (PodKey, &Arc<PodRoutes>)> {
        self.pods.iter().filter_map(|(key, pe)| {
            let (uid, m) = pe.merge.as_deref()?;
            (!m.routes.is_empty()).then(|| {
                let pk = PodKey {
                    namespace: key.0.clone(),
                    name: key.1.clone(),
                    uid: uid.clone(),
                };
                (pk, &m.routes)
            })
        })
    }

    /// The desired NB rows and Service IPs of every Route.
    pub fn desired_nb_all(&self) -> (DesiredNb, BTreeMap<String, BTreeSet<IpAddr>>) {
        self.desired_nb(self.routes.keys())
    }

    pub fn report(&self, route: &str) -> Option<&RouteReport> {
        self.routes.get(route).map(|e| &*e.report)
    }

    /// The Route as validated (the version planned).
    pub fn validated(&self, route: &str) -> Option<&ValidatedRoute> {
        self.routes.get(route).map(|e| &e.p.route)
    }

    pub fn route_names(&self) -> impl Iterator<Item = &String> {
        self.routes.keys()
    }

    /// The desired NB rows and Service IPs of some Routes (unknown names have none).
    pub fn desired_nb<'a>(
        &self,
        routes: impl IntoIterator<Item = &'a String>,
    ) -> (DesiredNb, BTreeMap<String, BTreeSet<IpAddr>>) {
        debug_assert!(self.batch.is_none(), "rows asked for in an unsettled batch");
        let mut nb = DesiredNb::default();
        let mut ips = BTreeMap::new();
        for name in routes {
            if let Some(e) = self.routes.get(name) {
                let rows = rows_of(e, &self.world, &self.slots, &self.cfg);
                nb.extend(rows.nb);
                if !rows.service_ips.is_empty() {
                    ips.insert(name.clone(), rows.service_ips);
                }
            }
        }
        // Every Route's BFD timers, not only these Routes': a session may be shared with a
        // Route outside the pass, and which timers it gets must not depend on the pass.
        for name in self.index.routes(&Key::BfdTimers) {
            if let Some(t) = self.routes.get(name).and_then(|e| e.p.route.ovn.bfd_timers) {
                nb.bfd_timers.insert(name.clone(), t);
            }
        }
        nb.sort();
        (nb, ips)
    }

    /// Routes with OVN rows on `router` (its ports decide whether their next hops work).
    pub fn routes_on_router(&self, router: &str) -> BTreeSet<String> {
        let on_gateway_routers = self.index.routes(&Key::GatewayRouters);
        self.index
            .routes(&Key::Router(router.to_owned()))
            .chain(on_gateway_routers)
            .cloned()
            .collect()
    }

    /// Whether a Route has (or wants) rows on a router: it has OVN next hops.
    pub fn has_router_rows(&self, route: &str) -> bool {
        self.routes
            .get(route)
            .is_some_and(|e| e.p.route.ovn.has_hops())
    }

    /// Routes whose Port_Group wants the logical switch port `<namespace>_<pod>`.
    pub fn routes_with_port(&self, lsp: &str) -> BTreeSet<String> {
        let Some((ns, name)) = lsp.split_once('_') else {
            return BTreeSet::new();
        };
        let Some(pod) = self.pods.get(&(ns.to_owned(), name.to_owned())) else {
            return BTreeSet::new();
        };
        pod.members.iter().map(|p| p.name.to_string()).collect()
    }

    /// Routes sending ClusterIPs over the OVN interface (they need Load_Balancer VIPs).
    pub fn routes_with_service_ips(&self) -> BTreeSet<String> {
        self.routes
            .iter()
            .filter(|(_, e)| !e.nb.service_ips.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The whole plan, assembled from the cached parts.
    pub fn plan(&self) -> Plan {
        let mut out = Plan {
            pods: self.planned_pods().map(|(k, r)| (k, r.clone())).collect(),
            ..Plan::default()
        };
        for (name, e) in &self.routes {
            out.reports
                .insert(name.clone(), RouteReport::clone(&e.report));
            out.add_route_nb(name, rows_of(e, &self.world, &self.slots, &self.cfg));
        }
        out.nb.sort();
        out
    }

    /// What the engine decided for one pod (for `explain`): every Route in precedence order
    /// with what it makes of the pod, and the fate of every claim in the pod's merge. `None`
    /// for an unknown pod. The pod is merged wherever it runs.
    pub(crate) fn decisions(&self, key: &ObjectKey) -> Option<PodDecisions<'_>> {
        let pod = self.world.pod_at(key)?;
        let mut routes: Vec<(&Prepared, Option<PairSel>)> = self
            .routes
            .values()
            .map(|e| (&e.p, e.pairs.get(key).copied()))
            .collect();
        routes.sort_by_cached_key(|(p, _)| Precedence::of(&p.route));
        let members = routes
            .iter()
            .filter(|(_, s)| s.is_some_and(|s| s.is_member()))
            .map(|(p, _)| *p);
        let (merged, fates) = merge_traced(pod, members, &self.cfg);
        Some(PodDecisions {
            pod,
            routes,
            fates,
            planned: merged.routes,
        })
    }

    // ----- internals -----

    /// The Service an EndpointSlice belongs to now.
    fn slice_service(&self, key: &ObjectKey) -> Option<ObjectKey> {
        let s = self.world.endpoint_slice(&key.0, &key.1)?;
        Some((s.namespace.clone(), s.service.clone()?))
    }

    /// Puts a prepared Route in place of the one with its name.
    fn set_route(&mut self, p: Prepared, t: &mut Touched) {
        let name = p.route.name.clone();
        let prec = Precedence::of(&p.route);
        let claims = super::ovn::claims(&p, &self.cfg);
        let old = self.routes.remove(&name);
        let mut entry = match old {
            Some(old) if old.p == p && old.prec == prec => {
                self.routes.insert(name, old);
                return;
            }
            Some(old) => {
                // What the keep rules for bad input read (is it invalid as a whole, has it
                // invalid rules, its valid destinations) decides what its rows may be even
                // when the rows the planner wants stay the same.
                if keep_view(&old.p.route) != keep_view(&p.route) {
                    self.dirty.nb.insert(name.clone());
                }
                if old.p.route.selection != p.route.selection
                    || old.p.route.exclude != p.route.exclude
                {
                    t.all_pods(&name);
                } else if old.p.needs != p.needs {
                    t.pairs(&name, old.pairs.keys().cloned());
                }
                if old.prec != prec
                    || old.p.resolved != p.resolved
                    || old.p.route.default_route != p.route.default_route
                {
                    t.merge.extend(
                        old.pairs
                            .iter()
                            .filter(|(_, s)| s.is_member())
                            .map(|(k, _)| k.clone()),
                    );
                }
                if old.prec != prec {
                    for (k, s) in &old.pairs {
                        if let Some(pe) = self.pods.get_mut(k)
                            && s.is_member()
                        {
                            pe.members.remove(&old.prec);
                            pe.members.insert(prec.clone());
                        }
                    }
                }
                self.slots.remove(&old.prec, &old.claims);
                let slots = old.claims.iter().chain(&claims).map(|(s, _)| s);
                self.slots.sharing(slots, &mut t.nb);
                RouteEntry {
                    prec: prec.clone(),
                    p,
                    claims,
                    ..*old
                }
            }
            None => {
                t.all_pods(&name);
                self.slots.sharing(claims.iter().map(|(s, _)| s), &mut t.nb);
                RouteEntry {
                    prec: prec.clone(),
                    p,
                    claims,
                    pairs: BTreeMap::new(),
                    counts: SelCounts::default(),
                    programmable: 0,
                    lost: BTreeMap::new(),
                    refused: BTreeMap::new(),
                    capped: BTreeMap::new(),
                    nb: NbKept::default(),
                    report: Arc::default(),
                }
            }
        };
        self.slots.add(&prec, &entry.claims);
        self.index.set(&name, index::keys(&entry.p, &self.cfg));
        entry.claims.shrink_to_fit();
        self.routes.insert(name.clone(), Box::new(entry));
        t.nb.insert(name.clone());
        t.report.insert(name);
    }

    fn remove_route(&mut self, name: &str, t: &mut Touched) {
        let Some(old) = self.routes.remove(name) else {
            return;
        };
        for (k, s) in &old.pairs {
            if let Some(pe) = self.pods.get_mut(k) {
                pe.selected_by.remove(name);
                if s.is_member() {
                    pe.members.remove(&old.prec);
                    t.merge.insert(k.clone());
                }
            }
        }
        self.slots.remove(&old.prec, &old.claims);
        self.slots
            .sharing(old.claims.iter().map(|(s, _)| s), &mut t.nb);
        self.index.remove(name);
        self.dirty.nb.insert(name.to_owned());
        self.dirty.reports.insert(name.to_owned());
    }

    fn pod_changed(
        &mut self,
        key: &SharedKey,
        old: Option<&crate::cluster::PodInfo>,
        t: &mut Touched,
    ) {
        let mut routes = BTreeSet::new();
        if let Some(pe) = self.pods.get(key) {
            routes.extend(pe.selected_by.iter().map(|r| r.to_string()));
        }
        let new = self.world.pod_at(key);
        if let Some(p) = new {
            let ns = namespace_labels(&self.world, &p.namespace);
            self.index.candidates(p, &ns, &mut routes);
        }
        for r in &routes {
            t.pair(r, key);
        }
        t.merge.insert(key.clone());
        // What the NB rows take from a pod: its OVN addresses, its node (ic scope).
        let nb_view =
            |p: Option<&crate::cluster::PodInfo>| p.map(|p| (p.ovn.clone(), p.node.clone()));
        if nb_view(old) != nb_view(new)
            && let Some(pe) = self.pods.get(key)
        {
            t.nb.extend(pe.members.iter().map(|p| p.name.to_string()));
        }
        self.gateways_changed(key, old, t);
    }

    /// A pod changed: the Routes whose gateway selection picks it (before or after) take
    /// their next hops again.
    fn gateways_changed(
        &mut self,
        key: &ObjectKey,
        old: Option<&crate::cluster::PodInfo>,
        t: &mut Touched,
    ) {
        let new = self.world.pod_at(key);
        let picked = |e: &RouteEntry, p: Option<&crate::cluster::PodInfo>| {
            let hp = e.p.route.ovn.hop_pods.as_ref();
            p.zip(hp)
                .is_some_and(|(p, hp)| super::gateways::picks(&self.world, hp, p))
        };
        let names: Vec<String> = self
            .index
            .routes(&Key::Gateways)
            .filter(|n| {
                self.routes
                    .get(*n)
                    .is_some_and(|e| picked(e, old) || picked(e, new))
            })
            .cloned()
            .collect();
        self.prepare_again(names, t);
    }

    /// Routes whose inputs from the world changed take them again (Services, gateways).
    fn prepare_again(&mut self, names: impl IntoIterator<Item = String>, t: &mut Touched) {
        for name in names {
            if let Some(e) = self.routes.get(&name) {
                let route = e.p.route.clone();
                self.set_route(prepare(&self.world, route, &self.cfg), t);
            }
        }
    }

    fn services_changed(&mut self, services: impl IntoIterator<Item = ObjectKey>, t: &mut Touched) {
        let mut names = BTreeSet::new();
        for s in services {
            names.extend(self.index.routes(&Key::Service(s)).cloned());
        }
        self.prepare_again(names, t);
    }

    /// The Routes under `key` look at every pod of `namespace` again.
    fn namespace_changed(&mut self, namespace: &str, key: Key, t: &mut Touched) {
        let routes: Vec<String> = self.index.routes(&key).cloned().collect();
        self.namespace_pairs(namespace, &routes, t);
    }

    /// `namespace`'s labels were `old`: the Routes whose namespace selector (of selection
    /// or exclusion) decides otherwise now look at its pods again; the Routes with gateway
    /// pods pick them again.
    fn namespace_relabelled(
        &mut self,
        namespace: &str,
        old: &BTreeMap<String, String>,
        t: &mut Touched,
    ) {
        let new = namespace_labels(&self.world, namespace);
        let differs = |s: Option<&crate::api::validate::selector::Selector>| {
            s.is_some_and(|s| s.matches(old) != s.matches(&new))
        };
        let routes: Vec<String> = self
            .index
            .routes(&Key::NamespaceLabels)
            .filter(|r| {
                self.routes.get(*r).is_some_and(|e| {
                    let route = &e.p.route;
                    differs(route.selection.namespace_selector.as_ref())
                        || differs(route.exclude.namespace_selector.as_ref())
                })
            })
            .cloned()
            .collect();
        self.namespace_pairs(namespace, &routes, t);
        let gw: Vec<String> = self.index.routes(&Key::Gateways).cloned().collect();
        self.prepare_again(gw, t);
    }

    /// `routes` look at every pod of `namespace` again.
    fn namespace_pairs(&mut self, namespace: &str, routes: &[String], t: &mut Touched) {
        if routes.is_empty() {
            return;
        }
        let pods: Vec<SharedKey> = self
            .world
            .keyed_pods_in(namespace)
            .map(|(k, _)| k.clone())
            .collect();
        for r in routes {
            t.pairs(r, pods.iter().cloned());
        }
    }
}
