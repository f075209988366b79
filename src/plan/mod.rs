//! plan: pure. World -> desired pod routes and desired NB rows. No I/O, no clock, no
//! randomness; output order is stable so diffs and tests are deterministic.
//!
//! Entry point: [`plan`] (validates the Routes itself) or [`plan_validated`]. The result
//! holds the per-pod kernel routes ([`pod::PodRoutes`], for `netlink`), the NB rows
//! ([`nb::DesiredNb`], for `nb`), per-Route status material ([`RouteReport`]) and the next
//! hops each router relies on (for the NB side's reachability check).
pub mod explain;
mod family;
pub mod guard;
pub mod incremental;
mod merge;
pub mod nb;
mod ovn;
pub mod pod;
pub mod report;
mod routes;
mod select;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::api::Route;
use crate::api::validate::{ValidatedRoute, validate};
use crate::cluster::World;

pub use family::IpFamily;
pub use ovn::{address_set_name, port_group_name};
pub use report::{ConditionSummary, NodeCounts, RouteReport, SkipReason, Summary};

/// Which pods' NB rows this instance plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NbScope {
    /// `central` mode: one NB for the cluster, Address_Sets / Port_Groups hold every
    /// selected pod.
    #[default]
    Cluster,
    /// `ic` mode: each node has its own NB; only pods on `PlanConfig::node` are included.
    Node,
}

/// Planner settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    /// This node: only its pods get pod routes. `None` plans pod routes for every pod
    /// (file mode, tests).
    pub node: Option<String>,
    pub nb_scope: NbScope,
    /// Router for policies / static routes when a Route names none.
    pub default_router: String,
    /// Inclusive Logical_Router_Policy priority band reserved for us.
    pub priority_min: i64,
    pub priority_max: i64,
    /// Priority of `ovn.enforce` drop ACLs.
    pub acl_priority: i64,
    /// The pod interface attached to OVN-Kubernetes.
    pub ovn_dev: String,
    /// The pod's default interface (Calico).
    pub default_dev: String,
    /// Bound on problems listed per Route (the rest is counted).
    pub max_problems: usize,
    /// The cluster's pod networks (`--cluster-cidr`): a rule covering one whole is refused
    /// unless its Route lifts the guard (see `guard`). Empty: not checked.
    pub cluster_networks: Vec<ipnet::IpNet>,
    /// The cluster's service networks (`--service-cidr`), guarded the same way.
    pub service_networks: Vec<ipnet::IpNet>,
    /// Gateways of the default interface that pods' annotations may not state: Calico's
    /// fixed 169.254.1.1 and fe80::ecee:eeff:feee:eeee (`--default-dev-gateway`).
    pub default_gateways: Vec<IpAddr>,
    /// Most routes one pod gets (`--max-routes-per-pod`); the rest is reported.
    pub max_routes_per_pod: usize,
}

/// Default of [`PlanConfig::max_routes_per_pod`].
pub const DEFAULT_MAX_ROUTES_PER_POD: usize = 10_000;

/// Calico's gateways on every pod's eth0: link-local, fixed, answered by proxy ARP / NDP on
/// the host side of the veth.
pub fn calico_gateways() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 1, 1)),
        IpAddr::V6(std::net::Ipv6Addr::new(
            0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee,
        )),
    ]
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            node: None,
            nb_scope: NbScope::Cluster,
            default_router: "ovn_cluster_router".into(),
            priority_min: 200,
            priority_max: 299,
            acl_priority: 1500,
            ovn_dev: "eth1".into(),
            default_dev: "eth0".into(),
            max_problems: 20,
            cluster_networks: Vec::new(),
            service_networks: Vec::new(),
            default_gateways: calico_gateways(),
            max_routes_per_pod: DEFAULT_MAX_ROUTES_PER_POD,
        }
    }
}

/// Everything the planner decided.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// Pods (of this node) with at least one desired route. A pod absent here should carry
    /// none of our routes. Shared (`Arc`): the pod side keeps the same copy, so each
    /// pod's routes are held once.
    pub pods: BTreeMap<pod::PodKey, std::sync::Arc<pod::PodRoutes>>,
    pub nb: nb::DesiredNb,
    /// Per Route name.
    pub reports: BTreeMap<String, RouteReport>,
    /// Router -> next hop -> Routes relying on it (policies and static routes).
    pub next_hops: BTreeMap<String, BTreeMap<IpAddr, BTreeSet<String>>>,
    /// Route -> ClusterIPs it sends over the OVN interface: OVN needs a Load_Balancer
    /// carrying each, or that traffic is dropped inside OVN.
    pub ovn_service_ips: BTreeMap<String, BTreeSet<IpAddr>>,
}

