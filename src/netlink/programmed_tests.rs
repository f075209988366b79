//! Tests of [`super::programmed`]: a change written from what the last clean pass left ends
//! in exactly the table the full diff ([`plan_pod`]) would have made, with the same counts,
//! and says None whenever it cannot know.
use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;

use super::diff::{PodPlan, dev_gateway, plan_pod};
use super::kernel::{KernelRoute, Links, SCOPE_LINK, SCOPE_UNIVERSE};
use super::programmed::Programmed;
use super::state::PodState;
use crate::plan::pod::{NextHop, PodKey, PodRoute, PodRoutes};

const P: u8 = 136;

fn links() -> Links {
    [("eth0".to_string(), 2), ("eth1".to_string(), 3)].into()
}

fn state() -> PodState {
    PodState::new(&PodKey {
        namespace: "n".into(),
        name: "p".into(),
        uid: "u".into(),
    })
}

fn kr(dst: &str, gw: Option<&str>, oif: u32, protocol: u8, metric: u32) -> KernelRoute {
    KernelRoute {
        dst: dst.parse().unwrap_or_default(),
        gateway: gw.and_then(|g| g.parse().ok()),
        oif: Some(oif),
        protocol,
        metric,
        scope: if gw.is_none() && !dst.contains(':') {
            SCOPE_LINK
        } else {
            SCOPE_UNIVERSE
        },
    }
}

/// A pod's foreign routes: Calico's default on eth0, OVN's subnet and IPv6 default on eth1.
fn foreign() -> Vec<KernelRoute> {
    vec![
        kr("0.0.0.0/0", Some("169.254.1.1"), 2, 3, 0),
        kr("169.254.1.1/32", None, 2, 3, 0),
        kr("10.244.1.0/24", None, 3, 2, 0),
        kr("fd00::/64", None, 3, 2, 256),
        kr("::/0", Some("fd00::1"), 3, 3, 1024),
    ]
}

/// The table after a plan's writes, or None when the kernel would refuse one.
fn applied(
    table: &[KernelRoute],
    deletes: &[KernelRoute],
    writes: &[(KernelRoute, bool)],
) -> Option<BTreeSet<String>> {
    let mut t: Vec<KernelRoute> = table.to_vec();
    for d in deletes {
        let at = t.iter().position(|r| r == d)?;
        t.remove(at);
    }
    for (w, replace) in writes {
        let at = t
            .iter()
            .position(|r| r.dst == w.dst && r.metric == w.metric);
        match (at, replace) {
            (Some(at), true) => t[at] = w.clone(),
            (Some(_), false) => return None,
            (None, _) => t.push(w.clone()),
        }
    }
    Some(t.iter().map(|r| format!("{r:?}")).collect())
}

fn full(plan: &PodPlan, table: &[KernelRoute]) -> Option<BTreeSet<String>> {
    applied(table, &plan.deletes, &plan.writes)
}

fn known(routes: &PodRoutes, table: &[KernelRoute], skips: Vec<super::diff::Skip>) -> Programmed {
    let mut names: Vec<&str> = routes.routes.iter().map(|r| &*r.dev).collect();
    names.sort_unstable();
    names.dedup();
    let st = state();
    Programmed::new(
        Arc::new(routes.clone()),
        &names,
        &links(),
        |dev, oif, v6| dev_gateway(table, st.family(v6), dev, oif, v6, P),
        skips,
    )
}

fn pr(dst: &str, dev: &str, hop: NextHop) -> PodRoute {
    PodRoute {
        dst: dst.parse().unwrap_or_default(),
        dev: dev.into(),
        next_hop: hop,
        owner: "r".into(),
    }
}

/// Destinations 0..12 (two of them IPv6), devs eth0, eth1 and a missing eth9, next hops
/// from the dev, explicit, or of the wrong family.
fn arb_routes() -> impl Strategy<Value = PodRoutes> {
    prop::collection::btree_map(0u8..12, (0u8..3, 0u8..4), 0..10).prop_map(|m| PodRoutes {
        routes: m
            .into_iter()
            .map(|(d, (dev, hop))| {
                let v6 = d >= 10;
                let dst = if v6 {
                    format!("fd00:{d}::/64")
                } else {
                    format!("10.{d}.0.0/16")
                };
                let hop = match (hop, v6) {
                    (0 | 1, _) => NextHop::DevGateway,
                    (2, false) => NextHop::Via(
                        "10.244.1.1"
                            .parse()
                            .unwrap_or(std::net::IpAddr::from([0; 4])),
                    ),
                    (2, true) => NextHop::Via(
                        "fd00::1"
                            .parse()
                            .unwrap_or(std::net::IpAddr::from([0u16; 8])),
                    ),
                    // Rarely, a gateway of the other family: invalid.
                    (_, v6) => NextHop::Via(if v6 {
                        [10, 0, 0, 1].into()
                    } else {
                        [0xfd00, 0, 0, 0, 0, 0, 0, 1].into()
                    }),
                };
                pr(&dst, ["eth0", "eth1", "eth9"][dev as usize], hop)
            })
            .collect(),
        default_routes: vec![],
    })
}

