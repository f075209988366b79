//! The monitored replica: an in-memory copy of the tables and columns a monitor asks for,
//! kept exact by applying `update` (RFC 7047 section 4.1.6), `update2` and `update3`
//! (ovsdb-server(7), monitor_cond / monitor_cond_since).
//!
//! Owns: the rows, the indexes (schema indexes and chosen `external_ids` keys), consistent
//! snapshots for readers, and change sets for subscribers. Does not own the connection: the
//! client sends [`Replica::monitor_requests`], then feeds every notification to
//! [`Replica::apply`] and every full snapshot (first monitor reply, or a
//! `monitor_cond_since` reply with `found = false`) to [`Replica::reset`].
//!
//! An update is applied to a private copy and published only if all of it applied, so a bad
//! update returns an error and leaves the replica exactly as it was, and readers never see
//! half an update. The client should treat such an error as "out of step": log it and
//! resynchronise (a new monitor, then [`Replica::reset`]).
//!
//! ```
//! use ovnkube_route::ovsdb::update::parse_table_updates2;
//! use ovnkube_route::ovsdb::{DatabaseSchema, Replica, TableSpec, Update, Value};
//! use serde_json::json;
//!
//! let text = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/ovn-nb.ovsschema"));
//! let schema = DatabaseSchema::from_json(&serde_json::from_str(text).unwrap()).unwrap();
//! let replica = Replica::new(
//!     &schema,
//!     &[TableSpec::all("Address_Set").with_external_id_keys(&["k8s.ovn.org/id"])],
//! )
//! .unwrap();
//! // Sent as the third parameter of monitor_cond / monitor_cond_since.
//! let _requests = replica.monitor_requests();
//! let u = "00000000-0000-4000-8000-000000000001";
//! let initial = json!({"Address_Set": {u: {"initial": {
//!     "name": "as1", "external_ids": ["map", [["k8s.ovn.org/id", "a"]]]}}}});
//! replica.reset_owned(Update::V2(parse_table_updates2(&initial).unwrap())).unwrap();
//! let diff = json!({"Address_Set": {u: {"modify": {"addresses": "10.0.0.1"}}}});
//! let changes = replica.apply_owned(Update::V2(parse_table_updates2(&diff).unwrap())).unwrap();
//! assert_eq!(changes.changes.len(), 1);
//! let snap = replica.snapshot();
//! let row = snap.find_by_external_id("Address_Set", "k8s.ovn.org/id", "a").pop().unwrap();
//! assert_eq!(row.get("addresses"), Some(Value::set(["10.0.0.1".into()])));
//! ```
mod cell;
mod changes;
#[cfg(test)]
mod concurrency_tests;
mod error;
mod reset;
#[cfg(test)]
mod reset_tests;
mod set;
mod snapshot;
mod spec;
mod store;
mod stream;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value as Json, json};
use tokio::sync::broadcast;

use super::schema::{DatabaseSchema, SchemaError};
use super::update::{RowUpdate1, RowUpdate2, Update};
use super::value::{Row, Uuid, Value};
use cell::Cell;
pub use cell::ColumnRef;
pub use changes::{ChangeKind, ChangeSet, ReplicaEvent, RowChange, Subscription};
pub use error::ReplicaError;
pub use reset::ResetBuilder;
use snapshot::{DbState, ReplicaMeta};
pub use snapshot::{ReplicaRow, Snapshot};
pub use spec::{TableSpec, TypedSpec};
use store::{RowValues, TableState};
pub use stream::SnapshotSeed;

/// Change sets a subscriber may fall behind by before it is told to resync. Each buffered
/// change set keeps its rows' old and new versions alive (sets share unchanged chunks), so
/// the bound is also a memory bound; a resync costs one full re-read.
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 256;

