//! The OVN Northbound rows a set of Routes needs (see `docs/semantics.md`, "OVN side").
//!
//! Per Route: Address_Sets `ovnkube_route_<name>_ip4` / `_ip6` and Port_Group
//! `ovnkube_route_<name>` (`-` becomes `_`; OVN identifiers allow `[A-Za-z0-9_.]`, and
//! Kubernetes names never contain `_`, so the mapping is injective). With `ovn.nextHops`:
//! reroute Logical_Router_Policy rows, or Logical_Router_Static_Route rows when the Route
//! selects every pod. With `ovn.enforce`: drop ACLs on the Port_Group.
//!
//! Row ids come only from the Route name and rule content (family, destination, next
//! hop), never from positions, so reordering rules changes nothing.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::api::Problem;
use crate::api::validate::ValidatedRoute;

use super::nb::{DesiredNb, NbAcl, NbAddressSet, NbPolicy, NbPortGroup, NbStaticRoute, Owner};
use super::report::reason;
use super::routes::{ResolvedRoute, Selected};
use super::{NbScope, PlanConfig};

pub(crate) struct OvnPlan {
    pub nb: DesiredNb,
    pub next_hops: BTreeMap<String, BTreeMap<IpAddr, BTreeSet<String>>>,
    pub ovn_service_ips: BTreeMap<String, BTreeSet<IpAddr>>,
}

fn ident(route: &str) -> String {
    format!("ovnkube_route_{}", route.replace('-', "_"))
}

/// `$name` of a Route's Address_Set for one family.
///
/// Ends in `_v4` / `_v6`, never `_ip4` / `_ip6`: ovn-northd derives Southbound address sets
/// named `<port group>_ip4` / `<port group>_ip6` from every Port_Group, so an NB Address_Set
/// with such a name collides with the one derived from our own Port_Group and makes every
/// Southbound commit of ovn-northd fail ("constraint violation"), for the whole cluster.
pub fn address_set_name(route: &str, v6: bool) -> String {
    format!("{}_{}", ident(route), if v6 { "v6" } else { "v4" })
}

/// `@name` of a Route's Port_Group.
pub fn port_group_name(route: &str) -> String {
    ident(route)
}

fn fam(v6: bool) -> &'static str {
    if v6 { "ip6" } else { "ip4" }
}

fn is_v6(n: &IpNet) -> bool {
    matches!(n, IpNet::V6(_))
}

/// Policy priority inside the band: the destination's prefix length decides first (more
/// specific wins, as in a routing table), then precedence among the Routes with a policy
/// for the same destination on the same router (`rank` 0 = highest precedence).
/// IPv6 prefix lengths are scaled to the IPv4 range (/128 -> 32) so one band serves both.
pub(crate) fn policy_priority(cfg: &PlanConfig, dst: &IpNet, rank: usize) -> i64 {
    let lo = cfg.priority_min.min(cfg.priority_max);
    let hi = cfg.priority_max.max(cfg.priority_min);
    let slots = hi - lo + 1;
    let bucket = if is_v6(dst) {
        (i64::from(dst.prefix_len()) + 3) / 4
    } else {
        i64::from(dst.prefix_len())
    };
    const BUCKETS: i64 = 33;
    if slots < BUCKETS {
        return lo + bucket * slots / BUCKETS;
    }
    let width = slots / BUCKETS;
    let rank = i64::try_from(rank).unwrap_or(i64::MAX);
    let offset = (width - 1).saturating_sub(rank).max(0);
    (lo + bucket * width + offset).min(hi)
}

