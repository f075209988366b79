//! Echoes against a real replica (the pinned NB schema): a change is ours only when it is
//! exactly what the transaction did.
use serde_json::json;

use super::*;
use crate::ovsdb::update::parse_table_updates2;
use crate::ovsdb::{DatabaseSchema, Mutation, Replica, TableSpec, Update};

fn u(n: u8) -> Uuid {
    format!("00000000-0000-4000-8000-0000000000{n:02x}")
        .parse()
        .unwrap()
}

fn us(n: u8) -> String {
    u(n).to_string()
}

fn replica() -> Replica {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/ovn-nb.ovsschema"
    ))
    .unwrap();
    let schema = DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    let r = Replica::new(
        &schema,
        &[
            TableSpec::all("Logical_Router"),
            TableSpec::all("Logical_Router_Policy"),
            TableSpec::all("Address_Set"),
            TableSpec::all("Port_Group"),
            TableSpec::all("ACL"),
        ],
    )
    .unwrap();
    r.reset(&v2(json!({
        "Logical_Router": {us(1): {"initial": {"name": "r1",
            "policies": ["set", [["uuid", us(2)]]]}}},
        "Logical_Router_Policy": {us(2): {"initial": {"priority": 100,
            "match": "ip4.src == 10.0.0.1", "action": "reroute", "nexthops": "100.64.0.2",
            "external_ids": ["map", [["owner", "ovnkube-route"]]]}}},
        "Address_Set": {us(4): {"initial": {"name": "as1",
            "addresses": ["set", ["10.0.0.1", "10.0.0.2"]]}}},
        "Port_Group": {us(7): {"initial": {"name": "pg1", "acls": ["uuid", us(8)]}}},
        "ACL": {us(8): {"initial": {"priority": 1000, "direction": "from-lport",
            "match": "1", "action": "allow"}}}
    })))
    .unwrap();
    r
}

fn v2(j: serde_json::Value) -> Update {
    Update::V2(parse_table_updates2(&j).unwrap())
}

/// The one row change an update brings.
fn change(r: &Replica, j: serde_json::Value) -> RowChange {
    let cs = r.apply(&v2(j)).unwrap();
    assert_eq!(cs.changes.len(), 1, "{cs:?}");
    cs.changes[0].clone()
}

fn row(j: serde_json::Value) -> Row {
    crate::ovsdb::value::row_from_json(&j).unwrap()
}

fn strings(items: &[&str]) -> Value {
    Value::set(items.iter().map(|s| Atom::from(*s)))
}

/// Echoes expecting one committed transaction over `r` as it is now.
fn expecting(r: &Replica, ops: &[Operation], results: &[OpResult]) -> Echoes {
    let mut e = Echoes::default();
    e.expect(ops, results, &r.snapshot());
    e
}

fn by_uuid(n: u8) -> Vec<Condition> {
    vec![Condition::uuid(u(n))]
}

/// A policy inserted (with `uuid`, or the server's) and added to router 1 by its name.
fn policy_linked_to_router(uuid: Option<Uuid>) -> Vec<Operation> {
    vec![
        Operation::Insert {
            table: "Logical_Router_Policy".into(),
            row: row(json!({"priority": 10, "match": "1", "action": "allow"})),
            uuid_name: Some("p".into()),
            uuid,
        },
        Operation::Mutate {
            table: "Logical_Router".into(),
            conditions: by_uuid(1),
            mutations: vec![Mutation::insert(
                "policies",
                Value::set([Atom::NamedUuid("p".into())]),
            )],
        },
    ]
}

fn insert_as() -> (Vec<Operation>, Vec<OpResult>) {
    let ops = vec![
        Operation::Insert {
            table: "Address_Set".into(),
            row: row(json!({"name": "as5", "addresses": ["set", ["10.1.0.1"]],
                "external_ids": ["map", [["owner", "ovnkube-route"]]]})),
            uuid_name: Some("r0".into()),
            uuid: None,
        },
        Operation::Comment("ovnkube-route".into()),
    ];
    (ops, vec![OpResult::Insert(u(5)), OpResult::Empty])
}

