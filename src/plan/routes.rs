//! Rules resolved against the world (Services -> addresses), selection per Route, and the
//! per-pod kernel routes with conflicts between Routes resolved.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::api::Problem;
use crate::api::validate::{Destination, ValidatedRoute};
use crate::cluster::{PodInfo, PodPhase, World};

use super::PlanConfig;
use super::guard::{self, PodNets};
use super::pod::{DefaultRoute, NextHop, PodKey, PodRoute, PodRoutes};
use super::report::{SkipReason, reason};
use super::select;

/// One rule with a concrete destination (a Service rule yields one per address).
#[derive(Clone, Debug)]
pub(crate) struct ResolvedRule {
    pub path: String,
    pub dst: IpNet,
    /// Shared by every pod route made from this rule (one allocation per rule, not per pod).
    pub dev: Arc<str>,
    pub via: Option<IpAddr>,
    pub from_svc: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ResolvedRoute {
    pub rules: Vec<ResolvedRule>,
}

fn problem(path: &str, pod: Option<String>, reason: &str, message: String) -> Problem {
    Problem {
        path: Some(path.to_owned()),
        pod,
        node: None,
        reason: reason.to_owned(),
        message,
    }
}

/// Turns Service rules into host routes: every ClusterIP (all families), or the ready
/// endpoints of a headless Service. A missing Service is a problem, not an error.
pub(crate) fn resolve(
    world: &World,
    route: &ValidatedRoute,
    problems: &mut Vec<Problem>,
) -> ResolvedRoute {
    let mut out = ResolvedRoute::default();
    for rule in &route.rules {
        let dev: Arc<str> = Arc::from(rule.dev.as_str());
        match &rule.dst {
            Destination::Net(net) => out.rules.push(ResolvedRule {
                path: rule.path.clone(),
                dst: *net,
                dev,
                via: rule.via,
                from_svc: false,
            }),
            Destination::Service { namespace, name } => {
                let Some(svc) = world.service(namespace, name) else {
                    problems.push(problem(
                        &rule.path,
                        None,
                        reason::SERVICE_NOT_FOUND,
                        format!("Service {namespace}/{name} does not exist"),
                    ));
                    continue;
                };
                let addrs: Vec<IpAddr> = if svc.headless {
                    world.ready_endpoints(namespace, name).into_iter().collect()
                } else {
                    svc.cluster_ips.clone()
                };
                if addrs.is_empty() && !svc.headless {
                    problems.push(problem(
                        &rule.path,
                        None,
                        reason::SERVICE_HAS_NO_ADDRESS,
                        format!("Service {namespace}/{name} has no ClusterIP"),
                    ));
                }
                let mut mismatched = Vec::new();
                for a in addrs {
                    if let Some(v) = rule.via
                        && v.is_ipv6() != a.is_ipv6()
                    {
                        mismatched.push(a);
                        continue;
                    }
                    out.rules.push(ResolvedRule {
                        path: rule.path.clone(),
                        dst: IpNet::from(a),
                        dev: dev.clone(),
                        via: rule.via,
                        from_svc: true,
                    });
                }
                if !mismatched.is_empty() {
                    problems.push(problem(
                        &format!("{}.via", rule.path),
                        None,
                        reason::FAMILY_MISMATCH,
                        format!(
                            "via {} cannot reach {}; no route for those addresses",
                            rule.via.map(|v| v.to_string()).unwrap_or_default(),
                            mismatched
                                .iter()
                                .map(|a| a.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// Who a Route selected.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteSelection {
    /// Indexes into [`Selected::pods`] of selected pods not skipped entirely.
    pub members: Vec<usize>,
    pub selected: usize,
    pub programmable: usize,
    /// Selected pods still Pending.
    pub waiting: usize,
    pub skipped_by_reason: BTreeMap<SkipReason, usize>,
    /// Selected pods skipped entirely (hostNetwork, finished, or no rule usable).
    pub skipped_whole: usize,
    /// (pod, rule) pairs skipped because the pod lacks the rule's dev or address family,
    /// counted over the pods not skipped entirely for another reason.
    pub skipped_rules: usize,
    /// Of those, per reason.
    pub skipped_rules_by_reason: BTreeMap<SkipReason, usize>,
    /// The same, counted over this node's pods only (all pods when no node is set).
    pub here: super::report::NodeCounts,
}

impl RouteSelection {
    fn skip(&mut self, why: SkipReason) {
        *self.skipped_by_reason.entry(why).or_default() += 1;
    }
}

pub(crate) struct Selected<'w> {
    pub pods: Vec<&'w PodInfo>,
    pub per_route: Vec<RouteSelection>,
}

/// Applies selection, exclusion and the skip rules for every Route over every pod.
pub(crate) fn select_all<'w>(
    world: &'w World,
    order: &[&ValidatedRoute],
    resolved: &[ResolvedRoute],
    cfg: &PlanConfig,
) -> Selected<'w> {
    let pods: Vec<&PodInfo> = world.pods().collect();
    let mut per_route: Vec<RouteSelection> = vec![RouteSelection::default(); order.len()];
    // Distinct (dev, family) pairs each Route needs, for the per-rule skip counts; `None`
    // for a default route without via, whose families follow the pod's addresses.
    // With the number of rules (resolved rules, and the default route) behind each pair.
    let needs: Vec<BTreeMap<(String, Option<bool>), usize>> = order
        .iter()
        .zip(resolved)
        .map(|(r, rr)| {
            let mut s: BTreeMap<(String, Option<bool>), usize> = BTreeMap::new();
            for x in &rr.rules {
                *s.entry((x.dev.to_string(), Some(matches!(x.dst, IpNet::V6(_)))))
                    .or_default() += 1;
            }
            if let Some(d) = &r.default_route {
                *s.entry((d.dev.clone(), d.via.map(|v| v.is_ipv6())))
                    .or_default() += 1;
            }
            s
        })
        .collect();
    let mut ns_cache: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for (pi, pod) in pods.iter().enumerate() {
        let ns_labels = ns_cache
            .entry(pod.namespace.as_str())
            .or_insert_with(|| select::namespace_labels(world, &pod.namespace));
        for (ri, r) in order.iter().enumerate() {
            if !select::selects(world, r, pod, ns_labels) {
                continue;
            }
            let sel = &mut per_route[ri];
            let here = cfg
                .node
                .as_ref()
                .is_none_or(|n| pod.node.as_ref() == Some(n));
            sel.selected += 1;
            sel.here.selected += usize::from(here);
            if pod.host_network || pod.phase == PodPhase::Finished {
                sel.here.skipped += usize::from(here);
                sel.skipped_whole += 1;
                let why = if pod.host_network {
                    SkipReason::HostNetwork
                } else {
                    SkipReason::Finished
                };
                sel.skip(why);
                continue;
            }
            if pod.phase == PodPhase::Pending {
                sel.waiting += 1;
                sel.here.waiting += usize::from(here);
            }
            sel.members.push(pi);
            let mut missing_dev = false;
            let mut no_family = false;
            let mut usable = 0;
            for ((dev, v6), rules) in &needs[ri] {
                let why = if !select::has_dev(pod, dev, cfg) {
                    missing_dev = true;
                    SkipReason::MissingDev
                } else if let Some(v6) = v6
                    && !select::family_ok(pod, dev, *v6, cfg)
                {
                    no_family = true;
                    SkipReason::NoAddressOfFamily
                } else {
                    usable += 1;
                    continue;
                };
                sel.skipped_rules += rules;
                sel.here.skipped_rules += if here { *rules } else { 0 };
                *sel.skipped_rules_by_reason.entry(why).or_default() += rules;
            }
            if usable == 0 && !needs[ri].is_empty() {
                // Nothing of this Route applies to the pod: it is skipped as a whole.
                sel.here.skipped += usize::from(here);
                sel.skipped_whole += 1;
            }
            if missing_dev {
                sel.skip(SkipReason::MissingDev);
            }
            if no_family {
                sel.skip(SkipReason::NoAddressOfFamily);
            }
        }
    }
    Selected { pods, per_route }
}

fn next_hop(pod: &PodInfo, dev: &str, via: Option<IpAddr>, v6: bool, cfg: &PlanConfig) -> NextHop {
    match via.or_else(|| select::dev_gateway(pod, dev, v6, cfg)) {
        Some(ip) => NextHop::Via(ip),
        None => NextHop::DevGateway,
    }
}

/// Who claimed a destination in a pod first.
struct Claim {
    route: usize,
    path: String,
}

/// Conflicts are reported once per (loser rule, winner rule, destination) with a pod count.
type ConflictKey = (usize, String, usize, String, String);

pub(crate) fn pod_routes(
    order: &[&ValidatedRoute],
    resolved: &[ResolvedRoute],
    sel: &mut Selected<'_>,
    cfg: &PlanConfig,
    problems: &mut [Vec<Problem>],
    previous: Option<&BTreeMap<PodKey, Arc<PodRoutes>>>,
) -> BTreeMap<PodKey, Arc<PodRoutes>> {
    // Per pod, the Routes that apply, in precedence order.
    let mut by_pod: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (ri, s) in sel.per_route.iter().enumerate() {
        for &pi in &s.members {
            by_pod.entry(pi).or_default().push(ri);
        }
    }
    let mut conflicts: BTreeMap<ConflictKey, (usize, String)> = BTreeMap::new();
    // (Route, rule path, reason) -> (pods, first pod, message) of rules a guard refused.
    let mut refused: BTreeMap<(usize, String, &'static str), (usize, String, String)> =
        BTreeMap::new();
    // Route -> (pods, routes not given, first pod) over the per-pod cap.
    let mut capped: BTreeMap<usize, (usize, usize, String)> = BTreeMap::new();
    let mut out = BTreeMap::new();
    // One owner string per Route, shared by all its pod routes.
    let owners: Vec<Arc<str>> = order.iter().map(|r| Arc::from(r.name.as_str())).collect();
    for (pi, ris) in by_pod {
        let pod = sel.pods[pi];
        if cfg
            .node
            .as_ref()
            .is_some_and(|n| pod.node.as_ref() != Some(n))
        {
            continue;
        }
        let mut chosen: BTreeMap<IpNet, (PodRoute, Claim)> = BTreeMap::new();
        let mut defaults: BTreeMap<bool, (DefaultRoute, Claim)> = BTreeMap::new();
        let mut contributed: BTreeSet<usize> = BTreeSet::new();
        let mut dev_cache: BTreeMap<(&str, bool), Option<NextHop>> = BTreeMap::new();
        let own = PodNets::of(pod, cfg);
        for ri in ris {
            let r = order[ri];
            let mut over_cap = 0;
            for rule in &resolved[ri].rules {
                let v6 = matches!(rule.dst, IpNet::V6(_));
                // (dev, family) -> the dev's next hop, or None when the rule is skipped;
                // Routes with thousands of rules hit few distinct pairs.
                let usable = dev_cache.entry((&*rule.dev, v6)).or_insert_with(|| {
                    (select::has_dev(pod, &rule.dev, cfg)
                        && select::family_ok(pod, &rule.dev, v6, cfg))
                    .then(|| next_hop(pod, &rule.dev, None, v6, cfg))
                });
                let Some(dev_hop) = usable else {
                    continue;
                };
                if let Some((why, message)) = own.refuse(rule, r.gates) {
                    let e = refused
                        .entry((ri, rule.path.clone(), why))
                        .or_insert_with(|| (0, pod.to_string_key(), message));
                    e.0 += 1;
                    continue;
                }
                if chosen.len() >= cfg.max_routes_per_pod && !chosen.contains_key(&rule.dst) {
                    over_cap += 1;
                    continue;
                }
                let route = PodRoute {
                    dst: rule.dst,
                    dev: rule.dev.clone(),
                    next_hop: rule.via.map_or_else(|| dev_hop.clone(), NextHop::Via),
                    owner: owners[ri].clone(),
                };
                match chosen.get(&rule.dst) {
                    None => {
                        contributed.insert(ri);
                        chosen.insert(
                            rule.dst,
                            (
                                route,
                                Claim {
                                    route: ri,
                                    path: rule.path.clone(),
                                },
                            ),
                        );
                    }
                    Some((won, claim)) => {
                        if won.dev == route.dev && won.next_hop == route.next_hop {
                            continue; // identical: not a conflict
                        }
                        let e = conflicts
                            .entry((
                                ri,
                                rule.path.clone(),
                                claim.route,
                                claim.path.clone(),
                                rule.dst.to_string(),
                            ))
                            .or_insert_with(|| (0, pod.to_string_key()));
                        e.0 += 1;
                    }
                }
            }
            if over_cap > 0 {
                let e = capped
                    .entry(ri)
                    .or_insert_with(|| (0, 0, pod.to_string_key()));
                e.0 += 1;
                e.1 += over_cap;
            }
            if let Some(d) = &r.default_route {
                for v6 in default_families(pod, d.via, &d.dev, cfg) {
                    let dr = DefaultRoute {
                        ipv6: v6,
                        dev: d.dev.clone(),
                        next_hop: next_hop(pod, &d.dev, d.via, v6, cfg),
                        owner: r.name.clone(),
                    };
                    match defaults.get(&v6) {
                        None => {
                            contributed.insert(ri);
                            defaults.insert(
                                v6,
                                (
                                    dr,
                                    Claim {
                                        route: ri,
                                        path: "spec.defaultRoute".into(),
                                    },
                                ),
                            );
                        }
                        Some((won, claim)) => {
                            if won.dev == dr.dev && won.next_hop == dr.next_hop {
                                continue;
                            }
                            let dst = if v6 { "::/0" } else { "0.0.0.0/0" };
                            let e = conflicts
                                .entry((
                                    ri,
                                    "spec.defaultRoute".into(),
                                    claim.route,
                                    claim.path.clone(),
                                    dst.into(),
                                ))
                                .or_insert_with(|| (0, pod.to_string_key()));
                            e.0 += 1;
                        }
                    }
                }
            }
        }
        for ri in contributed {
            sel.per_route[ri].programmable += 1;
        }
        if chosen.is_empty() && defaults.is_empty() {
            continue;
        }
        let key = PodKey {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        };
        let routes = PodRoutes {
            routes: chosen.into_values().map(|(r, _)| r).collect(),
            default_routes: defaults.into_values().map(|(d, _)| d).collect(),
        };
        let shared = match previous.and_then(|p| p.get(&key)) {
            Some(old) if **old == routes => old.clone(),
            _ => Arc::new(routes),
        };
        out.insert(key, shared);
    }
    for ((ri, path, why), (count, pod, message)) in refused {
        problems[ri].push(problem(
            &format!("{path}.dst"),
            Some(pod),
            why,
            format!("{message}; {count} pod(s) affected"),
        ));
    }
    for (ri, (pods, routes, pod)) in capped {
        problems[ri].push(Problem {
            path: None,
            pod: Some(pod),
            node: None,
            reason: guard::reason::TOO_MANY_ROUTES.into(),
            message: format!(
                "{routes} route(s) over the limit of {} per pod not programmed, in {pods} pod(s) \
                 (--max-routes-per-pod; Routes of higher precedence are served first)",
                cfg.max_routes_per_pod
            ),
        });
    }
    for ((loser, path, winner, wpath, dst), (count, pod)) in conflicts {
        let winner_name = &order[winner].name;
        let whose = if loser == winner {
            format!("this Route's {wpath}")
        } else {
            format!("Route {winner_name:?} ({wpath})")
        };
        problems[loser].push(problem(
            &path,
            Some(pod),
            reason::CONFLICT,
            format!("{dst} is routed differently by {whose}, which wins; {count} pod(s) affected"),
        ));
    }
    out
}

/// Families for a default route: the via's family when given, else every family the pod
/// has an address of on that dev (IPv4 when nothing is known).
fn default_families(pod: &PodInfo, via: Option<IpAddr>, dev: &str, cfg: &PlanConfig) -> Vec<bool> {
    if let Some(v) = via {
        return if select::family_ok(pod, dev, v.is_ipv6(), cfg) {
            vec![v.is_ipv6()]
        } else {
            vec![]
        };
    }
    let addrs = select::dev_addrs(pod, dev, cfg);
    if addrs.is_empty() {
        return vec![false];
    }
    let mut fams: Vec<bool> = addrs.iter().map(|a| a.is_ipv6()).collect();
    fams.sort();
    fams.dedup();
    fams
}

trait PodName {
    fn to_string_key(&self) -> String;
}

impl PodName for PodInfo {
    fn to_string_key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}
