//! A Route prepared for planning: validated, its rules resolved against the world
//! (Services -> addresses), and what a pod must have for its rules (devs and families).
//! Everything here depends on the Route and the Services it names only, never on other
//! Routes or on pods.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::api::Problem;
use crate::api::validate::{Destination, ValidatedRoute};
use crate::cluster::{ObjectKey, World};

use super::PlanConfig;
use super::family::IpFamily;
use super::guard;
use super::report::reason;

/// One rule with a concrete destination (a Service rule yields one per address).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ResolvedRule {
    pub path: String,
    pub dst: IpNet,
    /// Shared by every pod route made from this rule (one allocation per rule, not per pod).
    pub dev: Arc<str>,
    pub via: Option<IpAddr>,
    pub from_svc: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
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

/// A Route ready to plan.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Prepared {
    pub route: ValidatedRoute,
    pub resolved: ResolvedRoute,
    /// Validation problems, then Service resolution and cluster network problems, in rule
    /// order.
    pub problems: Vec<Problem>,
    /// The Route's name, shared by every pod route it gives (one allocation per Route).
    pub owner: Arc<str>,
    /// Distinct (dev, family) pairs the Route's rules need in a pod, for the per-rule skip
    /// counts; `None` for a default route without via, whose families follow the pod's
    /// addresses. With the number of rules (resolved rules, and the default route) behind
    /// each pair: a pod lacking the pair skips that many (pod, rule) pairs.
    pub needs: BTreeMap<(String, Option<IpFamily>), usize>,
    /// Selects every pod and excludes none: OVN rows may be static routes.
    pub everything: bool,
    /// The gateway pods of `ovn.nextHopPods` (empty without it), sorted.
    pub gateways: Vec<super::gateways::Gateway>,
}

pub(crate) fn prepare(world: &World, route: ValidatedRoute, cfg: &PlanConfig) -> Prepared {
    let mut problems = route.problems.clone();
    let mut resolved = resolve(world, &route, &mut problems);
    guard::cluster_networks(&route, &mut resolved, cfg, &mut problems);
    let mut needs: BTreeMap<(String, Option<IpFamily>), usize> = BTreeMap::new();
    for x in &resolved.rules {
        *needs
            .entry((x.dev.to_string(), Some(IpFamily::of_net(&x.dst))))
            .or_default() += 1;
    }
    if let Some(d) = &route.default_route {
        *needs
            .entry((d.dev.clone(), d.via.as_ref().map(IpFamily::of_addr)))
            .or_default() += 1;
    }
    let everything = route.selection.is_everything() && route.exclude.is_empty();
    let gateways = route
        .ovn
        .hop_pods
        .as_ref()
        .map(|hp| super::gateways::gateways(world, hp))
        .unwrap_or_default();
    Prepared {
        gateways,
        owner: Arc::from(route.name.as_str()),
        route,
        resolved,
        problems,
        needs,
        everything,
    }
}

/// The Services a Route's rules name, `(namespace, name)`.
pub(crate) fn services(route: &ValidatedRoute) -> BTreeSet<ObjectKey> {
    route
        .rules
        .iter()
        .filter_map(|r| match &r.dst {
            Destination::Service { namespace, name } => Some((namespace.clone(), name.clone())),
            Destination::Net(_) => None,
        })
        .collect()
}
