//! Diff and transaction tests on in-memory NB images (no server). The real-server tests are
//! in tests/nb_*.rs.
use std::collections::BTreeSet;

use super::bfd::BfdRef;
use super::diff::{NbChange, diff};
use super::observed::*;
use super::ops::{Expect, describe, transaction};
use crate::ovsdb::{Atom, Row, Uuid, Value};
use crate::plan::nb::*;

fn u(n: u128) -> Uuid {
    Uuid(uuid::Uuid::from_u128(n))
}

fn owner(route: &str, id: &str) -> Owner {
    Owner {
        route: route.into(),
        id: id.into(),
    }
}

fn row(cols: &[(&str, Value)]) -> Row {
    cols.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn ids(o: &Owner) -> Value {
    Value::map(o.external_ids())
}

fn strs(items: &[&str]) -> Value {
    Value::set(items.iter().map(|s| Atom::string(*s)))
}

fn uuids(items: &[Uuid]) -> Value {
    Value::set(items.iter().map(|u| Atom::Uuid(*u)))
}

/// A small ovn-kubernetes-shaped NB: ovn_cluster_router with a join port 100.64.0.1/16, a
/// foreign policy (priority 102) and address set, and two switch ports.
fn base() -> NbImage {
    let mut img = NbImage::new();
    let mut put = |t: &str, id: Uuid, r: Row| {
        img.entry(t.to_string()).or_default().insert(id, r);
    };
    put(
        ROUTER_PORT,
        u(10),
        row(&[
            ("name", "rtoj-ovn_cluster_router".into()),
            ("networks", strs(&["100.64.0.1/16"])),
        ]),
    );
    put(
        POLICY,
        u(11),
        row(&[
            ("priority", 102.into()),
            ("match", "ip4.src == 10.244.0.0/16".into()),
            ("action", "allow".into()),
            (
                "external_ids",
                Value::map([("k8s.ovn.org/owner-controller", "default-network-controller")]),
            ),
        ]),
    );
    put(
        ROUTER,
        u(1),
        row(&[
            ("name", "ovn_cluster_router".into()),
            ("ports", uuids(&[u(10)])),
            ("policies", uuids(&[u(11)])),
            ("static_routes", uuids(&[])),
        ]),
    );
    put(
        SWITCH_PORT,
        u(20),
        row(&[("name", "default_client-a".into())]),
    );
    put(
        SWITCH_PORT,
        u(21),
        row(&[("name", "default_client-b".into())]),
    );
    put(
        ADDRESS_SET,
        u(30),
        row(&[
            ("name", "a1234".into()),
            ("addresses", strs(&["10.244.1.5"])),
            (
                "external_ids",
                Value::map([("k8s.ovn.org/owner-type", "Namespace")]),
            ),
        ]),
    );
    img
}

fn desired() -> DesiredNb {
    let o = |id: &str| owner("r1", id);
    DesiredNb {
        address_sets: vec![NbAddressSet {
            owner: o("as:ip4"),
            name: "ovnkube_route_r1_v4".into(),
            addresses: BTreeSet::from(["10.244.1.3".into(), "10.244.1.4".into()]),
        }],
        port_groups: vec![NbPortGroup {
            owner: o("pg"),
            name: "ovnkube_route_r1".into(),
            ports: BTreeSet::from(["default_client-a".into()]),
        }],
        policies: vec![NbPolicy {
            owner: o("pol:172.16.20.0/24"),
            router: "ovn_cluster_router".into(),
            priority: 250,
            match_: "ip4.src == $ovnkube_route_r1_v4 && ip4.dst == 172.16.20.0/24".into(),
            action: "reroute".into(),
            nexthops: BTreeSet::from(["100.64.0.2".into(), "100.64.0.3".into()]),
        }],
        static_routes: vec![],
        acls: vec![NbAcl {
            owner: o("acl:192.168.50.0/24"),
            port_group: "ovnkube_route_r1".into(),
            direction: "from-lport".into(),
            priority: 1000,
            match_: "ip4.dst == 192.168.50.0/24".into(),
            action: "drop".into(),
        }],
    }
}

/// Applies the changes to the image the way ovsdb-server would (enough for these tests), so
/// a second diff can be checked to be empty.
fn apply(img: &mut NbImage, changes: &[NbChange]) {
    let mut next = 1000u128;
    let mut fresh = || {
        next += 1;
        u(next)
    };
    for c in changes {
        match c {
            NbChange::CreateAddressSet(a) => {
                let r = row(&[
                    ("name", a.name.clone().into()),
                    (
                        "addresses",
                        Value::set(a.addresses.iter().map(|s| Atom::string(s.clone()))),
                    ),
                    ("external_ids", ids(&a.owner)),
                ]);
                img.entry(ADDRESS_SET.into())
                    .or_default()
                    .insert(fresh(), r);
            }
            NbChange::CreatePortGroup { group, ports, acls } => {
                let mut acl_ids = vec![];
                for a in acls {
                    let id = fresh();
                    acl_ids.push(id);
                    img.entry(ACL.into()).or_default().insert(id, acl(a));
                }
                let r = row(&[
                    ("name", group.name.clone().into()),
                    ("ports", Value::set(ports.iter().map(|p| Atom::Uuid(*p)))),
                    ("acls", uuids(&acl_ids)),
                    ("external_ids", ids(&group.owner)),
                ]);
                img.entry(PORT_GROUP.into()).or_default().insert(fresh(), r);
            }
            NbChange::CreatePolicy { router, policy } => {
                let id = fresh();
                let r = row(&[
                    ("priority", policy.priority.into()),
                    ("match", policy.match_.clone().into()),
                    ("action", policy.action.clone().into()),
                    (
                        "nexthops",
                        Value::set(policy.nexthops.iter().map(|s| Atom::string(s.clone()))),
                    ),
                    ("external_ids", ids(&policy.owner)),
                ]);
                img.entry(POLICY.into()).or_default().insert(id, r);
                let rt = img.get_mut(ROUTER).unwrap().get_mut(router).unwrap();
                let mut set = rt["policies"].clone().into_set();
                set.insert(Atom::Uuid(id));
                rt.insert("policies".into(), Value::Set(set));
            }
            other => panic!("test apply does not model {other:?}"),
        }
    }
}

fn acl(a: &NbAcl) -> Row {
    row(&[
        ("direction", a.direction.clone().into()),
        ("priority", a.priority.into()),
        ("match", a.match_.clone().into()),
        ("action", a.action.clone().into()),
        ("external_ids", ids(&a.owner)),
    ])
}

#[test]
fn nothing_desired_leaves_foreign_rows_alone() {
    let d = diff(&DesiredNb::default(), &Observed::collect(&base()));
    assert!(d.changes.is_empty(), "{:?}", d.changes);
    assert!(d.problems.is_empty());
    assert!(transaction(&d.changes).is_empty());
}

#[test]
fn creates_then_converges_to_no_change() {
    let mut img = base();
    let d = diff(&desired(), &Observed::collect(&img));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.changes.len(), 3, "{:?}", d.changes);
    assert!(matches!(&d.changes[0], NbChange::CreateAddressSet(a) if a.addresses.len() == 2));
    match &d.changes[1] {
        NbChange::CreatePortGroup { ports, acls, .. } => {
            assert_eq!(ports, &BTreeSet::from([u(20)]));
            assert_eq!(acls.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&d.changes[2], NbChange::CreatePolicy { router, .. } if *router == u(1)));
    let txn = transaction(&d.changes);
    // AS insert, ACL insert, PG insert, policy insert, router guard, router mutate, comment.
    assert_eq!(txn.ops.len(), 7);
    let ops: Vec<serde_json::Value> = txn.ops.iter().map(|o| o.to_json()).collect();
    assert_eq!(ops[4]["op"], "wait");
    assert_eq!(ops[4]["timeout"], 0);
    assert_eq!(ops[4]["where"], ops[5]["where"]);
    assert_eq!(ops[5]["op"], "mutate");
    assert_eq!(txn.expect[5], Expect::Count(1));
    assert_eq!(ops[3]["uuid-name"], ops[5]["mutations"][0][2][1][0][1]);
    apply(&mut img, &d.changes);
    let again = diff(&desired(), &Observed::collect(&img));
    assert!(
        again.changes.is_empty(),
        "second pass must write nothing: {:?}",
        again.changes
    );
}

#[test]
fn address_changes_are_mutations_not_rewrites() {
    let mut img = base();
    let first = diff(&desired(), &Observed::collect(&img)).changes;
    apply(&mut img, &first);
    let mut want = desired();
    want.address_sets[0].addresses = BTreeSet::from(["10.244.1.4".into(), "10.244.1.9".into()]);
    want.port_groups[0].ports = BTreeSet::from(["default_client-b".into()]);
    let d = diff(&want, &Observed::collect(&img));
    assert_eq!(d.changes.len(), 2, "{:?}", d.changes);
    match &d.changes[0] {
        NbChange::UpdateAddressSet { add, remove, .. } => {
            assert_eq!(add, &BTreeSet::from(["10.244.1.9".to_string()]));
            assert_eq!(remove, &BTreeSet::from(["10.244.1.3".to_string()]));
        }
        other => panic!("{other:?}"),
    }
    let txn = transaction(&d.changes);
    let ops: Vec<serde_json::Value> = txn.ops.iter().map(|o| o.to_json()).collect();
    // Every change to an existing row sits behind a guard: wait, mutate, wait, mutate.
    let kinds: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["wait", "mutate", "wait", "mutate", "comment"]);
    assert_eq!(ops[3]["mutations"][0][1], "delete");
    assert_eq!(ops[3]["mutations"][1][1], "insert");
}

