//! This instance's view of every Route's status: the planner's report, the NB side's
//! problems (where this instance writes the NB) and what the pod pass did on this node.
//!
//! Owns: the per-node counts and their definitions (docs/crd.md, "Status"):
//! `selected = programmed + skipped + failed + pending`, over this node's pods.
//! Must not: write anything; the Kubernetes status writer and file mode's log lines consume
//! what is computed here. Pure.
use std::collections::{BTreeMap, BTreeSet};

use crate::api::{Problem, Route};
use crate::cluster::PodPhase;
use crate::nb::diff::NbProblem;
use crate::plan::Summary;
use crate::plan::incremental::Engine;
use crate::plan::pod::PodKey;

/// Per-Route pod counts over this node's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PodCounts {
    /// Pods the Route selects.
    pub selected: usize,
    /// Selected pods whose routes from this Route are all in place.
    pub programmed: usize,
    /// Selected pods the Route never touches (hostNetwork, finished, or lacking every
    /// interface / address family its rules need).
    pub skipped: usize,
    /// Selected pods whose programming failed.
    pub failed: usize,
    /// Selected pods not programmable yet (phase Pending, or no network namespace found).
    pub pending: usize,
    /// (pod, rule) pairs skipped because the pod lacks the rule's interface or address
    /// family; not part of the pod sum above.
    pub skipped_rules: usize,
}

/// What one instance knows of one Route.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RouteLocal {
    /// `metadata.generation` of the version planned.
    pub generation: Option<i64>,
    /// The one-word status as this instance sees it.
    pub summary: Summary,
    pub counts: PodCounts,
    /// Problems of the Route itself (validation, conflicts, Services), bounded by the planner.
    pub route_problems: Vec<Problem>,
    /// Problems beyond the planner's bound.
    pub route_problems_omitted: usize,
    /// Problems only this node sees: pods whose programming failed, and NB problems when
    /// this instance writes the NB.
    pub node_problems: Vec<Problem>,
    /// The Route's next hops (static and gateway pods) and whether each is used.
    pub next_hops: Vec<crate::api::NextHopStatus>,
}

/// This instance's view of every Route, by name.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NodeStatus {
    pub routes: BTreeMap<String, RouteLocal>,
    /// Built by the loop (false only in the placeholder a status channel starts with: a
    /// Route missing from that is not known yet, not gone).
    pub published: bool,
}

/// What the last pod pass left behind, per pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodOutcome {
    /// Pods whose programming failed, with why.
    pub failed: BTreeMap<PodKey, String>,
    /// Pods with routes planned but no network namespace found.
    pub no_netns: BTreeSet<PodKey>,
}

/// Bound on node problems listed per Route.
pub const MAX_NODE_PROBLEMS: usize = 10;

