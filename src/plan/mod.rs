//! plan: pure. World -> desired pod routes and desired NB rows. No I/O, no clock, no
//! randomness; output order is stable so diffs and tests are deterministic.
//!
//! One planner: [`incremental::Engine`], kept up to date event by event by `run`; [`plan`]
//! is the same engine fed every object at once. The result holds the per-pod kernel routes
//! ([`pod::PodRoutes`], for `netlink`), the NB rows ([`nb::DesiredNb`], for `nb`), per-Route
//! status material ([`RouteReport`]) and the next hops each router relies on (for the NB
//! side's reachability check).
pub mod explain;
mod family;
pub(crate) mod gateways;
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
use crate::api::validate::ValidatedRoute;
use crate::cluster::World;

pub use family::IpFamily;
pub use incremental::{Dirty, Engine};
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

/// Plans `routes` against `world` from scratch: the engine ([`incremental::Engine`]) fed
/// every object at once. Of several Routes with one name, the one with precedence is kept.
pub fn plan(world: &World, routes: &[Route], cfg: &PlanConfig) -> Plan {
    incremental::Engine::build(cfg.clone(), world.clone(), routes).plan()
}

/// Precedence between Routes: higher priority, then older, then name. Sorting by this key
/// puts the Route with precedence first. The name is shared: the planner keeps a copy for
/// every pod a Route selects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Precedence {
    priority: std::cmp::Reverse<i32>,
    created: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    pub name: std::sync::Arc<str>,
}

impl Precedence {
    pub(crate) fn of(r: &ValidatedRoute) -> Precedence {
        Precedence {
            priority: std::cmp::Reverse(r.priority),
            created: r.created.clone(),
            name: r.name.as_str().into(),
        }
    }
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
