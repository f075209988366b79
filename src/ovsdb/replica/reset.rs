//! Loading a full snapshot: the first monitor reply, or a `monitor_cond_since` reply with
//! `found = false` after a reconnect. The new content replaces the old entirely (rows absent
//! from the snapshot disappear) and is published in one step; subscribers get the
//! difference between old and new content as one change set.
//!
//! Rows equal to the ones already held are kept as they are (shared with older snapshots),
//! so a resync after a reconnect, where most rows did not change, does not hold two copies
//! of the whole database.
use std::sync::Arc;

use super::changes::{ChangeKind, ChangeSet, RowChange};
use super::error::ReplicaError;
use super::snapshot::DbState;
use super::store::TableState;
use super::{Replica, lock};
use crate::ovsdb::update::{RowUpdate2, Update};
use crate::ovsdb::value::{Row, Uuid};

/// A full snapshot being loaded piece by piece, so a client may feed rows as it decodes them
/// instead of building one large [`Update`] first. Nothing is visible to readers until
/// [`ResetBuilder::finish`]; dropping the builder (after an error, for example) leaves the
/// replica untouched. The caller must not [`Replica::apply`] while a reset is being built:
/// `finish` replaces whatever the replica holds.
pub struct ResetBuilder<'a> {
    replica: &'a Replica,
    /// The content when the reset began; rows equal to its rows are shared, not duplicated.
    base: Arc<DbState>,
    work: DbState,
    rows: usize,
    /// The replica's reason for stopping a streamed load (see `stream.rs`).
    failed: Option<ReplicaError>,
}

impl Replica {
    /// Start loading a full snapshot (see [`ResetBuilder`]).
    pub fn begin_reset(&self) -> ResetBuilder<'_> {
        let base = Arc::clone(&lock(&self.current));
        let work = DbState {
            tables: self
                .meta
                .tables
                .iter()
                .map(|m| Arc::new(TableState::new(m)))
                .collect(),
            last_txn_id: base.last_txn_id,
            generation: base.generation,
            reloads: base.reloads,
        };
        ResetBuilder {
            replica: self,
            base,
            work,
            rows: 0,
            failed: None,
        }
    }

    /// The changes that turn `before` into `after`, row by row.
    fn diff(&self, before: &DbState, after: &DbState) -> Vec<RowChange> {
        let mut out = Vec::new();
        for (ti, meta) in self.meta.tables.iter().enumerate() {
            let (b, a) = (&before.tables[ti], &after.tables[ti]);
            for (uuid, new) in a.rows.iter() {
                let (kind, old) = match b.rows.get(uuid) {
                    None => (ChangeKind::Inserted, None),
                    Some(old) if old != new => (ChangeKind::Modified, Some(old)),
                    Some(_) => continue,
                };
                out.push(RowChange {
                    table: meta.name.clone(),
                    uuid: *uuid,
                    kind,
                    old: old.map(|v| self.row(ti, *uuid, v)),
                    new: Some(self.row(ti, *uuid, new)),
                });
            }
            for (uuid, old) in b.rows.iter() {
                if a.rows.get(uuid).is_none() {
                    out.push(RowChange {
                        table: meta.name.clone(),
                        uuid: *uuid,
                        kind: ChangeKind::Deleted,
                        old: Some(self.row(ti, *uuid, old)),
                        new: None,
                    });
                }
            }
        }
        out
    }
}

impl ResetBuilder<'_> {
    /// Add one row of the snapshot (all its monitored columns; omitted ones take their
    /// defaults).
    pub fn insert(&mut self, table: &str, uuid: Uuid, row: Row) -> Result<(), ReplicaError> {
        let r = self.replica;
        let ti = r.table_index(table)?;
        if self.work.tables[ti].rows.get(&uuid).is_some() {
            return Err(ReplicaError::DuplicateRow {
                table: table.to_owned(),
                uuid,
            });
        }
        let mut values = r.build_row(ti, uuid, None, row, false)?;
        if let Some(old) = self.base.tables[ti].rows.get(&uuid)
            && **old == *values
        {
            values = Arc::clone(old);
        }
        let meta = &r.meta.tables[ti];
        Arc::make_mut(&mut self.work.tables[ti]).put(meta, &r.meta.hasher, uuid, values);
        self.rows += 1;
        if self.rows.is_multiple_of(10_000) {
            tracing::debug!(rows = self.rows, "loading replica snapshot");
        }
        Ok(())
    }

    /// Add every row of a snapshot-shaped update: `update` rows with only `new`, or
    /// `update2`/`update3` rows that are `initial` or `insert`. An `update3` also sets the
    /// transaction id to resume from.
    pub fn insert_update(&mut self, update: Update) -> Result<(), ReplicaError> {
        let not_snapshot = |table: &str, uuid: Uuid| ReplicaError::BadRowUpdate {
            table: table.to_owned(),
            uuid,
            what: "a full snapshot may only hold initial or inserted rows",
        };
        let tables = match update {
            Update::V1(tables) => {
                for (table, rows) in tables {
                    for (uuid, ru) in rows {
                        match (ru.old, ru.new) {
                            (None, Some(new)) => self.insert(&table, uuid, new)?,
                            _ => return Err(not_snapshot(&table, uuid)),
                        }
                    }
                }
                return Ok(());
            }
            Update::V2(tables) => tables,
            Update::V3 {
                last_txn_id,
                updates,
            } => {
                self.set_last_txn_id(last_txn_id);
                updates
            }
        };
        for (table, rows) in tables {
            for (uuid, ru) in rows {
                match ru {
                    RowUpdate2::Initial(r) | RowUpdate2::Insert(r) => {
                        self.insert(&table, uuid, r)?
                    }
                    _ => return Err(not_snapshot(&table, uuid)),
                }
            }
        }
        Ok(())
    }

    /// The transaction id the snapshot reflects (`monitor_cond_since`'s reply carries it).
    pub fn set_last_txn_id(&mut self, id: Uuid) {
        self.work.last_txn_id = Some(id);
    }

    /// Why the replica refused a row during a streamed load, if it did (the deserializer
    /// only carries a message).
    pub fn take_error(&mut self) -> Option<ReplicaError> {
        self.failed.take()
    }

    pub(crate) fn fail(&mut self, e: ReplicaError) {
        self.failed = Some(e);
    }

    /// Rows loaded so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Publish the snapshot: it replaces the replica's content in one step.
    pub fn finish(self) -> Arc<ChangeSet> {
        let r = self.replica;
        let _w = lock(&r.writer);
        let current = Arc::clone(&lock(&r.current));
        let mut work = self.work;
        work.generation = current.generation;
        work.reloads = current.reloads + 1;
        let changes = r.diff(&current, &work);
        tracing::debug!(
            rows = self.rows,
            changed = changes.len(),
            "replica snapshot loaded"
        );
        r.publish(work, true, changes)
    }
}