/// The replica. Cheap to share (`Arc<Replica>`); every method takes `&self`.
pub struct Replica {
    meta: Arc<ReplicaMeta>,
    /// The published state; held only to clone or swap the `Arc`.
    current: Arc<Mutex<Arc<DbState>>>,
    /// Serialises writers so change sets go out in the order they were applied.
    writer: Mutex<()>,
    changes: broadcast::Sender<Arc<ChangeSet>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is only ever an `Arc` swapped whole, so a poisoned lock holds a
    // consistent value.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Replica {
    /// A replica of `tables` (each must exist in `schema`), empty until the first reset.
    pub fn new(schema: &DatabaseSchema, tables: &[TableSpec]) -> Result<Replica, ReplicaError> {
        Replica::with_capacity(schema, tables, DEFAULT_SUBSCRIBER_CAPACITY)
    }

    /// Like [`Replica::new`], with `capacity` change sets of subscriber slack.
    pub fn with_capacity(
        schema: &DatabaseSchema,
        tables: &[TableSpec],
        capacity: usize,
    ) -> Result<Replica, ReplicaError> {
        let meta = spec::replica_meta(schema, tables)?;
        let state = DbState {
            tables: meta
                .tables
                .iter()
                .map(|m| Arc::new(TableState::new(m)))
                .collect(),
            last_txn_id: None,
            generation: 0,
            reloads: 0,
        };
        let (changes, _) = broadcast::channel(capacity.max(1));
        Ok(Replica {
            meta: Arc::new(meta),
            current: Arc::new(Mutex::new(Arc::new(state))),
            writer: Mutex::new(()),
            changes,
        })
    }

    /// The `<monitor-requests>` object for `monitor`, `monitor_cond` and
    /// `monitor_cond_since` (RFC 7047 section 4.1.5; ovsdb-server(7)): every monitored table
    /// with its columns listed explicitly, so a newer server schema cannot send columns the
    /// replica does not know.
    pub fn monitor_requests(&self) -> Json {
        let tables = self.meta.tables.iter().map(|t| {
            let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            (t.name.clone(), json!({ "columns": cols }))
        });
        Json::Object(tables.collect())
    }

