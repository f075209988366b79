//! Pure diff of one pod: desired [`PodRoutes`] + the pod's links, kernel routes and
//! recorded default routes -> the operations that make the kernel match.
//!
//! Ownership rules decided here (and nowhere else):
//! - only routes whose protocol is ours are deleted or replaced;
//! - a foreign route with the same destination and metric as one we want is a
//!   *conflict*: reported, and the foreign route is left alone (replacing it would
//!   silently take over a route someone else owns; adding beside it is refused by the
//!   kernel with EEXIST). Foreign routes to the same destination at another metric
//!   simply coexist with ours;
//! - the exception: under `defaultRoute`, foreign default routes of that family are
//!   recorded (see [`super::state`]) and then replaced / removed; they are restored when
//!   the family is no longer wanted.
//!
//! Must not: do I/O.
use std::net::IpAddr;

use ipnet::IpNet;

use super::kernel::{KernelRoute, Links, SCOPE_LINK, SCOPE_UNIVERSE};
use super::state::{PodState, RecordedRoute};
use super::{IPV4_METRIC, IPV6_METRIC, addr_is_v6, is_v6};
use crate::plan::pod::{NextHop, PodRoutes};

/// A route (or default route) that could not be installed because its dev is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub dst: IpNet,
    pub dev: String,
}

/// A wanted route whose destination and metric are already taken by a foreign route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub wanted: KernelRoute,
    pub foreign: KernelRoute,
}

/// A desired route that cannot be a kernel route (e.g. a gateway of the other family).
/// It is reported, and our route already at its destination is left as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub dst: IpNet,
    pub reason: String,
}

/// Everything to do in one pod, in execution order (see [`super::program`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodPlan {
    /// Foreign default routes to record in the state file before anything is written.
    pub record: Vec<RecordedRoute>,
    /// Our routes that are no longer wanted.
    pub deletes: Vec<KernelRoute>,
    /// Original default routes to put back (families no longer under `defaultRoute`).
    pub restores: Vec<RecordedRoute>,
    /// Families whose recorded originals are consumed by `restores`.
    pub restore_families: Vec<bool>,
    /// Routes to add (`false`) or replace in place (`true`).
    pub writes: Vec<(KernelRoute, bool)>,
    /// Foreign default routes of a family under `defaultRoute` at another metric.
    pub foreign_default_deletes: Vec<KernelRoute>,
    pub skipped: Vec<Skip>,
    pub conflicts: Vec<Conflict>,
    pub invalid: Vec<Invalid>,
    /// Wanted routes already correct.
    pub unchanged: usize,
}

impl PodPlan {
    /// True when the kernel already matches.
    pub fn is_noop(&self) -> bool {
        self.record.is_empty()
            && self.deletes.is_empty()
            && self.restores.is_empty()
            && self.writes.is_empty()
            && self.foreign_default_deletes.is_empty()
    }
}

/// Our metric for a family.
pub fn metric_for(v6: bool) -> u32 {
    if v6 { IPV6_METRIC } else { IPV4_METRIC }
}

fn default_dst(v6: bool) -> IpNet {
    if v6 {
        IpNet::V6(ipnet::Ipv6Net::default())
    } else {
        IpNet::V4(ipnet::Ipv4Net::default())
    }
}

/// The gateway to use for `NextHop::DevGateway` on `oif`: a foreign route's gateway
/// on that interface and family (the default route first, then the lowest metric),
/// else a recorded original default route's gateway on that interface.
pub fn dev_gateway(
    current: &[KernelRoute],
    recorded: &[RecordedRoute],
    dev: &str,
    oif: u32,
    v6: bool,
    protocol: u8,
) -> Option<IpAddr> {
    current
        .iter()
        .filter(|r| r.protocol != protocol && r.oif == Some(oif) && is_v6(&r.dst) == v6)
        .filter_map(|r| {
            r.gateway
                .filter(|g| addr_is_v6(g) == v6)
                .map(|g| (r.dst.prefix_len() != 0, r.metric, g))
        })
        .min()
        .map(|(_, _, g)| g)
        .or_else(|| {
            recorded
                .iter()
                .filter(|r| r.dev == dev && is_v6(&r.route.dst) == v6)
                .find_map(|r| r.route.gateway)
        })
}

/// What a desired route becomes in a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The kernel route to have.
    Route(KernelRoute),
    /// Its dev is missing in the pod: skipped, counted.
    Skip,
    /// It cannot be a kernel route (reported; our route at its destination is kept).
    Invalid(String),
    /// The caller does not know the dev or its gateway (only [`super::programmed`] says so).
    Unknown,
}

