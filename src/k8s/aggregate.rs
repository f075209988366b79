//! One Route's status from every node's report and the status writer's own view. Pure: no
//! I/O, the clock is an argument.
//!
//! Definitions (docs/crd.md, "Status"): counts are summed over the nodes' reports and add up,
//! `selectedPods = programmedPods + skippedPods + failedPods + pendingPods`; `problems` lists
//! the Route's own problems first (validation, conflicts, Services; from the writer's plan),
//! then node problems tagged with their node, deduplicated, at most [`MAX_PROBLEMS`];
//! `failingNodes` names at most [`MAX_FAILING_NODES`] nodes that report failed pods or
//! node-side problems. Condition times move only when a condition's status changes.
use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{NodeRouteReport, Problem, RouteStatus};
use crate::controller::status::RouteLocal;
use crate::plan::Summary;
use crate::plan::report::{ConditionSummary, conditions};

pub const MAX_PROBLEMS: usize = 20;
pub const MAX_FAILING_NODES: usize = 10;

/// The status this Route should have.
///
/// `local` is the writer's own view (`None` when its loop has not planned the Route yet: the
/// status is then Pending); `reports` every node's entry for this Route; `observed` the status
/// the API server holds now (condition times are kept from it); `now` stamps conditions that
/// change.
pub fn route_status(
    local: Option<&RouteLocal>,
    reports: &[(&str, &NodeRouteReport)],
    observed: Option<&RouteStatus>,
    now: &Time,
) -> RouteStatus {
    let mut st = RouteStatus::default();
    let (mut selected, mut programmed, mut skipped, mut failed, mut pending) = (0, 0, 0, 0, 0);
    let mut skipped_rules = 0;
    // Every distinct problem (the same problem seen by several nodes counts once), the
    // Route's own first; then bounded.
    let mut problems: Vec<Problem> = Vec::new();
    let mut seen: BTreeSet<(Option<String>, Option<String>, String, String)> = BTreeSet::new();
    let mut omitted: i64 = local.map_or(0, |l| l.route_problems_omitted as i64);
    let mut push = |p: Problem| {
        let key = (
            p.path.clone(),
            p.pod.clone(),
            p.reason.clone(),
            p.message.clone(),
        );
        if seen.insert(key) {
            problems.push(p);
        }
    };
    if let Some(l) = local {
        l.route_problems.iter().cloned().for_each(&mut push);
    }
    let mut failing: BTreeSet<&str> = BTreeSet::new();
    for (node, r) in reports {
        selected += r.selected;
        programmed += r.programmed;
        skipped += r.skipped;
        failed += r.failed;
        pending += r.pending;
        skipped_rules += r.skipped_rules;
        if r.failed > 0 || !r.problems.is_empty() {
            failing.insert(node);
        }
        for p in &r.problems {
            push(Problem {
                node: Some((*node).to_owned()),
                ..p.clone()
            });
        }
    }
    if problems.len() > MAX_PROBLEMS {
        omitted += (problems.len() - MAX_PROBLEMS) as i64;
        problems.truncate(MAX_PROBLEMS);
    }
    let invalid = local.is_some_and(|l| l.summary == Summary::Invalid);
    let n_problems = problems.len() + omitted as usize;
    let summary = match local {
        None => Summary::Pending,
        Some(_) => Summary::decide(
            invalid,
            n_problems > 0 || failed > 0,
            selected > 0 && programmed == 0 && pending > 0,
        ),
    };
    st.status = Some(summary.as_str().to_owned());
    st.observed_generation = local.and_then(|l| l.generation);
    st.selected_pods = Some(selected);
    st.programmed_pods = Some(programmed);
    st.skipped_pods = Some(skipped);
    st.failed_pods = Some(failed);
    st.pending_pods = Some(pending);
    st.skipped_rules = Some(skipped_rules);
    let counts = format!(
        "{selected} pod(s) selected: {programmed} programmed, {skipped} skipped, {failed} failed, {pending} pending"
    );
    let conds = conditions(
        summary,
        counts,
        problems.first(),
        n_problems,
        Some(("PodsFailed", format!("{failed} pod(s) failed"))),
    );
    st.problems = problems;
    st.problems_omitted = (omitted > 0).then_some(omitted);
    let n_failing = failing.len();
    st.failing_nodes = failing
        .into_iter()
        .take(MAX_FAILING_NODES)
        .map(str::to_owned)
        .collect();
    st.failing_nodes_omitted =
        (n_failing > MAX_FAILING_NODES).then(|| (n_failing - MAX_FAILING_NODES) as i64);
    st.conditions = stamped(conds, observed, st.observed_generation, now);
    st.next_hops = local.map(|l| l.next_hops.clone()).unwrap_or_default();
    st
}

