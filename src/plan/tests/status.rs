//! Status material: summary, conditions, bounded problems.
use crate::plan::plan;
use crate::plan::testkit::*;

#[test]
fn applied_degraded_invalid_pending() {
    let mut pending = mk_pod("default", "starting");
    pending.phase = crate::cluster::PodPhase::Pending;
    pending.ovn = None;
    pending.pod_ips.clear();
    let w = world([mk_pod("default", "p").into()]);

    let ok = mk_route("ok", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    let degraded = mk_route(
        "degraded",
        vec![rr("172.16.11.0/24", "eth1"), rr("bad", "eth1")],
        vec![],
    );
    let invalid = mk_route(
        "invalid",
        vec![rr("bad", "eth1")],
        vec![sr("", "x", "eth0")],
    );
    let p = plan(&w, &[ok, degraded, invalid], &cfg());
    assert_eq!(p.reports["ok"].summary.as_str(), "Applied");
    assert_eq!(p.reports["degraded"].summary.as_str(), "Degraded");
    assert_eq!(p.reports["invalid"].summary.as_str(), "Invalid");

    let c = &p.reports["invalid"].conditions;
    let by_type: std::collections::BTreeMap<_, _> = c.iter().map(|c| (c.type_, c)).collect();
    assert!(!by_type["Ready"].status);
    assert!(by_type["Invalid"].status);
    assert_eq!(by_type["Invalid"].reason, "InvalidCIDR");
    assert!(
        by_type["Invalid"]
            .message
            .starts_with("spec.route[0].dst: "),
        "{}",
        by_type["Invalid"].message
    );
    assert!(
        by_type["Invalid"].message.contains("and 1 more"),
        "{}",
        by_type["Invalid"].message
    );
    let d = &p.reports["degraded"].conditions;
    assert!(d.iter().any(|c| c.type_ == "Ready" && c.status));
    assert!(d.iter().any(|c| c.type_ == "Degraded" && c.status));

    let only_pending = world([pending.into()]);
    let p = plan(
        &only_pending,
        &[mk_route("r", vec![rr("172.16.10.0/24", "eth1")], vec![])],
        &cfg(),
    );
    assert_eq!(p.reports["r"].summary.as_str(), "Pending");
}

#[test]
fn problems_are_bounded_and_the_rest_counted() {
    let rules = (0..50).map(|i| rr(&format!("bad{i}"), "eth1")).collect();
    let mut c = cfg();
    c.max_problems = 5;
    let p = plan(&world([]), &[mk_route("r", rules, vec![])], &c);
    let rep = &p.reports["r"];
    assert_eq!(rep.problems.len(), 5);
    assert_eq!(rep.problems_omitted, 45);
    assert_eq!(rep.problems[0].path.as_deref(), Some("spec.route[0].dst"));
}

#[test]
fn same_name_twice_in_file_mode_keeps_the_one_with_precedence() {
    let w = world([mk_pod("default", "p").into()]);
    let mut a = mk_route("same", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    a.spec.priority = 1;
    let b = mk_route("same", vec![rr("172.16.10.0/24", "eth0")], vec![]);
    let p = plan(&w, &[b.clone(), a.clone()], &cfg());
    assert_eq!(dst_dev(&p, "default", "p")[0].1, "eth1");
    assert_eq!(p, plan(&w, &[a, b], &cfg()));
    assert_eq!(p.nb.port_groups.len(), 1);
}

#[test]
fn pods_with_garbage_annotations_are_still_planned() {
    use k8s_openapi::api::core::v1::Pod;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": "default", "name": "g", "uid": "u",
            "annotations": {"k8s.ovn.org/pod-networks": "{{{", "k8s.v1.cni.cncf.io/network-status": "[{]"}},
        "spec": {"containers": []},
        "status": {"phase": "Running", "podIPs": [{"ip": "192.168.0.4"}]}
    }))
    .unwrap();
    let w = world([crate::cluster::PodInfo::from(&pod).into()]);
    let r = mk_route(
        "r",
        vec![rr("172.16.10.0/24", "eth1"), rr("172.16.11.0/24", "eth0")],
        vec![],
    );
    let p = plan(&w, &[r], &cfg());
    // no OVN info: eth1 is assumed absent, eth0 present
    assert_eq!(
        dst_dev(&p, "default", "g"),
        [("172.16.11.0/24".into(), "eth0".into())]
    );
    assert!(p.nb.port_groups[0].ports.is_empty());
}

#[test]
fn svc_rules_over_ovn_make_no_policy_but_are_listed_for_the_load_balancer_check() {
    let w = world([
        mk_pod("default", "p").into(),
        mk_svc("default", "nginx", &["10.86.205.109"]).into(),
    ]);
    let mut r = mk_route("r", vec![], vec![sr("default", "nginx", "eth1")]);
    r.spec.pod_selector = Some(sel(&[]));
    r.spec.ovn = Some(crate::api::OvnSpec {
        next_hops: vec!["100.64.0.2".into()],
        ..Default::default()
    });
    let p = plan(&w, &[r], &cfg());
    assert!(p.nb.policies.is_empty());
    assert!(p.ovn_service_ips["r"].contains(&ip("10.86.205.109")));
}
