//! Diff and transaction tests on in-memory NB images (no server). The real-server tests are
//! in tests/nb_*.rs.
use std::collections::BTreeSet;

use super::bfd::BfdRef;
use super::diff::{ChangeVisitor, NbChange, Parent, RowChange, diff};
use super::model;
use super::observed::*;
use super::ops::{Expect, describe, transaction};
use super::row::NbRow;
use crate::api::validate::BfdTimers;
use crate::ovsdb::{Atom, Row, TypedRow, Uuid, Value};
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

fn strs(items: &[&str]) -> std::collections::BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// table -> uuid -> row: an NB image built by hand.
type NbImage = std::collections::BTreeMap<String, std::collections::BTreeMap<Uuid, Row>>;

/// What a full pass reads from an image: the image loaded into a replica with the
/// reconciler's table specs (every column of the image rows that the replica monitors).
fn seen(img: &NbImage, desired: &DesiredNb) -> Observed {
    seen_in(img, desired, None)
}

/// As a pass over `scope` (every Route when `None`) reads the NB.
fn seen_in(img: &NbImage, desired: &DesiredNb, scope: Option<&BTreeSet<String>>) -> Observed {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/ovn-nb.ovsschema")).unwrap();
    let schema = crate::ovsdb::DatabaseSchema::from_json(&json).unwrap();
    let specs = super::reconcile::table_specs();
    let replica = crate::ovsdb::Replica::new(&schema, &specs).unwrap();
    let mut load = replica.begin_reset();
    for (table, rows) in img {
        let Some(spec) = specs.iter().find(|s| s.table == *table) else {
            continue;
        };
        for (uuid, row) in rows {
            let mut row = row.clone();
            if let Some(cols) = &spec.columns {
                row.retain(|c, _| cols.contains(c));
            }
            load.insert(table, *uuid, row).unwrap();
        }
    }
    load.finish();
    match scope {
        None => Observed::collect_all(&replica.snapshot(), desired, []),
        Some(routes) => Observed::collect_routes(&replica.snapshot(), routes, desired, false),
    }
}

fn put(img: &mut NbImage, id: Uuid, r: impl TypedRow) {
    img.entry(r_table(&r).to_string())
        .or_default()
        .insert(id, r.to_row());
}

fn r_table<T: TypedRow>(_: &T) -> &'static str {
    T::TABLE
}

/// A small ovn-kubernetes-shaped NB: ovn_cluster_router with a join port 100.64.0.1/16, a
/// foreign policy (priority 102) and address set, and two switch ports. Rows carry every
/// column, as the replica's do.
fn base() -> NbImage {
    let mut img = NbImage::new();
    put(
        &mut img,
        u(10),
        model::LogicalRouterPort {
            name: "rtoj-ovn_cluster_router".into(),
            networks: strs(&["100.64.0.1/16"]),
            ..Default::default()
        },
    );
    put(
        &mut img,
        u(11),
        model::LogicalRouterPolicy {
            priority: 102,
            r#match: "ip4.src == 10.244.0.0/16".into(),
            action: "allow".into(),
            external_ids: [(
                "k8s.ovn.org/owner-controller".to_string(),
                "default-network-controller".to_string(),
            )]
            .into(),
            ..Default::default()
        },
    );
    put(
        &mut img,
        u(1),
        model::LogicalRouter {
            name: "ovn_cluster_router".into(),
            ports: [u(10)].into(),
            policies: [u(11)].into(),
            ..Default::default()
        },
    );
    for (id, name) in [(u(20), "default_client-a"), (u(21), "default_client-b")] {
        put(
            &mut img,
            id,
            model::LogicalSwitchPort {
                name: name.into(),
                ..Default::default()
            },
        );
    }
    put(
        &mut img,
        u(30),
        model::AddressSet {
            name: "a1234".into(),
            addresses: strs(&["10.244.1.5"]),
            external_ids: [(
                "k8s.ovn.org/owner-type".to_string(),
                "Namespace".to_string(),
            )]
            .into(),
            ..Default::default()
        },
    );
    img
}

fn desired() -> DesiredNb {
    let o = |id: &str| owner("r1", id);
    DesiredNb {
        bfd_timers: Default::default(),
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
            action: PolicyAction::Reroute,
            nexthops: BTreeSet::from(["100.64.0.2".into(), "100.64.0.3".into()]),
        }],
        static_routes: vec![],
        acls: vec![NbAcl {
            owner: o("acl:192.168.50.0/24"),
            port_group: "ovnkube_route_r1".into(),
            direction: AclDirection::FromLport,
            priority: 1000,
            match_: "ip4.dst == 192.168.50.0/24".into(),
            action: AclAction::Drop,
        }],
    }
}

