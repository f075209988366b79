//! The pod side of the plan: the kernel routes each selected pod should carry.
//! This is the contract between the planner (producer) and `netlink` (consumer).
use std::net::IpAddr;
use std::sync::Arc;

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
///
/// 72 bytes, no allocation of its own: `dev` and `owner` point at strings shared by every
/// pod route of the same rule / Route (a node holds hundreds of thousands of these).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRoute {
    pub dst: IpNet,
    pub dev: Arc<str>,
    pub next_hop: NextHop,
    /// The Route CR that asked for it (for status and logs).
    pub owner: Arc<str>,
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
    /// True when the pod should carry none of our routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.default_routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_route_is_small_and_shares_its_strings() {
        // The per-route memory figure of docs/benchmarks.md rests on this size.
        assert!(
            std::mem::size_of::<PodRoute>() <= 72,
            "{}",
            std::mem::size_of::<PodRoute>()
        );
        let dev: Arc<str> = Arc::from("eth1");
        let owner: Arc<str> = Arc::from("route-a");
        let r = PodRoute {
            dst: "10.0.0.0/8".parse().unwrap_or_default(),
            dev: dev.clone(),
            next_hop: NextHop::DevGateway,
            owner: owner.clone(),
        };
        let copy = r.clone();
        assert!(Arc::ptr_eq(&copy.dev, &dev) && Arc::ptr_eq(&copy.owner, &owner));
        assert!(PodRoutes::default().is_empty());
        let some = PodRoutes {
            routes: vec![r],
            default_routes: vec![],
        };
        assert!(!some.is_empty());
    }
}
