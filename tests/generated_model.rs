//! The typed NB rows in `src/nb/model.rs` are generated from the pinned schema
//! `schemas/ovn-nb.ovsschema` by `ovsdb::modelgen`. These tests fail when the checked-in file
//! is stale (set `UPDATE_GENERATED=1` to rewrite it), when the pinned schema differs from the
//! OVN installed here, and when typed rows do not convert as promised.

// Test helpers may unwrap, like the tests themselves (see clippy.toml).
#![allow(clippy::unwrap_used)]
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ovnkube_route::nb::model::{self, Acl, AddressSet, LogicalRouter, LogicalRouterPolicy};
use ovnkube_route::ovsdb::modelgen::{self, ModelOptions};
use ovnkube_route::ovsdb::{
    DatabaseSchema, ModelError, Replica, Row, RowUpdate2, TableSpec, TypedRow, Update, Uuid, Value,
};

const REGENERATE: &str = "run `UPDATE_GENERATED=1 cargo test --test generated_model` to regenerate";
const INSTALLED: &str = "/usr/share/ovn/ovn-nb.ovsschema";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &Path) -> DatabaseSchema {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read schema {}: {e}", path.display()));
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    DatabaseSchema::from_json(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pinned() -> DatabaseSchema {
    load(&root().join("schemas/ovn-nb.ovsschema"))
}

/// The generator's output, formatted the way `cargo fmt` formats the checked-in file.
fn generated() -> String {
    let raw = modelgen::generate(
        &pinned(),
        &ModelOptions {
            tables: None,
            source: "schemas/ovn-nb.ovsschema".into(),
            regenerate: REGENERATE.into(),
        },
    );
    let mut fmt = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout", "--config-path"])
        .arg(root().join("rustfmt.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rustfmt (part of the Rust toolchain) must be installed to check the model");
    fmt.stdin.take().unwrap().write_all(raw.as_bytes()).unwrap();
    let out = fmt.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rustfmt rejected the generated model: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn checked_in_model_is_fresh() {
    let path = root().join("src/nb/model.rs");
    let want = generated();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "length differs".to_owned(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!("src/nb/model.rs is stale ({line}); {REGENERATE}");
    }
}

#[test]
fn pinned_schema_matches_installed_ovn() {
    assert!(
        Path::new(INSTALLED).exists(),
        "{INSTALLED} is missing: install ovn-central (the tests run against that OVN)"
    );
    let (installed, pinned) = (load(Path::new(INSTALLED)), pinned());
    assert_eq!(installed.name, pinned.name);
    assert_eq!(
        installed.version, pinned.version,
        "the installed OVN's NB schema differs from schemas/ovn-nb.ovsschema: copy it and regenerate"
    );
    assert_eq!(model::SCHEMA_VERSION, pinned.version);
}

#[test]
fn model_covers_the_tables_the_project_uses() {
    for t in [
        "NB_Global",
        "Logical_Router",
        "Logical_Router_Port",
        "Logical_Router_Policy",
        "Logical_Router_Static_Route",
        "BFD",
        "ACL",
        "Address_Set",
        "Port_Group",
        "Logical_Switch",
        "Logical_Switch_Port",
        "Load_Balancer",
    ] {
        assert!(model::TABLES.contains(&t), "no typed row for {t}");
    }
    let schema = pinned();
    assert_eq!(model::TABLES.len(), schema.tables.len());
    // Every column of the schema is a field, in order.
    let acl = schema.table("ACL").unwrap();
    let cols: Vec<&str> = acl.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(Acl::COLUMNS, cols.as_slice());
}

fn uuid(n: u8) -> Uuid {
    format!("00000000-0000-4000-8000-0000000000{n:02x}")
        .parse()
        .unwrap()
}

#[test]
fn typed_rows_round_trip_through_rows_and_the_replica() {
    let policy = LogicalRouterPolicy {
        uuid: uuid(1),
        priority: 1005,
        r#match: "ip4.src == 10.244.1.5".into(),
        action: "reroute".into(),
        nexthops: BTreeSet::from(["100.64.0.2".to_owned(), "100.64.0.3".to_owned()]),
        nexthop: None,
        external_ids: BTreeMap::from([("k8s.ovn.org/id".to_owned(), "route-a".to_owned())]),
        options: BTreeMap::new(),
    };
    let row = policy.to_row();
    assert_eq!(row["match"], Value::from("ip4.src == 10.244.1.5"));
    assert_eq!(row["nexthop"], Value::empty_set());
    assert_eq!(
        LogicalRouterPolicy::from_source(uuid(1), &row).unwrap(),
        policy
    );

    // Through the replica: insert the row as an update2 insert, read it back typed.
    let schema = pinned();
    let replica = Replica::new(&schema, &[TableSpec::all(LogicalRouterPolicy::TABLE)]).unwrap();
    let table = BTreeMap::from([(uuid(1), RowUpdate2::Insert(row))]);
    replica
        .apply(&Update::V2(BTreeMap::from([(
            LogicalRouterPolicy::TABLE.to_owned(),
            table,
        )])))
        .unwrap();
    let snap = replica.snapshot();
    let back: LogicalRouterPolicy = snap.get_typed(uuid(1)).unwrap().unwrap();
    assert_eq!(back, policy);
    let all: Vec<LogicalRouterPolicy> = snap.iter_typed().collect::<Result<_, _>>().unwrap();
    assert_eq!(all, vec![policy.clone()]);
    let found = snap.find_typed_by_external_id::<LogicalRouterPolicy>("k8s.ovn.org/id", "route-a");
    assert_eq!(found, vec![Ok(policy)]);
    // A row of another table is refused.
    let r = snap.get(LogicalRouterPolicy::TABLE, uuid(1)).unwrap();
    assert!(matches!(
        AddressSet::from_replica(&r),
        Err(ModelError::WrongTable { .. })
    ));
}

#[test]
fn defaults_match_the_schema_defaults() {
    let schema = pinned();
    for (table, row) in [
        ("Logical_Router", LogicalRouter::default().to_row()),
        ("ACL", Acl::default().to_row()),
    ] {
        for c in &schema.table(table).unwrap().columns {
            assert_eq!(row[&c.name], c.ty.default_value(), "{table}.{}", c.name);
        }
    }
}

#[test]
fn conversion_errors_name_table_and_column() {
    let mut row: Row = AddressSet::default().to_row();
    row.remove("addresses");
    let e = AddressSet::from_source(uuid(1), &row).unwrap_err();
    assert_eq!(
        e,
        ModelError::MissingColumn {
            table: "Address_Set",
            column: "addresses"
        }
    );
    assert!(e.to_string().contains("Address_Set.addresses"), "{e}");
    let mut row = AddressSet::default().to_row();
    row.insert("name".into(), Value::from(3));
    let e = AddressSet::from_source(uuid(1), &row).unwrap_err();
    assert!(
        e.to_string().contains("Address_Set.name: expected string"),
        "{e}"
    );
    let mut row = Acl::default().to_row();
    row.insert("name".into(), Value::set(["a".into(), "b".into()]));
    let e = Acl::from_source(uuid(1), &row).unwrap_err();
    assert!(
        e.to_string().contains("ACL.name: expected at most one"),
        "{e}"
    );
}