/// Applies creations to the image the way ovsdb-server would (enough for these tests), so
/// a second diff can be checked to be empty.
fn apply(img: &mut NbImage, changes: &[NbChange]) {
    struct Apply<'a> {
        img: &'a mut NbImage,
        next: u128,
        /// Children created under a parent created by the same changes.
        pending: Vec<(String, &'static str, Uuid)>,
    }
    impl ChangeVisitor for Apply<'_> {
        fn visit<T: NbRow>(&mut self, c: &RowChange<T>) {
            let RowChange::Create { parent, row, set } = c else {
                panic!("test apply models creations only: {c:?}");
            };
            self.next += 1;
            let id = u(self.next);
            let mut r: Row = TypedRow::to_row(&row.to_model());
            if let Some(col) = T::SET_COLUMN {
                r.insert(col.name().into(), Value::set(set.iter().cloned()));
            }
            for (name, col, child) in std::mem::take(&mut self.pending) {
                if name == row.key() && T::FAMILY.parent().is_none() {
                    let mut s = r[col].clone().into_set();
                    s.insert(Atom::Uuid(child));
                    r.insert(col.into(), Value::Set(s));
                } else {
                    self.pending.push((name, col, child));
                }
            }
            self.img
                .entry(T::FAMILY.table().into())
                .or_default()
                .insert(id, r);
            let link = T::FAMILY.parent();
            match (parent, link) {
                (Parent::Row(p), Some(l)) => {
                    let pr = self.img.get_mut(l.table).unwrap().get_mut(p).unwrap();
                    let mut s = pr[l.column].clone().into_set();
                    s.insert(Atom::Uuid(id));
                    pr.insert(l.column.into(), Value::Set(s));
                }
                (Parent::New(name), Some(l)) => self.pending.push((name.clone(), l.column, id)),
                _ => {}
            }
        }
    }
    let next = 1000 + img.values().map(|t| t.len() as u128).sum::<u128>();
    let mut a = Apply {
        img,
        next,
        pending: Vec::new(),
    };
    // Children under a new parent first, as the transaction orders them.
    let (first, rest): (Vec<&NbChange>, Vec<&NbChange>) = changes.iter().partition(|c| {
        matches!(
            c,
            NbChange::Acl(RowChange::Create {
                parent: Parent::New(_),
                ..
            })
        )
    });
    for c in first.into_iter().chain(rest) {
        c.visit(&mut a);
    }
    assert!(a.pending.is_empty(), "children without a parent");
}

#[test]
fn nothing_desired_leaves_foreign_rows_alone() {
    let d = diff(&DesiredNb::default(), &seen(&base(), &DesiredNb::default()));
    assert!(d.changes.is_empty(), "{:?}", d.changes);
    assert!(d.problems.is_empty());
    assert!(transaction(&d.changes).is_empty());
}

