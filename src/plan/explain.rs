//! `explain`, planner half: for one pod and one destination address, which Route and rule
//! decided the pod's route, and what happened to every other rule that covers the address
//! (not selected, skipped, refused by a guard, lost a conflict and to whom).
//!
//! Pure like the rest of the planner. It walks nothing on its own: which Routes select the pod
//! (and why a selected pod is skipped) is the engine's selection, and what became of each rule
//! is the fate the pod's merge recorded while deciding its routes (`merge::merge_traced`), so
//! it cannot disagree with what is programmed. Must not: look at the kernel or the NB (the
//! controller's `explain` adds those).
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::api::Route;
use crate::cluster::{PodInfo, PodPhase, World};

use super::incremental::{Engine, PodDecisions};
use super::merge::{Fate, Traced};
use super::pod::NextHop;
use super::report::SkipReason;
use super::routes::Prepared;
use super::select::How;
use super::{IpFamily, PlanConfig};

/// What became of one rule covering the destination, for this pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum Outcome {
    /// Programmed: this rule's route is in the pod's table.
    Programmed,
    /// The Route does not select the pod.
    NotSelected,
    /// The pod is hostNetwork or finished: never touched.
    PodSkipped { reason: SkipReason },
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
/// The pod is explained wherever it runs (`cfg.node` does not matter).
pub fn explain_pod(
    world: &World,
    routes: &[Route],
    cfg: &PlanConfig,
    namespace: &str,
    name: &str,
    dst: IpAddr,
) -> Option<PodExplanation> {
    world.pod(namespace, name)?;
    let engine = Engine::build(cfg.clone(), world.clone(), routes);
    explain(&engine, namespace, name, dst)
}

/// [`explain_pod`] from an engine that already holds the world and the Routes.
pub fn explain(
    engine: &Engine,
    namespace: &str,
    name: &str,
    dst: IpAddr,
) -> Option<PodExplanation> {
    let d = engine.decisions(&(namespace.to_owned(), name.to_owned()))?;
    let candidates: Vec<Candidate> = d
        .routes
        .iter()
        .flat_map(|(p, pair)| covering(p, dst).map(move |c| (*p, *pair, c)))
        .map(|(p, pair, (path, net, dev))| {
            let outcome = outcome(&d, p, pair.map(|s| s.how), &path, net);
            Candidate {
                route: p.route.name.clone(),
                rule: path,
                dst: net,
                dev,
                priority: p.route.priority,
                outcome,
            }
        })
        .collect();
    let decision = decision(&d, dst);
    let pod = d.pod;
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

/// The rules of a Route whose destination covers `dst`: (path, destination, dev).
fn covering(p: &Prepared, dst: IpAddr) -> impl Iterator<Item = (String, IpNet, String)> + '_ {
    let family = IpFamily::of_addr(&dst);
    let rules = p
        .resolved
        .rules
        .iter()
        .filter(move |x| x.dst.contains(&dst))
        .map(|x| (x.path.clone(), x.dst, x.dev.to_string()));
    let default = p
        .route
        .default_route
        .as_ref()
        .filter(move |d| d.via.is_none_or(|v| IpFamily::of_addr(&v) == family))
        .map(move |d| {
            (
                "spec.defaultRoute".to_owned(),
                family.default_dst(),
                d.dev.clone(),
            )
        });
    rules.chain(default)
}

/// What became of one covering rule, as the selection and the merge decided.
fn outcome(
    d: &PodDecisions<'_>,
    p: &Prepared,
    how: Option<How>,
    path: &str,
    net: IpNet,
) -> Outcome {
    match how {
        None => return Outcome::NotSelected,
        Some(How::Skipped(reason)) => return Outcome::PodSkipped { reason },
        Some(How::Member { .. }) => {}
    }
    let name = &p.route.name;
    let fate = d
        .fates
        .iter()
        .find(|t| t.route == *name && t.path == path && t.dst == net);
    let Some(Traced { fate, .. }) = fate else {
        // A default route family the pod has no address of is never asked for.
        return Outcome::NoAddressOfFamily;
    };
    match fate {
        Fate::Won => Outcome::Programmed,
        Fate::SameAs { winner } => Outcome::SameAsWinner {
            winner: winner.clone(),
        },
        Fate::Lost { winner, wpath } => Outcome::LostConflict {
            winner: winner.clone(),
            winner_rule: wpath.clone(),
            why: precedence_why(d, winner, name),
        },
        Fate::Refused { why, message } => Outcome::Refused {
            reason: (*why).to_owned(),
            message: message.clone(),
        },
        Fate::OverCap => Outcome::OverLimit,
        Fate::Skipped(SkipReason::MissingDev) => Outcome::MissingDev,
        Fate::Skipped(_) => Outcome::NoAddressOfFamily,
    }
}

/// The route our plan gives the pod for `dst`: the longest prefix among our routes, else our
/// replacement default route of the family.
fn decision(d: &PodDecisions<'_>, dst: IpAddr) -> Option<Decision> {
    let planned = &d.planned;
    let won = |owner: &str, net: IpNet| {
        d.fates
            .iter()
            .find(|t| t.route == owner && t.dst == net && t.fate == Fate::Won)
            .map(|t| t.path.clone())
            .unwrap_or_default()
    };
    if let Some(x) = planned
        .routes
        .iter()
        .filter(|x| x.dst.contains(&dst))
        .max_by_key(|x| x.dst.prefix_len())
    {
        return Some(Decision {
            route: x.owner.to_string(),
            rule: won(&x.owner, x.dst),
            dst: x.dst,
            dev: x.dev.to_string(),
            via: via(&x.next_hop),
        });
    }
    let family = IpFamily::of_addr(&dst);
    planned
        .default_routes
        .iter()
        .find(|r| r.family == family)
        .map(|r| Decision {
            route: r.owner.clone(),
            rule: won(&r.owner, family.default_dst()),
            dst: family.default_dst(),
            dev: r.dev.clone(),
            via: via(&r.next_hop),
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

/// Why Route `winner` has precedence over `loser` (docs/semantics.md, "Conflicts").
fn precedence_why(d: &PodDecisions<'_>, winner: &str, loser: &str) -> String {
    let find = |n: &str| {
        d.routes
            .iter()
            .find(|(p, _)| p.route.name == n)
            .map(|(p, _)| &p.route)
    };
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
