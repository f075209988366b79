//! Human and machine renderings of a plan: per-Route status lines, NB changes as `ovn-nbctl`
//! lines, pod routes as `ip -n <netns> route` lines, or the same as one JSON document.
use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use super::pod_diff::{PodAt, PodView, totals};
use crate::nb::diff::{NbChange, NbProblem};
use crate::nb::ops::describe;
use crate::netlink::show::plan_lines;
use crate::netlink::{ROUTE_PROTOCOL, Target, ip_route_lines};
use crate::plan::Plan;
use crate::plan::pod::NextHop;

/// A Route's counts as `plan` and `apply` print them (defined in docs/crd.md, "Counts in
/// plan and apply"): over the pods the planner plans routes for (this node's with
/// `--node`), `selected = programmable + skipped + unprogrammed`; skipped rules are
/// counted apart, as (pod, rule) pairs.
pub fn counts_line(r: &crate::plan::RouteReport) -> String {
    let h = &r.here;
    let rest = h
        .selected
        .saturating_sub(r.programmable)
        .saturating_sub(h.skipped);
    let reasons = |m: &std::collections::BTreeMap<crate::plan::SkipReason, usize>| {
        m.iter()
            .map(|(k, v)| format!("{}: {v}", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!(
        "selected={} programmable={} skipped={} unprogrammed={}",
        h.selected, r.programmable, h.skipped, rest
    );
    if r.selected != h.selected {
        let _ = write!(s, " (other nodes: {})", r.selected - h.selected);
    }
    if r.skipped_rules > 0 {
        let _ = write!(
            s,
            "; rules skipped={} ({})",
            r.skipped_rules,
            reasons(&r.skipped_rules_by_reason)
        );
    }
    s
}

/// A plan in the text form `ovnkube-route plan` prints.
pub fn text(
    plan: &Plan,
    changes: &[NbChange],
    nb_problems: &[NbProblem],
    pods: &[PodView],
    nb_note: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== Routes");
    for (name, r) in &plan.reports {
        let _ = writeln!(
            out,
            "{name}: {}  {}",
            super::summary_with_nb(r, name, nb_problems).as_str(),
            counts_line(r)
        );
        for p in &r.problems {
            let at = p.path.as_deref().or(p.pod.as_deref()).unwrap_or("-");
            let _ = writeln!(out, "  {at}: {}: {}", p.reason, p.message);
        }
        if r.problems_omitted > 0 {
            let _ = writeln!(out, "  ... and {} more problem(s)", r.problems_omitted);
        }
        for p in nb_problems.iter().filter(|p| &p.route == name) {
            let _ = writeln!(out, "  ovn: {}: {}", p.reason, p.message);
        }
    }
    let _ = writeln!(
        out,
        "\n== OVN Northbound: {} change(s){nb_note}",
        changes.len()
    );
    for c in changes {
        let _ = writeln!(out, "{}", describe(c));
    }
    pods_text(&mut out, pods);
    out
}

fn target(at: Option<&PodAt>) -> Target<'_> {
    match at {
        Some(PodAt {
            netns, named: true, ..
        }) => netns
            .file_name()
            .and_then(|f| f.to_str())
            .map_or(Target::Path(netns), Target::Named),
        Some(PodAt { netns, .. }) => Target::Path(netns),
        None => Target::Unknown,
    }
}

/// The pods section: what would change in pods found here (lines that do it), and the
/// desired routes of pods that are not (commented, desired state).
fn pods_text(out: &mut String, pods: &[PodView]) {
    let (changes, changed, away) = totals(pods);
    let _ = writeln!(
        out,
        "\n== Pod routes: {changes} change(s) in {changed} pod(s) on this machine; {away} pod(s) \
         not reachable here (desired state shown)"
    );
    for v in pods {
        let pod = &v.key;
        match &v.diff {
            Some(Ok((plan, links))) => {
                if plan.is_noop() && plan.conflicts.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "# {pod}");
                for line in plan_lines(target(v.at.as_ref()), plan, links) {
                    let _ = writeln!(out, "{line}");
                }
                for c in &plan.conflicts {
                    let _ = writeln!(
                        out,
                        "# conflict: {} is taken by a route that is not ours (proto {}); left as it is",
                        c.wanted.dst, c.foreign.protocol
                    );
                }
            }
            Some(Err(why)) => {
                let _ = writeln!(
                    out,
                    "# {pod}: its routes could not be read ({why}); desired state:"
                );
                desired_lines(out, v);
            }
            None => {
                let _ = writeln!(
                    out,
                    "# {pod}: network namespace not found on this machine (a pod of another \
                     node, not started yet, or see --cni-results / --netns-dir); desired state, \
                     to run by hand in it:"
                );
                desired_lines(out, v);
            }
        }
    }
}

fn desired_lines(out: &mut String, v: &PodView) {
    let none = |_: &str, _: bool| None;
    for line in ip_route_lines(Target::Unknown, &v.desired, ROUTE_PROTOCOL, &none) {
        let _ = writeln!(out, "{line}");
    }
}

fn next_hop_json(h: &NextHop) -> Json {
    match h {
        NextHop::Via(ip) => json!(ip.to_string()),
        NextHop::DevGateway => Json::Null,
    }
}

/// The same content as [`text`], as one JSON document.
pub fn json(
    plan: &Plan,
    changes: &[NbChange],
    nb_problems: &[NbProblem],
    pods: &[PodView],
) -> Json {
    let routes: serde_json::Map<String, Json> = plan
        .reports
        .iter()
        .map(|(name, r)| {
            (name.clone(), json!({
                "status": super::summary_with_nb(r, name, nb_problems).as_str(),
                "selectedPods": r.selected,
                "programmablePods": r.programmable,
                "skippedPods": r.skipped,
                "skipped": r.skipped_by_reason.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "skippedRules": r.skipped_rules,
                "skippedRulesByReason": r.skipped_rules_by_reason.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "problems": r.problems,
                "problemsOmitted": r.problems_omitted,
                "ovnProblems": nb_problems.iter().filter(|p| &p.route == name)
                    .map(|p| json!({"reason": p.reason, "message": p.message})).collect::<Vec<_>>(),
            }))
        })
        .collect();
    let (pod_changes, _, _) = totals(pods);
    let pods: Vec<Json> = pods.iter().map(pod_json).collect();
    json!({
        "routes": routes,
        "nb": changes.iter().map(describe).collect::<Vec<_>>(),
        "podChanges": pod_changes,
        "pods": pods,
    })
}

/// One pod: its desired routes, whether its netns is here, and (when it is) the changes
/// as lines.
fn pod_json(v: &PodView) -> Json {
    let (k, p) = (&v.key, &v.desired);
    let (changes, conflicts, error) = match &v.diff {
        Some(Ok((plan, links))) => (
            plan_lines(target(v.at.as_ref()), plan, links),
            plan.conflicts
                .iter()
                .map(|c| c.wanted.dst.to_string())
                .collect(),
            None,
        ),
        Some(Err(why)) => (Vec::new(), Vec::new(), Some(why.clone())),
        None => (Vec::new(), Vec::new(), None),
    };
    json!({
        "namespace": k.namespace, "name": k.name, "uid": k.uid,
        "reachable": v.diff.is_some(),
        "changes": v.changes(),
        "lines": changes,
        "conflicts": conflicts,
        "error": error,
        "routes": p.routes.iter().map(|r| json!({"dst": r.dst.to_string(), "dev": &*r.dev,
            "via": next_hop_json(&r.next_hop), "route": &*r.owner})).collect::<Vec<_>>(),
        "defaultRoutes": p.default_routes.iter().map(|d| json!({"ipv6": d.family.is_v6(), "dev": d.dev,
            "via": next_hop_json(&d.next_hop), "route": d.owner})).collect::<Vec<_>>(),
    })
}
