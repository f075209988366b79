//! `explain`'s planner half: the deciding rule, and why every other covering rule lost.
use crate::plan::explain::{Outcome, explain_pod};
use crate::plan::testkit::*;

fn sel_route(name: &str, app: &str, rules: Vec<crate::api::RouteRule>) -> crate::api::Route {
    let mut r = mk_route(name, rules, vec![]);
    r.spec.pod_selector = Some(sel(&[("app", app)]));
    r.spec.targets = Vec::new();
    r
}

#[test]
fn longest_prefix_of_ours_decides_and_covering_rules_are_listed() {
    let w = world([with_labels(mk_pod("default", "p"), &[("app", "a")]).into()]);
    let wide = sel_route("wide", "a", vec![rr("172.16.0.0/16", "eth0")]);
    let narrow = sel_route("narrow", "a", vec![rr("172.16.20.0/24", "eth1")]);
    let e = explain_pod(
        &w,
        &[wide, narrow],
        &cfg(),
        "default",
        "p",
        ip("172.16.20.9"),
    )
    .unwrap();
    let d = e.decision.unwrap();
    assert_eq!((d.route.as_str(), d.dev.as_str()), ("narrow", "eth1"));
    assert_eq!(d.rule, "spec.route[0]");
    assert_eq!(d.dst.to_string(), "172.16.20.0/24");
    // eth1's gateway from pod-networks.
    assert!(d.via.is_some());
    assert_eq!(e.candidates.len(), 2);
    assert!(
        e.candidates
            .iter()
            .all(|c| c.outcome == Outcome::Programmed)
    );
    // An address outside every rule: no decision of ours, no candidates.
    let e = explain_pod(&w, &[], &cfg(), "default", "p", ip("8.8.8.8")).unwrap();
    assert!(e.decision.is_none() && e.candidates.is_empty());
}

#[test]
fn a_conflict_loser_is_told_who_won_and_why() {
    let w = world([with_labels(mk_pod("default", "p"), &[("app", "a")]).into()]);
    let mut hi = sel_route("zz-high", "a", vec![rr("172.16.10.0/24", "eth1")]);
    hi.spec.priority = 10;
    let lo = sel_route("aa-low", "a", vec![rr("172.16.10.0/24", "eth0")]);
    let e = explain_pod(&w, &[lo, hi], &cfg(), "default", "p", ip("172.16.10.1")).unwrap();
    assert_eq!(e.decision.as_ref().unwrap().route, "zz-high");
    assert_eq!(e.candidates[0].route, "zz-high", "precedence order");
    match &e.candidates[1].outcome {
        Outcome::LostConflict {
            winner,
            winner_rule,
            why,
        } => {
            assert_eq!(winner, "zz-high");
            assert_eq!(winner_rule, "spec.route[0]");
            assert!(why.contains("10 > 0"), "{why}");
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn unselected_missing_dev_and_host_network_are_told_apart() {
    let w = world([
        with_labels(mk_pod("default", "p"), &[("app", "a")]).into(),
        with_labels(calico_only(mk_pod("default", "c")), &[("app", "a")]).into(),
        {
            let mut h = with_labels(mk_pod("default", "h"), &[("app", "a")]);
            h.host_network = true;
            h.into()
        },
    ]);
    let r = sel_route(
        "r",
        "a",
        vec![rr("172.16.10.0/24", "eth1"), rr("172.16.11.0/24", "eth0")],
    );
    let other = sel_route("other", "b", vec![rr("172.16.10.0/24", "eth0")]);
    let rs = [r, other];
    let e = explain_pod(&w, &rs, &cfg(), "default", "c", ip("172.16.10.1")).unwrap();
    assert!(e.decision.is_none());
    let out: Vec<_> = e.candidates.iter().map(|c| c.outcome.clone()).collect();
    assert_eq!(out, vec![Outcome::NotSelected, Outcome::MissingDev]);
    // The pod lacking eth1 still gets the Route's eth0 rule.
    let e = explain_pod(&w, &rs, &cfg(), "default", "c", ip("172.16.11.1")).unwrap();
    assert_eq!(e.decision.unwrap().dev, "eth0");
    let e = explain_pod(&w, &rs, &cfg(), "default", "h", ip("172.16.10.1")).unwrap();
    assert!(e.host_network && e.decision.is_none());
    assert!(matches!(
        &e.candidates[1].outcome,
        Outcome::PodSkipped { reason } if *reason == crate::plan::SkipReason::HostNetwork
    ));
    assert!(explain_pod(&w, &rs, &cfg(), "default", "nope", ip("172.16.10.1")).is_none());
}

#[test]
fn a_guard_refusal_is_reported_with_its_reason() {
    let w = world([with_labels(mk_pod("default", "p"), &[("app", "a")]).into()]);
    // The pod's own OVN subnet over eth0: refused unless allowPodSubnetCapture.
    let pod = w.pod("default", "p").unwrap();
    let own = pod.ovn.as_ref().unwrap().ips[0].trunc().to_string();
    let r = sel_route("r", "a", vec![rr(&own, "eth0")]);
    let dst = pod.ovn.as_ref().unwrap().ips[0].addr();
    let e = explain_pod(&w, &[r], &cfg(), "default", "p", dst).unwrap();
    assert!(e.decision.is_none());
    assert!(
        matches!(&e.candidates[0].outcome, Outcome::Refused { reason, .. } if reason == "CapturesPodSubnet"),
        "{:?}",
        e.candidates
    );
}