/// The one rule for turning a desired route into a kernel route, shared by the full diff
/// and [`super::programmed`]: the gateway must be a unicast address of the route's family;
/// the dev must exist (`link`: None when unknown, `Some(None)` when missing); with no `via`
/// the dev's gateway is used (`gateway(oif, v6)`, None when unknown), else a link route.
pub fn resolve(
    dst: IpNet,
    next_hop: &NextHop,
    protocol: u8,
    link: Option<Option<u32>>,
    gateway: impl FnOnce(u32, bool) -> Option<Option<IpAddr>>,
) -> Resolved {
    let v6 = is_v6(&dst);
    if let NextHop::Via(gw) = next_hop {
        if addr_is_v6(gw) != v6 {
            return Resolved::Invalid(format!("gateway {gw} is not of the family of {dst}"));
        }
        if gw.is_unspecified() || gw.is_multicast() {
            return Resolved::Invalid(format!("gateway {gw} is not a unicast address"));
        }
    }
    let oif = match link {
        None => return Resolved::Unknown,
        Some(None) => return Resolved::Skip,
        Some(Some(oif)) => oif,
    };
    let gateway = match next_hop {
        NextHop::Via(gw) => Some(*gw),
        NextHop::DevGateway => match gateway(oif, v6) {
            Some(g) => g,
            None => return Resolved::Unknown,
        },
    };
    // IPv6 keeps every route at universe scope; IPv4 link routes are scope link.
    let scope = if gateway.is_none() && !v6 {
        SCOPE_LINK
    } else {
        SCOPE_UNIVERSE
    };
    Resolved::Route(KernelRoute {
        dst: dst.trunc(),
        gateway,
        oif: Some(oif),
        protocol,
        metric: metric_for(v6),
        scope,
    })
}

/// A route's key in the kernel: destination and metric.
fn key(r: &KernelRoute) -> (IpNet, u32) {
    (r.dst, r.metric)
}

/// A table's routes sorted by key, looked up by binary search: no hashing and no
/// allocation per route (a pod carries hundreds).
struct ByKey<'a>(Vec<&'a KernelRoute>);

impl<'a> ByKey<'a> {
    fn new(routes: &'a [KernelRoute]) -> Self {
        let mut v: Vec<&KernelRoute> = routes.iter().collect();
        // Stable: routes sharing a key keep the kernel's order.
        v.sort_by_key(|r| key(r));
        ByKey(v)
    }

    fn at(&self, k: (IpNet, u32)) -> &[&'a KernelRoute] {
        let lo = self.0.partition_point(|r| key(r) < k);
        let n = self.0[lo..].partition_point(|r| key(r) == k);
        &self.0[lo..lo + n]
    }
}

/// A set of keys kept sorted (inserts in sorted order, the planner's order, append).
#[derive(Default)]
struct Keys(Vec<(IpNet, u32)>);

impl Keys {
    /// Adds `k`; false when it was there already.
    fn insert(&mut self, k: (IpNet, u32)) -> bool {
        match self.0.binary_search(&k) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, k);
                true
            }
        }
    }

    fn contains(&self, k: &(IpNet, u32)) -> bool {
        self.0.binary_search(k).is_ok()
    }
}

/// The kernel routes the desired ones become, with what could not be resolved recorded
/// in the plan (skips, invalid routes).
#[derive(Default)]
struct Wanted {
    routes: Vec<KernelRoute>,
    keys: Keys,
    /// Keys of invalid desired routes: our route there is kept as is.
    held_keys: Keys,
    /// Families under `defaultRoute` (index: IPv6?).
    default_families: [bool; 2],
    /// Families whose default route is wanted but whose dev is missing: left as is.
    held_families: [bool; 2],
}

fn wanted(
    desired: &PodRoutes,
    links: &Links,
    current: &[KernelRoute],
    state: &PodState,
    protocol: u8,
    plan: &mut PodPlan,
) -> Wanted {
    let mut w = Wanted {
        routes: Vec::with_capacity(desired.routes.len()),
        ..Wanted::default()
    };
    // The dev gateway of (interface, family), computed once per pod.
    let mut gateways: Vec<((u32, bool), Option<IpAddr>)> = Vec::new();
    let mut resolve_one = |dst: IpNet, dev: &str, next_hop: &NextHop, w: &mut Wanted| {
        let link = Some(links.get(dev).copied());
        let gateway = |oif: u32, v6: bool| {
            if let Some((_, g)) = gateways.iter().find(|(k, _)| *k == (oif, v6)) {
                return Some(*g);
            }
            let g = dev_gateway(current, state.family(v6), dev, oif, v6, protocol);
            gateways.push(((oif, v6), g));
            Some(g)
        };
        match resolve(dst, next_hop, protocol, link, gateway) {
            Resolved::Route(k) => Some(k),
            Resolved::Skip => {
                plan.skipped.push(Skip {
                    dst,
                    dev: dev.to_string(),
                });
                None
            }
            Resolved::Invalid(reason) => {
                w.held_keys.insert((dst.trunc(), metric_for(is_v6(&dst))));
                plan.invalid.push(Invalid { dst, reason });
                None
            }
            // Every link was looked up and every gateway can be computed here.
            Resolved::Unknown => None,
        }
    };
    for r in &desired.routes {
        // The planner de-duplicates; should two still share a key, the first wins.
        if let Some(k) = resolve_one(r.dst, &r.dev, &r.next_hop, &mut w)
            && w.keys.insert(key(&k))
        {
            w.routes.push(k);
        }
    }
    for d in &desired.default_routes {
        let v6 = d.family.is_v6();
        if std::mem::replace(&mut w.default_families[usize::from(v6)], true) {
            continue;
        }
        match resolve_one(default_dst(v6), &d.dev, &d.next_hop, &mut w) {
            Some(k) => {
                w.keys.insert(key(&k));
                w.routes.push(k);
            }
            None => w.held_families[usize::from(v6)] = true,
        }
    }
    w
}

