//! The seed's `demo` CR against the seed's example routing table.
use crate::api::Route;
use crate::plan::plan;
use crate::plan::pod::NextHop;
use crate::plan::testkit::*;

#[test]
fn seed_demo_matches_the_seed_table() {
    let demo: Route = serde_yaml_ng::from_str(SEED_DEMO).unwrap();
    let w = world([
        mk_pod("default", "app").into(),
        mk_svc("default", "nginx", &["10.86.205.109"]).into(),
        mk_svc("kube-system", "nginx1", &["10.86.69.17"]).into(),
        mk_svc("kube-system", "nginx2", &["10.86.12.34"]).into(),
    ]);
    let p = plan(&w, &[demo], &cfg());
    let got = dst_dev(&p, "default", "app");
    // The seed's table: 10.86.69.17/32 eth0, 10.86.205.109/32 eth1, 172.16.10.0/24 eth1,
    // plus the demo's 172.16.11.0/24 eth0 and nginx2 over eth0.
    let want: Vec<(String, String)> = [
        ("10.86.12.34/32", "eth0"),
        ("10.86.69.17/32", "eth0"),
        ("10.86.205.109/32", "eth1"),
        ("172.16.10.0/24", "eth1"),
        ("172.16.11.0/24", "eth0"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let mut sorted = got.clone();
    sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(sorted, want_sorted);
    let routes = &routes_of(&p, "default", "app").unwrap().routes;
    for r in routes {
        match &*r.dev {
            // eth1 goes via the OVN gateway from pod-networks
            "eth1" => assert!(matches!(r.next_hop, NextHop::Via(_)), "{r:?}"),
            // eth0 has no gateway in the API: the netlink side uses the pod's own
            // eth0 gateway (Calico's 169.254.1.1) or a link route
            _ => assert_eq!(r.next_hop, NextHop::DevGateway),
        }
    }
    let rep = &p.reports["demo"];
    assert_eq!(rep.summary.as_str(), "Applied");
    assert_eq!(p.nb.address_sets.len(), 2);
    assert!(p.nb.policies.is_empty());
}

#[test]
fn seed_demo_without_its_services_still_applies_the_routes() {
    let demo: Route = serde_yaml_ng::from_str(SEED_DEMO).unwrap();
    let w = world([mk_pod("default", "app").into()]);
    let p = plan(&w, &[demo], &cfg());
    assert_eq!(dst_dev(&p, "default", "app").len(), 2);
    let rep = &p.reports["demo"];
    assert_eq!(rep.problems.len(), 3);
    assert!(rep.problems.iter().all(|x| x.reason == "ServiceNotFound"));
    assert_eq!(rep.summary.as_str(), "Degraded");
}