#[test]
fn rows_of_a_deleted_route_are_removed_and_only_those() {
    let mut img = base();
    let first = diff(&desired(), &Observed::collect(&img)).changes;
    apply(&mut img, &first);
    let d = diff(&DesiredNb::default(), &Observed::collect(&img));
    let kinds: Vec<&str> = d
        .changes
        .iter()
        .map(|c| match c {
            NbChange::DeleteAddressSet { .. } => "as",
            NbChange::DeletePortGroup { .. } => "pg",
            NbChange::DeletePolicy { .. } => "pol",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["as", "pg", "pol"]);
    let txn = transaction(&d.changes);
    // Never a delete of the foreign policy u(11) or address set u(30).
    let ops: Vec<serde_json::Value> = txn.ops.iter().map(|o| o.to_json()).collect();
    let text = serde_json::to_string(&ops).unwrap();
    assert!(!text.contains(&u(11).to_string()) && !text.contains(&u(30).to_string()));
    // The policy's removal is guarded by a wait that it is still ours.
    assert!(
        ops.iter()
            .any(|o| o["op"] == "wait" && o["table"] == POLICY)
    );
}

#[test]
fn duplicates_of_our_rows_are_collapsed() {
    let mut img = base();
    let d = desired();
    let first = diff(&d, &Observed::collect(&img)).changes;
    apply(&mut img, &first);
    // A second copy of the policy, as a crash between two writers could leave.
    let dup = NbChange::CreatePolicy {
        router: u(1),
        policy: d.policies[0].clone(),
    };
    apply(&mut img, &[dup]);
    let again = diff(&d, &Observed::collect(&img));
    assert_eq!(again.changes.len(), 1, "{:?}", again.changes);
    assert!(matches!(again.changes[0], NbChange::DeletePolicy { .. }));
}

#[test]
fn edited_policy_is_restored() {
    let mut img = base();
    let d = desired();
    let first = diff(&d, &Observed::collect(&img)).changes;
    apply(&mut img, &first);
    for r in img.get_mut(POLICY).unwrap().values_mut() {
        if r.get("priority") == Some(&Value::from(250)) {
            r.insert("priority".into(), 999.into());
        }
    }
    let again = diff(&d, &Observed::collect(&img));
    assert!(
        matches!(&again.changes[..], [NbChange::UpdatePolicy { policy, .. }] if policy.priority == 250)
    );
    let line = describe(&again.changes[0]);
    assert!(
        line.contains("set Logical_Router_Policy") && line.contains("priority=250"),
        "{line}"
    );
}

#[test]
fn unusable_rows_are_reported_not_written() {
    let img = base();
    let mut want = desired();
    want.policies[0].nexthops = BTreeSet::from(["172.18.0.9".into()]);
    want.policies.push(NbPolicy {
        router: "no_such_router".into(),
        owner: owner("r1", "pol:x"),
        ..want.policies[0].clone()
    });
    want.address_sets[0].name = "a1234".into();
    want.port_groups[0].ports.insert("default_ghost".into());
    let d = diff(&want, &Observed::collect(&img));
    let reasons: Vec<&str> = d.problems.iter().map(|p| p.reason.as_str()).collect();
    for r in [
        "NameTaken",
        "NextHopUnreachable",
        "PortNotFound",
        "RouterNotFound",
    ] {
        assert!(reasons.contains(&r), "missing {r} in {reasons:?}");
    }
    assert!(!d.changes.iter().any(|c| matches!(
        c,
        NbChange::CreatePolicy { .. } | NbChange::CreateAddressSet(_)
    )));
}

#[test]
fn static_routes_are_checked_like_policies() {
    let img = base();
    let route = |hop: &str, bfd: bool| NbStaticRoute {
        owner: owner("all", &format!("all/static-route/172.16.30.0/24/{hop}")),
        router: "ovn_cluster_router".into(),
        ip_prefix: "172.16.30.0/24".into(),
        nexthop: hop.into(),
        policy: None,
        bfd,
    };
    let want = DesiredNb {
        static_routes: vec![route("100.64.0.2", true), route("192.0.2.1", false)],
        ..DesiredNb::default()
    };
    let d = diff(&want, &Observed::collect(&img));
    // The reachable one is created with a new BFD session on the router port towards its
    // next hop (owned by us); the other is reported only.
    assert!(
        matches!(&d.changes[..], [
            NbChange::CreateBfd { logical_port, dst_ip, owner },
            NbChange::CreateStaticRoute { route, router, bfd: Some(BfdRef::New { .. }) },
        ] if route.nexthop == "100.64.0.2" && route.bfd && *router == u(1)
            && logical_port == "rtoj-ovn_cluster_router" && dst_ip == "100.64.0.2"
            && owner.route == "all"),
        "{:?}",
        d.changes
    );
    let reasons: Vec<&str> = d.problems.iter().map(|p| p.reason.as_str()).collect();
    assert_eq!(reasons, ["NextHopUnreachable"]);
    let txn = transaction(&d.changes);
    let ops: Vec<serde_json::Value> = txn.ops.iter().map(|o| o.to_json()).collect();
    assert_eq!(ops[0]["table"], "BFD");
    assert_eq!(ops[1]["table"], STATIC_ROUTE);
    assert_eq!(
        ops[1]["row"]["bfd"],
        serde_json::json!(["set", [["named-uuid", ops[0]["uuid-name"]]]])
    );
    assert_eq!(ops[3]["mutations"][0][0], "static_routes");

    // A session that exists already (ovn-kubernetes') is referred to, never touched; with
    // the route gone, only a BFD row of ours would be deleted.
    let mut img = base();
    img.entry("BFD".into()).or_default().insert(
        u(70),
        row(&[
            ("logical_port", "rtoj-ovn_cluster_router".into()),
            ("dst_ip", "100.64.0.2".into()),
            (
                "external_ids",
                Value::map([("k8s.ovn.org/owner-controller", "default-network-controller")]),
            ),
        ]),
    );
    let want = DesiredNb {
        static_routes: vec![route("100.64.0.2", true)],
        ..DesiredNb::default()
    };
    let d = diff(&want, &Observed::collect(&img));
    assert!(
        matches!(&d.changes[..], [NbChange::CreateStaticRoute { bfd: Some(BfdRef::Existing(b)), .. }] if *b == u(70)),
        "{:?}",
        d.changes
    );
    let d = diff(&DesiredNb::default(), &Observed::collect(&img));
    assert!(
        d.changes.is_empty(),
        "a foreign BFD row is left alone: {:?}",
        d.changes
    );
}
