//! Conflicts between Routes (and inside one Route) for the same pod and destination.
use crate::plan::plan;
use crate::plan::testkit::*;

#[test]
fn higher_priority_wins_and_loser_is_told() {
    let w = world([mk_pod("default", "p").into(), mk_pod("default", "q").into()]);
    let mut hi = mk_route("zz-high", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    hi.spec.priority = 10;
    let lo = mk_route(
        "aa-low",
        vec![rr("172.16.10.0/24", "eth0"), rr("172.16.20.0/24", "eth0")],
        vec![],
    );
    let p = plan(&w, &[lo, hi], &cfg());
    let r = &routes_of(&p, "default", "p").unwrap().routes;
    assert_eq!(&*r[0].dev, "eth1");
    assert_eq!(&*r[0].owner, "zz-high");
    assert_eq!(&*r[1].owner, "aa-low");
    let lp = &p.reports["aa-low"].problems;
    assert_eq!(lp.len(), 1, "one problem for two pods: {lp:?}");
    assert_eq!(lp[0].reason, "Conflict");
    assert_eq!(lp[0].path.as_deref(), Some("spec.route[0]"));
    assert!(
        lp[0].message.contains("zz-high") && lp[0].message.contains("2 pod(s)"),
        "{}",
        lp[0].message
    );
    assert!(p.reports["zz-high"].problems.is_empty());
    assert_eq!(p.reports["aa-low"].summary.as_str(), "Degraded");
}

#[test]
fn ties_go_to_the_older_then_to_the_name() {
    let w = world([mk_pod("default", "p").into()]);
    let young = created(
        mk_route("a", vec![rr("172.16.10.0/24", "eth0")], vec![]),
        2000,
    );
    let old = created(
        mk_route("b", vec![rr("172.16.10.0/24", "eth1")], vec![]),
        1000,
    );
    let p = plan(&w, &[young, old], &cfg());
    assert_eq!(
        &*routes_of(&p, "default", "p").unwrap().routes[0].owner,
        "b"
    );

    let a = mk_route("a", vec![rr("172.16.10.0/24", "eth0")], vec![]);
    let b = mk_route("b", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    let p = plan(&w, &[b, a], &cfg());
    assert_eq!(
        &*routes_of(&p, "default", "p").unwrap().routes[0].owner,
        "a"
    );
    assert_eq!(p.reports["b"].problems[0].reason, "Conflict");
}

#[test]
fn identical_rules_from_two_routes_are_not_a_conflict() {
    let w = world([mk_pod("default", "p").into()]);
    let a = mk_route("a", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    let b = mk_route("b", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    let p = plan(&w, &[a, b], &cfg());
    assert_eq!(routes_of(&p, "default", "p").unwrap().routes.len(), 1);
    assert!(p.reports["a"].problems.is_empty() && p.reports["b"].problems.is_empty());
}

#[test]
fn conflict_only_where_both_select_the_pod() {
    let w = world([
        with_labels(mk_pod("default", "p"), &[("app", "x")]).into(),
        mk_pod("default", "q").into(),
    ]);
    let mut a = mk_route("a", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    a.spec.pod_selector = Some(sel(&[("app", "x")]));
    a.spec.priority = 5;
    let b = mk_route("b", vec![rr("172.16.10.0/24", "eth0")], vec![]);
    let p = plan(&w, &[a, b], &cfg());
    assert_eq!(dst_dev(&p, "default", "p")[0].1, "eth1");
    assert_eq!(dst_dev(&p, "default", "q")[0].1, "eth0");
    assert!(p.reports["b"].problems[0].message.contains("1 pod(s)"));
}

#[test]
fn svc_address_equal_to_a_route_dst_in_the_same_route() {
    let w = world([
        mk_pod("default", "p").into(),
        mk_svc("default", "s", &["172.16.10.5"]).into(),
    ]);
    let r = mk_route(
        "r",
        vec![rr("172.16.10.5", "eth1")],
        vec![sr("default", "s", "eth0")],
    );
    let p = plan(&w, &[r], &cfg());
    assert_eq!(
        dst_dev(&p, "default", "p"),
        [("172.16.10.5/32".into(), "eth1".into())]
    );
    let pr = &p.reports["r"].problems[0];
    assert_eq!(pr.path.as_deref(), Some("spec.svc[0]"));
    assert!(
        pr.message.contains("this Route's spec.route[0]"),
        "{}",
        pr.message
    );
}

#[test]
fn default_route_conflicts_resolve_the_same_way() {
    let w = world([mk_pod("default", "p").into()]);
    let mut a = mk_route("a", vec![], vec![]);
    a.spec.default_route = Some(crate::api::DefaultRouteRule {
        dev: "eth1".into(),
        via: None,
    });
    a.spec.priority = 1;
    let mut b = mk_route("b", vec![], vec![]);
    b.spec.default_route = Some(crate::api::DefaultRouteRule {
        dev: "eth0".into(),
        via: Some("169.254.1.1".into()),
    });
    let p = plan(&w, &[b, a], &cfg());
    let d = &routes_of(&p, "default", "p").unwrap().default_routes;
    assert_eq!(d.len(), 1);
    assert_eq!(&*d[0].owner, "a");
    assert_eq!(
        p.reports["b"].problems[0].path.as_deref(),
        Some("spec.defaultRoute")
    );
}
