//! `explain`, OVN half: which of our NB rows apply to one pod's packet to one address, read
//! from the NB replica (policies, static routes, ACLs), and the optional `ovn-trace` verdict.
//!
//! Only rows we own are read, and only in the shapes we write (docs/semantics.md, "OVN
//! side"); rows of ovn-kubernetes at other priorities can still take the packet first,
//! which is what `--trace` shows. Must not: write to the NB.
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::cluster::PodInfo;
use crate::nb::observed::Observed;

/// One of our rows whose destination covers the address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OvnRow {
    /// `Logical_Router_Policy`, `Logical_Router_Static_Route` or `ACL`.
    pub table: &'static str,
    pub route: String,
    pub uuid: String,
    /// `priority N match ... action ...`, as ovn-nbctl shows it.
    pub row: String,
    /// Whether it applies to this pod's packet.
    pub applies: bool,
    pub why: String,
}

/// Our rows for the pod and address, and what they do to the packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OvnSide {
    pub rows: Vec<OvnRow>,
    /// One line: rerouted / dropped / routed statically / none of ours.
    pub verdict: String,
}

/// `ip4.src == $AS && ip4.dst == CIDR` -> (AS, CIDR); None for other shapes.
fn policy_parts(m: &str) -> Option<(&str, IpNet)> {
    let (src, dst) = m.split_once(" && ")?;
    let set = src.split_once(".src == $")?.1;
    let net = dst.split_once(".dst == ")?.1.trim().parse().ok()?;
    Some((set, net))
}

/// `inport == @PG && ip4.dst == CIDR` -> (PG, CIDR).
fn acl_parts(m: &str) -> Option<(&str, IpNet)> {
    let (port, dst) = m.split_once(" && ")?;
    let pg = port.strip_prefix("inport == @")?;
    let net = dst.split_once(".dst == ")?.1.trim().parse().ok()?;
    Some((pg, net))
}

fn covers(net: &IpNet, dst: IpAddr) -> bool {
    net.contains(&dst)
}

/// Our rows covering `dst`, and whether each applies to `pod`.
pub fn ovn_side(observed: &Observed, pod: &PodInfo, dst: IpAddr) -> OvnSide {
    let ips: Vec<String> = pod
        .ovn
        .iter()
        .flat_map(|o| o.ips.iter().map(|n| n.addr().to_string()))
        .collect();
    let lsp = pod.lsp_name();
    let mut rows = Vec::new();
    for p in &observed.policies {
        let Some((set, net)) = policy_parts(&p.row.match_) else {
            continue;
        };
        if !covers(&net, dst) {
            continue;
        }
        let member = observed
            .address_sets
            .iter()
            .find(|a| a.row.name == set)
            .is_some_and(|a| ips.iter().any(|ip| a.row.addresses.contains(ip)));
        rows.push(OvnRow {
            table: "Logical_Router_Policy",
            route: p.row.owner.route.clone(),
            uuid: p.uuid.to_string(),
            row: format!(
                "{} priority {} match \"{}\" action {} nexthops {}",
                p.row.router,
                p.row.priority,
                p.row.match_,
                p.row.action,
                p.row.nexthops.iter().cloned().collect::<Vec<_>>().join(",")
            ),
            applies: member,
            why: if member {
                format!("the pod's OVN address is in ${set}")
            } else if ips.is_empty() {
                "the pod has no OVN address".into()
            } else {
                format!(
                    "the pod's OVN address ({}) is not in ${set}",
                    ips.join(", ")
                )
            },
        });
    }
    rows.extend(static_rows(observed, &ips, dst));
    for a in &observed.acls {
        let Some((pg, net)) = acl_parts(&a.row.match_) else {
            continue;
        };
        if !covers(&net, dst) {
            continue;
        }
        let member = observed
            .port_groups
            .iter()
            .find(|g| g.row.name == pg)
            .is_some_and(|g| g.row.ports.contains(&lsp));
        rows.push(OvnRow {
            table: "ACL",
            route: a.row.owner.route.clone(),
            uuid: a.uuid.to_string(),
            row: format!(
                "{} {} priority {} match \"{}\" action {}",
                a.row.port_group, a.row.direction, a.row.priority, a.row.match_, a.row.action
            ),
            applies: member,
            why: if member {
                format!("port {lsp} is in @{pg}")
            } else {
                format!("port {lsp} is not in @{pg}")
            },
        });
    }
    let verdict = verdict(&rows);
    OvnSide { rows, verdict }
}

