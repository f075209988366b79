//! Read access to the replica: an immutable [`Snapshot`] of every monitored table at one
//! generation, and [`ReplicaRow`], one row of it. Both are cheap to clone (reference counts)
//! and never change once taken, whatever the replica applies afterwards.
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::cell::{Cell, ColumnRef};
use super::store::{RowValues, TableMeta, TableState, external_id, external_id_hash, index_hash};
use crate::ovsdb::value::{Row, Uuid, Value};

/// Everything the replica holds at one generation.
#[derive(Clone)]
pub(crate) struct DbState {
    pub(crate) tables: Vec<Arc<TableState>>,
    pub(crate) last_txn_id: Option<Uuid>,
    pub(crate) generation: u64,
    /// How many times the whole content was replaced (a reload after a reconnect).
    pub(crate) reloads: u64,
}

/// What never changes over the replica's life: table layouts and the index hasher.
pub(crate) struct ReplicaMeta {
    pub(crate) tables: Vec<Arc<TableMeta>>,
    pub(crate) positions: HashMap<String, usize>,
    pub(crate) hasher: std::hash::RandomState,
}

impl ReplicaMeta {
    pub(crate) fn table(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
    }
}

/// A consistent, immutable view of the replica: it reflects whole updates only.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) meta: Arc<ReplicaMeta>,
    pub(crate) state: Arc<DbState>,
}

/// One row of a snapshot (or of a change set): the row's uuid and its monitored columns.
#[derive(Clone)]
pub struct ReplicaRow {
    pub(crate) meta: Arc<TableMeta>,
    pub(crate) uuid: Uuid,
    pub(crate) values: RowValues,
}

impl ReplicaRow {
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    pub fn table(&self) -> &str {
        &self.meta.name
    }

    /// A column's value, borrowed. `None` when the column is not monitored.
    pub fn column(&self, column: &str) -> Option<ColumnRef<'_>> {
        self.meta.position(column).map(|i| self.values[i].view())
    }

    /// A column's value as an owned [`Value`] in canonical form (scalars as atoms, sets,
    /// maps). `None` when the column is not monitored.
    pub fn get(&self, column: &str) -> Option<Value> {
        self.column(column).map(|c| c.to_value())
    }

    /// The value of `key` in the row's `external_ids` map.
    pub fn external_id(&self, key: &str) -> Option<&str> {
        if self.meta.external_ids.is_some() {
            return external_id(&self.meta, &self.values, key);
        }
        self.column("external_ids")?
            .map_get(&crate::ovsdb::value::Atom::String(key.to_owned()))
            .and_then(crate::ovsdb::value::Atom::as_str)
    }

    /// Monitored columns and their values, in the replica's column order.
    pub fn columns(&self) -> impl Iterator<Item = (&str, ColumnRef<'_>)> {
        let names = self.meta.columns.iter().map(|c| c.name.as_str());
        names.zip(self.values.iter().map(Cell::view))
    }

    /// Whether `column` holds `v`, once `v` is brought into the column's canonical form
    /// (a bare atom for a set column is a one-element set, and so on). False when the
    /// column is not monitored or `v` does not fit it.
    pub fn holds(&self, column: &str, v: &Value) -> bool {
        let Some(i) = self.meta.position(column) else {
            return false;
        };
        let ty = &self.meta.columns[i].ty;
        ty.normalize(column, v.clone(), false)
            .is_ok_and(|v| self.values[i].view() == v)
    }

    /// Whether `column` holds the same value in this row and in `other` (the same row
    /// before or after a change). False when the column is not monitored.
    pub fn same_column(&self, other: &ReplicaRow, column: &str) -> bool {
        match (self.meta.position(column), other.meta.position(column)) {
            (Some(a), Some(b)) => self.values[a] == other.values[b],
            _ => false,
        }
    }

    /// Monitored column names, in the replica's column order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.meta.columns.iter().map(|c| c.name.as_str())
    }

    /// The row as an untyped column map (without `_uuid`).
    pub fn to_row(&self) -> Row {
        self.columns()
            .map(|(k, v)| (k.to_owned(), v.to_value()))
            .collect()
    }
}

impl PartialEq for ReplicaRow {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
            && self.meta.name == other.meta.name
            && (Arc::ptr_eq(&self.values, &other.values) || self.values == other.values)
    }
}

impl fmt::Debug for ReplicaRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaRow")
            .field("table", &self.meta.name)
            .field("uuid", &self.uuid)
            .field("row", &self.to_row())
            .finish()
    }
}

impl Snapshot {
    fn table(&self, table: &str) -> Option<(&Arc<TableMeta>, &TableState)> {
        let i = self.meta.table(table)?;
        Some((&self.meta.tables[i], &self.state.tables[i]))
    }

