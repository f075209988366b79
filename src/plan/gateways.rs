//! Gateway pods as next hops (`ovn.nextHopPods`): which pods a Route's gateway selection
//! picks, each one's address on the chosen network, and whether it is a next hop now.
//!
//! A gateway is a next hop while it is Ready and not terminating (no `deletionTimestamp`),
//! with the address of `network` from `k8s.v1.cni.cncf.io/network-status`, else its OVN
//! address from `k8s.ovn.org/pod-networks`. Owns: that decision. Must not: know about
//! routers or BFD (the NB side judges whether a router reaches a hop).
use std::net::IpAddr;

use crate::api::NextHopStatus;
use crate::api::validate::HopPods;
use crate::cluster::{ObjectKey, PodInfo, PodPhase, World};

use super::select::namespace_labels;

/// Why a selected gateway pod is not a next hop.
pub(crate) mod excluded {
    pub const NOT_READY: &str = "NotReady";
    pub const TERMINATING: &str = "Terminating";
    /// No address on the network (`network-status` lacks it, or no `pod-networks`).
    pub const NO_ADDRESS: &str = "NoAddress";
    /// Beyond the cap on next hops ([`crate::api::limits::NEXT_HOPS`]): the first pods by
    /// `namespace/name` are used.
    pub const TOO_MANY: &str = "TooManyNextHops";
}

/// One selected gateway pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Gateway {
    pub pod: ObjectKey,
    /// Its addresses on the network (one per family at most is usual; all are hops).
    pub addrs: Vec<IpAddr>,
    /// `None`: a next hop now. Else why not ([`excluded`]).
    pub excluded: Option<&'static str>,
}

impl Gateway {
    /// The addresses it gives as next hops now.
    pub fn hops(&self) -> &[IpAddr] {
        if self.excluded.is_none() {
            &self.addrs
        } else {
            &[]
        }
    }
}

/// Whether the gateway selection picks `pod`.
pub(crate) fn picks(world: &World, hp: &HopPods, pod: &PodInfo) -> bool {
    hp.pods.matches(&pod.labels)
        && hp
            .namespaces
            .matches(&namespace_labels(world, &pod.namespace))
}

/// The pods `hp` picks, sorted, each with its addresses and verdict. Costs the namespaces
/// of the world's pods plus the pods of the matching namespaces.
pub(crate) fn gateways(world: &World, hp: &HopPods) -> Vec<Gateway> {
    let mut out = Vec::new();
    for ns in world.pod_namespaces() {
        if !hp.namespaces.matches(&namespace_labels(world, ns)) {
            continue;
        }
        for pod in world.pods_in(ns).filter(|p| hp.pods.matches(&p.labels)) {
            out.push(gateway(pod, hp));
        }
    }
    // A selector picking half the cluster must not make an ECMP set of thousands.
    let mut used = 0;
    for g in &mut out {
        if g.excluded.is_none() {
            used += g.addrs.len();
            if used > crate::api::limits::NEXT_HOPS {
                g.excluded = Some(excluded::TOO_MANY);
            }
        }
    }
    out
}

fn gateway(pod: &PodInfo, hp: &HopPods) -> Gateway {
    let mut addrs: Vec<IpAddr> = match &hp.network {
        Some((ns, name)) => {
            // Multus names a network `namespace/name`, or just `name` when the
            // NetworkAttachmentDefinition is in the pod's own namespace.
            let full = format!("{ns}/{name}");
            let local = *ns == pod.namespace;
            pod.interfaces
                .iter()
                .filter(|i| i.network == full || (local && i.network == *name))
                .flat_map(|i| i.ips.iter().copied())
                .collect()
        }
        // A hostNetwork gateway has no OVN address: its addresses are the node's, in
        // `status.podIPs`.
        None if pod.host_network => pod.pod_ips.clone(),
        None => pod
            .ovn
            .iter()
            .flat_map(|o| o.ips.iter().map(|n| n.addr()))
            .collect(),
    };
    addrs.sort();
    addrs.dedup();
    let excluded = if pod.terminating {
        Some(excluded::TERMINATING)
    } else if !pod.ready || pod.phase != PodPhase::Running {
        Some(excluded::NOT_READY)
    } else if addrs.is_empty() {
        Some(excluded::NO_ADDRESS)
    } else {
        None
    };
    Gateway {
        pod: (pod.namespace.clone(), pod.name.clone()),
        addrs,
        excluded,
    }
}