/// Under `defaultRoute`: record every foreign default of the family, then take over.
fn take_over_default(
    w: KernelRoute,
    at_key: &[&KernelRoute],
    links: &Links,
    current: &[KernelRoute],
    state: &PodState,
    protocol: u8,
    plan: &mut PodPlan,
) {
    let v6 = is_v6(&w.dst);
    for f in current
        .iter()
        .filter(|c| c.protocol != protocol && c.dst.prefix_len() == 0 && is_v6(&c.dst) == v6)
    {
        let dev = f
            .oif
            .and_then(|i| links.iter().find(|(_, idx)| **idx == i))
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        let rec = RecordedRoute {
            route: f.clone(),
            dev,
        };
        if !state.family(v6).contains(&rec) {
            plan.record.push(rec);
        }
        if f.metric != w.metric {
            plan.foreign_default_deletes.push(f.clone());
        }
    }
    let ours_in_place = at_key.iter().any(|c| c.protocol == protocol && **c == w);
    let foreign = at_key.iter().any(|c| c.protocol != protocol);
    if ours_in_place && !foreign {
        plan.unchanged += 1;
    } else {
        plan.writes.push((w, !at_key.is_empty()));
    }
}

/// A wanted (non-default) route against what holds its key: a foreign route is a
/// conflict; ours in place is unchanged (its extra siblings go); else add or replace.
fn place(w: KernelRoute, at_key: &[&KernelRoute], protocol: u8, plan: &mut PodPlan) {
    if let Some(f) = at_key.iter().find(|c| c.protocol != protocol) {
        plan.conflicts.push(Conflict {
            wanted: w,
            foreign: (*f).clone(),
        });
        return;
    }
    // Only ours at this key now.
    match at_key.iter().position(|o| **o == w) {
        Some(pos) => {
            plan.unchanged += 1;
            // Extra siblings of ours at the same key (IPv6 multipath leftovers).
            for (i, o) in at_key.iter().enumerate() {
                if i != pos {
                    plan.deletes.push((*o).clone());
                }
            }
        }
        None => plan.writes.push((w, !at_key.is_empty())),
    }
}

/// Computes one pod's plan. `state` is the pod's recorded default routes (empty if none).
pub fn plan_pod(
    desired: &PodRoutes,
    links: &Links,
    current: &[KernelRoute],
    state: &PodState,
    protocol: u8,
) -> PodPlan {
    let mut plan = PodPlan::default();
    let w = wanted(desired, links, current, state, protocol, &mut plan);
    // Our routes not wanted (or held by a family whose dev is missing).
    for cur in current.iter().filter(|c| c.protocol == protocol) {
        let held = cur.dst.prefix_len() == 0 && w.held_families[usize::from(is_v6(&cur.dst))];
        let k = key(cur);
        if !held && !w.keys.contains(&k) && !w.held_keys.contains(&k) {
            plan.deletes.push(cur.clone());
        }
    }
    let by_key = ByKey::new(current);
    for r in w.routes {
        let at_key = by_key.at(key(&r));
        if r.dst.prefix_len() == 0 && w.default_families[usize::from(is_v6(&r.dst))] {
            take_over_default(r, at_key, links, current, state, protocol, &mut plan);
        } else {
            place(r, at_key, protocol, &mut plan);
        }
    }
    // Families recorded but no longer under defaultRoute: restore the originals.
    for v6 in [false, true] {
        if !w.default_families[usize::from(v6)] && !state.family(v6).is_empty() {
            plan.restores.extend(state.family(v6).iter().cloned());
            plan.restore_families.push(v6);
        }
    }
    plan
}
