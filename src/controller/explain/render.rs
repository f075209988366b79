//! `explain`'s text output: one block per destination address, plan / kernel / OVN / trace
//! in that order, each line saying where its fact comes from.
use std::fmt::Write as _;

use crate::plan::explain::{Candidate, Outcome};

use super::{DstExplanation, Explanation, KernelSide};

fn outcome(c: &Candidate) -> String {
    match &c.outcome {
        Outcome::Programmed => "programmed".into(),
        Outcome::NotSelected => "not selected: the Route does not select this pod".into(),
        Outcome::PodSkipped { reason } => format!("skipped: pod is {reason}"),
        Outcome::MissingDev => format!("skipped: the pod has no {} (MissingDev)", c.dev),
        Outcome::NoAddressOfFamily => format!(
            "skipped: the pod has no address of this family on {} (NoAddressOfFamily)",
            c.dev
        ),
        Outcome::Refused { reason, message } => format!("refused ({reason}): {message}"),
        Outcome::LostConflict {
            winner,
            winner_rule,
            why,
        } => format!("lost a conflict (Conflict) to Route {winner} {winner_rule}: {why}"),
        Outcome::SameAsWinner { winner } => {
            format!("same route as Route {winner}'s, which is recorded as its owner")
        }
        Outcome::OverLimit => "not programmed: over --max-routes-per-pod".into(),
    }
}

fn lookup_line(l: &crate::netlink::lookup::Lookup) -> String {
    if let Some(why) = &l.unreachable {
        return format!("no route: {why}");
    }
    let mut s = String::new();
    if let Some(g) = l.gateway {
        let _ = write!(s, "via {g} ");
    }
    let _ = write!(s, "dev {}", l.dev.as_deref().unwrap_or("?"));
    if let Some(src) = l.src {
        let _ = write!(s, " src {src}");
    }
    match (l.matched, l.protocol) {
        (Some(m), Some(p)) if p == crate::netlink::ROUTE_PROTOCOL => {
            let _ = write!(s, " (entry {m} proto {p}: ours)");
        }
        (Some(m), Some(p)) => {
            let _ = write!(s, " (entry {m} proto {p}: not ours)");
        }
        _ => {}
    }
    s
}

pub fn text(e: &Explanation) -> String {
    let mut out = String::new();
    for d in &e.destinations {
        plan_text(&mut out, e, d);
        kernel_text(&mut out, d);
        ovn_text(&mut out, d);
    }
    for n in &e.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// The planner's answer: the pod, the deciding rule, every covering rule's outcome.
fn plan_text(out: &mut String, e: &Explanation, d: &DstExplanation) {
    let p = &d.plan;
    let service = if e.asked == p.dst.to_string() {
        String::new()
    } else {
        format!(" (Service {})", e.asked)
    };
    let _ = writeln!(out, "{} -> {}{service}", e.pod, p.dst);
    let host = if p.host_network {
        ", hostNetwork (shares the node's namespace; never changed by ovnkube-route)"
    } else {
        ""
    };
    let node = p.node.as_deref().unwrap_or("no node");
    let _ = writeln!(out, "  pod: uid {} on {node}, {}{host}", p.uid, p.phase);
    match &p.decision {
        Some(dc) => {
            let via = dc.via.map(|v| format!("via {v} ")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  decided by: Route {} {} -> {} {via}dev {}",
                dc.route, dc.rule, dc.dst, dc.dev
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  decided by: no Route of ours covers it for this pod; the pod's own routes decide"
            );
        }
    }
    for c in &p.candidates {
        let _ = writeln!(
            out,
            "    Route {} (priority {}) {} {} dev {}: {}",
            c.route,
            c.priority,
            c.rule,
            c.dst,
            c.dev,
            outcome(c)
        );
    }
}

/// What the pod's kernel says (`ip route get` inside its netns).
fn kernel_text(out: &mut String, d: &DstExplanation) {
    let dst = d.plan.dst;
    match &d.kernel {
        KernelSide::Looked {
            netns,
            lookup,
            agrees,
        } => {
            let _ = writeln!(
                out,
                "  kernel (ip -n {} route get {dst}): {}",
                netns.display(),
                lookup_line(lookup)
            );
            match agrees {
                Some(true) => {
                    let _ = writeln!(out, "    matches the plan");
                }
                Some(false) => {
                    let _ = writeln!(
                        out,
                        "    DIFFERS from the plan (not programmed yet, or changed by hand: `apply` or `run` repairs it)"
                    );
                }
                None => {}
            }
        }
        KernelSide::HostNetwork { lookup } => {
            let _ = writeln!(
                out,
                "  kernel (node namespace, route get {dst}): {}",
                lookup_line(lookup)
            );
        }
        KernelSide::NotFound { why } => {
            let _ = writeln!(out, "  kernel: not asked: {why}");
        }
    }
}

/// Our NB rows that apply, and the ovn-trace verdict.
/// `next hops (Route r): 10.244.2.11 pod egress/g1 used, bfd up; ...`
fn hops_text(out: &mut String, d: &DstExplanation) {
    let Some(h) = &d.hops else { return };
    let _ = writeln!(out, "  next hops of Route {}:", h.route);
    for x in &h.hops {
        let addr = if x.address.is_empty() {
            "(no address)"
        } else {
            x.address.as_str()
        };
        let pod = x
            .pod
            .as_deref()
            .map(|p| format!(" gateway pod {p}"))
            .unwrap_or_else(|| " (spec.ovn.nextHops)".into());
        let used = match (&x.reason, x.used) {
            (_, true) => "in the ECMP set".to_owned(),
            (Some(r), false) => format!("left out: {r}"),
            (None, false) => "left out".to_owned(),
        };
        let bfd = match x.bfd.as_deref() {
            Some("up") => ", BFD up".to_owned(),
            Some(b) => format!(", BFD {b} (OVN leaves it out while its session is not up)"),
            None => String::new(),
        };
        let _ = writeln!(out, "    {addr}{pod}: {used}{bfd}");
    }
}

fn ovn_text(out: &mut String, d: &DstExplanation) {
    hops_text(out, d);
    if let Some(o) = &d.ovn {
        let _ = writeln!(out, "  ovn (NB, our rows): {}", o.verdict);
        for r in &o.rows {
            let applies = if r.applies {
                "applies"
            } else {
                "does not apply"
            };
            let _ = writeln!(
                out,
                "    {} {} [Route {}]: {applies} ({})",
                r.table, r.row, r.route, r.why
            );
        }
    }
    if let Some(t) = &d.trace {
        let _ = writeln!(out, "  ovn-trace: {}", t.verdict);
        if let Some(pol) = &t.policy {
            let _ = writeln!(out, "    {pol}");
        }
        if !t.command.is_empty() {
            let _ = writeln!(out, "    full trace: {}", t.command);
        }
    }
}
