//! `explain`, planner half: for one pod and one destination address, which Route and rule
//! decided the pod's route, and what happened to every other rule that covers the address
//! (not selected, skipped, refused by a guard, lost a conflict and to whom).
//!
//! Pure like the rest of the planner: it runs the same [`super::plan`] the controller runs
//! and reads its result back for one pod, so it cannot disagree with what is programmed.
//! Must not: look at the kernel or the NB (the controller's `explain` adds those).
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::api::Route;
use crate::api::validate::{ValidatedRoute, validate};
use crate::cluster::{PodInfo, PodPhase, World};

use super::guard::PodNets;
use super::pod::{NextHop, PodKey};
use super::{PlanConfig, plan_validated, routes, select};

/// What became of one rule covering the destination, for this pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// Programmed: this rule's route is in the pod's table.
    Programmed,
    /// The Route does not select the pod.
    NotSelected,
    /// The pod is hostNetwork or finished: never touched.
    PodSkipped { reason: String },
    /// The pod lacks the rule's interface (only this rule is skipped).
    MissingDev,
    /// The pod has no address of the destination's family on that interface.
    NoAddressOfFamily,
    /// A guard rail refused it (reason as in the Route's status).
    Refused { reason: String, message: String },
    /// Another rule claimed the same destination first with a different route.
    LostConflict {
        winner: String,
        winner_rule: String,
        why: String,
    },
    /// Another rule asks for the very same route; that one is recorded as the owner.
    SameAsWinner { winner: String },
    /// Over `--max-routes-per-pod`.
    OverLimit,
}

/// One rule of one Route whose destination covers the address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub route: String,
    /// `spec.route[i]`, `spec.svc[i]` or `spec.defaultRoute`.
    pub rule: String,
    pub dst: IpNet,
    pub dev: String,
    pub priority: i32,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The route our plan gives the pod for the address (longest prefix among our routes,
/// else our replacement default route).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub route: String,
    pub rule: String,
    pub dst: IpNet,
    pub dev: String,
    /// The gateway, or `None` when the netlink side uses the dev's own gateway (or a link
    /// route when the pod has none).
    pub via: Option<IpAddr>,
}

/// The planner's answer for one pod and one address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodExplanation {
    pub pod: String,
    pub uid: String,
    pub node: Option<String>,
    pub host_network: bool,
    pub phase: String,
    pub dst: IpAddr,
    /// `None`: none of our routes covers the address; the pod's own routes decide.
    pub decision: Option<Decision>,
    /// Every rule covering the address, Routes in precedence order.
    pub candidates: Vec<Candidate>,
}

/// Explains `dst` for the pod `namespace/name`; `None` when the world has no such pod.
/// `cfg.node` is ignored: the pod is explained wherever it runs.
pub fn explain_pod(
    world: &World,
    routes_in: &[Route],
    cfg: &PlanConfig,
    namespace: &str,
    name: &str,
    dst: IpAddr,
) -> Option<PodExplanation> {
    let pod = world.pod(namespace, name)?;
    let cfg = PlanConfig {
        node: None,
        ..cfg.clone()
    };
    let validated: Vec<ValidatedRoute> = routes_in.iter().map(validate).collect();
    let plan = plan_validated(world, &validated, &cfg);
    let key = PodKey {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
    };
    let planned = plan.pods.get(&key);
    let order = super::precedence(&validated);
    let ns_labels = select::namespace_labels(world, &pod.namespace);
    let nets = PodNets::of(pod, &cfg);
    let v6 = dst.is_ipv6();
    let mut candidates: Vec<Candidate> = Vec::new();
    // dst -> (Route, rule) of the first rule that got it programmed.
    let mut claimed: Vec<(IpNet, String, String)> = Vec::new();
    for r in &order {
        let mut problems = Vec::new();
        let resolved = routes::resolve(world, r, &mut problems);
        let selected = select::selects(world, r, pod, &ns_labels);
        let mut rules: Vec<(String, IpNet, String, Option<&routes::ResolvedRule>)> = resolved
            .rules
            .iter()
            .filter(|x| x.dst.contains(&dst))
            .map(|x| (x.path.clone(), x.dst, x.dev.to_string(), Some(x)))
            .collect();
        if let Some(d) = &r.default_route
            && d.via.is_none_or(|v| v.is_ipv6() == v6)
        {
            let any = if v6 {
                IpNet::V6(ipnet::Ipv6Net::default())
            } else {
                IpNet::V4(ipnet::Ipv4Net::default())
            };
            rules.push(("spec.defaultRoute".into(), any, d.dev.clone(), None));
        }
        for (path, net, dev, rule) in rules {
            let outcome = if !selected {
                Outcome::NotSelected
            } else if pod.host_network || pod.phase == PodPhase::Finished {
                Outcome::PodSkipped {
                    reason: if pod.host_network {
                        "HostNetwork"
                    } else {
                        "Finished"
                    }
                    .into(),
                }
            } else if !select::has_dev(pod, &dev, &cfg) {
                Outcome::MissingDev
            } else if !select::family_ok(pod, &dev, super::IpFamily::of_addr(&dst), &cfg) {
                Outcome::NoAddressOfFamily
            } else if let Some((reason, message)) = rule.and_then(|x| nets.refuse(x, r.gates)) {
                Outcome::Refused {
                    reason: reason.into(),
                    message,
                }
            } else {
                settle(
                    planned.map(|p| &**p),
                    &order,
                    r,
                    &path,
                    net,
                    &dev,
                    &mut claimed,
                )
            };
            candidates.push(Candidate {
                route: r.name.clone(),
                rule: path,
                dst: net,
                dev,
                priority: r.priority,
                outcome,
            });
        }
    }
    let decision = planned.and_then(|p| {
        let best = p
            .routes
            .iter()
            .filter(|x| x.dst.contains(&dst))
            .max_by_key(|x| x.dst.prefix_len());
        if let Some(x) = best {
            let rule = claimed
                .iter()
                .find(|(n, route, _)| *n == x.dst && *route == *x.owner)
                .map(|(_, _, rule)| rule.clone())
                .unwrap_or_default();
            return Some(Decision {
                route: x.owner.to_string(),
                rule,
                dst: x.dst,
                dev: x.dev.to_string(),
                via: via(&x.next_hop),
            });
        }
        p.default_routes
            .iter()
            .find(|d| d.family.is_v6() == v6)
            .map(|d| Decision {
                route: d.owner.clone(),
                rule: "spec.defaultRoute".into(),
                dst: candidates
                    .iter()
                    .find(|c| c.rule == "spec.defaultRoute")
                    .map_or(IpNet::from(dst), |c| c.dst),
                dev: d.dev.clone(),
                via: via(&d.next_hop),
            })
    });
    Some(PodExplanation {
        pod: format!("{namespace}/{name}"),
        uid: pod.uid.clone(),
        node: pod.node.clone(),
        host_network: pod.host_network,
        phase: phase(pod).into(),
        dst,
        decision,
        candidates,
    })
}

