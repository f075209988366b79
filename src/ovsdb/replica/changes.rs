//! Telling subscribers what changed. Every applied update (or reset) yields one
//! [`ChangeSet`]; subscribers receive them in order through a bounded channel. A subscriber
//! that falls more than the channel's capacity behind does not silently miss changes: it
//! gets [`ReplicaEvent::Resync`] with the current snapshot and must re-read everything it
//! cares about (for the NB reconciler: a full drift check).
//!
//! A change set holds only the changed rows, never a whole snapshot: change sets buffered
//! for a slow subscriber must not pin old copies of every table.
use std::sync::Arc;

use tokio::sync::broadcast;

use super::snapshot::{ReplicaRow, Snapshot};
use crate::ovsdb::value::Uuid;

/// How a row changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Inserted,
    Modified,
    Deleted,
}

/// One row's change: `old` is absent for inserts, `new` for deletes.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub table: String,
    pub uuid: Uuid,
    pub kind: ChangeKind,
    pub old: Option<ReplicaRow>,
    pub new: Option<ReplicaRow>,
}

/// The rows one update (or reset) changed, and the replica right after it.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    /// True when this came from [`super::Replica::reset`]: the changes are the difference
    /// between the old content and the new snapshot.
    pub reset: bool,
    pub changes: Vec<RowChange>,
    /// The replica's generation just after this change set (see [`Snapshot::generation`]).
    pub generation: u64,
    /// The replica's `last_txn_id` just after this change set.
    pub last_txn_id: Option<Uuid>,
}

impl ChangeSet {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Changes to one table.
    pub fn table<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a RowChange> + 'a {
        self.changes.iter().filter(move |c| c.table == table)
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum ReplicaEvent {
    /// The next change set, in order.
    Changes(Arc<ChangeSet>),
    /// The subscriber fell behind and `missed` change sets were dropped: treat every row as
    /// possibly changed and re-read `snapshot` (the current content). The events that follow
    /// are the oldest still buffered, so some may repeat changes `snapshot` already shows.
    Resync { missed: u64, snapshot: Snapshot },
}

/// A subscriber's end of the change stream (see the module comment).
pub struct Subscription {
    pub(crate) rx: broadcast::Receiver<Arc<ChangeSet>>,
    pub(crate) current: Box<dyn Fn() -> Snapshot + Send + Sync>,
}

impl Subscription {
    /// Wait for the next event; `None` once the replica is gone.
    pub async fn recv(&mut self) -> Option<ReplicaEvent> {
        match self.rx.recv().await {
            Ok(cs) => Some(ReplicaEvent::Changes(cs)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(ReplicaEvent::Resync {
                missed,
                snapshot: (self.current)(),
            }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<ReplicaEvent> {
        match self.rx.try_recv() {
            Ok(cs) => Some(ReplicaEvent::Changes(cs)),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Some(ReplicaEvent::Resync {
                missed,
                snapshot: (self.current)(),
            }),
            Err(_) => None,
        }
    }
}