    fn row(meta: &Arc<TableMeta>, uuid: Uuid, values: &RowValues) -> ReplicaRow {
        ReplicaRow {
            meta: Arc::clone(meta),
            uuid,
            values: Arc::clone(values),
        }
    }

    /// The row with this uuid, if the table is monitored and holds it.
    pub fn get(&self, table: &str, uuid: Uuid) -> Option<ReplicaRow> {
        let (meta, t) = self.table(table)?;
        t.rows.get(&uuid).map(|v| Self::row(meta, uuid, v))
    }

    /// Every row of a table, in no particular order (empty for an unmonitored table).
    pub fn iter<'a>(&'a self, table: &str) -> impl Iterator<Item = ReplicaRow> + 'a {
        self.table(table)
            .into_iter()
            .flat_map(|(meta, t)| t.rows.iter().map(move |(u, v)| Self::row(meta, *u, v)))
    }

    /// How many rows a table holds.
    pub fn len(&self, table: &str) -> usize {
        self.table(table).map_or(0, |(_, t)| t.rows.len())
    }

    /// Whether every monitored table is empty.
    pub fn is_empty(&self) -> bool {
        self.state.tables.iter().all(|t| t.rows.len() == 0)
    }

    /// The row whose `column` equals `value` (RFC 7047 section 3.2 `indexes`: unique per
    /// table). Uses the schema index or a [`super::TableSpec::with_index`] index when there
    /// is one (the first match for a non-unique one); any other column is scanned and the
    /// first match returned.
    pub fn find_by_index(&self, table: &str, column: &str, value: &Value) -> Option<ReplicaRow> {
        self.find_by_columns(table, &[(column, value)])
    }

    /// Like [`Snapshot::find_by_index`] for a multi-column index (BFD's `logical_port` +
    /// `dst_ip`). The columns must be given in the index's order to use it.
    pub fn find_by_columns(&self, table: &str, key: &[(&str, &Value)]) -> Option<ReplicaRow> {
        let (meta, t) = self.table(table)?;
        let mut cols = Vec::with_capacity(key.len());
        let mut wanted = Vec::with_capacity(key.len());
        for (name, value) in key {
            let pos = meta.position(name)?;
            let ty = &meta.columns[pos].ty;
            // Normalise the query like stored values (a bare atom for a set column, ...).
            wanted.push(Cell::from_value(
                ty.normalize(name, (*value).clone(), false).ok()?,
            ));
            cols.push(pos);
        }
        let matches = |row: &[Cell]| cols.iter().zip(&wanted).all(|(&c, w)| &row[c] == w);
        if let Some(ix) = meta.indexes.iter().position(|ix| *ix == cols) {
            let h = index_hash(&self.meta.hasher, wanted.iter());
            let candidates = t.indexes[ix].get(&h)?;
            return candidates.as_slice().iter().find_map(|u| {
                let v = t.rows.get(u)?;
                matches(v).then(|| Self::row(meta, *u, v))
            });
        }
        t.rows
            .iter()
            .find(|(_, v)| matches(v))
            .map(|(u, v)| Self::row(meta, *u, v))
    }

    /// Rows whose `external_ids` map has `key` = `value`. Indexed for the keys the table
    /// spec names; other keys are scanned.
    pub fn find_by_external_id(&self, table: &str, key: &str, value: &str) -> Vec<ReplicaRow> {
        let Some((meta, t)) = self.table(table) else {
            return Vec::new();
        };
        let hit = |row: &[Cell]| external_id(meta, row, key) == Some(value);
        if let Some(i) = meta.external_id_keys.iter().position(|k| k == key) {
            let h = external_id_hash(&self.meta.hasher, value);
            let Some(candidates) = t.external_ids[i].get(&h) else {
                return Vec::new();
            };
            return candidates
                .as_slice()
                .iter()
                .filter_map(|u| {
                    let v = t.rows.get(u)?;
                    hit(v).then(|| Self::row(meta, *u, v))
                })
                .collect();
        }
        t.rows
            .iter()
            .filter(|(_, v)| hit(v))
            .map(|(u, v)| Self::row(meta, *u, v))
            .collect()
    }

    /// The transaction id of the last applied `update3` (for `monitor_cond_since`).
    pub fn last_txn_id(&self) -> Option<Uuid> {
        self.state.last_txn_id
    }

    /// How many updates (and resets) the replica had applied when this snapshot was taken.
    pub fn generation(&self) -> u64 {
        self.state.generation
    }

    /// How many times the replica's whole content had been replaced (loaded again after a
    /// reconnect, or after an update it could not apply) when this snapshot was taken.
    pub fn reloads(&self) -> u64 {
        self.state.reloads
    }

    /// The monitored tables' names.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.meta.tables.iter().map(|t| t.name.as_str())
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Snapshot");
        d.field("generation", &self.state.generation);
        for t in &self.meta.tables {
            d.field(&t.name, &self.len(&t.name));
        }
        d.finish()
    }
}
