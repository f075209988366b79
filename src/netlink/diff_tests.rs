//! Unit and property tests of the pure pod diff (no kernel needed).
use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;

use super::diff::plan_pod;
use super::kernel::{KernelRoute, Links, SCOPE_LINK, SCOPE_UNIVERSE};
use super::state::{PodState, RecordedRoute};
use crate::plan::pod::{DefaultRoute, NextHop, PodKey, PodRoute, PodRoutes};

const P: u8 = 136;

fn links() -> Links {
    [("eth0".to_string(), 2), ("eth1".to_string(), 3)].into()
}

fn kr(dst: &str, gw: Option<&str>, oif: u32, protocol: u8, metric: u32) -> KernelRoute {
    KernelRoute {
        dst: dst.parse().unwrap(),
        gateway: gw.map(|g| g.parse().unwrap()),
        oif: Some(oif),
        protocol,
        metric,
        scope: if gw.is_none() {
            SCOPE_LINK
        } else {
            SCOPE_UNIVERSE
        },
    }
}

fn pr(dst: &str, dev: &str, via: Option<&str>) -> PodRoute {
    PodRoute {
        dst: dst.parse().unwrap(),
        dev: dev.into(),
        next_hop: via.map_or(NextHop::DevGateway, |v| NextHop::Via(v.parse().unwrap())),
        owner: "r".into(),
    }
}

fn pod_state() -> PodState {
    PodState::new(&PodKey {
        namespace: "n".into(),
        name: "p".into(),
        uid: "u".into(),
    })
}

fn base() -> Vec<KernelRoute> {
    vec![
        kr("0.0.0.0/0", Some("169.254.1.1"), 2, 3, 0),
        kr("169.254.1.1/32", None, 2, 3, 0),
        kr("10.244.1.0/24", None, 3, 2, 0),
    ]
}

#[test]
fn adds_with_dev_gateway_and_link_route() {
    let want = PodRoutes {
        routes: vec![
            pr("10.96.0.0/12", "eth0", None),
            pr("10.97.0.0/16", "eth1", None),
        ],
        default_routes: vec![],
    };
    let plan = plan_pod(&want, &links(), &base(), &pod_state(), P);
    assert_eq!(
        plan.writes,
        vec![
            (kr("10.96.0.0/12", Some("169.254.1.1"), 2, P, 0), false),
            (kr("10.97.0.0/16", None, 3, P, 0), false),
        ]
    );
    assert!(plan.deletes.is_empty() && plan.conflicts.is_empty());
}

#[test]
fn conflict_only_at_same_metric() {
    let mut cur = base();
    cur.push(kr("10.96.0.0/12", Some("10.244.1.1"), 3, 4, 0));
    cur.push(kr("10.97.0.0/16", Some("10.244.1.1"), 3, 4, 100));
    let want = PodRoutes {
        routes: vec![
            pr("10.96.0.0/12", "eth1", Some("10.244.1.1")),
            pr("10.97.0.0/16", "eth1", Some("10.244.1.1")),
        ],
        default_routes: vec![],
    };
    let plan = plan_pod(&want, &links(), &cur, &pod_state(), P);
    assert_eq!(plan.conflicts.len(), 1);
    assert_eq!(plan.conflicts[0].foreign.protocol, 4);
    assert_eq!(
        plan.writes,
        vec![(kr("10.97.0.0/16", Some("10.244.1.1"), 3, P, 0), false)]
    );
}

#[test]
fn default_takeover_records_and_restore_when_unwanted() {
    let want = PodRoutes {
        routes: vec![],
        default_routes: vec![DefaultRoute {
            family: crate::plan::IpFamily::V4,
            dev: "eth1".into(),
            next_hop: NextHop::Via("10.244.1.1".parse().unwrap()),
            owner: "r".into(),
        }],
    };
    let plan = plan_pod(&want, &links(), &base(), &pod_state(), P);
    assert_eq!(plan.record.len(), 1);
    assert_eq!(&*plan.record[0].dev, "eth0");
    assert_eq!(
        plan.writes,
        vec![(kr("0.0.0.0/0", Some("10.244.1.1"), 3, P, 0), true)]
    );

    // Later: ours is in place, original recorded; the rule goes away -> restore.
    let mut st = pod_state();
    st.v4.push(RecordedRoute {
        route: base()[0].clone(),
        dev: "eth0".into(),
    });
    let mut cur = base()[1..].to_vec();
    cur.push(kr("0.0.0.0/0", Some("10.244.1.1"), 3, P, 0));
    let plan = plan_pod(&PodRoutes::default(), &links(), &cur, &st, P);
    assert_eq!(
        plan.deletes,
        vec![kr("0.0.0.0/0", Some("10.244.1.1"), 3, P, 0)]
    );
    assert_eq!(plan.restores.len(), 1);
    assert_eq!(plan.restore_families, vec![false]);
}

