//! Monitor notifications: `update` (RFC 7047 section 4.1.6), `update2` (monitor_cond) and
//! `update3` (monitor_cond_since), as described in ovsdb-server(7).
//!
//! This module only parses; applying updates to a copy of the database is the replica's job.
use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::value::{Row, Uuid, ValueError, row_from_json, row_from_json_owned};

/// One row's change in an `update` notification: `old` and/or `new` row contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowUpdate1 {
    pub old: Option<Row>,
    pub new: Option<Row>,
}

/// One row's change in an `update2` / `update3` notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowUpdate2 {
    /// The row as it was when the monitor started (initial snapshot).
    Initial(Row),
    /// A row inserted since.
    Insert(Row),
    /// A change to an existing row. For scalar columns the new value; for set columns the
    /// elements to toggle (add if absent, remove if present); for map columns the pairs to
    /// toggle (key absent: add; same key and value: remove; same key, other value: replace).
    Modify(Row),
    /// The row is gone.
    Delete,
}

/// `<table-updates>`: table name -> row uuid -> change.
pub type TableUpdates = BTreeMap<String, BTreeMap<Uuid, RowUpdate1>>;
/// `<table-updates2>`: table name -> row uuid -> change.
pub type TableUpdates2 = BTreeMap<String, BTreeMap<Uuid, RowUpdate2>>;

/// A monitor notification's content, whatever the monitor flavour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    V1(TableUpdates),
    V2(TableUpdates2),
    /// update3 also carries the id of the transaction it reflects, to resume from later.
    V3 {
        last_txn_id: Uuid,
        updates: TableUpdates2,
    },
}

fn tables(j: &Json) -> Result<impl Iterator<Item = (&String, &Json)>, ValueError> {
    j.as_object()
        .map(|o| o.iter())
        .ok_or_else(|| ValueError::new(format!("table updates are not an object: {j}")))
}

fn rows<'a>(table: &str, j: &'a Json) -> Result<Vec<(Uuid, &'a Json)>, ValueError> {
    let obj = j
        .as_object()
        .ok_or_else(|| ValueError::new(format!("updates of table {table} are not an object")))?;
    obj.iter()
        .map(|(u, r)| Ok((u.parse::<Uuid>()?, r)))
        .collect()
}

pub fn parse_table_updates(j: &Json) -> Result<TableUpdates, ValueError> {
    let mut out = TableUpdates::new();
    for (table, tj) in tables(j)? {
        let t = out.entry(table.clone()).or_default();
        for (uuid, rj) in rows(table, tj)? {
            let field = |name: &str| -> Result<Option<Row>, ValueError> {
                rj.get(name).map(row_from_json).transpose()
            };
            t.insert(
                uuid,
                RowUpdate1 {
                    old: field("old")?,
                    new: field("new")?,
                },
            );
        }
    }
    Ok(out)
}

/// Parses `<table-updates2>`. Copies the JSON; callers that own it use
/// [`parse_table_updates2_owned`], which converts in place.
pub fn parse_table_updates2(j: &Json) -> Result<TableUpdates2, ValueError> {
    parse_table_updates2_owned(j.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovsdb::value::{Atom, Value};
    use serde_json::json;

    const U: &str = "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab";

    #[test]
    fn parses_update2_kinds() {
        let j = json!({"ACL": {U: {"modify": {"priority": 5, "match": "ip4"}}},
                       "Address_Set": {U: {"delete": null}}});
        let u = parse_table_updates2(&j).unwrap();
        let uuid: Uuid = U.parse().unwrap();
        assert_eq!(u["Address_Set"][&uuid], RowUpdate2::Delete);
        match &u["ACL"][&uuid] {
            RowUpdate2::Modify(r) => assert_eq!(r["priority"], Value::Atom(Atom::Integer(5))),
            other => panic!("{other:?}"),
        }
        assert!(parse_table_updates2(&json!({"ACL": {U: {"frob": {}}}})).is_err());
        assert!(
            parse_table_updates2(&json!({"ACL": {U: {"insert": {}, "delete": null}}})).is_err()
        );
    }

    #[test]
    fn parses_update1() {
        let j = json!({"NB_Global": {U: {"new": {"nb_cfg": 1}}}});
        let u = parse_table_updates(&j).unwrap();
        let r = &u["NB_Global"][&U.parse::<Uuid>().unwrap()];
        assert!(r.old.is_none());
        assert_eq!(r.new.as_ref().unwrap()["nb_cfg"], Value::from(1));
    }
}

/// Owned variant of [`parse_table_updates2`]: consumes the JSON as it converts, so a full
/// snapshot does not need two complete copies in memory at once.
pub fn parse_table_updates2_owned(j: Json) -> Result<TableUpdates2, ValueError> {
    let Json::Object(tables) = j else {
        return Err(ValueError::new(format!(
            "table updates are not an object: {j}"
        )));
    };
    let mut out = TableUpdates2::new();
    for (table, tj) in tables {
        let Json::Object(rows) = tj else {
            return Err(ValueError::new(format!(
                "updates of table {table} are not an object"
            )));
        };
        let t = out.entry(table.clone()).or_default();
        for (u, rj) in rows {
            let uuid: Uuid = u.parse()?;
            let mut obj = match rj {
                Json::Object(o) if o.len() == 1 => o,
                _ => {
                    return Err(ValueError::new(format!(
                        "bad row-update2 for {table} {uuid}"
                    )));
                }
            };
            let Some((kind, body)) = std::mem::take(&mut obj).into_iter().next() else {
                return Err(ValueError::new(format!(
                    "bad row-update2 for {table} {uuid}"
                )));
            };
            let update = match kind.as_str() {
                "initial" => RowUpdate2::Initial(row_from_json_owned(body)?),
                "insert" => RowUpdate2::Insert(row_from_json_owned(body)?),
                "modify" => RowUpdate2::Modify(row_from_json_owned(body)?),
                "delete" => RowUpdate2::Delete,
                other => {
                    return Err(ValueError::new(format!(
                        "unknown row-update2 kind {other:?}"
                    )));
                }
            };
            t.insert(uuid, update);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod owned_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owned_parse_matches_borrowed() {
        let u = "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab";
        let j = json!({"ACL": {u: {"modify": {"priority": 5, "match": "ip4"}}},
                       "Address_Set": {u: {"delete": null}},
                       "Port_Group": {u: {"initial": {"name": "pg", "acls": ["set", []]}}}});
        assert_eq!(
            parse_table_updates2_owned(j.clone()).unwrap(),
            parse_table_updates2(&j).unwrap()
        );
        for bad in [
            json!([]),
            json!({"ACL": []}),
            json!({"ACL": {u: {"frob": {}}}}),
            json!({"ACL": {u: {"insert": {}, "delete": null}}}),
            json!({"ACL": {"nope": {"delete": null}}}),
        ] {
            assert!(parse_table_updates2_owned(bad.clone()).is_err(), "{bad}");
        }
    }
}
