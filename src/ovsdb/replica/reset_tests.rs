//! Full snapshots: reset drops stale rows and reports the difference, the piecewise
//! builder shares unchanged rows and publishes nothing until finished, and snapshots load
//! straight from JSON text.
use std::collections::BTreeMap;

use serde_json::json;

use super::tests::{ID_KEY, replica, seeded, u, us, v2};
use super::*;
use crate::ovsdb::update::parse_table_updates2;

#[test]
fn reset_drops_stale_rows_and_reports_the_difference() {
    let r = seeded();
    let cs = r
        .reset(&Update::V3 {
            last_txn_id: u(0xaa),
            updates: parse_table_updates2(&json!({
                "Logical_Router_Policy": {
                    us(2): {"initial": {"priority": 100, "match": "ip4.src == 10.0.0.1",
                        "action": "reroute", "nexthops": "100.64.0.2",
                        "external_ids": ["map", [[ID_KEY, "p2"], ["owner", "route-a"]]]}},
                    us(3): {"initial": {"priority": 201, "match": "ip4.src == 10.0.0.2",
                        "action": "allow", "external_ids": ["map", [[ID_KEY, "p3"]]]}}},
                "Address_Set": {us(8): {"initial": {"name": "as8"}}}}))
            .unwrap(),
        })
        .unwrap();
    assert!(cs.reset);
    let mut kinds: Vec<(String, Uuid, ChangeKind)> = cs
        .changes
        .iter()
        .map(|c| (c.table.clone(), c.uuid, c.kind))
        .collect();
    kinds.sort_by_key(|k| (k.0.clone(), k.1));
    assert_eq!(
        kinds,
        vec![
            ("Address_Set".into(), u(4), ChangeKind::Deleted),
            ("Address_Set".into(), u(8), ChangeKind::Inserted),
            ("Logical_Router".into(), u(1), ChangeKind::Deleted),
            ("Logical_Router_Policy".into(), u(3), ChangeKind::Modified),
        ]
    );
    let s = r.snapshot();
    assert!(s.get("Logical_Router", u(1)).is_none());
    assert!(
        s.find_by_index("Address_Set", "name", &"as1".into())
            .is_none()
    );
    assert_eq!(
        s.find_by_index("Address_Set", "name", &"as8".into())
            .unwrap()
            .uuid(),
        u(8)
    );
    assert_eq!(r.last_txn_id(), Some(u(0xaa)));
    assert_eq!(s.last_txn_id(), Some(u(0xaa)));
    // A snapshot may not contain modifies or deletes.
    assert!(
        r.reset(&v2(json!({"Address_Set": {us(8): {"delete": null}}})))
            .is_err()
    );
}

#[test]
fn reset_builder_loads_piecewise_and_shares_unchanged_rows() {
    let r = seeded();
    let before = r.snapshot();
    let mut b = r.begin_reset();
    let row = |j: serde_json::Value| crate::ovsdb::value::row_from_json(&j).unwrap();
    // Same content as the seeded address set: shared with the old snapshot.
    b.insert(
        "Address_Set",
        u(4),
        row(json!({"name": "as1", "addresses": ["set", ["10.0.0.1", "10.0.0.2"]]})),
    )
    .unwrap();
    // A duplicate is refused; an unknown table too; the builder stays usable.
    assert!(matches!(
        b.insert("Address_Set", u(4), Row::new()),
        Err(ReplicaError::DuplicateRow { .. })
    ));
    assert!(b.insert("ACL", u(9), Row::new()).is_err());
    b.insert("Address_Set", u(5), row(json!({"name": "as5"})))
        .unwrap();
    b.set_last_txn_id(u(0xbb));
    assert_eq!(b.rows(), 2);
    // Nothing is visible before finish.
    assert_eq!(r.snapshot().generation(), before.generation());
    let cs = b.finish();
    let mut kinds: Vec<(Uuid, ChangeKind)> = cs.changes.iter().map(|c| (c.uuid, c.kind)).collect();
    kinds.sort_by_key(|k| k.0);
    assert_eq!(
        kinds,
        vec![
            (u(1), ChangeKind::Deleted),
            (u(2), ChangeKind::Deleted),
            (u(3), ChangeKind::Deleted),
            (u(5), ChangeKind::Inserted),
        ]
    );
    let now = r.snapshot();
    let (old, new) = (
        before.get("Address_Set", u(4)).unwrap(),
        now.get("Address_Set", u(4)).unwrap(),
    );
    assert!(
        Arc::ptr_eq(&old.values, &new.values),
        "unchanged row was copied"
    );
    assert_eq!(now.last_txn_id(), Some(u(0xbb)));
    assert_eq!(now.len("Logical_Router_Policy"), 0);

    // A builder dropped without finish changes nothing.
    let mut b = r.begin_reset();
    b.insert("Address_Set", u(6), row(json!({"name": "as6"})))
        .unwrap();
    drop(b);
    assert_eq!(r.snapshot().generation(), now.generation());
    assert!(r.snapshot().get("Address_Set", u(6)).is_none());
}