#[test]
fn an_insert_is_ours_when_its_written_columns_hold_what_we_wrote() {
    let r = replica();
    let (ops, results) = insert_as();
    let mut e = expecting(&r, &ops, &results);
    assert_eq!(e.pending(), 1);
    let c = change(
        &r,
        json!({"Address_Set": {us(5): {"insert": {"name": "as5", "addresses": "10.1.0.1",
            "external_ids": ["map", [["owner", "ovnkube-route"]]]}}}}),
    );
    assert!(e.explains(&c));
    e.end_update();
    assert_eq!(e.pending(), 0);
    // Used up: the same change again is not ours.
    assert!(!e.explains(&c));
}

#[test]
fn an_insert_with_another_value_is_drift() {
    let r = replica();
    let (ops, results) = insert_as();
    let mut e = expecting(&r, &ops, &results);
    // Another client changed the addresses before the update was sent (one update for both).
    let c = change(
        &r,
        json!({"Address_Set": {us(5): {"insert": {"name": "as5",
            "addresses": ["set", ["10.1.0.1", "10.9.9.9"]],
            "external_ids": ["map", [["owner", "ovnkube-route"]]]}}}}),
    );
    assert!(!e.explains(&c));
    e.end_update();
    assert_eq!(e.pending(), 0, "seen, so done with");
}

fn mutate_as() -> (Vec<Operation>, Vec<OpResult>) {
    let ops = vec![Operation::Mutate {
        table: "Address_Set".into(),
        conditions: by_uuid(4),
        mutations: vec![
            Mutation::delete("addresses", strings(&["10.0.0.1"])),
            Mutation::insert("addresses", strings(&["10.0.0.3"])),
        ],
    }];
    (ops, vec![OpResult::Count(1)])
}

#[test]
fn a_mutation_is_ours_when_old_and_new_differ_by_exactly_its_elements() {
    let r = replica();
    let (ops, results) = mutate_as();
    let mut e = expecting(&r, &ops, &results);
    let c = change(
        &r,
        json!({"Address_Set": {us(4): {"modify":
            {"addresses": ["set", ["10.0.0.1", "10.0.0.3"]]}}}}),
    );
    assert!(e.explains(&c));
}

#[test]
fn a_mutation_with_more_in_it_is_drift() {
    for extra in [
        // another element added by someone else in the same update
        json!({"addresses": ["set", ["10.0.0.1", "10.0.0.3", "10.0.0.4"]]}),
        // a column we did not touch
        json!({"addresses": ["set", ["10.0.0.1", "10.0.0.3"]], "name": "other"}),
        // only half of ours
        json!({"addresses": ["set", ["10.0.0.3"]]}),
    ] {
        let r = replica();
        let (ops, results) = mutate_as();
        let mut e = expecting(&r, &ops, &results);
        let c = change(
            &r,
            json!({"Address_Set": {us(4): {"modify": extra.clone()}}}),
        );
        assert!(!e.explains(&c), "{extra}");
    }
}

#[test]
fn an_update_is_ours_when_only_its_columns_changed_to_its_values() {
    let ops = vec![Operation::Update {
        table: "Logical_Router_Policy".into(),
        conditions: by_uuid(2),
        row: row(json!({"priority": 300, "nexthops": ["set", ["100.64.0.2", "100.64.0.3"]]})),
    }];
    let results = vec![OpResult::Count(1)];
    let r = replica();
    let mut e = expecting(&r, &ops, &results);
    let c = change(
        &r,
        json!({"Logical_Router_Policy": {us(2): {"modify":
            {"priority": 300, "nexthops": "100.64.0.3"}}}}),
    );
    assert!(e.explains(&c));

    let r = replica();
    let mut e = expecting(&r, &ops, &results);
    let c = change(
        &r,
        json!({"Logical_Router_Policy": {us(2): {"modify":
            {"priority": 300, "nexthops": "100.64.0.3", "action": "drop"}}}}),
    );
    assert!(!e.explains(&c), "action changed too");
}

#[test]
fn a_child_whose_reference_went_is_ours_when_it_is_deleted() {
    let ops = vec![Operation::Mutate {
        table: "Logical_Router".into(),
        conditions: by_uuid(1),
        mutations: vec![Mutation::delete("policies", Value::set([Atom::Uuid(u(2))]))],
    }];
    let r = replica();
    let mut e = expecting(&r, &ops, &[OpResult::Count(1)]);
    let cs = r
        .apply(&v2(json!({
            "Logical_Router": {us(1): {"modify": {"policies": ["uuid", us(2)]}}},
            "Logical_Router_Policy": {us(2): {"delete": null}}
        })))
        .unwrap();
    let policy = cs
        .changes
        .iter()
        .find(|c| c.table == "Logical_Router_Policy")
        .unwrap();
    assert!(e.explains(policy));
}