#[test]
fn creates_then_converges_to_no_change() {
    let mut img = base();
    let d = diff(&desired(), &seen(&img, &desired()));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.changes.len(), 4, "{:?}", d.changes);
    assert!(
        matches!(&d.changes[0], NbChange::AddressSet(RowChange::Create { set, .. }) if set.len() == 2)
    );
    match &d.changes[1] {
        NbChange::PortGroup(RowChange::Create { set, .. }) => {
            assert_eq!(set, &BTreeSet::from([Atom::Uuid(u(20))]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &d.changes[2],
        NbChange::Acl(RowChange::Create { parent: Parent::New(pg), .. }) if pg == "ovnkube_route_r1"
    ));
    assert!(matches!(
        &d.changes[3],
        NbChange::Policy(RowChange::Create { parent: Parent::Row(router), .. }) if *router == u(1)
    ));
    let txn = transaction(&d.changes);
    // ACL insert (its port group is new: first, so the group can list it), AS insert, PG
    // insert, policy insert, router guard, router mutate, comment.
    assert_eq!(txn.ops.len(), 7);
    let ops: Vec<serde_json::Value> = txn.ops.iter().map(|o| o.to_json()).collect();
    assert_eq!(ops[0]["table"], ACL);
    assert_eq!(ops[2]["table"], PORT_GROUP);
    assert_eq!(
        ops[2]["row"]["acls"],
        serde_json::json!(["set", [["named-uuid", ops[0]["uuid-name"]]]])
    );
    assert_eq!(ops[4]["op"], "wait");
    assert_eq!(ops[4]["timeout"], 0);
    assert_eq!(ops[4]["where"], ops[5]["where"]);
    assert_eq!(ops[5]["op"], "mutate");
    assert_eq!(txn.expect[5], Expect::Count(1));
    assert_eq!(ops[3]["uuid-name"], ops[5]["mutations"][0][2][1][0][1]);
    apply(&mut img, &d.changes);
    let again = diff(&desired(), &seen(&img, &desired()));
    assert!(
        again.changes.is_empty(),
        "second pass must write nothing: {:?}",
        again.changes
    );
}

#[test]
fn children_of_one_parent_are_linked_by_one_mutation() {
    let mut img = base();
    let mut want = desired();
    let pol = want.policies[0].clone();
    for dst in ["172.16.21.0/24", "172.16.22.0/24"] {
        let mut p = pol.clone();
        p.owner = owner("r1", &format!("pol:{dst}"));
        p.match_ = format!("ip4.src == $ovnkube_route_r1_v4 && ip4.dst == {dst}");
        want.policies.push(p);
    }
    let first = diff(&want, &seen(&img, &want)).changes;
    let txn = transaction(&first);
    let ops: Vec<serde_json::Value> = txn.ops.iter().map(|o| o.to_json()).collect();
    let mutates: Vec<&serde_json::Value> = ops.iter().filter(|o| o["op"] == "mutate").collect();
    // Three policies on one router: one guarded mutation naming all three, after them.
    assert_eq!(mutates.len(), 1, "{ops:#?}");
    assert_eq!(mutates[0]["table"], "Logical_Router");
    let named: BTreeSet<&str> = mutates[0]["mutations"][0][2][1]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a[1].as_str().unwrap())
        .collect();
    let inserted: BTreeSet<&str> = ops
        .iter()
        .filter(|o| o["op"] == "insert" && o["table"] == "Logical_Router_Policy")
        .map(|o| o["uuid-name"].as_str().unwrap())
        .collect();
    assert_eq!(named, inserted);
    assert_eq!(inserted.len(), 3);
    apply(&mut img, &first);
    // Two of them go, one is added: one mutation removing both and adding the new one.
    want.policies.truncate(1);
    let mut p = pol.clone();
    p.owner = owner("r1", "pol:172.16.23.0/24");
    p.match_ = "ip4.src == $ovnkube_route_r1_v4 && ip4.dst == 172.16.23.0/24".into();
    want.policies.push(p);
    let d = diff(&want, &seen(&img, &want));
    let ops: Vec<serde_json::Value> = transaction(&d.changes)
        .ops
        .iter()
        .map(|o| o.to_json())
        .collect();
    let mutates: Vec<&serde_json::Value> = ops.iter().filter(|o| o["op"] == "mutate").collect();
    assert_eq!(mutates.len(), 1, "{ops:#?}");
    let m = &mutates[0]["mutations"];
    assert_eq!(m[0][1], "delete");
    assert_eq!(m[0][2][1].as_array().unwrap().len(), 2);
    assert_eq!(m[1][1], "insert");
    // Each removed row is still checked to be ours before the router lets go of it.
    let guards = ops
        .iter()
        .filter(|o| o["op"] == "wait" && o["table"] == "Logical_Router_Policy")
        .count();
    assert_eq!(guards, 2);
}

