//! The pod side of the plan: the kernel routes each selected pod should carry.
//! This is the contract between the planner (producer) and `netlink` (consumer).
use std::net::IpAddr;

use ipnet::IpNet;

use super::family::IpFamily;

/// Identifies a pod: namespace, name and uid (uid tells a recreated pod from the old one).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodKey {
    pub fn of(pod: &crate::cluster::PodInfo) -> PodKey {
        PodKey {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        }
    }
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Where a route's next hop comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    /// An explicit gateway (the rule's `via`, or the dev's gateway the planner found in the
    /// pod's `k8s.ovn.org/pod-networks` / `k8s.v1.cni.cncf.io/network-status` annotations).
    Via(IpAddr),
    /// No gateway known from the API: the netlink side uses the gateway of the pod's own
    /// routes on `dev` if it has one of the right family, else installs a link route.
    DevGateway,
}

/// One kernel route in one pod: `dst [via gw] dev <dev>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRoute {
    pub dst: IpNet,
    pub dev: String,
    pub next_hop: NextHop,
    /// The Route CR that asked for it (for status and logs).
    pub owner: String,
}

/// A replacement default route for one IP family (`defaultRoute`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DefaultRoute {
    /// `0.0.0.0/0` or `::/0`.
    pub family: IpFamily,
    pub dev: String,
    pub next_hop: NextHop,
    pub owner: String,
}

/// Everything the planner wants in one pod's routing table. Routes are sorted and
/// de-duplicated by destination (conflicts were resolved by the planner).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodRoutes {
    pub routes: Vec<PodRoute>,
    pub default_routes: Vec<DefaultRoute>,
}

impl PodRoutes {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.default_routes.is_empty()
    }
}