#[test]
fn default_with_missing_dev_holds_ours_and_does_not_restore() {
    let mut st = pod_state();
    st.v4.push(RecordedRoute {
        route: base()[0].clone(),
        dev: "eth0".into(),
    });
    let cur = vec![kr("0.0.0.0/0", Some("10.244.1.1"), 3, P, 0)];
    let want = PodRoutes {
        routes: vec![],
        default_routes: vec![DefaultRoute {
            family: crate::plan::IpFamily::V4,
            dev: "eth9".into(),
            next_hop: NextHop::DevGateway,
            owner: "r".into(),
        }],
    };
    let plan = plan_pod(&want, &links(), &cur, &st, P);
    assert!(plan.is_noop(), "{plan:?}");
    assert_eq!(plan.skipped.len(), 1);
}

#[test]
fn invalid_route_is_reported_and_keeps_ours() {
    let mut cur = base();
    cur.push(kr("10.96.0.0/12", Some("10.244.1.1"), 3, P, 0));
    let want = PodRoutes {
        routes: vec![
            pr("10.96.0.0/12", "eth1", Some("fd00::1")),
            pr("10.97.0.0/16", "eth1", Some("0.0.0.0")),
            pr("10.98.0.0/16", "eth1", None),
            pr("10.98.0.0/16", "eth0", None),
        ],
        default_routes: vec![],
    };
    let plan = plan_pod(&want, &links(), &cur, &pod_state(), P);
    assert_eq!(plan.invalid.len(), 2);
    assert!(
        plan.deletes.is_empty(),
        "ours at an invalid route's dst stays: {plan:?}"
    );
    // Duplicate destination: the first one wins, no second write.
    assert_eq!(
        plan.writes,
        vec![(kr("10.98.0.0/16", None, 3, P, 0), false)]
    );
}

fn arb_route() -> impl Strategy<Value = KernelRoute> {
    (
        0u8..4,
        prop::bool::ANY,
        prop_oneof![Just(P), Just(2u8), Just(3u8), Just(4u8)],
        prop_oneof![Just(0u32), Just(100u32)],
        2u32..4,
        prop::bool::ANY,
    )
        .prop_map(|(d, default, protocol, metric, oif, gw)| {
            let dst: IpNet = if default {
                "0.0.0.0/0".parse().unwrap()
            } else {
                format!("10.{d}.0.0/16").parse().unwrap()
            };
            KernelRoute {
                dst,
                gateway: gw.then(|| IpAddr::from([10, 244, 1, 1])),
                oif: Some(oif),
                protocol,
                metric,
                scope: SCOPE_UNIVERSE,
            }
        })
}

proptest! {
    /// Whatever the tables hold, a foreign route is never deleted or replaced, except
    /// foreign default routes of a family under `defaultRoute` (after being recorded).
    #[test]
    fn foreign_routes_are_never_touched(
        cur in prop::collection::vec(arb_route(), 0..12),
        wanted in prop::collection::vec((0u8..4, prop::bool::ANY, prop::bool::ANY), 0..5),
        with_default in prop::bool::ANY,
    ) {
        let want = PodRoutes {
            routes: wanted.iter().map(|(d, eth1, via)| {
                pr(&format!("10.{d}.0.0/16"), if *eth1 { "eth1" } else { "eth0" },
                    via.then_some("10.244.1.1"))
            }).collect(),
            default_routes: if with_default {
                vec![DefaultRoute { family: crate::plan::IpFamily::V4, dev: "eth1".into(), next_hop: NextHop::DevGateway, owner: "r".into() }]
            } else { vec![] },
        };
        let plan = plan_pod(&want, &links(), &cur, &pod_state(), P);
        for d in &plan.deletes {
            prop_assert_eq!(d.protocol, P);
        }
        for f in &plan.foreign_default_deletes {
            prop_assert!(with_default && f.dst.prefix_len() == 0);
            prop_assert!(plan.record.iter().any(|r| r.route == *f));
        }
        for (w, replace) in &plan.writes {
            prop_assert_eq!(w.protocol, P);
            if *replace && w.dst.prefix_len() != 0 {
                // Replacing a non-default key only when no foreign route holds it.
                prop_assert!(!cur.iter().any(|c| c.dst == w.dst && c.metric == w.metric && c.protocol != P));
            }
        }
    }
}