/// Our static routes that take the packet: destination routes covering `dst`, and src-ip
/// routes (symmetric replies) matching one of the pod's addresses `ips`.
fn static_rows(observed: &Observed, ips: &[String], dst: IpAddr) -> Vec<OvnRow> {
    let mut rows = Vec::new();
    for s in &observed.static_routes {
        let Ok(net) = s.row.ip_prefix.parse::<IpNet>() else {
            continue;
        };
        let src_ip = s.row.policy == Some(crate::plan::nb::RoutePolicy::SrcIp);
        // A src-ip route matches the pod's own address, whatever the destination.
        let (applies, why) = if src_ip {
            let mine = ips
                .iter()
                .any(|ip| ip.parse::<IpAddr>().is_ok_and(|a| net.contains(&a)));
            if !mine {
                continue;
            }
            (
                true,
                "a src-ip route on the pod's gateway router: every packet of the pod it forwards"
                    .to_owned(),
            )
        } else {
            if !covers(&net, dst) {
                continue;
            }
            (
                true,
                "a static route applies to every packet the router forwards".to_owned(),
            )
        };
        rows.push(OvnRow {
            table: "Logical_Router_Static_Route",
            route: s.row.owner.route.clone(),
            uuid: s.uuid.to_string(),
            row: format!(
                "{} {}{} via {}{}{}",
                s.row.router,
                if src_ip { "src-ip " } else { "" },
                s.row.ip_prefix,
                s.row.nexthop,
                if s.row.bfd { " bfd" } else { "" },
                if s.row.symmetric {
                    " ecmp-symmetric-reply"
                } else {
                    ""
                }
            ),
            applies,
            why,
        });
    }
    rows
}

fn verdict(rows: &[OvnRow]) -> String {
    let applying = |t: &'static str| rows.iter().filter(move |r| r.applies && r.table == t);
    if let Some(a) = applying("ACL").next() {
        return format!("dropped by Route {}'s ACL (ovn.enforce)", a.route);
    }
    // Highest priority first, as the router evaluates them.
    let best = applying("Logical_Router_Policy").max_by_key(|r| {
        r.row
            .split(" priority ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
    });
    if let Some(p) = best {
        return format!("rerouted by Route {}'s policy: {}", p.route, p.row);
    }
    let statics: Vec<&OvnRow> = applying("Logical_Router_Static_Route").collect();
    if !statics.is_empty() {
        return format!(
            "routed by Route {}'s static route(s): {}",
            statics[0].route,
            statics
                .iter()
                .map(|r| r.row.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    "none of our rows applies: OVN routes it as it would without ovnkube-route".into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn our_match_shapes_are_read_back() {
        let (set, net) =
            policy_parts("ip4.src == $ovnkube_route_a_v4 && ip4.dst == 172.16.20.0/24").unwrap();
        assert_eq!(
            (set, net.to_string().as_str()),
            ("ovnkube_route_a_v4", "172.16.20.0/24")
        );
        let (pg, net) = acl_parts("inport == @ovnkube_route_a && ip6.dst == fd00::/64").unwrap();
        assert_eq!(
            (pg, net.to_string().as_str()),
            ("ovnkube_route_a", "fd00::/64")
        );
        assert!(policy_parts("ip4.dst == 10.0.0.0/8").is_none());
        assert!(acl_parts("outport == @x && ip4.dst == 1.2.3.0/24").is_none());
    }

    #[test]
    fn an_acl_that_applies_wins_the_verdict_over_a_policy() {
        let row = |table, applies, row: &str| OvnRow {
            table,
            route: "r".into(),
            uuid: String::new(),
            row: row.into(),
            applies,
            why: String::new(),
        };
        let rows = vec![
            row(
                "Logical_Router_Policy",
                true,
                "ovn_cluster_router priority 224 match \"m\"",
            ),
            row("ACL", false, "pg"),
        ];
        assert!(verdict(&rows).starts_with("rerouted"), "{}", verdict(&rows));
        let mut rows = rows;
        rows[1].applies = true;
        assert!(verdict(&rows).starts_with("dropped"));
        assert!(verdict(&[]).starts_with("none of our rows"));
    }
}
