//! Guard rails (issue 9 point 3): rules that would cut pods off their own networks are
//! refused with a reason in status unless `spec.feature_gate` lifts the guard; a cap on
//! routes per pod.
use crate::plan::guard::reason;
use crate::plan::testkit::*;
use crate::plan::{PlanConfig, Summary, plan};

fn reasons(p: &crate::plan::Plan, route: &str) -> Vec<(String, String)> {
    p.reports[route]
        .problems
        .iter()
        .map(|x| (x.path.clone().unwrap_or_default(), x.reason.clone()))
        .collect()
}

#[test]
fn the_pods_own_subnet_and_calicos_gateway_are_refused_per_pod() {
    // mk_pod_n(.., 1): eth0 192.168.0.1, eth1 10.124.0.1/24 with gateway 10.124.0.1.
    let w = world([
        mk_pod_n("default", "a", 1).into(),
        mk_pod_n("default", "b", 300).into(),
    ]);
    let r = mk_route(
        "r",
        vec![
            rr("10.124.0.0/24", "eth0"),
            rr("169.254.1.1/32", "eth1"),
            rr("172.16.0.0/16", "eth1"),
        ],
        vec![],
    );
    let p = plan(&w, &[r], &cfg());
    // Pod a's own OVN subnet is 10.124.0.0/24, b's is 10.124.1.0/24: only a is refused it.
    assert_eq!(
        dst_dev(&p, "default", "a"),
        [("172.16.0.0/16".to_string(), "eth1".to_string())]
    );
    let b = dst_dev(&p, "default", "b");
    assert!(
        b.contains(&("10.124.0.0/24".into(), "eth0".into())),
        "{b:?}"
    );
    assert!(!b.iter().any(|(d, _)| d == "169.254.1.1/32"), "{b:?}");
    assert_eq!(
        reasons(&p, "r"),
        [
            (
                "spec.route[0].dst".to_string(),
                reason::CAPTURES_POD_SUBNET.to_string()
            ),
            (
                "spec.route[1].dst".to_string(),
                reason::CAPTURES_GATEWAY.to_string()
            ),
        ]
    );
    assert_eq!(p.reports["r"].summary, Summary::Degraded);
    let msg = &p.reports["r"].problems[1].message;
    assert!(
        msg.contains("allowGatewayCapture") && msg.contains("2 pod(s)"),
        "{msg}"
    );
}

#[test]
fn a_feature_gate_lifts_its_guard_only() {
    let w = world([mk_pod_n("default", "a", 1).into()]);
    let mut r = mk_route(
        "r",
        vec![rr("10.124.0.128/25", "eth0"), rr("169.254.1.1/32", "eth1")],
        vec![],
    );
    r.spec
        .feature_gate
        .insert("allowPodSubnetCapture".into(), "true".into());
    let p = plan(&w, &[r.clone()], &cfg());
    assert_eq!(
        dst_dev(&p, "default", "a"),
        [("10.124.0.128/25".to_string(), "eth0".to_string())]
    );
    r.spec
        .feature_gate
        .insert("allowGatewayCapture".into(), "TRUE".into());
    let p = plan(&w, &[r], &cfg());
    assert_eq!(dst_dev(&p, "default", "a").len(), 2);
    assert_eq!(p.reports["r"].summary, Summary::Applied);
}

#[test]
fn whole_cluster_networks_are_refused_on_both_sides() {
    let w = world([mk_pod_n("default", "a", 1).into()]);
    let mut r = mk_route(
        "r",
        vec![
            rr("10.96.0.0/12", "eth1"),
            rr("10.0.0.0/8", "eth1"),
            rr("10.96.5.0/24", "eth1"),
        ],
        vec![],
    );
    r.spec.ovn.get_or_insert_default().next_hops = vec!["100.64.0.2".into()];
    let c = PlanConfig {
        cluster_networks: vec!["10.124.0.0/16".parse().unwrap()],
        service_networks: vec!["10.96.0.0/12".parse().unwrap()],
        ..cfg()
    };
    let p = plan(&w, &[r.clone()], &c);
    // A part of the service network is fine; the whole of it, or more, is not.
    assert_eq!(
        dst_dev(&p, "default", "a"),
        [("10.96.5.0/24".to_string(), "eth1".to_string())]
    );
    // It selects every pod: static routes on the OVN side, only for the allowed rule.
    let prefixes: Vec<&str> =
        p.nb.static_routes
            .iter()
            .map(|x| x.ip_prefix.as_str())
            .collect();
    assert_eq!(prefixes, ["10.96.5.0/24"]);
    let rs = reasons(&p, "r");
    assert_eq!(rs.len(), 2, "{rs:?}");
    assert!(
        rs.iter()
            .all(|(_, why)| why == reason::CAPTURES_CLUSTER_NETWORK)
    );
    r.spec
        .feature_gate
        .insert("allowClusterNetworkCapture".into(), "true".into());
    let p = plan(&w, &[r], &c);
    assert_eq!(p.nb.static_routes.len(), 3);
}

#[test]
fn routes_per_pod_are_capped_higher_precedence_first() {
    let w = world([mk_pod_n("default", "a", 1).into()]);
    let mut hi = mk_route(
        "hi",
        (0..3)
            .map(|i| rr(&format!("172.16.{i}.0/24"), "eth1"))
            .collect(),
        vec![],
    );
    hi.spec.priority = 10;
    let lo = mk_route(
        "lo",
        (0..3)
            .map(|i| rr(&format!("172.17.{i}.0/24"), "eth1"))
            .collect(),
        vec![],
    );
    let c = PlanConfig {
        max_routes_per_pod: 4,
        ..cfg()
    };
    let p = plan(&w, &[lo, hi], &c);
    let got = dst_dev(&p, "default", "a");
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(
        got.iter().filter(|(d, _)| d.starts_with("172.16.")).count(),
        3
    );
    assert_eq!(
        reasons(&p, "lo"),
        [(String::new(), reason::TOO_MANY_ROUTES.to_string())]
    );
    assert!(
        p.reports["lo"].problems[0]
            .message
            .contains("2 route(s) over the limit of 4")
    );
    assert!(reasons(&p, "hi").is_empty());
}
