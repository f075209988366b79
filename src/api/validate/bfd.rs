//! Validation of the live next hop settings: `ovn.nextHopPods` and `ovn.bfd` (a boolean or
//! the session timers). A bad part is reported and left out; the fail-safe meaning of each
//! is spelt out where it is decided.
use serde_json::Value;

use super::{BfdTimers, HopPods, Problem, check_k8s_name, problem, reason, selector};
use crate::api::NextHopPods;
use crate::api::quote::quote;

/// `ovn.bfd` -> (BFD on, its timers). Anything but a boolean or an object of the three
/// timers is reported `InvalidBfd` and counts as BFD off: a session that cannot be
/// configured as asked is not created (BFD down drops a next hop, so a half-understood
/// setting must not be able to take traffic away).
pub(super) fn validate_bfd(
    v: Option<&Value>,
    problems: &mut Vec<Problem>,
) -> (bool, Option<BfdTimers>) {
    let bad = |problems: &mut Vec<Problem>, path: &str, m: String| {
        problems.push(problem(path.into(), reason::INVALID_BFD, m));
        (false, None)
    };
    let obj = match v {
        None | Some(Value::Null) => return (false, None),
        Some(Value::Bool(b)) => return (*b, None),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return bad(
                problems,
                "spec.ovn.bfd",
                format!("{other} is neither true/false nor {{minTx, minRx, detectMult}}"),
            );
        }
    };
    let mut t = BfdTimers::default();
    for (k, val) in obj {
        let (slot, lo, hi) = match k.as_str() {
            "minTx" => (&mut t.min_tx, 1, BfdTimers::MAX_INTERVAL_MS),
            "minRx" => (&mut t.min_rx, 0, BfdTimers::MAX_INTERVAL_MS),
            "detectMult" => (&mut t.detect_mult, 1, BfdTimers::MAX_DETECT_MULT),
            _ => {
                return bad(
                    problems,
                    "spec.ovn.bfd",
                    format!(
                        "unknown field {}: the timers are minTx, minRx (ms) and detectMult",
                        quote(k)
                    ),
                );
            }
        };
        match val.as_i64() {
            Some(n) if (lo..=hi).contains(&n) => *slot = Some(n),
            _ => {
                return bad(
                    problems,
                    &format!("spec.ovn.bfd.{k}"),
                    format!("{val} is not an integer in {lo}..={hi}"),
                );
            }
        }
    }
    (true, Some(t))
}

/// `ovn.nextHopPods` -> the gateway selection. Both selectors are required; a missing or
/// invalid one is reported `InvalidNextHopPods` and the whole setting is left out (no
/// gateway pod is a hop, never "every pod").
pub(super) fn validate_hop_pods(
    v: Option<&NextHopPods>,
    problems: &mut Vec<Problem>,
) -> Option<HopPods> {
    let v = v?;
    const AT: &str = "spec.ovn.nextHopPods";
    let mut ok = true;
    let mut compile = |sel: &Option<_>, field: &str, problems: &mut Vec<Problem>| {
        let path = format!("{AT}.{field}");
        let Some(sel) = sel else {
            problems.push(problem(
                path,
                reason::INVALID_NEXT_HOP_PODS,
                format!("{field} is required (`{{}}` selects every one)"),
            ));
            ok = false;
            return None;
        };
        match selector::compile(sel) {
            Ok(s) => Some(s),
            Err(errs) => {
                for (sub, m) in errs {
                    problems.push(problem(
                        format!("{path}.{sub}"),
                        reason::INVALID_SELECTOR,
                        m,
                    ));
                }
                ok = false;
                None
            }
        }
    };
    let namespaces = compile(&v.namespace_selector, "namespaceSelector", problems);
    let pods = compile(&v.pod_selector, "podSelector", problems);
    let network = match v.network.as_deref() {
        None | Some("") => None,
        Some(n) => match n.split_once('/') {
            Some((ns, name)) if check_k8s_name(ns) && check_k8s_name(name) => {
                Some((ns.to_owned(), name.to_owned()))
            }
            _ => {
                problems.push(problem(
                    format!("{AT}.network"),
                    reason::INVALID_NEXT_HOP_PODS,
                    format!(
                        "{} is not namespace/name of a NetworkAttachmentDefinition",
                        quote(n)
                    ),
                ));
                ok = false;
                None
            }
        },
    };
    Some(HopPods {
        namespaces: namespaces?,
        pods: pods?,
        network,
    })
    .filter(|_| ok)
}
