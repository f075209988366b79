use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::*;
use crate::ovsdb::update::{parse_table_updates, parse_table_updates2};
use crate::ovsdb::value::Atom;

pub(super) const ID_KEY: &str = "k8s.ovn.org/id";

pub(super) fn schema() -> DatabaseSchema {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/ovn-nb.ovsschema"
    ))
    .unwrap();
    DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap()
}

pub(super) fn replica() -> Replica {
    Replica::new(
        &schema(),
        &[
            TableSpec::all("Logical_Router"),
            TableSpec::all("Logical_Router_Policy").with_external_id_keys(&[ID_KEY]),
            TableSpec::all("Address_Set").with_external_id_keys(&[ID_KEY]),
            TableSpec::all("BFD"),
        ],
    )
    .unwrap()
}

pub(super) fn u(n: u8) -> Uuid {
    format!("00000000-0000-4000-8000-0000000000{n:02x}")
        .parse()
        .unwrap()
}

pub(super) fn us(n: u8) -> String {
    u(n).to_string()
}

pub(super) fn v2(j: serde_json::Value) -> Update {
    Update::V2(parse_table_updates2(&j).unwrap())
}

fn strings(v: impl std::borrow::Borrow<Value>) -> BTreeSet<String> {
    v.borrow()
        .set_iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// A router with two policies and an address set, as an initial snapshot.
pub(super) fn seeded() -> Replica {
    let r = replica();
    r.reset(&v2(json!({
        "Logical_Router": {us(1): {"initial": {"name": "r1",
            "policies": ["set", [["uuid", us(2)], ["uuid", us(3)]]]}}},
        "Logical_Router_Policy": {
            us(2): {"initial": {"priority": 100, "match": "ip4.src == 10.0.0.1",
                "action": "reroute", "nexthops": "100.64.0.2",
                "external_ids": ["map", [[ID_KEY, "p2"], ["owner", "route-a"]]]}},
            us(3): {"initial": {"priority": 200, "match": "ip4.src == 10.0.0.2",
                "action": "allow", "external_ids": ["map", [[ID_KEY, "p3"]]]}}},
        "Address_Set": {us(4): {"initial": {"name": "as1",
            "addresses": ["set", ["10.0.0.1", "10.0.0.2"]]}}}
    })))
    .unwrap();
    r
}

#[test]
fn initial_rows_fill_defaults_and_canonical_forms() {
    let s = seeded().snapshot();
    assert_eq!(s.len("Logical_Router_Policy"), 2);
    let p3 = s.get("Logical_Router_Policy", u(3)).unwrap();
    // Omitted columns hold their defaults.
    assert_eq!(p3.get("nexthops"), Some(Value::empty_set()));
    assert_eq!(p3.get("options"), Some(Value::Map(BTreeMap::new())));
    // A bare atom for a set column is a one-element set.
    let p2 = s.get("Logical_Router_Policy", u(2)).unwrap();
    assert_eq!(
        p2.get("nexthops"),
        Some(Value::set([Atom::from("100.64.0.2")]))
    );
    assert_eq!(p2.get("priority"), Some(Value::from(100)));
    assert_eq!(p2.external_id("owner"), Some("route-a"));
    assert_eq!(p2.table(), "Logical_Router_Policy");
    assert!(s.get("Logical_Router_Policy", u(9)).is_none());
    assert!(s.get("ACL", u(2)).is_none());
    assert_eq!(s.generation(), 1);
}

#[test]
fn set_diffs_toggle_elements_including_bare_atoms() {
    let r = seeded();
    // Remove 10.0.0.1 and add 10.0.0.3 in one diff; then a bare-atom diff removes .2.
    r.apply(&v2(json!({"Address_Set": {us(4): {"modify":
        {"addresses": ["set", ["10.0.0.1", "10.0.0.3"]]}}}})))
        .unwrap();
    let s = r.snapshot();
    let got = strings(
        s.get("Address_Set", u(4))
            .unwrap()
            .get("addresses")
            .unwrap(),
    );
    assert_eq!(got, BTreeSet::from(["10.0.0.2".into(), "10.0.0.3".into()]));
    r.apply(&v2(
        json!({"Address_Set": {us(4): {"modify": {"addresses": "10.0.0.2"}}}}),
    ))
    .unwrap();
    let got = strings(
        r.snapshot()
            .get("Address_Set", u(4))
            .unwrap()
            .get("addresses")
            .unwrap(),
    );
    assert_eq!(got, BTreeSet::from(["10.0.0.3".into()]));
    // Optional (min 0, max 1) columns take the diff as their new value, as ovsdb-server
    // sends it: set, change, clear.
    let enabled = |r: &Replica| {
        r.snapshot()
            .get("Logical_Router", u(1))
            .unwrap()
            .get("enabled")
    };
    r.apply(&v2(
        json!({"Logical_Router": {us(1): {"modify": {"enabled": false}}}}),
    ))
    .unwrap();
    assert_eq!(enabled(&r), Some(Value::set([Atom::Boolean(false)])));
    r.apply(&v2(
        json!({"Logical_Router": {us(1): {"modify": {"enabled": true}}}}),
    ))
    .unwrap();
    assert_eq!(enabled(&r), Some(Value::set([Atom::Boolean(true)])));
    r.apply(&v2(
        json!({"Logical_Router": {us(1): {"modify": {"enabled": ["set", []]}}}}),
    ))
    .unwrap();
    assert_eq!(enabled(&r), Some(Value::empty_set()));
}

#[test]
fn map_diffs_insert_remove_replace() {
    let r = seeded();
    r.apply(&v2(
        json!({"Logical_Router_Policy": {us(2): {"modify": {"external_ids": ["map", [
            ["owner", "route-a"],   // same key, same value: removed
            [ID_KEY, "p2-new"],     // same key, other value: replaced
            ["extra", "x"]          // absent key: inserted
        ]]}}}}),
    ))
    .unwrap();
    let p2 = r.snapshot().get("Logical_Router_Policy", u(2)).unwrap();
    assert_eq!(
        p2.get("external_ids"),
        Some(Value::map([(ID_KEY, "p2-new"), ("extra", "x")]))
    );
}

#[test]
fn scalar_modify_replaces_and_other_columns_stay() {
    let r = seeded();
    let cs = r
        .apply(&v2(
            json!({"Logical_Router_Policy": {us(3): {"modify": {"priority": 300}}}}),
        ))
        .unwrap();
    assert_eq!(cs.changes.len(), 1);
    let c = &cs.changes[0];
    assert_eq!(
        (c.kind, c.uuid, c.table.as_str()),
        (ChangeKind::Modified, u(3), "Logical_Router_Policy")
    );
    assert_eq!(
        c.old.as_ref().unwrap().get("priority"),
        Some(Value::from(200))
    );
    let new = c.new.as_ref().unwrap();
    assert_eq!(new.get("priority"), Some(Value::from(300)));
    assert_eq!(new.get("action"), Some(Value::from("allow")));
}

#[test]
fn insert_and_delete_with_change_sets() {
    let r = seeded();
    let cs = r
        .apply(&v2(json!({"Logical_Router_Policy": {
            us(5): {"insert": {"priority": 5, "match": "1", "action": "drop"}},
            us(2): {"delete": null}}})))
        .unwrap();
    let kinds: BTreeMap<Uuid, ChangeKind> = cs.changes.iter().map(|c| (c.uuid, c.kind)).collect();
    assert_eq!(
        kinds,
        BTreeMap::from([(u(2), ChangeKind::Deleted), (u(5), ChangeKind::Inserted)])
    );
    let del = cs.changes.iter().find(|c| c.uuid == u(2)).unwrap();
    assert!(del.new.is_none() && del.old.is_some());
    let s = r.snapshot();
    assert!(s.get("Logical_Router_Policy", u(2)).is_none());
    assert!(s.get("Logical_Router_Policy", u(5)).is_some());
    assert_eq!(cs.generation(), s.generation());
}

#[test]
fn update_v1_old_new() {
    let r = seeded();
    let upd = |j| Update::V1(parse_table_updates(&j).unwrap());
    r.apply(&upd(json!({"Address_Set": {
        us(6): {"new": {"name": "as6", "addresses": ["set", ["1.1.1.1"]]}},
        us(4): {"old": {"addresses": ["set", ["10.0.0.1", "10.0.0.2"]]},
                "new": {"name": "as1", "addresses": "9.9.9.9"}}}})))
        .unwrap();
    let s = r.snapshot();
    assert_eq!(
        strings(
            s.get("Address_Set", u(4))
                .unwrap()
                .get("addresses")
                .unwrap()
        ),
        BTreeSet::from(["9.9.9.9".into()])
    );
    assert!(s.get("Address_Set", u(6)).is_some());
    r.apply(&upd(
        json!({"Address_Set": {us(6): {"old": {"name": "as6"}}}}),
    ))
    .unwrap();
    assert!(r.snapshot().get("Address_Set", u(6)).is_none());
    // Neither old nor new, modify/delete of a missing row, insert of a present one.
    for bad in [
        json!({"Address_Set": {us(4): {}}}),
        json!({"Address_Set": {us(7): {"old": {}, "new": {"name": "x"}}}}),
        json!({"Address_Set": {us(7): {"old": {}}}}),
        json!({"Address_Set": {us(4): {"new": {"name": "x"}}}}),
    ] {
        assert!(r.apply(&upd(bad.clone())).is_err(), "{bad} accepted");
    }
}

#[test]
fn snapshots_are_isolated_from_later_updates() {
    let r = seeded();
    let before = r.snapshot();
    r.apply(&v2(json!({
        "Address_Set": {us(4): {"modify": {"addresses": "10.0.0.9"}},
                        us(9): {"insert": {"name": "as9"}}},
        "Logical_Router_Policy": {us(2): {"delete": null}}})))
        .unwrap();
    assert_eq!(
        strings(
            before
                .get("Address_Set", u(4))
                .unwrap()
                .get("addresses")
                .unwrap()
        ),
        BTreeSet::from(["10.0.0.1".into(), "10.0.0.2".into()])
    );
    assert!(before.get("Address_Set", u(9)).is_none());
    assert!(
        before
            .find_by_index("Address_Set", "name", &"as9".into())
            .is_none()
    );
    assert_eq!(
        before
            .find_by_external_id("Logical_Router_Policy", ID_KEY, "p2")
            .len(),
        1
    );
    let after = r.snapshot();
    assert_eq!(
        strings(
            after
                .get("Address_Set", u(4))
                .unwrap()
                .get("addresses")
                .unwrap()
        )
        .len(),
        3
    );
    assert!(
        after
            .find_by_external_id("Logical_Router_Policy", ID_KEY, "p2")
            .is_empty()
    );
    assert_eq!(after.generation(), before.generation() + 1);
}

#[test]
fn indexes_follow_modify_and_delete() {
    let r = seeded();
    let s = r.snapshot();
    assert_eq!(
        s.find_by_index("Address_Set", "name", &"as1".into())
            .unwrap()
            .uuid(),
        u(4)
    );
    assert_eq!(
        s.find_by_external_id("Logical_Router_Policy", ID_KEY, "p3")[0].uuid(),
        u(3)
    );
    // Rename the address set and swap the policies' ids in one update.
    r.apply(&v2(json!({
        "Address_Set": {us(4): {"modify": {"name": "as1-renamed"}}},
        "Logical_Router_Policy": {
            us(2): {"modify": {"external_ids": ["map", [[ID_KEY, "p3"]]]}},
            us(3): {"modify": {"external_ids": ["map", [[ID_KEY, "p2"]]]}}}})))
        .unwrap();
    let s = r.snapshot();
    assert!(
        s.find_by_index("Address_Set", "name", &"as1".into())
            .is_none()
    );
    assert_eq!(
        s.find_by_index("Address_Set", "name", &"as1-renamed".into())
            .unwrap()
            .uuid(),
        u(4)
    );
    assert_eq!(
        s.find_by_external_id("Logical_Router_Policy", ID_KEY, "p3")[0].uuid(),
        u(2)
    );
    assert_eq!(
        s.find_by_external_id("Logical_Router_Policy", ID_KEY, "p2")[0].uuid(),
        u(3)
    );
    // A non-indexed key is scanned.
    assert_eq!(
        s.find_by_external_id("Logical_Router_Policy", "owner", "route-a")[0].uuid(),
        u(2)
    );
    // A non-indexed column is scanned.
    assert_eq!(
        s.find_by_index("Logical_Router_Policy", "priority", &100.into())
            .unwrap()
            .uuid(),
        u(2)
    );
    r.apply(&v2(json!({"Address_Set": {us(4): {"delete": null}}})))
        .unwrap();
    assert!(
        r.snapshot()
            .find_by_index("Address_Set", "name", &"as1-renamed".into())
            .is_none()
    );
}

#[test]
fn multi_column_index() {
    let r = replica();
    r.reset(&v2(json!({"BFD": {
        us(1): {"initial": {"logical_port": "lrp1", "dst_ip": "1.1.1.1"}},
        us(2): {"initial": {"logical_port": "lrp1", "dst_ip": "2.2.2.2"}}}})))
        .unwrap();
    let s = r.snapshot();
    let (p, ip2) = (Value::from("lrp1"), Value::from("2.2.2.2"));
    let hit = s
        .find_by_columns("BFD", &[("logical_port", &p), ("dst_ip", &ip2)])
        .unwrap();
    assert_eq!(hit.uuid(), u(2));
    let ip3 = Value::from("3.3.3.3");
    assert!(
        s.find_by_columns("BFD", &[("logical_port", &p), ("dst_ip", &ip3)])
            .is_none()
    );
}

#[test]
fn bad_updates_are_errors_and_change_nothing() {
    let r = seeded();
    let before = r.snapshot();
    let cases = [
        // Unknown table; unmonitored/unknown column; modify and delete of missing rows;
        // duplicate insert; wrong value type; a diff leaving a scalar empty.
        json!({"ACL": {us(9): {"insert": {"priority": 1}}}}),
        json!({"Address_Set": {us(4): {"modify": {"frob": 1}}}}),
        json!({"Address_Set": {us(9): {"modify": {"name": "x"}}}}),
        json!({"Address_Set": {us(9): {"delete": null}}}),
        json!({"Address_Set": {us(4): {"insert": {"name": "x"}}}}),
        json!({"Logical_Router_Policy": {us(2): {"modify": {"priority": "high"}}}}),
        json!({"Logical_Router_Policy": {us(2): {"modify": {"nexthops": ["map", [["a", "b"]]]}}}}),
        json!({"Logical_Router": {us(1): {"modify": {"enabled": ["set", [true, false]]}}}}),
    ];
    for bad in cases {
        // A good change first in the same update must not survive the failure.
        let mut j = bad.clone();
        j.as_object_mut().unwrap().insert(
            "BFD".into(),
            json!({us(7): {"insert": {"logical_port": "x", "dst_ip": "1.1.1.1"}}}),
        );
        let err = r.apply(&v2(j));
        assert!(err.is_err(), "{bad} accepted");
        let now = r.snapshot();
        assert_eq!(now.generation(), before.generation(), "{bad}");
        assert!(
            now.get("BFD", u(7)).is_none(),
            "{bad}: partial update published"
        );
        for t in ["Logical_Router", "Logical_Router_Policy", "Address_Set"] {
            let a: BTreeMap<Uuid, Row> = now.iter(t).map(|r| (r.uuid(), r.to_row())).collect();
            let b: BTreeMap<Uuid, Row> = before.iter(t).map(|r| (r.uuid(), r.to_row())).collect();
            assert_eq!(a, b, "{bad}: table {t} changed");
        }
    }
    let e = r
        .apply(&v2(json!({"Address_Set": {us(9): {"delete": null}}})))
        .unwrap_err();
    assert!(e.to_string().contains("does not hold"), "{e}");
}

#[test]
fn bad_specs_are_refused() {
    let s = schema();
    assert!(matches!(
        Replica::new(&s, &[TableSpec::all("Nope")]),
        Err(ReplicaError::UnknownTable { .. })
    ));
    assert!(matches!(
        Replica::new(&s, &[TableSpec::all("ACL").with_columns(&["nope"])]),
        Err(ReplicaError::UnknownColumn { .. })
    ));
    assert!(matches!(
        Replica::new(
            &s,
            &[TableSpec::all("ACL")
                .with_columns(&["match"])
                .with_external_id_keys(&["k"])]
        ),
        Err(ReplicaError::NoExternalIds { .. })
    ));
}

#[test]
fn monitor_requests_list_columns() {
    let r = Replica::new(
        &schema(),
        &[
            TableSpec::all("ACL").with_columns(&["match", "priority"]),
            TableSpec::all("BFD"),
        ],
    )
    .unwrap();
    let m = r.monitor_requests();
    assert_eq!(m["ACL"], json!({"columns": ["match", "priority"]}));
    assert_eq!(m["BFD"]["columns"].as_array().unwrap().len(), 8);
    // Columns not monitored are refused in updates.
    r.reset(&v2(json!({"ACL": {us(1): {"initial": {"match": "1"}}}})))
        .unwrap();
    assert!(
        r.apply(&v2(json!({"ACL": {us(1): {"modify": {"action": "drop"}}}})))
            .is_err()
    );
}

#[test]
fn extra_indexes_follow_changes() {
    let r = Replica::new(
        &schema(),
        &[TableSpec::all("Logical_Router").with_index(&["name"])],
    )
    .unwrap();
    r.reset(&v2(json!({"Logical_Router": {
        us(1): {"initial": {"name": "a"}}, us(2): {"initial": {"name": "b"}}}})))
        .unwrap();
    let find = |name: &str| {
        r.snapshot()
            .find_by_index("Logical_Router", "name", &name.into())
            .map(|r| r.uuid())
    };
    assert_eq!(
        r.meta.tables[0].indexes,
        vec![vec![r.meta.tables[0].position("name").unwrap()]]
    );
    assert_eq!((find("a"), find("b")), (Some(u(1)), Some(u(2))));
    r.apply(&v2(
        json!({"Logical_Router": {us(1): {"modify": {"name": "c"}}, us(2): {"delete": null}}}),
    ))
    .unwrap();
    assert_eq!((find("a"), find("b"), find("c")), (None, None, Some(u(1))));
    assert!(matches!(
        Replica::new(
            &schema(),
            &[TableSpec::all("Logical_Router").with_index(&["nope"])]
        ),
        Err(ReplicaError::UnknownColumn { .. })
    ));
}