/// Routes in precedence order: higher priority, then older, then name. The planner walks
/// Routes in this order, so the first claimant of a destination is the winner. Two CRs with
/// the same name cannot exist in one cluster; in file mode the one with precedence is kept.
pub(crate) fn precedence(routes: &[ValidatedRoute]) -> Vec<&ValidatedRoute> {
    let mut order: Vec<&ValidatedRoute> = routes.iter().collect();
    order.sort_by_cached_key(|r| Precedence::of(r));
    let mut names = BTreeSet::new();
    order.retain(|r| names.insert(r.name.as_str()));
    order
}

/// Validates `routes` and plans them.
pub fn plan(world: &World, routes: &[Route], cfg: &PlanConfig) -> Plan {
    let validated: Vec<ValidatedRoute> = routes.iter().map(validate).collect();
    plan_validated(world, &validated, cfg)
}

/// Precedence between Routes: higher priority, then older, then name. Sorting by this key
/// puts the Route with precedence first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Precedence {
    priority: std::cmp::Reverse<i32>,
    created: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    pub name: String,
}

impl Precedence {
    pub(crate) fn of(r: &ValidatedRoute) -> Precedence {
        Precedence {
            priority: std::cmp::Reverse(r.priority),
            created: r.created.clone(),
            name: r.name.clone(),
        }
    }
}

/// Slots as the full plan sees them while walking Routes in precedence order: everything
/// claimed by the Routes walked so far.
#[derive(Default)]
struct Walk {
    policies: BTreeMap<ovn::Slot, usize>,
    statics: BTreeMap<ovn::Slot, (String, BTreeSet<IpAddr>)>,
}

impl ovn::Slots for Walk {
    fn policy_rank(&self, slot: &ovn::Slot, _me: &Precedence) -> usize {
        self.policies.get(slot).copied().unwrap_or_default()
    }
    fn static_owner(
        &self,
        slot: &ovn::Slot,
        _me: &Precedence,
    ) -> Option<(&str, &BTreeSet<IpAddr>)> {
        self.statics.get(slot).map(|(n, h)| (n.as_str(), h))
    }
}

impl Walk {
    fn add(&mut self, route: &str, claims: Vec<(ovn::Slot, ovn::ClaimKind)>) {
        for (slot, kind) in claims {
            match kind {
                ovn::ClaimKind::Policy => *self.policies.entry(slot).or_default() += 1,
                ovn::ClaimKind::Static(hops) => {
                    self.statics.entry(slot).or_insert((route.to_owned(), hops));
                }
            }
        }
    }
}

/// Conflicts one Route lost, keyed for the report's order (path, winner's precedence,
/// winner's path, destination) -> (pods, first pod).
type Lost = BTreeMap<(String, usize, String, String), (usize, String)>;