/// Builds the node's view from the planner's state (`routes`: the Routes it plans, for
/// their generations), the NB side's problems and what the pod side did.
pub fn node_status<R: std::borrow::Borrow<Route>>(
    routes: &[R],
    engine: &Engine,
    nb_problems: &[NbProblem],
    pods: &PodOutcome,
    bfd: &BTreeMap<String, String>,
) -> NodeStatus {
    let (failed, no_netns) = pod_troubles(engine, pods);
    let generations: BTreeMap<&str, Option<i64>> = routes
        .iter()
        .map(|r| {
            let r = r.borrow();
            (
                r.metadata.name.as_deref().unwrap_or_default(),
                r.metadata.generation,
            )
        })
        .collect();
    let mut nb_by_route: BTreeMap<&str, Vec<&NbProblem>> = BTreeMap::new();
    for p in nb_problems {
        nb_by_route.entry(p.route.as_str()).or_default().push(p);
    }
    let mut out = NodeStatus {
        published: true,
        ..NodeStatus::default()
    };
    for (name, report) in engine.reports() {
        let here = report.here;
        let fails = failed.get(name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let pending = here.waiting + no_netns.get(name.as_str()).copied().unwrap_or(0);
        let counts = PodCounts {
            selected: here.selected,
            skipped: here.skipped,
            skipped_rules: here.skipped_rules,
            failed: fails.len(),
            pending,
            programmed: here
                .selected
                .saturating_sub(here.skipped + fails.len() + pending),
        };
        let mut node_problems: Vec<Problem> = nb_by_route
            .get(name.as_str())
            .into_iter()
            .flatten()
            .map(|p| Problem {
                reason: p.reason.clone(),
                message: p.message.clone(),
                ..Problem::default()
            })
            .collect();
        node_problems.extend(fails.iter().map(|(pod, why)| Problem {
            pod: Some(pod.to_string()),
            reason: "ProgrammingFailed".into(),
            message: (*why).to_owned(),
            ..Problem::default()
        }));
        node_problems.truncate(MAX_NODE_PROBLEMS);
        let summary = if report.summary == Summary::Applied && !node_problems.is_empty() {
            Summary::Degraded
        } else {
            report.summary
        };
        out.routes.insert(
            name.clone(),
            RouteLocal {
                generation: generations.get(name.as_str()).copied().flatten(),
                summary,
                counts,
                route_problems: report.problems.clone(),
                route_problems_omitted: report.problems_omitted,
                node_problems,
                next_hops: hops_with_bfd(engine, name, &report.next_hops, bfd),
            },
        );
    }
    out
}

/// Route -> pods of this node (from the plan) that failed, and how many wait for their
/// network namespace.
#[allow(clippy::type_complexity)]
fn pod_troubles<'a>(
    engine: &Engine,
    pods: &'a PodOutcome,
) -> (
    BTreeMap<String, Vec<(PodKey, &'a str)>>,
    BTreeMap<String, usize>,
) {
    let world = engine.world();
    // Route -> pods of this node (from the plan) that failed / wait for their netns. Only
    // the pods in trouble are looked up: a pass costs what went wrong, not every pod.
    let mut failed: BTreeMap<String, Vec<(PodKey, &str)>> = BTreeMap::new();
    let mut no_netns: BTreeMap<String, usize> = BTreeMap::new();
    let owners = |key: &PodKey| -> Vec<String> {
        let Some((planned, pr)) = engine.pod_routes(&(key.namespace.clone(), key.name.clone()))
        else {
            return Vec::new();
        };
        if planned != *key {
            return Vec::new();
        }
        let set: BTreeSet<&str> = pr
            .routes
            .iter()
            .map(|r| &*r.owner)
            .chain(pr.default_routes.iter().map(|d| d.owner.as_str()))
            .collect();
        set.into_iter().map(str::to_owned).collect()
    };
    for (key, why) in &pods.failed {
        for o in owners(key) {
            failed.entry(o).or_default().push((key.clone(), why));
        }
    }
    for key in pods
        .no_netns
        .iter()
        .filter(|k| !pods.failed.contains_key(*k))
    {
        // A pod still in phase Pending is counted as waiting by the planner already.
        let waiting = world
            .pod(&key.namespace, &key.name)
            .is_some_and(|p| p.phase == PodPhase::Pending);
        if !waiting {
            for o in owners(key) {
                *no_netns.entry(o).or_default() += 1;
            }
        }
    }
    (failed, no_netns)
}

/// The Route's next hops, each with its BFD session's state when the Route uses BFD.
pub(crate) fn hops_with_bfd(
    engine: &Engine,
    route: &str,
    hops: &[crate::api::NextHopStatus],
    bfd: &BTreeMap<String, String>,
) -> Vec<crate::api::NextHopStatus> {
    let uses = engine.validated(route).is_some_and(|v| v.ovn.bfd);
    hops.iter()
        .map(|h| crate::api::NextHopStatus {
            bfd: uses.then(|| bfd.get(&h.address).cloned()).flatten(),
            ..h.clone()
        })
        .collect()
}

/// Routes that do not decode are Invalid, whatever their last readable version planned
/// (that version keeps being planned, so what it programmed stays).
pub fn mark_undecodable<'a>(
    view: &mut NodeStatus,
    routes: impl IntoIterator<Item = &'a crate::controller::inputs::Undecodable>,
) {
    for u in routes {
        let entry = view.routes.entry(u.name.clone()).or_default();
        entry.generation = u.generation;
        entry.summary = Summary::Invalid;
        entry.route_problems = vec![Problem {
            reason: "Undecodable".into(),
            message: format!(
                "the Route object cannot be read ({}); what its last readable version programmed stays",
                u.error
            ),
            ..Problem::default()
        }];
        entry.route_problems_omitted = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PodInfo, World};
    use crate::plan::testkit::*;

    fn key(world: &World, name: &str) -> PodKey {
        let p = world.pod("default", name).unwrap();
        PodKey {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
        }
    }

    fn web(name: &str, node: &str) -> PodInfo {
        on_node(
            with_labels(mk_pod("default", name), &[("app", "web")]),
            node,
        )
    }

    #[test]
    fn counts_add_up_over_programmed_failed_pending_and_skipped() {
        let mut world = World::new();
        for n in ["a", "b", "c", "d"] {
            world.apply(web(n, "n1"));
        }
        let mut host = web("host", "n1");
        host.host_network = true;
        world.apply(host);
        world.apply(web("other-node", "n2"));
        let mut r = mk_route("web", vec![rr("172.16.0.0/16", "eth1")], vec![]);
        r.spec.pod_selector = Some(sel(&[("app", "web")]));
        r.metadata.generation = Some(3);
        let mut cfg = cfg();
        cfg.node = Some("n1".into());
        let e = Engine::build(cfg, world.clone(), std::slice::from_ref(&r));
        let mut outcome = PodOutcome::default();
        outcome
            .failed
            .insert(key(&world, "b"), "netns vanished".into());
        outcome.no_netns.insert(key(&world, "c"));
        let nb = [NbProblem {
            route: "web".into(),
            reason: "RouterNotFound".into(),
            message: "no router".into(),
        }];
        let s = node_status(
            std::slice::from_ref(&r),
            &e,
            &nb,
            &outcome,
            &BTreeMap::new(),
        );
        let web = &s.routes["web"];
        assert_eq!(web.generation, Some(3));
        assert_eq!(
            web.counts,
            PodCounts {
                selected: 5,
                programmed: 2,
                skipped: 1,
                failed: 1,
                pending: 1,
                skipped_rules: 0,
            }
        );
        let c = web.counts;
        assert_eq!(c.selected, c.programmed + c.skipped + c.failed + c.pending);
        assert_eq!(web.summary, Summary::Degraded);
        let reasons: Vec<&str> = web
            .node_problems
            .iter()
            .map(|p| p.reason.as_str())
            .collect();
        assert_eq!(reasons, ["RouterNotFound", "ProgrammingFailed"]);
        assert_eq!(web.node_problems[1].pod.as_deref(), Some("default/b"));
    }

    #[test]
    fn a_clean_pass_is_applied_with_every_pod_programmed() {
        let mut world = World::new();
        world.apply(mk_pod("default", "a"));
        let r = mk_route("all", vec![rr("172.16.0.0/16", "eth1")], vec![]);
        let e = Engine::build(cfg(), world, std::slice::from_ref(&r));
        let s = node_status(
            std::slice::from_ref(&r),
            &e,
            &[],
            &PodOutcome::default(),
            &BTreeMap::new(),
        );
        let all = &s.routes["all"];
        assert_eq!(all.summary, Summary::Applied);
        assert_eq!(all.counts.programmed, 1);
        assert!(all.node_problems.is_empty());
    }
}
