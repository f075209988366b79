//! plan: pure. World -> desired pod routes and desired NB rows. No I/O, no clock, no
//! randomness; output order is stable so diffs and tests are deterministic.
//!
//! Entry point: [`plan`] (validates the Routes itself) or [`plan_validated`]. The result
//! holds the per-pod kernel routes ([`pod::PodRoutes`], for `netlink`), the NB rows
//! ([`nb::DesiredNb`], for `nb`), per-Route status material ([`RouteReport`]) and the next
//! hops each router relies on (for the NB side's reachability check).
pub mod explain;
pub mod guard;
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
    order.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.created.cmp(&b.created))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut names = BTreeSet::new();
    order.retain(|r| names.insert(r.name.as_str()));
    order
}

/// Validates `routes` and plans them.
pub fn plan(world: &World, routes: &[Route], cfg: &PlanConfig) -> Plan {
    let validated: Vec<ValidatedRoute> = routes.iter().map(validate).collect();
    plan_validated(world, &validated, cfg)
}

/// [`plan`] for a replan: every pod whose routes equal those in `previous` gets
/// `previous`'s shared copy (the new one is dropped as soon as it is compared), so a
/// long-running controller holds one copy of the unchanged pods' routes during a replan,
/// not two, and the pod side sees the same `Arc` for pods that did not change.
pub fn plan_reusing(world: &World, routes: &[Route], cfg: &PlanConfig, previous: &Plan) -> Plan {
    let validated: Vec<ValidatedRoute> = routes.iter().map(validate).collect();
    plan_validated_reusing(world, &validated, cfg, Some(&previous.pods))
}

/// Plans already validated Routes (lets a caller cache validation per generation).
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

    let mut reports: BTreeMap<String, RouteReport> = BTreeMap::new();
    let mut problems: Vec<Vec<crate::api::Problem>> =
        order.iter().map(|r| r.problems.clone()).collect();
    let resolved: Vec<routes::ResolvedRoute> = order
        .iter()
        .zip(problems.iter_mut())
        .map(|(r, p)| {
            let mut rr = routes::resolve(world, r, p);
            guard::cluster_networks(r, &mut rr, cfg, p);
            rr
        })
        .collect();

    let selection = routes::select_all(world, &order, &resolved, cfg);
    let mut selection = selection;
    let pods = routes::pod_routes(
        &order,
        &resolved,
        &mut selection,
        cfg,
        &mut problems,
        previous,
    );
    let ovn = ovn::desired_nb(&order, &resolved, &selection, cfg, &mut problems);

    for (i, r) in order.iter().enumerate() {
        let sel = &selection.per_route[i];
        let mut report = RouteReport {
            selected: sel.selected,
            programmable: sel.programmable,
            skipped: sel.skipped_whole,
            skipped_by_reason: sel.skipped_by_reason.clone(),
            skipped_rules: sel.skipped_rules,
            skipped_rules_by_reason: sel.skipped_rules_by_reason.clone(),
            here: sel.here,
            ..RouteReport::default()
        };
        for p in std::mem::take(&mut problems[i]) {
            report.push_problem(p, cfg.max_problems);
        }
        let waiting = sel.selected > 0 && sel.programmable == 0 && sel.waiting == sel.selected;
        report.finish(r.is_invalid(), waiting);
        reports.insert(r.name.clone(), report);
    }

    Plan {
        pods,
        nb: ovn.nb,
        reports,
        next_hops: ovn.next_hops,
        ovn_service_ips: ovn.ovn_service_ips,
    }
}