pub(crate) fn desired_nb(
    order: &[&ValidatedRoute],
    resolved: &[ResolvedRoute],
    sel: &Selected<'_>,
    cfg: &PlanConfig,
    problems: &mut [Vec<Problem>],
) -> OvnPlan {
    let mut nb = DesiredNb::default();
    let mut next_hops: BTreeMap<String, BTreeMap<IpAddr, BTreeSet<String>>> = BTreeMap::new();
    let mut ovn_service_ips: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    // (router, dst) -> how many higher-precedence Routes already have a policy for it.
    let mut policy_rank: BTreeMap<(String, IpNet), usize> = BTreeMap::new();
    // (router, prefix) -> (Route index, next hops) of the static route owner.
    let mut static_claims: BTreeMap<(String, IpNet), (usize, BTreeSet<IpAddr>)> = BTreeMap::new();

    for (ri, r) in order.iter().enumerate() {
        let name = &r.name;
        let owner = |id: String| Owner {
            route: name.clone(),
            id: format!("{name}/{id}"),
        };
        let mut ip4 = BTreeSet::new();
        let mut ip6 = BTreeSet::new();
        let mut ports = BTreeSet::new();
        for &pi in &sel.per_route[ri].members {
            let pod = sel.pods[pi];
            if cfg.nb_scope == NbScope::Node
                && cfg
                    .node
                    .as_ref()
                    .is_some_and(|n| pod.node.as_ref() != Some(n))
            {
                continue;
            }
            let Some(o) = &pod.ovn else { continue };
            for ip in &o.ips {
                match ip.addr() {
                    a @ IpAddr::V4(_) => ip4.insert(a.to_string()),
                    a @ IpAddr::V6(_) => ip6.insert(a.to_string()),
                };
            }
            ports.insert(pod.lsp_name());
        }
        nb.address_sets.push(NbAddressSet {
            owner: owner("address-set/ip4".into()),
            name: address_set_name(name, false),
            addresses: ip4,
        });
        nb.address_sets.push(NbAddressSet {
            owner: owner("address-set/ip6".into()),
            name: address_set_name(name, true),
            addresses: ip6,
        });
        let pg = port_group_name(name);
        nb.port_groups.push(NbPortGroup {
            owner: owner("port-group".into()),
            name: pg.clone(),
            ports,
        });

        let router = r
            .ovn
            .router
            .clone()
            .unwrap_or_else(|| cfg.default_router.clone());
        let everything = r.selection.is_everything() && r.exclude.is_empty();
        let rules = &resolved[ri].rules;

        for rule in rules
            .iter()
            .filter(|x| x.from_svc && *x.dev == *cfg.ovn_dev)
        {
            ovn_service_ips
                .entry(name.clone())
                .or_default()
                .insert(rule.dst.addr());
        }

        if r.ovn.bfd && !everything && !r.ovn.next_hops.is_empty() {
            problems[ri].push(Problem {
                path: Some("spec.ovn.bfd".into()),
                pod: None,
                node: None,
                reason: reason::BFD_NOT_SUPPORTED.into(),
                message: "this Route selects some pods, so it is written as Logical_Router_Policy \
                          rows, which have no BFD in OVN 23.03 (NB schema 7.0.0); the policies \
                          are written without it (BFD applies to Routes that select every pod)"
                    .into(),
            });
        }
        if !r.ovn.next_hops.is_empty() {
            let mut done: BTreeSet<IpNet> = BTreeSet::new();
            // ClusterIP traffic is load-balanced (DNAT to a backend) on the logical switch
            // before it reaches the router, so a policy on a ClusterIP would never match:
            // only CIDR rules get policies.
            for rule in rules
                .iter()
                .filter(|x| !x.from_svc && *x.dev == *cfg.ovn_dev)
            {
                if !done.insert(rule.dst) {
                    continue;
                }
                let v6 = is_v6(&rule.dst);
                let hops: BTreeSet<IpAddr> = r
                    .ovn
                    .next_hops
                    .iter()
                    .copied()
                    .filter(|h| h.is_ipv6() == v6)
                    .collect();
                if hops.is_empty() {
                    problems[ri].push(Problem {
                        path: Some(format!("{}.dst", rule.path)),
                        pod: None,
                        node: None,
                        reason: reason::NO_NEXT_HOP_FOR_FAMILY.into(),
                        message: format!(
                            "spec.ovn.nextHops has no {} address for {}; no OVN row for it",
                            if v6 { "IPv6" } else { "IPv4" },
                            rule.dst
                        ),
                    });
                    continue;
                }
                if everything {
                    let key = (router.clone(), rule.dst);
                    if let Some((winner, whops)) = static_claims.get(&key) {
                        if *whops != hops {
                            problems[ri].push(Problem {
                                path: Some(rule.path.clone()),
                                pod: None,
                                node: None,
                                reason: reason::CONFLICT.into(),
                                message: format!(
                                    "static route {} on {router} is owned by Route {:?}, which wins",
                                    rule.dst, order[*winner].name
                                ),
                            });
                        }
                        continue;
                    }
                    static_claims.insert(key, (ri, hops.clone()));
                    for h in &hops {
                        nb.static_routes.push(NbStaticRoute {
                            owner: owner(format!("static-route/{}/{h}", rule.dst)),
                            router: router.clone(),
                            ip_prefix: rule.dst.to_string(),
                            nexthop: h.to_string(),
                            policy: None,
                            bfd: r.ovn.bfd,
                        });
                    }
                } else {
                    let rank = policy_rank.entry((router.clone(), rule.dst)).or_default();
                    let priority = policy_priority(cfg, &rule.dst, *rank);
                    *rank += 1;
                    nb.policies.push(NbPolicy {
                        owner: owner(format!("policy/{}", rule.dst)),
                        router: router.clone(),
                        priority,
                        match_: format!(
                            "{f}.src == ${} && {f}.dst == {}",
                            address_set_name(name, v6),
                            rule.dst,
                            f = fam(v6)
                        ),
                        action: "reroute".into(),
                        nexthops: hops.iter().map(|h| h.to_string()).collect(),
                    });
                }
                for h in hops {
                    next_hops
                        .entry(router.clone())
                        .or_default()
                        .entry(h)
                        .or_default()
                        .insert(name.clone());
                }
            }
        }

        if r.ovn.enforce {
            let dsts: BTreeSet<IpNet> = rules
                .iter()
                .filter(|x| *x.dev != *cfg.ovn_dev)
                .map(|x| x.dst)
                .collect();
            for dst in dsts {
                nb.acls.push(NbAcl {
                    owner: owner(format!("acl/{dst}")),
                    port_group: pg.clone(),
                    direction: "from-lport".into(),
                    priority: cfg.acl_priority,
                    match_: format!("inport == @{pg} && {}.dst == {dst}", fam(is_v6(&dst))),
                    action: "drop".into(),
                });
            }
        }
    }

    nb.address_sets.sort();
    nb.port_groups.sort();
    nb.policies.sort();
    nb.static_routes.sort();
    nb.acls.sort();
    OvnPlan {
        nb,
        next_hops,
        ovn_service_ips,
    }
}
