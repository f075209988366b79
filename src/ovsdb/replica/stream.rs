//! Loading a full snapshot straight from JSON text, without first building a
//! `serde_json::Value` tree and an `Update` for the whole reply: for a 20,000-row database
//! those two intermediate copies take several times the memory of the replica itself (about
//! 70 MiB against 13 MiB, measured), and the allocator keeps most of it afterwards.
//!
//! [`SnapshotSeed`] deserializes a `<table-updates>` (RFC 7047 section 4.1.6) or
//! `<table-updates2>` (ovsdb-server(7)) object row by row into a [`ResetBuilder`]; only one
//! row's JSON is materialised at a time. A client that decodes replies itself can use the
//! seed on the `result` member of a monitor reply; [`ResetBuilder::insert_json`] takes the
//! object as text.
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::{Map, Value as Json};

use super::error::ReplicaError;
use super::reset::ResetBuilder;
use crate::ovsdb::value::{Row, Uuid, Value};

/// Deserializes one full snapshot (table -> uuid -> row update holding `initial`, `insert`
/// or, for `update`, `new`) into the builder it borrows.
pub struct SnapshotSeed<'b, 'r> {
    builder: &'b mut ResetBuilder<'r>,
}

impl<'r> ResetBuilder<'r> {
    /// A serde seed that loads a `<table-updates>` / `<table-updates2>` object into this
    /// builder (see the module comment). After a deserialization error, the builder's
    /// [`ResetBuilder::take_error`] says whether the replica refused a row.
    pub fn seed(&mut self) -> SnapshotSeed<'_, 'r> {
        SnapshotSeed { builder: self }
    }

    /// Load a `<table-updates>` / `<table-updates2>` object given as JSON text.
    pub fn insert_json(&mut self, json: &[u8]) -> Result<(), ReplicaError> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let result = self.seed().deserialize(&mut de).and_then(|()| de.end());
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.take_error().unwrap_or(ReplicaError::Json {
                what: e.to_string(),
            })),
        }
    }
}

fn expecting(f: &mut fmt::Formatter<'_>, what: &str) -> fmt::Result {
    f.write_str(what)
}

impl<'de> DeserializeSeed<'de> for SnapshotSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SnapshotSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        expecting(f, "an object of tables")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(table) = map.next_key::<String>()? {
            map.next_value_seed(TableSeed {
                builder: &mut *self.builder,
                table: &table,
            })?;
        }
        Ok(())
    }
}

struct TableSeed<'a, 'b, 'r> {
    builder: &'b mut ResetBuilder<'r>,
    table: &'a str,
}

impl<'de> DeserializeSeed<'de> for TableSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TableSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        expecting(f, "an object of rows keyed by uuid")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let uuid: Uuid = key.parse().map_err(de::Error::custom)?;
            let update: Map<String, Json> = map.next_value()?;
            let row = snapshot_row(self.table, uuid, update).map_err(|e| {
                let msg = e.to_string();
                self.builder.fail(e);
                de::Error::custom(msg)
            })?;
            self.builder.insert(self.table, uuid, row).map_err(|e| {
                let msg = e.to_string();
                self.builder.fail(e);
                de::Error::custom(msg)
            })?;
        }
        Ok(())
    }
}

/// The row of one snapshot row update: `{"initial": row}`, `{"insert": row}` or `{"new": row}`.
fn snapshot_row(table: &str, uuid: Uuid, update: Map<String, Json>) -> Result<Row, ReplicaError> {
    let not_snapshot = |what| ReplicaError::BadRowUpdate {
        table: table.to_owned(),
        uuid,
        what,
    };
    let mut it = update.into_iter();
    let (kind, body) = match (it.next(), it.next()) {
        (Some(one), None) => one,
        _ => {
            return Err(not_snapshot(
                "a snapshot row update must hold exactly one row",
            ));
        }
    };
    if !matches!(kind.as_str(), "initial" | "insert" | "new") {
        return Err(not_snapshot(
            "a full snapshot may only hold initial or inserted rows",
        ));
    }
    let Json::Object(columns) = body else {
        return Err(not_snapshot("the row is not an object"));
    };
    columns
        .into_iter()
        .map(|(name, v)| match Value::from_json(&v) {
            Ok(v) => Ok((name, v)),
            Err(e) => Err(ReplicaError::Json {
                what: format!("{table} row {uuid} column {name}: {e}"),
            }),
        })
        .collect()
}
