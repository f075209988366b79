//! Big inputs: a 10,000-rule Route and 2,000 pods plan without trouble (no timing asserts;
//! figures belong in benches).
use crate::plan::testkit::*;
use crate::plan::{PlanConfig, plan};

/// 10,000 rules is the most a Route may hold (`api::limits::ROUTE_RULES`): 9,998 good ones
/// and 2 bad ones.
#[test]
fn ten_thousand_rules() {
    let rules: Vec<_> = (0..9_998u32)
        .map(|i| {
            rr(
                &format!("10.{}.{}.0/24", i / 256, i % 256),
                if i % 2 == 0 { "eth1" } else { "eth0" },
            )
        })
        .collect();
    let mut r = mk_route("huge", rules, vec![]);
    // a few bad ones among them
    r.spec.route.push(rr("not-a-cidr", "eth1"));
    r.spec.route.push(rr("10.0.0.0/24", "eth0"));
    let w = world((0..20).map(|i| mk_pod_n("default", &format!("p{i}"), i).into()));
    let p = plan(&w, &[r], &cfg());
    assert_eq!(p.pods.len(), 20);
    assert!(p.pods.values().all(|r| r.routes.len() == 9_998));
    let rep = &p.reports["huge"];
    assert_eq!(rep.problems.len(), 2);
    assert_eq!(rep.summary.as_str(), "Degraded");
}

#[test]
fn two_thousand_pods_many_routes_and_bounded_problems() {
    let w = world((0..2_000u32).map(|i| {
        let p = with_labels(
            mk_pod_n(&format!("ns{}", i % 20), &format!("p{i}"), i),
            &[("app", if i % 2 == 0 { "a" } else { "b" })],
        );
        on_node(p, &format!("node{}", i % 10)).into()
    }));
    let mut routes = Vec::new();
    for j in 0..50 {
        let mut r = mk_route(
            &format!("r{j}"),
            vec![rr(
                "172.16.0.0/16",
                if j % 2 == 0 { "eth1" } else { "eth0" },
            )],
            vec![],
        );
        r.spec.pod_selector = Some(sel(&[("app", if j % 3 == 0 { "a" } else { "b" })]));
        for k in 0..30 {
            r.spec
                .svc
                .push(sr("default", &format!("missing{k}"), "eth0"));
        }
        routes.push(r);
    }
    let c = PlanConfig {
        node: Some("node3".into()),
        ..PlanConfig::default()
    };
    let p = plan(&w, &routes, &c);
    assert_eq!(p.pods.len(), 200);
    assert_eq!(p.reports["r0"].selected, 1_000);
    // 30 missing Services + a conflict on 172.16.0.0/16: bounded to 20, rest counted
    let rep = &p.reports["r1"];
    assert_eq!(rep.problems.len(), 20);
    assert!(rep.problems_omitted >= 10);
    assert_eq!(p.nb.address_sets.len(), 100);
    assert_eq!(p.nb.address_sets[0].addresses.len(), 1_000);
}
