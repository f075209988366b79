//! Guard rails: rules that would cut pods off their own networks are refused, with a reason
//! in the Route's status, unless the Route lifts the guard in `spec.feature_gate`
//! (`api::validate::Gates`; docs/crd.md, "Guard rails").
//!
//! - A rule covering a whole cluster pod or service network (`PlanConfig::cluster_networks`,
//!   `service_networks`): refused for every pod and on the OVN side.
//! - A rule covering (or inside) a pod's own subnet or address of one interface, sent over
//!   another interface: refused for that pod (a pod on OVN subnet 10.124.2.0/24 told to
//!   reach 10.124.2.0/24 over eth0 can no longer reach its neighbours).
//! - A rule covering an interface's gateway, sent over another interface or through another
//!   next hop: refused for that pod (its default route would point at an unreachable
//!   gateway). Calico's fixed gateways come from `PlanConfig::default_gateways`.
//!
//! Pure: no I/O, no clock.
use std::net::IpAddr;

use ipnet::IpNet;

use crate::api::Problem;
use crate::api::validate::{Gates, ValidatedRoute};
use crate::cluster::PodInfo;

use super::PlanConfig;
use super::routes::{ResolvedRoute, ResolvedRule};

pub mod reason {
    pub const CAPTURES_CLUSTER_NETWORK: &str = "CapturesClusterNetwork";
    pub const CAPTURES_POD_SUBNET: &str = "CapturesPodSubnet";
    pub const CAPTURES_GATEWAY: &str = "CapturesGateway";
    pub const TOO_MANY_ROUTES: &str = "TooManyRoutes";
}

/// `a` and `b` share addresses (one contains the other: CIDRs never partly overlap).
fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Drops the rules of `route` that cover a whole cluster network, each reported once.
pub(crate) fn cluster_networks(
    route: &ValidatedRoute,
    resolved: &mut ResolvedRoute,
    cfg: &PlanConfig,
    problems: &mut Vec<Problem>,
) {
    if route.gates.cluster_network {
        return;
    }
    let networks: Vec<(&IpNet, &str)> = cfg
        .cluster_networks
        .iter()
        .map(|n| (n, "pod"))
        .chain(cfg.service_networks.iter().map(|n| (n, "service")))
        .collect();
    if networks.is_empty() {
        return;
    }
    let mut reported = std::collections::BTreeSet::new();
    resolved.rules.retain(|rule| {
        let Some((net, what)) = networks.iter().find(|(n, _)| rule.dst.contains(*n)) else {
            return true;
        };
        if reported.insert(rule.path.clone()) {
            problems.push(Problem {
                path: Some(format!("{}.dst", rule.path)),
                pod: None,
                node: None,
                reason: reason::CAPTURES_CLUSTER_NETWORK.into(),
                message: format!(
                    "{} covers the cluster's whole {what} network {net}: every pod would \
                     send it over {}; not programmed (spec.feature_gate {}: \"true\" allows it)",
                    rule.dst,
                    rule.dev,
                    Gates::CLUSTER_NETWORK
                ),
            });
        }
        false
    });
}

/// One pod's own networks and gateways, per interface.
pub(crate) struct PodNets {
    nets: Vec<(String, IpNet)>,
    gateways: Vec<(String, IpAddr)>,
}