#[test]
fn address_changes_are_mutations_not_rewrites() {
    let mut img = base();
    let first = diff(&desired(), &seen(&img, &desired())).changes;
    apply(&mut img, &first);
    let mut want = desired();
    want.address_sets[0].addresses = BTreeSet::from(["10.244.1.4".into(), "10.244.1.9".into()]);
    want.port_groups[0].ports = BTreeSet::from(["default_client-b".into()]);
    let d = diff(&want, &seen(&img, &want));
    assert_eq!(d.changes.len(), 2, "{:?}", d.changes);
    match &d.changes[0] {
        NbChange::AddressSet(RowChange::Update {
            add,
            remove,
            columns,
            ..
        }) => {
            assert!(!columns);
            assert_eq!(add, &BTreeSet::from([Atom::from("10.244.1.9")]));
            assert_eq!(remove, &BTreeSet::from([Atom::from("10.244.1.3")]));
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
    let first = diff(&desired(), &seen(&img, &desired())).changes;
    apply(&mut img, &first);
    let d = diff(&DesiredNb::default(), &seen(&img, &DesiredNb::default()));
    let kinds: Vec<&str> = d
        .changes
        .iter()
        .map(|c| match c {
            NbChange::AddressSet(RowChange::Delete { .. }) => "as",
            NbChange::PortGroup(RowChange::Delete { .. }) => "pg",
            NbChange::Policy(RowChange::Delete { .. }) => "pol",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    // The ACL goes with its port group: no change of its own.
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
    let first = diff(&d, &seen(&img, &d)).changes;
    apply(&mut img, &first);
    // A second copy of the policy, as a crash between two writers could leave.
    let dup = NbChange::Policy(RowChange::Create {
        parent: Parent::Row(u(1)),
        row: d.policies[0].clone(),
        set: BTreeSet::new(),
    });
    apply(&mut img, &[dup]);
    let again = diff(&d, &seen(&img, &d));
    assert_eq!(again.changes.len(), 1, "{:?}", again.changes);
    assert!(matches!(
        again.changes[0],
        NbChange::Policy(RowChange::Delete {
            parent: Parent::Row(_),
            ..
        })
    ));
}

#[test]
fn edited_policy_is_restored() {
    let mut img = base();
    let d = desired();
    let first = diff(&d, &seen(&img, &d)).changes;
    apply(&mut img, &first);
    for r in img.get_mut(POLICY).unwrap().values_mut() {
        if r.get("priority") == Some(&Value::from(250)) {
            r.insert("priority".into(), 999.into());
        }
    }
    let again = diff(&d, &seen(&img, &d));
    assert!(matches!(
        &again.changes[..],
        [NbChange::Policy(RowChange::Update { row, columns: true, .. })] if row.priority == 250
    ));
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
    let d = diff(&want, &seen(&img, &want));
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
        NbChange::Policy(RowChange::Create { .. }) | NbChange::AddressSet(RowChange::Create { .. })
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
        symmetric: false,
    };
    let want = DesiredNb {
        static_routes: vec![route("100.64.0.2", true), route("192.0.2.1", false)],
        ..DesiredNb::default()
    };
    let d = diff(&want, &seen(&img, &want));
    // The reachable one is created with a new BFD session on the router port towards its
    // next hop (owned by us); the other is reported only.
    assert!(
        matches!(&d.changes[..], [
            NbChange::CreateBfd { logical_port, dst_ip, owner, timers },
            NbChange::StaticRoute(
                RowChange::Create { row, parent: Parent::Row(router), .. },
                Some(BfdRef::New { .. }),
            ),
        ] if row.nexthop == "100.64.0.2" && row.bfd && *router == u(1)
            && logical_port == "rtoj-ovn_cluster_router" && dst_ip == "100.64.0.2"
            && owner.route == "all" && *timers == BfdTimers::default()),
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
    put(
        &mut img,
        u(70),
        model::Bfd {
            logical_port: "rtoj-ovn_cluster_router".into(),
            dst_ip: "100.64.0.2".into(),
            external_ids: [(
                "k8s.ovn.org/owner-controller".to_owned(),
                "default-network-controller".to_owned(),
            )]
            .into(),
            ..Default::default()
        },
    );
    let want = DesiredNb {
        static_routes: vec![route("100.64.0.2", true)],
        ..DesiredNb::default()
    };
    let d = diff(&want, &seen(&img, &want));
    assert!(
        matches!(&d.changes[..], [NbChange::StaticRoute(RowChange::Create { .. }, Some(BfdRef::Existing(b)))] if *b == u(70)),
        "{:?}",
        d.changes
    );
    let d = diff(&DesiredNb::default(), &seen(&img, &DesiredNb::default()));
    assert!(
        d.changes.is_empty(),
        "a foreign BFD row is left alone: {:?}",
        d.changes
    );
}

#[test]
fn bfd_sessions_of_routes_left_alone_are_kept() {
    let mut img = base();
    let session = owner("all", "bfd/rtoj-ovn_cluster_router/100.64.0.2");
    put(
        &mut img,
        u(71),
        model::Bfd {
            logical_port: "rtoj-ovn_cluster_router".into(),
            dst_ip: "100.64.0.2".into(),
            external_ids: session.external_ids(),
            ..Default::default()
        },
    );
    let route = NbStaticRoute {
        owner: owner("all", "all/static-route/172.16.30.0/24/100.64.0.2"),
        router: "ovn_cluster_router".into(),
        ip_prefix: "172.16.30.0/24".into(),
        nexthop: "100.64.0.2".into(),
        policy: None,
        bfd: true,
        symmetric: false,
    };
    put(
        &mut img,
        u(72),
        model::LogicalRouterStaticRoute {
            ip_prefix: route.ip_prefix.clone(),
            nexthop: route.nexthop.clone(),
            bfd: Some(u(71)),
            external_ids: route.owner.external_ids(),
            ..Default::default()
        },
    );
    img.get_mut(ROUTER)
        .unwrap()
        .get_mut(&u(1))
        .unwrap()
        .insert("static_routes".into(), Value::set([Atom::Uuid(u(72))]));

    // Wanted as it is: nothing to do, the route keeps its session.
    let want = DesiredNb {
        static_routes: vec![route.clone()],
        ..DesiredNb::default()
    };
    let d = diff(&want, &seen(&img, &want));
    assert!(d.changes.is_empty(), "{:?}", d.changes);

    // Not wanted: the route and our session go.
    let d = diff(&DesiredNb::default(), &seen(&img, &DesiredNb::default()));
    assert!(
        d.changes
            .iter()
            .any(|c| matches!(c, NbChange::DeleteBfd { uuid, .. } if *uuid == u(71))),
        "{:?}",
        d.changes
    );

    // The Route's rows left alone (its new version is invalid, or a scoped pass does not
    // cover it): its session stays with them.
    let mut o = seen(&img, &DesiredNb::default());
    o.leave_alone(|w| w.route == "all");
    let d = diff(&DesiredNb::default(), &o);
    assert!(d.changes.is_empty(), "{:?}", d.changes);
}

#[test]
fn bfd_timers_go_to_our_sessions_and_a_shared_one_is_reported() {
    let timers = BfdTimers {
        min_tx: Some(300),
        min_rx: Some(250),
        detect_mult: Some(5),
    };
    let route = NbStaticRoute {
        owner: owner("all", "all/static-route/172.16.30.0/24/100.64.0.2"),
        router: "ovn_cluster_router".into(),
        ip_prefix: "172.16.30.0/24".into(),
        nexthop: "100.64.0.2".into(),
        policy: None,
        bfd: true,
        symmetric: false,
    };
    let want = DesiredNb {
        static_routes: vec![route.clone()],
        bfd_timers: [("all".to_owned(), timers)].into(),
        ..DesiredNb::default()
    };
    // A new session is created with the timers, and the plan line says them.
    let img = base();
    let d = diff(&want, &seen(&img, &want));
    assert!(
        matches!(&d.changes[0], NbChange::CreateBfd { timers: t, .. } if *t == timers),
        "{:?}",
        d.changes
    );
    let ops: Vec<serde_json::Value> = transaction(&d.changes)
        .ops
        .iter()
        .map(|o| o.to_json())
        .collect();
    assert_eq!(ops[0]["row"]["min_tx"], serde_json::json!(["set", [300]]));
    assert_eq!(
        ops[0]["row"]["detect_mult"],
        serde_json::json!(["set", [5]])
    );
    let line = crate::nb::describe::describe(&d.changes[0]);
    assert!(
        line.contains("min_tx=300") && line.contains("detect_mult=5"),
        "{line}"
    );

    // Ours with other timers: set to the asked ones; a foreign one: left, reported.
    for (ids, expect_update) in [
        (
            owner("all", "bfd/rtoj-ovn_cluster_router/100.64.0.2").external_ids(),
            true,
        ),
        (
            [(
                "k8s.ovn.org/owner-controller".to_owned(),
                "default-network-controller".to_owned(),
            )]
            .into(),
            false,
        ),
    ] {
        let mut img = base();
        put(
            &mut img,
            u(71),
            model::Bfd {
                logical_port: "rtoj-ovn_cluster_router".into(),
                dst_ip: "100.64.0.2".into(),
                min_tx: Some(1000),
                external_ids: ids,
                ..Default::default()
            },
        );
        let d = diff(&want, &seen(&img, &want));
        let updates: Vec<&NbChange> = d
            .changes
            .iter()
            .filter(|c| matches!(c, NbChange::UpdateBfd { uuid, timers: t, .. } if *uuid == u(71) && *t == timers))
            .collect();
        assert_eq!(updates.len(), usize::from(expect_update), "{:?}", d.changes);
        let shared = d.problems.iter().any(|p| p.reason == "BfdSharedTimers");
        assert_eq!(shared, !expect_update, "{:?}", d.problems);
        if expect_update {
            let ops: Vec<serde_json::Value> = transaction(&d.changes)
                .ops
                .iter()
                .map(|o| o.to_json())
                .collect();
            let up = ops
                .iter()
                .find(|o| o["op"] == "update" && o["table"] == "BFD")
                .unwrap();
            assert_eq!(
                up["row"]["min_rx"],
                serde_json::json!(["set", [250]]),
                "{up}"
            );
        }
    }
}

#[test]
fn a_policy_is_written_with_its_reachable_hops_and_the_others_reported() {
    let img = base();
    let mut want = desired();
    want.policies[0].nexthops = BTreeSet::from(["100.64.0.2".into(), "172.18.0.9".into()]);
    let d = diff(&want, &seen(&img, &want));
    let written: Vec<&NbPolicy> = d
        .changes
        .iter()
        .filter_map(|c| match c {
            NbChange::Policy(RowChange::Create { row, .. }) => Some(row),
            _ => None,
        })
        .collect();
    assert_eq!(written.len(), 1, "{:?}", d.changes);
    assert_eq!(written[0].nexthops, BTreeSet::from(["100.64.0.2".into()]));
    assert!(
        d.problems
            .iter()
            .any(|p| p.reason == "NextHopUnreachable" && p.message.contains("172.18.0.9"))
    );
}

#[test]
fn a_shared_session_gets_the_timers_of_its_first_route_whatever_the_pass() {
    // Routes "a" (bfd: true) and "b" (bfd: {minTx: 300}) select every pod and share the
    // session to 100.64.0.2, created by "a" with OVN's default timers.
    let mut img = base();
    put(
        &mut img,
        u(71),
        model::Bfd {
            logical_port: "rtoj-ovn_cluster_router".into(),
            dst_ip: "100.64.0.2".into(),
            external_ids: owner("a", "bfd/rtoj-ovn_cluster_router/100.64.0.2").external_ids(),
            ..Default::default()
        },
    );
    let route = |r: &str| NbStaticRoute {
        owner: owner(
            r,
            &format!("{r}/static-route/172.16.{}.0/24/100.64.0.2", r.len()),
        ),
        router: "ovn_cluster_router".into(),
        ip_prefix: format!("172.16.{}.0/24", if r == "a" { 30 } else { 31 }),
        nexthop: "100.64.0.2".into(),
        policy: None,
        bfd: true,
        symmetric: false,
    };
    for (i, r) in ["a", "b"].iter().enumerate() {
        let row = route(r);
        put(
            &mut img,
            u(80 + i as u128),
            model::LogicalRouterStaticRoute {
                ip_prefix: row.ip_prefix.clone(),
                nexthop: row.nexthop.clone(),
                bfd: Some(u(71)),
                external_ids: row.owner.external_ids(),
                ..Default::default()
            },
        );
    }
    let mut routers = img.get_mut(ROUTER).unwrap().get_mut(&u(1)).unwrap().clone();
    routers.insert(
        "static_routes".into(),
        Value::set([Atom::Uuid(u(80)), Atom::Uuid(u(81))]),
    );
    img.get_mut(ROUTER).unwrap().insert(u(1), routers);
    let timers = BfdTimers {
        min_tx: Some(300),
        ..BfdTimers::default()
    };
    let all_timers: std::collections::BTreeMap<String, BfdTimers> =
        [("b".to_owned(), timers)].into();
    // A pass over "b" alone, over both, and over "a" alone: "a" sorts first, so the session
    // keeps its timers every time (no pass undoes another's).
    for scope in [vec!["b"], vec!["a", "b"], vec!["a"]] {
        let want = DesiredNb {
            static_routes: scope.iter().map(|r| route(r)).collect(),
            bfd_timers: all_timers.clone(),
            ..DesiredNb::default()
        };
        let names: BTreeSet<String> = scope.iter().map(|s| s.to_string()).collect();
        let d = diff(&want, &seen_in(&img, &want, Some(&names)));
        assert!(
            !d.changes
                .iter()
                .any(|c| matches!(c, NbChange::UpdateBfd { .. })),
            "{scope:?}: {:?}",
            d.changes
        );
    }
}