#[test]
fn a_deleted_row_is_ours_and_an_insert_by_name_reference_resolves() {
    // A policy inserted and linked to the router by its named uuid; the address set deleted.
    let mut ops = policy_linked_to_router(None);
    ops.push(Operation::Delete {
        table: "Address_Set".into(),
        conditions: by_uuid(4),
    });
    let results = vec![
        OpResult::Insert(u(6)),
        OpResult::Count(1),
        OpResult::Count(1),
    ];
    let r = replica();
    let mut e = expecting(&r, &ops, &results);
    let cs = r
        .apply(&v2(json!({
            "Logical_Router": {us(1): {"modify": {"policies": ["uuid", us(6)]}}},
            "Logical_Router_Policy": {us(6): {"insert":
                {"priority": 10, "match": "1", "action": "allow"}}},
            "Address_Set": {us(4): {"delete": null}}
        })))
        .unwrap();
    for c in &cs.changes {
        assert!(e.explains(c), "{c:?}");
    }
    e.end_update();
    assert_eq!(e.pending(), 0);
}

#[test]
fn a_transaction_recorded_before_its_reply_is_known_by_the_uuids_it_gives() {
    // The policy carries its own UUID: no results needed, the update may come first.
    let ops = policy_linked_to_router(Some(u(6)));
    let r = replica();
    let mut e = Echoes::default();
    let ticket = e.expect(&ops, &[], &r.snapshot());
    assert!(ticket.is_some());
    let c = change(
        &r,
        json!({"Logical_Router_Policy": {us(6): {"insert":
            {"priority": 10, "match": "1", "action": "allow"}}}}),
    );
    assert!(e.explains(&c));
    e.end_update();
    assert_eq!(e.pending(), 0);

    // Another one that failed: forgotten, so the same row appearing later is not ours.
    let mut e = Echoes::default();
    let first = e.expect(&ops, &[], &r.snapshot()).unwrap();
    let (other, results) = insert_as();
    e.expect(&other, &results, &r.snapshot());
    assert_eq!(e.pending(), 2);
    e.forget(first);
    assert_eq!(e.pending(), 1);
    let c = change(
        &r,
        json!({"Logical_Router_Policy": {us(6): {"modify": {"priority": 11}}}}),
    );
    assert!(!e.explains(&c));
    // Without a UUID of its own and without results, an insert cannot be expected.
    let mut e = Echoes::default();
    assert_eq!(e.expect(&other, &[], &r.snapshot()), None);
}

#[test]
fn a_row_changed_by_a_condition_other_than_its_uuid_is_never_ours() {
    let ops = vec![Operation::Update {
        table: "Address_Set".into(),
        conditions: vec![Condition::eq("name", "as1")],
        row: row(json!({"name": "as1b"})),
    }];
    let r = replica();
    let mut e = expecting(&r, &ops, &[OpResult::Count(1)]);
    let c = change(
        &r,
        json!({"Address_Set": {us(4): {"modify": {"name": "as1b"}}}}),
    );
    assert!(!e.explains(&c));
}

#[test]
fn expectations_are_dropped_on_clear_and_bounded() {
    let (ops, results) = mutate_as();
    let r = replica();
    let mut e = Echoes::default();
    for _ in 0..PENDING + 5 {
        e.expect(&ops, &results, &r.snapshot());
    }
    assert_eq!(e.pending(), PENDING);
    e.clear();
    assert_eq!(e.pending(), 0);
    let c = change(
        &r,
        json!({"Address_Set": {us(4): {"modify":
            {"addresses": ["set", ["10.0.0.1", "10.0.0.3"]]}}}}),
    );
    assert!(!e.explains(&c));
}

#[test]
fn the_children_of_a_deleted_row_go_with_it() {
    let ops = vec![Operation::Delete {
        table: "Port_Group".into(),
        conditions: by_uuid(7),
    }];
    let r = replica();
    let mut e = expecting(&r, &ops, &[OpResult::Count(1)]);
    let cs = r
        .apply(&v2(json!({
            "Port_Group": {us(7): {"delete": null}},
            "ACL": {us(8): {"delete": null}}
        })))
        .unwrap();
    assert_eq!(cs.changes.len(), 2);
    for c in &cs.changes {
        assert!(e.explains(c), "{c:?}");
    }
}