/// Why a rule is refused for a pod: reason and message.
pub(crate) type Refusal = (&'static str, String);

impl PodNets {
    pub fn of(pod: &PodInfo, cfg: &PlanConfig) -> PodNets {
        let mut nets = Vec::new();
        let mut gateways = Vec::new();
        if let Some(o) = &pod.ovn {
            nets.extend(o.ips.iter().map(|n| (cfg.ovn_dev.clone(), n.trunc())));
            gateways.extend(o.gateways.iter().map(|g| (cfg.ovn_dev.clone(), *g)));
        }
        for i in &pod.interfaces {
            nets.extend(i.ips.iter().map(|a| (i.name.clone(), IpNet::from(*a))));
            gateways.extend(i.gateways.iter().map(|g| (i.name.clone(), *g)));
        }
        if !pod.interfaces.iter().any(|i| i.name == cfg.default_dev) {
            nets.extend(
                pod.pod_ips
                    .iter()
                    .map(|a| (cfg.default_dev.clone(), IpNet::from(*a))),
            );
        }
        gateways.extend(
            cfg.default_gateways
                .iter()
                .map(|g| (cfg.default_dev.clone(), *g)),
        );
        nets.sort();
        nets.dedup();
        gateways.sort();
        gateways.dedup();
        PodNets { nets, gateways }
    }

    /// Why `rule` must not be programmed in this pod, if it must not.
    pub fn refuse(&self, rule: &ResolvedRule, gates: Gates) -> Option<Refusal> {
        if !gates.pod_subnet
            && let Some((dev, net)) = self
                .nets
                .iter()
                .find(|(dev, net)| **dev != *rule.dev && overlaps(&rule.dst, net))
        {
            return Some((
                reason::CAPTURES_POD_SUBNET,
                format!(
                    "{} overlaps the pod's own network {net} on {dev}: sent over {} it would \
                     cut the pod off it; not programmed (spec.feature_gate {}: \"true\" allows it)",
                    rule.dst,
                    rule.dev,
                    Gates::POD_SUBNET
                ),
            ));
        }
        if !gates.gateway
            && let Some((dev, gw)) = self.gateways.iter().find(|(dev, gw)| {
                rule.dst.contains(gw) && (**dev != *rule.dev || rule.via.is_some_and(|v| v != *gw))
            })
        {
            return Some((
                reason::CAPTURES_GATEWAY,
                format!(
                    "{} covers {dev}'s gateway {gw}: routed over {}{} it would leave {dev}'s \
                     routes without their gateway; not programmed (spec.feature_gate {}: \
                     \"true\" allows it)",
                    rule.dst,
                    rule.dev,
                    rule.via.map(|v| format!(" via {v}")).unwrap_or_default(),
                    Gates::GATEWAY
                ),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{OvnInfo, PodInterface};

    fn rule(dst: &str, dev: &str, via: Option<&str>) -> ResolvedRule {
        ResolvedRule {
            path: "spec.route[0]".into(),
            dst: dst.parse().expect("cidr"),
            dev: dev.into(),
            via: via.map(|v| v.parse().expect("ip")),
            from_svc: false,
        }
    }

    fn pod() -> PodInfo {
        PodInfo {
            pod_ips: vec!["192.168.7.9".parse().expect("ip")],
            ovn: Some(OvnInfo {
                ips: vec!["10.124.2.5/24".parse().expect("net")],
                gateways: vec!["10.124.2.1".parse().expect("ip")],
                mac: None,
            }),
            ..PodInfo::default()
        }
    }

    #[test]
    fn own_subnets_and_gateways_on_the_other_interface_are_refused() {
        let nets = PodNets::of(&pod(), &PlanConfig::default());
        let none = Gates::default();
        let r = |d, dev, via| nets.refuse(&rule(d, dev, via), none).map(|x| x.0);
        // The cases: the pod's own OVN subnet over eth0, Calico's gateway over eth1.
        assert_eq!(
            r("10.124.2.0/24", "eth0", None),
            Some(reason::CAPTURES_POD_SUBNET)
        );
        assert_eq!(
            r("10.124.0.0/16", "eth0", None),
            Some(reason::CAPTURES_POD_SUBNET)
        );
        assert_eq!(
            r("10.124.2.7/32", "eth0", None),
            Some(reason::CAPTURES_POD_SUBNET)
        );
        assert_eq!(
            r("192.168.7.0/24", "eth1", None),
            Some(reason::CAPTURES_POD_SUBNET)
        );
        assert_eq!(
            r("169.254.1.1/32", "eth1", None),
            Some(reason::CAPTURES_GATEWAY)
        );
        assert_eq!(
            r("169.254.0.0/16", "eth1", None),
            Some(reason::CAPTURES_GATEWAY)
        );
        // On the gateway's own interface but through another next hop.
        assert_eq!(
            r("10.124.2.1/32", "eth1", Some("10.124.2.9")),
            Some(reason::CAPTURES_GATEWAY)
        );
        // Same interface, its own gateway as next hop, or unrelated networks: fine.
        assert_eq!(r("10.124.0.0/16", "eth1", None), None);
        assert_eq!(r("169.254.1.1/32", "eth0", None), None);
        assert_eq!(r("172.16.0.0/16", "eth1", None), None);
        assert_eq!(r("172.16.0.0/16", "eth0", None), None);
        // Each gate lifts its own guard only.
        let gates = Gates {
            pod_subnet: true,
            ..Gates::default()
        };
        assert!(
            nets.refuse(&rule("10.124.2.128/25", "eth0", None), gates)
                .is_none()
        );
        // The whole subnet also holds eth1's gateway: that guard still holds.
        assert_eq!(
            nets.refuse(&rule("10.124.2.0/24", "eth0", None), gates)
                .map(|x| x.0),
            Some(reason::CAPTURES_GATEWAY)
        );
        assert!(
            nets.refuse(&rule("169.254.1.1/32", "eth1", None), gates)
                .is_some()
        );
        let gates = Gates {
            gateway: true,
            ..Gates::default()
        };
        assert!(
            nets.refuse(&rule("169.254.1.1/32", "eth1", None), gates)
                .is_none()
        );
    }

    #[test]
    fn interfaces_from_network_status_count_too() {
        let mut p = pod();
        p.interfaces = Box::new([PodInterface {
            name: "net1".into(),
            network: String::new(),
            ips: vec!["fd00::5".parse().expect("ip")],
            gateways: vec!["fd00::1".parse().expect("ip")],
            default: false,
        }]);
        let nets = PodNets::of(&p, &PlanConfig::default());
        let refuse = |d, dev| {
            nets.refuse(&rule(d, dev, None), Gates::default())
                .map(|x| x.0)
        };
        assert_eq!(
            refuse("fd00::/64", "eth1"),
            Some(reason::CAPTURES_POD_SUBNET)
        );
        assert_eq!(refuse("fd00::1/128", "net1"), None);
    }
}