    /// The current content. Cheap (one reference count); never changes afterwards.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            meta: Arc::clone(&self.meta),
            state: Arc::clone(&lock(&self.current)),
        }
    }

    /// The transaction id of the last applied `update3`, to resume with
    /// `monitor_cond_since`.
    pub fn last_txn_id(&self) -> Option<Uuid> {
        lock(&self.current).last_txn_id
    }

    /// A new subscriber; it receives every change set applied from now on.
    pub fn subscribe(&self) -> Subscription {
        let meta = Arc::clone(&self.meta);
        let current = Arc::clone(&self.current);
        Subscription {
            rx: self.changes.subscribe(),
            current: Box::new(move || Snapshot {
                meta: Arc::clone(&meta),
                state: Arc::clone(&lock(&current)),
            }),
        }
    }

    /// Apply one notification (or the initial rows of a `monitor_cond_since` reply with
    /// `found = true`) on top of the current content.
    pub fn apply(&self, update: &Update) -> Result<Arc<ChangeSet>, ReplicaError> {
        self.apply_owned(update.clone())
    }

    /// [`Replica::apply`], moving the update's values into the replica instead of copying
    /// them.
    pub fn apply_owned(&self, update: Update) -> Result<Arc<ChangeSet>, ReplicaError> {
        let _w = lock(&self.writer);
        let base = Arc::clone(&lock(&self.current));
        let mut work = (*base).clone();
        let mut changes = Vec::new();
        match update {
            Update::V1(tables) => {
                for (table, rows) in tables {
                    let ti = self.table_index(&table)?;
                    for (uuid, ru) in rows {
                        changes.push(self.apply1(&mut work, ti, uuid, ru)?);
                    }
                }
            }
            Update::V2(tables) => self.apply2_all(&mut work, tables, &mut changes)?,
            Update::V3 {
                last_txn_id,
                updates,
            } => {
                self.apply2_all(&mut work, updates, &mut changes)?;
                work.last_txn_id = Some(last_txn_id);
            }
        }
        Ok(self.publish(work, false, changes))
    }

    fn apply2_all(
        &self,
        work: &mut DbState,
        tables: super::update::TableUpdates2,
        changes: &mut Vec<RowChange>,
    ) -> Result<(), ReplicaError> {
        for (table, rows) in tables {
            let ti = self.table_index(&table)?;
            for (uuid, ru) in rows {
                changes.push(self.apply2(work, ti, uuid, ru)?);
            }
        }
        Ok(())
    }

    /// Replace the whole content with a full snapshot (the first monitor reply, or a
    /// `monitor_cond_since` reply with `found = false`): rows absent from it disappear. The
    /// change set is the difference between the old and the new content.
    pub fn reset(&self, update: &Update) -> Result<Arc<ChangeSet>, ReplicaError> {
        self.reset_owned(update.clone())
    }

    /// [`Replica::reset`], moving the snapshot's values into the replica instead of copying
    /// them, so a large initial snapshot is not held twice.
    pub fn reset_owned(&self, update: Update) -> Result<Arc<ChangeSet>, ReplicaError> {
        let mut builder = self.begin_reset();
        builder.insert_update(update)?;
        Ok(builder.finish())
    }

    fn publish(&self, mut work: DbState, reset: bool, changes: Vec<RowChange>) -> Arc<ChangeSet> {
        work.generation += 1;
        let state = Arc::new(work);
        let cs = Arc::new(ChangeSet {
            reset,
            changes,
            generation: state.generation,
            last_txn_id: state.last_txn_id,
        });
        *lock(&self.current) = state;
        // No subscriber is not an error: the change set is also returned to the caller.
        let _ = self.changes.send(Arc::clone(&cs));
        tracing::trace!(
            generation = cs.generation(),
            rows = cs.changes.len(),
            reset,
            "replica updated"
        );
        cs
    }

    fn table_index(&self, table: &str) -> Result<usize, ReplicaError> {
        self.meta
            .table(table)
            .ok_or_else(|| ReplicaError::UnknownTable {
                table: table.to_owned(),
            })
    }

    fn row(&self, ti: usize, uuid: Uuid, values: &RowValues) -> ReplicaRow {
        ReplicaRow {
            meta: Arc::clone(&self.meta.tables[ti]),
            uuid,
            values: Arc::clone(values),
        }
    }

    /// Build a row's stored values from `base` (an existing row) or the column defaults,
    /// with `row`'s columns either replacing (`diff = false`) or applied as update2 diffs.
    fn build_row(
        &self,
        ti: usize,
        uuid: Uuid,
        base: Option<&RowValues>,
        row: Row,
        diff: bool,
    ) -> Result<RowValues, ReplicaError> {
        let meta = &self.meta.tables[ti];
        let mut values: Vec<Cell> = match base {
            // Cloning shares every set and map (reference counts); only scalars copy.
            Some(b) => b.to_vec(),
            None => meta.defaults.clone(),
        };
        for (name, v) in row {
            let pos = meta
                .position(&name)
                .ok_or_else(|| ReplicaError::UnknownColumn {
                    table: meta.name.clone(),
                    column: name.clone(),
                })?;
            let ty = &meta.columns[pos].ty;
            let bad = |source| ReplicaError::BadValue {
                table: meta.name.clone(),
                uuid,
                source,
            };
            // Columns holding at most one value (scalars and optional values) carry their
            // new value in a diff, not a toggle: ovsdb-server sends `true` when an optional
            // boolean goes from false to true, and `["set", []]` when it is cleared
            // (observed with ovsdb-server 3.1; the Python IDL's `Datum.diff` agrees).
            let replace = !diff || ty.max == Some(1);
            let v = ty.normalize(&name, v, !replace).map_err(bad)?;
            let cell = match (&values[pos], v) {
                (_, v) if replace => Cell::from_value(v),
                (Cell::Set(cur), Value::Set(d)) => Cell::Set(cur.toggle(&d)),
                (Cell::Map(cur), Value::Map(d)) => Cell::merge_map(cur, &d),
                (_, v) => Cell::from_value(v),
            };
            values[pos] = meta.cell(pos, cell);
            // The diff may not leave a set outside its bounds.
            let n = values[pos].len() as u64;
            if ty.is_set() && (n < ty.min || ty.max.is_some_and(|m| n > m)) {
                return Err(bad(SchemaError::BadValue {
                    column: name.clone(),
                    what: format!(
                        "diff leaves {n} elements, outside min={} max={:?}",
                        ty.min, ty.max
                    ),
                }));
            }
        }
        Ok(values.into())
    }

    fn apply1(
        &self,
        work: &mut DbState,
        ti: usize,
        uuid: Uuid,
        ru: RowUpdate1,
    ) -> Result<RowChange, ReplicaError> {
        let meta = &self.meta.tables[ti];
        let old = work.tables[ti].rows.get(&uuid).cloned();
        let missing = |op| ReplicaError::MissingRow {
            table: meta.name.clone(),
            uuid,
            op,
        };
        let (kind, new) = match (&ru.old, ru.new, &old) {
            (None, Some(_), Some(_)) => {
                return Err(ReplicaError::DuplicateRow {
                    table: meta.name.clone(),
                    uuid,
                });
            }
            (None, Some(new), None) => (ChangeKind::Inserted, Some(new)),
            // `new` of a modify carries full values of (at least) the changed columns.
            (Some(_), Some(new), Some(_)) => (ChangeKind::Modified, Some(new)),
            (Some(_), Some(_), None) => return Err(missing("modify")),
            (Some(_), None, Some(_)) => (ChangeKind::Deleted, None),
            (Some(_), None, None) => return Err(missing("delete")),
            (None, None, _) => {
                return Err(ReplicaError::BadRowUpdate {
                    table: meta.name.clone(),
                    uuid,
                    what: "update with neither old nor new",
                });
            }
        };
        let new = new
            .map(|n| self.build_row(ti, uuid, old.as_ref(), n, false))
            .transpose()?;
        Ok(self.store(work, ti, uuid, kind, old, new))
    }

    fn apply2(
        &self,
        work: &mut DbState,
        ti: usize,
        uuid: Uuid,
        ru: RowUpdate2,
    ) -> Result<RowChange, ReplicaError> {
        let meta = &self.meta.tables[ti];
        let old = work.tables[ti].rows.get(&uuid).cloned();
        let missing = |op| ReplicaError::MissingRow {
            table: meta.name.clone(),
            uuid,
            op,
        };
        let (kind, new) = match (ru, &old) {
            // An initial row for a row already held replaces it (a resumed monitor may
            // repeat rows); an insert of a held row means the replica is out of step.
            (RowUpdate2::Initial(r), Some(_)) => (
                ChangeKind::Modified,
                Some(self.build_row(ti, uuid, None, r, false)?),
            ),
            (RowUpdate2::Initial(r) | RowUpdate2::Insert(r), None) => (
                ChangeKind::Inserted,
                Some(self.build_row(ti, uuid, None, r, false)?),
            ),
            (RowUpdate2::Insert(_), Some(_)) => {
                return Err(ReplicaError::DuplicateRow {
                    table: meta.name.clone(),
                    uuid,
                });
            }
            (RowUpdate2::Modify(d), Some(o)) => (
                ChangeKind::Modified,
                Some(self.build_row(ti, uuid, Some(o), d, true)?),
            ),
            (RowUpdate2::Modify(_), None) => return Err(missing("modify")),
            (RowUpdate2::Delete, Some(_)) => (ChangeKind::Deleted, None),
            (RowUpdate2::Delete, None) => return Err(missing("delete")),
        };
        Ok(self.store(work, ti, uuid, kind, old, new))
    }

    fn store(
        &self,
        work: &mut DbState,
        ti: usize,
        uuid: Uuid,
        kind: ChangeKind,
        old: Option<RowValues>,
        new: Option<RowValues>,
    ) -> RowChange {
        let meta = &self.meta.tables[ti];
        let t = Arc::make_mut(&mut work.tables[ti]);
        match &new {
            Some(v) => t.put(meta, &self.meta.hasher, uuid, Arc::clone(v)),
            None => {
                t.take(meta, &self.meta.hasher, uuid);
            }
        }
        RowChange {
            table: meta.name.clone(),
            uuid,
            kind,
            old: old.map(|v| self.row(ti, uuid, &v)),
            new: new.map(|v| self.row(ti, uuid, &v)),
        }
    }
}
