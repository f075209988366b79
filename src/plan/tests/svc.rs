//! svc rules: ClusterIPs (all families), headless endpoints, missing Services.
use crate::plan::plan;
use crate::plan::pod::NextHop;
use crate::plan::testkit::*;

#[test]
fn cluster_ips_of_all_families_become_host_routes() {
    let mut pod = mk_pod("default", "p");
    pod.pod_ips.push(ip("fd00:168::5"));
    let w = world([
        pod.into(),
        mk_svc("default", "nginx", &["10.86.205.109", "fd00:86::10"]).into(),
    ]);
    let r = mk_route("r", vec![], vec![sr("default", "nginx", "eth0")]);
    let p = plan(&w, &[r], &cfg());
    assert_eq!(
        dst_dev(&p, "default", "p"),
        [
            ("10.86.205.109/32".into(), "eth0".into()),
            ("fd00:86::10/128".into(), "eth0".into())
        ]
    );
}

#[test]
fn headless_services_use_ready_endpoints_and_follow_them() {
    let mut w = world([
        mk_pod("default", "p").into(),
        mk_headless("default", "db").into(),
        mk_slice("default", "db-1", "db", &["10.124.9.5", "10.124.9.6"]).into(),
    ]);
    let r = mk_route("r", vec![], vec![sr("default", "db", "eth1")]);
    let p = plan(&w, std::slice::from_ref(&r), &cfg());
    let routes = &routes_of(&p, "default", "p").unwrap().routes;
    assert_eq!(routes.len(), 2);
    // eth1's gateway comes from pod-networks
    assert!(matches!(routes[0].next_hop, NextHop::Via(_)));
    w.apply(mk_slice("default", "db-1", "db", &["10.124.9.7"]));
    let p = plan(&w, &[r], &cfg());
    assert_eq!(
        dst_dev(&p, "default", "p"),
        [("10.124.9.7/32".into(), "eth1".into())]
    );
    assert_eq!(p.reports["r"].summary.as_str(), "Applied");
}

#[test]
fn missing_service_is_a_problem_and_the_rest_applies() {
    let w = world([
        mk_pod("default", "p").into(),
        mk_svc("default", "nginx", &["10.86.205.109"]).into(),
    ]);
    let r = mk_route(
        "r",
        vec![rr("172.16.10.0/24", "eth1")],
        vec![
            sr("default", "gone", "eth0"),
            sr("default", "nginx", "eth1"),
        ],
    );
    let p = plan(&w, &[r], &cfg());
    assert_eq!(dst_dev(&p, "default", "p").len(), 2);
    let rep = &p.reports["r"];
    assert_eq!(rep.problems.len(), 1);
    assert_eq!(rep.problems[0].reason, "ServiceNotFound");
    assert_eq!(rep.problems[0].path.as_deref(), Some("spec.svc[0]"));
    assert_eq!(rep.summary.as_str(), "Degraded");
    assert_eq!(
        p.ovn_service_ips["r"]
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["10.86.205.109"]
    );
}

#[test]
fn svc_via_applies_to_its_family_only() {
    let mut pod = mk_pod("default", "p");
    pod.pod_ips.push(ip("fd00:168::5"));
    let w = world([
        pod.into(),
        mk_svc("default", "nginx", &["10.86.0.7", "fd00:86::7"]).into(),
    ]);
    let mut rule = sr("default", "nginx", "eth0");
    rule.via = Some("169.254.1.1".into());
    let p = plan(&w, &[mk_route("r", vec![], vec![rule])], &cfg());
    let routes = &routes_of(&p, "default", "p").unwrap().routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].next_hop, via("169.254.1.1"));
    assert_eq!(p.reports["r"].problems[0].reason, "FamilyMismatch");
}

#[test]
fn explicit_via_beats_the_dev_gateway_and_empty_via_means_none() {
    let w = world([mk_pod("default", "p").into()]);
    let mut empty_via = rr("172.16.12.0/24", "eth1");
    empty_via.via = Some(String::new());
    let r = mk_route(
        "r",
        vec![rrv("172.16.11.0/24", "eth1", "10.124.0.254"), empty_via],
        vec![],
    );
    let p = plan(&w, &[r], &cfg());
    let routes = &routes_of(&p, "default", "p").unwrap().routes;
    assert_eq!(routes[0].next_hop, via("10.124.0.254"));
    let gw = mk_pod("default", "p").ovn.unwrap().gateways[0];
    assert_eq!(routes[1].next_hop, NextHop::Via(gw));
    assert!(p.reports["r"].problems.is_empty());
}