/// Conditions with their times: a condition whose status did not change keeps the time the
/// API server holds; one that changed is stamped `now`.
fn stamped(
    conds: Vec<ConditionSummary>,
    observed: Option<&RouteStatus>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    conds
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" }.to_owned();
            let last = observed
                .and_then(|o| o.conditions.iter().find(|x| x.type_ == c.type_))
                .filter(|x| x.status == status)
                .map(|x| x.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: c.type_.to_owned(),
                status,
                reason: c.reason,
                message: c.message,
                observed_generation: generation,
                last_transition_time: last,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::status::PodCounts;

    fn t(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn local(summary: Summary, problems: &[&str]) -> RouteLocal {
        RouteLocal {
            next_hops: Vec::new(),
            generation: Some(4),
            summary,
            counts: PodCounts::default(),
            route_problems: problems
                .iter()
                .map(|r| Problem {
                    path: Some("spec.route[0].dst".into()),
                    reason: (*r).into(),
                    message: format!("{r} happened"),
                    ..Problem::default()
                })
                .collect(),
            route_problems_omitted: 0,
            node_problems: vec![],
        }
    }

    fn report(sel: i64, prog: i64, failed: i64, pending: i64) -> NodeRouteReport {
        NodeRouteReport {
            route: "r".into(),
            generation: Some(4),
            selected: sel,
            programmed: prog,
            skipped: sel - prog - failed - pending,
            failed,
            pending,
            skipped_rules: 0,
            problems: vec![],
        }
    }

    fn cond<'a>(s: &'a RouteStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn counts_are_summed_and_add_up() {
        let l = local(Summary::Applied, &[]);
        let a = report(10, 9, 0, 1);
        let mut b = report(5, 3, 0, 0);
        b.skipped_rules = 3;
        let s = route_status(Some(&l), &[("n1", &a), ("n2", &b)], None, &t(100));
        assert_eq!(s.status.as_deref(), Some("Applied"));
        assert_eq!(s.observed_generation, Some(4));
        let sum = s.programmed_pods.unwrap()
            + s.skipped_pods.unwrap()
            + s.failed_pods.unwrap()
            + s.pending_pods.unwrap();
        assert_eq!(s.selected_pods, Some(15));
        assert_eq!(sum, 15);
        assert_eq!(s.skipped_rules, Some(3));
        assert!(s.failing_nodes.is_empty());
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Degraded").status, "False");
        assert_eq!(cond(&s, "Ready").observed_generation, Some(4));
    }

    #[test]
    fn failing_nodes_are_named_bounded_and_counted() {
        let l = local(Summary::Applied, &[]);
        let mut reports = Vec::new();
        for i in 0..15 {
            let mut r = report(2, 1, 1, 0);
            r.problems.push(Problem {
                pod: Some(format!("default/p{i}")),
                reason: "ProgrammingFailed".into(),
                message: "netns vanished".into(),
                ..Problem::default()
            });
            reports.push((format!("node{i:02}"), r));
        }
        let refs: Vec<(&str, &NodeRouteReport)> =
            reports.iter().map(|(n, r)| (n.as_str(), r)).collect();
        let s = route_status(Some(&l), &refs, None, &t(100));
        assert_eq!(s.status.as_deref(), Some("Degraded"));
        assert_eq!(s.failing_nodes.len(), MAX_FAILING_NODES);
        assert_eq!(s.failing_nodes[0], "node00");
        assert_eq!(s.failing_nodes_omitted, Some(5));
        assert_eq!(s.failed_pods, Some(15));
        assert_eq!(s.problems.len(), 15);
        assert_eq!(s.problems[0].node.as_deref(), Some("node00"));
        assert_eq!(cond(&s, "Degraded").reason, "ProgrammingFailed");
    }

    #[test]
    fn problems_are_bounded_deduplicated_and_route_problems_come_first() {
        let l = local(Summary::Degraded, &["InvalidCIDR"]);
        let mut a = report(30, 30, 0, 0);
        for i in 0..30 {
            a.problems.push(Problem {
                pod: Some(format!("default/p{i}")),
                reason: "Conflict".into(),
                message: "lost".into(),
                ..Problem::default()
            });
        }
        // The same node-level problem from two nodes, without a pod: listed once.
        let nb = Problem {
            reason: "RouterNotFound".into(),
            message: "no router x".into(),
            ..Problem::default()
        };
        let mut b = report(0, 0, 0, 0);
        b.problems.push(nb.clone());
        let mut c = report(0, 0, 0, 0);
        c.problems.push(nb);
        let s = route_status(Some(&l), &[("a", &a), ("b", &b), ("c", &c)], None, &t(1));
        assert_eq!(s.problems[0].reason, "InvalidCIDR");
        assert_eq!(s.problems.len(), MAX_PROBLEMS);
        assert_eq!(s.problems_omitted, Some(30 + 1 - (MAX_PROBLEMS as i64 - 1)));
        assert!(cond(&s, "Degraded").message.contains("more problem"));
    }

    #[test]
    fn condition_times_move_only_on_change_and_invalid_wins() {
        let l = local(Summary::Applied, &[]);
        let a = report(1, 1, 0, 0);
        let first = route_status(Some(&l), &[("n", &a)], None, &t(100));
        let again = route_status(Some(&l), &[("n", &a)], Some(&first), &t(200));
        assert_eq!(first, again, "nothing changed: the status is identical");
        let bad = local(Summary::Invalid, &["InvalidCIDR"]);
        let s = route_status(Some(&bad), &[("n", &a)], Some(&first), &t(300));
        assert_eq!(s.status.as_deref(), Some("Invalid"));
        assert_eq!(cond(&s, "Invalid").last_transition_time, t(300));
        assert_eq!(cond(&s, "Ready").last_transition_time, t(300));
        let unplanned = route_status(None, &[], None, &t(1));
        assert_eq!(unplanned.status.as_deref(), Some("Pending"));
        let waiting = report(2, 0, 0, 2);
        let s = route_status(Some(&l), &[("n", &waiting)], None, &t(1));
        assert_eq!(s.status.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Ready").status, "False");
    }
}
