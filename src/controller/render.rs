//! Human and machine renderings of a plan: per-Route status lines, NB changes as `ovn-nbctl`
//! lines, pod routes as `ip -n <netns> route` lines, or the same as one JSON document.
use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use crate::nb::diff::{NbChange, NbProblem};
use crate::nb::ops::describe;
use crate::netlink::ip_route_lines;
use crate::plan::Plan;
use crate::plan::pod::{NextHop, PodKey};

/// A plan in the text form `ovnkube-route plan` prints.
pub fn text(
    plan: &Plan,
    changes: &[NbChange],
    nb_problems: &[NbProblem],
    netns_of: &dyn Fn(&PodKey) -> String,
    proto: u8,
    nb_note: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== Routes");
    for (name, r) in &plan.reports {
        let skipped: Vec<String> = r
            .skipped_by_reason
            .iter()
            .map(|(k, v)| format!("{}: {v}", k.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "{name}: {}  selected={} programmable={} skipped={}{}",
            super::summary_with_nb(r, name, nb_problems).as_str(),
            r.selected,
            r.programmable,
            r.skipped,
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", skipped.join(", "))
            }
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
    let n: usize = plan
        .pods
        .values()
        .map(|p| p.routes.len() + p.default_routes.len())
        .sum();
    let _ = writeln!(
        out,
        "\n== Pod routes: {n} route(s) in {} pod(s)",
        plan.pods.len()
    );
    for (pod, routes) in &plan.pods {
        let _ = writeln!(out, "# {pod}");
        for line in ip_route_lines(&netns_of(pod), routes, proto) {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

fn next_hop_json(h: &NextHop) -> Json {
    match h {
        NextHop::Via(ip) => json!(ip.to_string()),
        NextHop::DevGateway => Json::Null,
    }
}

/// The same content as [`text`], as one JSON document.
pub fn json(plan: &Plan, changes: &[NbChange], nb_problems: &[NbProblem]) -> Json {
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
                "problems": r.problems,
                "problemsOmitted": r.problems_omitted,
                "ovnProblems": nb_problems.iter().filter(|p| &p.route == name)
                    .map(|p| json!({"reason": p.reason, "message": p.message})).collect::<Vec<_>>(),
            }))
        })
        .collect();
    let pods: Vec<Json> = plan
        .pods
        .iter()
        .map(|(k, p)| {
            json!({
                "namespace": k.namespace, "name": k.name, "uid": k.uid,
                "routes": p.routes.iter().map(|r| json!({"dst": r.dst.to_string(), "dev": &*r.dev,
                    "via": next_hop_json(&r.next_hop), "route": &*r.owner})).collect::<Vec<_>>(),
                "defaultRoutes": p.default_routes.iter().map(|d| json!({"ipv6": d.family.is_v6(), "dev": d.dev,
                    "via": next_hop_json(&d.next_hop), "route": d.owner})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "routes": routes,
        "nb": changes.iter().map(describe).collect::<Vec<_>>(),
        "pods": pods,
    })
}