proptest! {
    #[test]
    fn a_known_change_ends_where_the_full_diff_does(old in arb_routes(), new in arb_routes()) {
        let table = foreign();
        let first = plan_pod(&old, &links(), &table, &state(), P);
        // Knowledge exists only after a clean pass.
        prop_assume!(first.conflicts.is_empty() && first.invalid.is_empty());
        let after_first: Vec<KernelRoute> = {
            let mut t = table.clone();
            t.retain(|r| !first.deletes.contains(r));
            t.extend(first.writes.iter().map(|(w, _)| w.clone()));
            t
        };
        let k = known(&old, &table, first.skipped.clone());
        let reference = plan_pod(&new, &links(), &after_first, &state(), P);
        match k.change_to(&new, P) {
            Some(change) => {
                prop_assert!(reference.invalid.is_empty(), "an invalid route needs the full pass");
                prop_assert_eq!(
                    applied(&after_first, &change.deletes, &change.writes),
                    full(&reference, &after_first)
                );
                prop_assert_eq!(change.unchanged, reference.unchanged);
                prop_assert_eq!(change.skips.len(), reference.skipped.len());
                // Work only for what changed: at most one write per route in one list only.
                let differ = old.routes.iter().filter(|o| !new.routes.contains(o)).count()
                    + new.routes.iter().filter(|n| !old.routes.contains(n)).count();
                prop_assert!(change.deletes.len() + change.writes.len() <= differ);
            }
            None => {
                // Only for what the knowledge cannot say: an invalid route, or a dev the
                // first pass never looked up.
                let devs: BTreeSet<&str> = old.routes.iter().map(|r| &*r.dev).collect();
                prop_assert!(
                    !reference.invalid.is_empty()
                        || new.routes.iter().any(|r| !devs.contains(&*r.dev)),
                    "no reason to give up: {old:?} -> {new:?}"
                );
            }
        }
    }
}

#[test]
fn nothing_changed_means_nothing_written() {
    let old = PodRoutes {
        routes: vec![
            pr("10.1.0.0/16", "eth1", NextHop::DevGateway),
            pr("10.2.0.0/16", "eth9", NextHop::DevGateway),
        ],
        default_routes: vec![],
    };
    let first = plan_pod(&old, &links(), &foreign(), &state(), P);
    let k = known(&old, &foreign(), first.skipped.clone());
    let change = k.change_to(&old, P).unwrap_or_default();
    assert!(change.deletes.is_empty() && change.writes.is_empty());
    assert_eq!((change.unchanged, change.skips.len()), (1, 1));
}

#[test]
fn one_moved_route_is_one_replace() {
    let old = PodRoutes {
        routes: vec![
            pr("10.1.0.0/16", "eth1", NextHop::DevGateway),
            pr("10.2.0.0/16", "eth0", NextHop::DevGateway),
        ],
        default_routes: vec![],
    };
    let mut new = old.clone();
    new.routes[1].dev = "eth1".into();
    let first = plan_pod(&old, &links(), &foreign(), &state(), P);
    let k = known(&old, &foreign(), first.skipped.clone());
    let change = k.change_to(&new, P).unwrap_or_default();
    assert!(change.deletes.is_empty());
    assert_eq!(
        change.writes,
        vec![(kr("10.2.0.0/16", None, 3, P, 0), true)],
        "eth1 has no gateway of its own here: a link route, replaced in place"
    );
}

#[test]
fn default_routes_and_unsorted_input_go_the_full_way() {
    let old = PodRoutes {
        routes: vec![pr("10.1.0.0/16", "eth1", NextHop::DevGateway)],
        default_routes: vec![],
    };
    let k = known(&old, &foreign(), vec![]);
    let mut with_default = old.clone();
    with_default
        .default_routes
        .push(crate::plan::pod::DefaultRoute {
            family: crate::plan::IpFamily::V4,
            dev: "eth1".into(),
            next_hop: NextHop::DevGateway,
            owner: "r".into(),
        });
    assert!(k.change_to(&with_default, P).is_none());
    let unsorted = PodRoutes {
        routes: vec![
            pr("10.3.0.0/16", "eth1", NextHop::DevGateway),
            pr("10.1.0.0/16", "eth1", NextHop::DevGateway),
        ],
        default_routes: vec![],
    };
    assert!(k.change_to(&unsorted, P).is_none());
}