/// Rules of one Route a guard rail refused: (rule path, reason) -> (rules, first pod, its
/// message).
type Refusals = BTreeMap<(String, &'static str), (usize, String, String)>;

/// [`plan`] for a replan: every pod whose routes equal those in `previous` gets
/// `previous`'s shared copy (the new one is dropped as soon as it is compared), so a
/// long-running controller holds one copy of the unchanged pods' routes during a replan,
/// not two, and the pod side sees the same `Arc` for pods that did not change.
pub fn plan_reusing(world: &World, routes: &[Route], cfg: &PlanConfig, previous: &Plan) -> Plan {
    let validated: Vec<ValidatedRoute> = routes.iter().map(validate).collect();
    plan_validated_reusing(world, &validated, cfg, Some(&previous.pods))
}

/// Plans already validated Routes (lets a caller cache validation per generation).
///
/// The whole plan at once; [`incremental::Engine`] keeps the same result up to date event
/// by event from the same per-Route and per-pod steps.
pub fn plan_validated(world: &World, routes: &[ValidatedRoute], cfg: &PlanConfig) -> Plan {
    plan_validated_reusing(world, routes, cfg, None)
}

/// [`plan_validated`] sharing unchanged pods' routes with `previous` (see [`plan_reusing`]).
pub fn plan_validated_reusing(
    world: &World,
    routes: &[ValidatedRoute],
    cfg: &PlanConfig,
    previous: Option<&BTreeMap<pod::PodKey, std::sync::Arc<pod::PodRoutes>>>,
) -> Plan {
    let order = precedence(routes);
    let prepared: Vec<routes::Prepared> = order
        .iter()
        .map(|r| routes::prepare(world, (*r).clone(), cfg))
        .collect();
    let index: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();

    let n = prepared.len();
    let mut counts = vec![select::SelCounts::default(); n];
    let mut members: Vec<Vec<&crate::cluster::PodInfo>> = vec![Vec::new(); n];
    let mut programmable = vec![0usize; n];
    let mut lost: Vec<Lost> = vec![Lost::new(); n];
    let mut refused: Vec<Refusals> = vec![Refusals::new(); n];
    // Per Route: (pods, routes not given, first pod) over the per-pod cap.
    let mut capped: Vec<Option<(usize, usize, String)>> = vec![None; n];
    let mut pods = BTreeMap::new();
    let mut ns_cache: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for pod in world.pods() {
        let ns_labels = ns_cache
            .entry(pod.namespace.as_str())
            .or_insert_with(|| select::namespace_labels(world, &pod.namespace));
        let mut mine = Vec::new();
        for (ri, p) in prepared.iter().enumerate() {
            let Some(pair) = select::pair(world, p, pod, ns_labels, cfg) else {
                continue;
            };
            counts[ri].count(pair, true);
            if pair.is_member() {
                members[ri].push(pod);
                mine.push(ri);
            }
        }
        if mine.is_empty() || !cfg.is_local(pod) {
            continue;
        }
        let m = merge::merge_pod(pod, mine.iter().map(|&ri| &prepared[ri]), cfg);
        for name in &m.contributed {
            programmable[index[name.as_str()]] += 1;
        }
        for c in &m.conflicts {
            let key = (
                c.path.clone(),
                index[c.winner.as_str()],
                c.wpath.clone(),
                c.dst.clone(),
            );
            let e = lost[index[c.loser.as_str()]]
                .entry(key)
                .or_insert_with(|| (0, format!("{}/{}", pod.namespace, pod.name)));
            e.0 += 1;
        }
        for (name, rules) in m.refused {
            let mine = &mut refused[index[name.as_str()]];
            for (key, (count, message)) in rules {
                let e = mine
                    .entry(key)
                    .or_insert_with(|| (0, format!("{}/{}", pod.namespace, pod.name), message));
                e.0 += count;
            }
        }
        for (name, over) in m.capped {
            let e = capped[index[name.as_str()]]
                .get_or_insert_with(|| (0, 0, format!("{}/{}", pod.namespace, pod.name)));
            e.0 += 1;
            e.1 += over;
        }
        if !m.routes.is_empty() {
            let key = pod::PodKey::of(pod);
            // An unchanged pod keeps the previous plan's copy.
            let routes = match previous.and_then(|p| p.get(&key)) {
                Some(old) if **old == *m.routes => old.clone(),
                _ => m.routes,
            };
            pods.insert(key, routes);
        }
    }

    let mut walk = Walk::default();
    let mut out = Plan {
        pods,
        ..Plan::default()
    };
    for (ri, p) in prepared.iter().enumerate() {
        let name = &p.route.name;
        let rnb = ovn::route_nb(p, members[ri].iter().copied(), &walk, cfg);
        walk.add(name, ovn::claims(p, cfg));
        let conflicts = lost[ri]
            .iter()
            .map(|((path, w, wpath, dst), (count, pod))| {
                let c = merge::Conflict {
                    loser: name.clone(),
                    path: path.clone(),
                    winner: prepared[*w].route.name.clone(),
                    wpath: wpath.clone(),
                    dst: dst.clone(),
                };
                report::conflict_problem(&c, *count, pod)
            });
        let refusals = refused[ri]
            .iter()
            .map(|((path, why), (count, pod, message))| {
                report::refused_problem(path, why, *count, pod, message)
            });
        let cap = capped[ri].iter().map(|(pods, routes, pod)| {
            report::capped_problem(*pods, *routes, pod, cfg.max_routes_per_pod)
        });
        let problems = p
            .problems
            .iter()
            .cloned()
            .chain(refusals)
            .chain(cap)
            .chain(conflicts)
            .chain(rnb.problems.iter().cloned());
        let r = report::build(
            &counts[ri],
            programmable[ri],
            problems,
            p.route.is_invalid(),
            cfg.max_problems,
        );
        out.reports.insert(name.clone(), r);
        out.add_route_nb(name, rnb);
    }
    out.nb.sort();
    out
}

impl Plan {
    /// Adds one Route's OVN side (rows appended unsorted: call `nb.sort()` after).
    pub(crate) fn add_route_nb(&mut self, name: &str, rnb: ovn::RouteNb) {
        for (router, hop) in rnb.next_hops {
            self.next_hops
                .entry(router)
                .or_default()
                .entry(hop)
                .or_default()
                .insert(name.to_owned());
        }
        if !rnb.service_ips.is_empty() {
            self.ovn_service_ips
                .insert(name.to_owned(), rnb.service_ips);
        }
        self.nb.extend(rnb.nb);
    }
}

impl PlanConfig {
    /// Whether the pod runs on this node (every pod when no node is set).
    pub(crate) fn is_local(&self, pod: &crate::cluster::PodInfo) -> bool {
        self.node
            .as_ref()
            .is_none_or(|n| pod.node.as_ref() == Some(n))
    }
}