#[test]
fn snapshots_load_straight_from_json_text() {
    let text = json!({
        "Logical_Router": {us(1): {"initial": {"name": "r1",
            "policies": ["set", [["uuid", us(2)], ["uuid", us(3)]]]}}},
        "Logical_Router_Policy": {
            us(2): {"initial": {"priority": 100, "match": "ip4.src == 10.0.0.1",
                "action": "reroute", "nexthops": "100.64.0.2",
                "external_ids": ["map", [[ID_KEY, "p2"], ["owner", "route-a"]]]}},
            us(3): {"insert": {"priority": 200, "match": "ip4.src == 10.0.0.2",
                "action": "allow", "external_ids": ["map", [[ID_KEY, "p3"]]]}}},
        "Address_Set": {us(4): {"new": {"name": "as1",
            "addresses": ["set", ["10.0.0.1", "10.0.0.2"]]}}}
    })
    .to_string();
    let r = replica();
    let mut b = r.begin_reset();
    b.insert_json(text.as_bytes()).unwrap();
    assert_eq!(b.rows(), 4);
    b.finish();
    // Same content as the same rows applied through an Update.
    let all = |s: &Snapshot| -> BTreeMap<(String, Uuid), Row> {
        s.tables()
            .flat_map(|t| {
                s.iter(t)
                    .map(|r| ((r.table().to_owned(), r.uuid()), r.to_row()))
            })
            .collect()
    };
    assert_eq!(all(&r.snapshot()), all(&seeded().snapshot()));
    assert_eq!(
        r.snapshot()
            .find_by_external_id("Logical_Router_Policy", ID_KEY, "p3")[0]
            .uuid(),
        u(3)
    );

    // Bad input: an error, and nothing published.
    let before = r.snapshot().generation();
    for bad in [
        "{".to_owned(),
        json!({"ACL": {us(1): {"initial": {}}}}).to_string(),
        json!({"Address_Set": {us(9): {"modify": {"name": "x"}}}}).to_string(),
        json!({"Address_Set": {"not-a-uuid": {"initial": {"name": "x"}}}}).to_string(),
        json!({"Address_Set": {us(9): {"initial": {"name": 5}}}}).to_string(),
        json!({"Address_Set": {us(9): {"initial": {"name": ["frob", 1]}}}}).to_string(),
        json!({"Address_Set": {us(9): {"initial": {"name": "x"}, "old": {}}}}).to_string(),
        json!({"Address_Set": []}).to_string(),
        format!("{} trailing", json!({})),
    ] {
        let mut b = r.begin_reset();
        let e = b.insert_json(bad.as_bytes());
        assert!(e.is_err(), "{bad} accepted");
        drop(b);
        assert_eq!(r.snapshot().generation(), before, "{bad}");
    }
    let mut b = r.begin_reset();
    let e = b.insert_json(
        json!({"ACL": {us(1): {"initial": {}}}})
            .to_string()
            .as_bytes(),
    );
    assert!(matches!(e, Err(ReplicaError::UnknownTable { .. })), "{e:?}");
    let e = b.insert_json(b"[1]");
    assert!(matches!(e, Err(ReplicaError::Json { .. })), "{e:?}");
}