fn phase(pod: &PodInfo) -> &'static str {
    match pod.phase {
        PodPhase::Pending => "Pending",
        PodPhase::Running => "Running",
        PodPhase::Finished => "Finished",
        PodPhase::Unknown => "Unknown",
    }
}

fn via(h: &NextHop) -> Option<IpAddr> {
    match h {
        NextHop::Via(ip) => Some(*ip),
        NextHop::DevGateway => None,
    }
}

/// A usable rule: programmed, the same as the winner, lost to it, or over the limit.
fn settle(
    planned: Option<&super::pod::PodRoutes>,
    order: &[&ValidatedRoute],
    r: &ValidatedRoute,
    path: &str,
    net: IpNet,
    dev: &str,
    claimed: &mut Vec<(IpNet, String, String)>,
) -> Outcome {
    let default = path == "spec.defaultRoute";
    let programmed: Option<(String, String)> = planned.and_then(|p| {
        if default {
            p.default_routes
                .iter()
                .find(|d| d.family.is_v6() == net.addr().is_ipv6())
                .map(|d| (d.owner.clone(), d.dev.clone()))
        } else {
            p.routes
                .iter()
                .find(|x| x.dst == net)
                .map(|x| (x.owner.to_string(), x.dev.to_string()))
        }
    });
    let Some((owner, won_dev)) = programmed else {
        return Outcome::OverLimit;
    };
    if let Some((_, wroute, wrule)) = claimed.iter().find(|(n, _, _)| *n == net) {
        if *wroute == r.name && *wrule == path {
            return Outcome::Programmed;
        }
        return if won_dev == dev {
            Outcome::SameAsWinner {
                winner: wroute.clone(),
            }
        } else {
            let why = precedence_why(order, wroute, &r.name);
            Outcome::LostConflict {
                winner: wroute.clone(),
                winner_rule: wrule.clone(),
                why,
            }
        };
    }
    if owner == r.name {
        claimed.push((net, r.name.clone(), path.to_owned()));
        Outcome::Programmed
    } else {
        // The owner's rule was not seen covering the address (it cannot be: same dst),
        // so this only happens for a Route skipped above; report the owner plainly.
        Outcome::LostConflict {
            winner: owner.clone(),
            winner_rule: String::new(),
            why: precedence_why(order, &owner, &r.name),
        }
    }
}

/// Why Route `winner` has precedence over `loser` (docs/semantics.md, "Conflicts").
fn precedence_why(order: &[&ValidatedRoute], winner: &str, loser: &str) -> String {
    let find = |n: &str| order.iter().find(|r| r.name == n);
    let (Some(w), Some(l)) = (find(winner), find(loser)) else {
        return "it comes first in precedence order".into();
    };
    if w.name == l.name {
        return "an earlier rule of the same Route claimed it".into();
    }
    if w.priority != l.priority {
        return format!("higher spec.priority ({} > {})", w.priority, l.priority);
    }
    if w.created != l.created {
        return "same priority, created earlier".into();
    }
    "same priority and age, name sorts first".into()
}
