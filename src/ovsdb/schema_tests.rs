//! Tests of the schema parser against the pinned NB schema and malformed input.
use super::*;
use serde_json::json;

fn nb() -> DatabaseSchema {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/ovn-nb.ovsschema"
    ))
    .unwrap();
    DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[test]
fn parses_the_pinned_nb_schema() {
    let s = nb();
    assert_eq!(s.name, "OVN_Northbound");
    assert_eq!(s.version, "7.0.0");
    let lrp = s.table("Logical_Router_Policy").unwrap();
    assert!(!lrp.is_root);
    let action = &lrp.column("action").unwrap().ty;
    assert_eq!(action.kind(), ColumnKind::Scalar);
    assert_eq!(
        action.key.enum_values.as_ref().unwrap(),
        &BTreeSet::from([
            Atom::from("allow"),
            Atom::from("drop"),
            Atom::from("reroute")
        ])
    );
    assert_eq!(lrp.column("nexthops").unwrap().ty.kind(), ColumnKind::Set);
    assert_eq!(
        lrp.column("external_ids").unwrap().ty.kind(),
        ColumnKind::Map
    );
    let lr = s.table("Logical_Router").unwrap();
    let routes = &lr.column("static_routes").unwrap().ty;
    assert_eq!(
        routes.key.ref_table.as_deref(),
        Some("Logical_Router_Static_Route")
    );
    assert_eq!(routes.max, None);
    assert_eq!(
        lr.column("enabled").unwrap().ty.kind(),
        ColumnKind::Optional
    );
    assert_eq!(s.table("NB_Global").unwrap().max_rows, Some(1));
    assert_eq!(
        s.table("BFD").unwrap().indexes,
        vec![vec!["logical_port".to_owned(), "dst_ip".to_owned()]]
    );
    let lb = &s
        .table("Logical_Switch")
        .unwrap()
        .column("load_balancer")
        .unwrap()
        .ty;
    assert_eq!(lb.key.ref_type, RefType::Weak);
    let prio = &s.table("ACL").unwrap().column("priority").unwrap().ty;
    assert_eq!(
        (prio.key.min_integer, prio.key.max_integer),
        (Some(0), Some(32767))
    );
}

#[test]
fn defaults_and_kinds() {
    let s = nb();
    let acl = s.table("ACL").unwrap();
    assert_eq!(
        acl.column("priority").unwrap().ty.default_value(),
        Value::from(0)
    );
    assert_eq!(
        acl.column("match").unwrap().ty.default_value(),
        Value::from("")
    );
    assert_eq!(
        acl.column("log").unwrap().ty.default_value(),
        Value::from(false)
    );
    assert_eq!(
        acl.column("name").unwrap().ty.default_value(),
        Value::empty_set()
    );
    assert!(acl.column("name").unwrap().ty.is_set());
    assert_eq!(
        acl.column("external_ids").unwrap().ty.default_value(),
        Value::Map(BTreeMap::new())
    );
}

#[test]
fn normalizes_values() {
    let s = nb();
    let lr = s.table("Logical_Router").unwrap();
    let ports = &lr.column("ports").unwrap().ty;
    let u: Uuid = "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab".parse().unwrap();
    // A bare atom is a one-element set.
    assert_eq!(
        ports.normalize("ports", Value::from(u), false).unwrap(),
        Value::set([Atom::Uuid(u)])
    );
    assert!(ports.normalize("ports", Value::from("x"), false).is_err());
    let name = &lr.column("name").unwrap().ty;
    assert_eq!(
        name.normalize("name", Value::set([Atom::from("r")]), false)
            .unwrap(),
        Value::from("r")
    );
    assert!(name.normalize("name", Value::empty_set(), false).is_err());
    let opts = &lr.column("options").unwrap().ty;
    assert_eq!(
        opts.normalize("options", Value::empty_set(), false)
            .unwrap(),
        Value::Map(BTreeMap::new())
    );
    assert!(opts.normalize("options", Value::from(1), false).is_err());
    let enabled = &lr.column("enabled").unwrap().ty;
    assert!(
        enabled
            .normalize("enabled", Value::set([true.into(), false.into()]), false)
            .is_err()
    );
    // ... but a diff toggling both is fine.
    assert!(
        enabled
            .normalize("enabled", Value::set([true.into(), false.into()]), true)
            .is_ok()
    );
    let real = ColumnType::from_json("t", &json!("real")).unwrap();
    assert_eq!(
        real.normalize("r", Value::from(3), false).unwrap(),
        Value::Atom(Atom::Real(3.0))
    );
}

#[test]
fn rejects_malformed_schemas() {
    let base =
        |cols: Json| json!({"name": "D", "version": "1.0.0", "tables": {"T": {"columns": cols}}});
    for bad in [
        json!([]),
        json!({"name": "D", "tables": {}}),
        base(json!({"c": {"type": "float"}})),
        base(json!({"c": {"type": {"key": "integer", "min": 2}}})),
        base(json!({"c": {"type": {"key": "integer", "max": 0}}})),
        base(json!({"c": {"type": {"key": {"type": "uuid", "refType": "soft"}}}})),
        base(json!({"c": {}})),
        json!({"name": "D", "version": "1", "tables": {"T": {"columns": {}, "indexes": [["x"]]}}}),
    ] {
        assert!(DatabaseSchema::from_json(&bad).is_err(), "{bad} accepted");
    }
    let ok = DatabaseSchema::from_json(&base(json!({"c": {"type": {"key": "string", "max": "unlimited", "min": 0}, "ephemeral": true, "mutable": false}}))).unwrap();
    let c = ok.table("T").unwrap().column("c").unwrap();
    assert!(c.ephemeral && !c.mutable && c.ty.is_set());
    assert!(ok.table("T").unwrap().is_root);
}