/// The next hops of a Route for its status: static ones first, then each gateway pod's.
pub(crate) fn statuses(statics: &[IpAddr], gws: &[Gateway]) -> Vec<NextHopStatus> {
    let mut out: Vec<NextHopStatus> = statics
        .iter()
        .map(|a| NextHopStatus {
            address: a.to_string(),
            used: true,
            ..Default::default()
        })
        .collect();
    for g in gws {
        let pod = Some(format!("{}/{}", g.pod.0, g.pod.1));
        if g.addrs.is_empty() {
            out.push(NextHopStatus {
                address: String::new(),
                pod,
                used: false,
                reason: g.excluded.map(str::to_owned),
                bfd: None,
            });
            continue;
        }
        for a in &g.addrs {
            out.push(NextHopStatus {
                address: a.to_string(),
                pod: pod.clone(),
                used: g.excluded.is_none(),
                reason: g.excluded.map(str::to_owned),
                bfd: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validate::selector::Selector;
    use crate::cluster::{NamespaceInfo, OvnInfo, PodInterface};

    fn sel(k: &str, v: &str) -> Selector {
        Selector {
            match_labels: [(k.to_owned(), v.to_owned())].into(),
            requirements: vec![],
        }
    }

    fn gw(ns: &str, name: &str, ip: &str, ready: bool) -> PodInfo {
        PodInfo {
            namespace: ns.into(),
            name: name.into(),
            labels: [("role".to_owned(), "gw".to_owned())].into(),
            phase: PodPhase::Running,
            ready,
            ovn: Some(OvnInfo {
                ips: vec![format!("{ip}/24").parse().unwrap()],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ready_pods_of_matching_namespaces_are_hops_and_the_rest_say_why_not() {
        let mut w = World::new();
        w.apply(NamespaceInfo {
            name: "gw".into(),
            labels: [("tier".to_owned(), "edge".to_owned())].into(),
        });
        w.apply(gw("gw", "a", "10.0.0.5", true));
        w.apply(gw("gw", "b", "10.0.0.6", false));
        let mut c = gw("gw", "c", "10.0.0.7", true);
        c.terminating = true;
        w.apply(c);
        let mut d = gw("gw", "d", "10.0.0.8", true);
        d.ovn = None;
        w.apply(d);
        let mut other = gw("gw", "e", "10.0.0.9", true);
        other.labels = Default::default();
        w.apply(other);
        w.apply(gw("elsewhere", "f", "10.0.1.5", true));
        let hp = HopPods {
            namespaces: sel("tier", "edge"),
            pods: sel("role", "gw"),
            network: None,
        };
        let g = gateways(&w, &hp);
        let names: Vec<(&str, Option<&str>)> =
            g.iter().map(|g| (g.pod.1.as_str(), g.excluded)).collect();
        assert_eq!(
            names,
            [
                ("a", None),
                ("b", Some(excluded::NOT_READY)),
                ("c", Some(excluded::TERMINATING)),
                ("d", Some(excluded::NO_ADDRESS)),
            ]
        );
        assert_eq!(g[0].hops(), &["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(g[1].hops().is_empty());
        assert!(picks(&w, &hp, w.pod("gw", "b").unwrap()));
        assert!(!picks(&w, &hp, w.pod("elsewhere", "f").unwrap()));
    }

    #[test]
    fn a_named_network_takes_the_address_from_network_status() {
        let mut w = World::new();
        let mut p = gw("gw", "a", "10.0.0.5", true);
        p.interfaces = Box::new([PodInterface {
            name: "net1".into(),
            network: "gw/ext".into(),
            ips: vec!["172.18.0.10".parse().unwrap(), "fd00::10".parse().unwrap()],
            ..Default::default()
        }]);
        w.apply(p);
        let hp = HopPods {
            namespaces: sel("kubernetes.io/metadata.name", "gw"),
            pods: sel("role", "gw"),
            network: Some(("gw".into(), "ext".into())),
        };
        let g = gateways(&w, &hp);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].hops().len(), 2);
        let other = HopPods {
            network: Some(("gw".into(), "other".into())),
            ..hp
        };
        assert_eq!(gateways(&w, &other)[0].excluded, Some(excluded::NO_ADDRESS));
    }

    #[test]
    fn a_selector_picking_too_many_pods_is_capped() {
        let mut w = World::new();
        let n = crate::api::limits::NEXT_HOPS + 3;
        for i in 0..n {
            w.apply(gw(
                "gw",
                &format!("p{i:04}"),
                &format!("10.1.{}.{}", i / 200, i % 200 + 1),
                true,
            ));
        }
        let hp = HopPods {
            namespaces: Selector::default(),
            pods: sel("role", "gw"),
            network: None,
        };
        let g = gateways(&w, &hp);
        let used = g.iter().filter(|g| g.excluded.is_none()).count();
        assert_eq!(used, crate::api::limits::NEXT_HOPS);
        assert_eq!(
            g.iter()
                .filter(|g| g.excluded == Some(excluded::TOO_MANY))
                .count(),
            3
        );
    }

    #[test]
    fn a_bare_network_name_and_a_host_network_gateway_give_addresses() {
        let mut w = World::new();
        let mut p = gw("gw", "a", "10.0.0.5", true);
        p.interfaces = Box::new([PodInterface {
            name: "net1".into(),
            network: "ext".into(),
            ips: vec!["172.18.0.10".parse().unwrap()],
            ..Default::default()
        }]);
        w.apply(p);
        let mut h = gw("gw", "h", "10.0.0.6", true);
        h.ovn = None;
        h.host_network = true;
        h.pod_ips = vec!["192.168.10.4".parse().unwrap()];
        w.apply(h);
        let hp = HopPods {
            namespaces: Selector::default(),
            pods: sel("role", "gw"),
            network: Some(("gw".into(), "ext".into())),
        };
        let g = gateways(&w, &hp);
        assert_eq!(g[0].hops(), &["172.18.0.10".parse::<IpAddr>().unwrap()]);
        // The same bare name does not stand for a network of another namespace.
        let other = HopPods {
            network: Some(("elsewhere".into(), "ext".into())),
            ..hp.clone()
        };
        assert_eq!(gateways(&w, &other)[0].excluded, Some(excluded::NO_ADDRESS));
        let plain = HopPods {
            network: None,
            ..hp
        };
        let g = gateways(&w, &plain);
        assert_eq!(g[1].hops(), &["192.168.10.4".parse::<IpAddr>().unwrap()]);
    }
}
