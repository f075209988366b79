//! Keeping a [`Replica`] in step with the server: a monitor session whose events are
//! applied to the replica in order, across reconnects (delta when the server finds the
//! replica's last txn id, full replacement otherwise; see `monitor`).
//!
//! Owns the loop between a [`Monitor`] and a [`Replica`]; it does not read the replica's
//! content (readers take snapshots or subscribe to the replica directly).
use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use super::client::{Client, Monitor};
use super::error::Error;
use super::monitor::{MonitorEvent, MonitorKind, MonitorSpec, TableMonitor};
use super::replica::{Replica, ReplicaError};

/// The running feed. Dropping it stops the feed and cancels the monitor.
pub struct ReplicaFeed {
    task: JoinHandle<()>,
    applied: watch::Receiver<u64>,
}

impl ReplicaFeed {
    /// How many monitor events the replica has applied so far.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Wait until more than `n` events have been applied.
    pub async fn wait_applied(&self, n: u64) -> Result<(), Error> {
        let mut rx = self.applied.clone();
        rx.wait_for(|a| *a > n)
            .await
            .map(|_| ())
            .map_err(|_| Error::Closed)
    }

    /// False once the session ended (client closed or monitor refused).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for ReplicaFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The monitor request matching what the replica holds (its tables and columns).
pub fn replica_spec(database: &str, replica: &Replica) -> MonitorSpec {
    let requests = replica.monitor_requests();
    let tables: BTreeMap<String, TableMonitor> = requests
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(t, r)| {
                    let columns = r.get("columns").and_then(|c| {
                        c.as_array().map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(str::to_owned))
                                .collect()
                        })
                    });
                    (
                        t.clone(),
                        TableMonitor {
                            columns,
                            conditions: None,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    MonitorSpec {
        database: database.to_owned(),
        kind: MonitorKind::V3,
        tables,
        since: replica.last_txn_id(),
        raw_snapshots: true,
    }
}

impl Client {
    /// Monitor what `replica` holds with `monitor_cond_since` and keep it up to date. Returns
    /// once the initial snapshot (or delta, if the replica already held data) is applied.
    pub async fn monitor_replica(
        &self,
        database: &str,
        replica: Arc<Replica>,
    ) -> Result<ReplicaFeed, Error> {
        let mut monitor = self.monitor(replica_spec(database, &replica)).await?;
        let first = monitor.next().await.ok_or(Error::Closed)?;
        apply_event(&replica, first)?;
        let (tx, applied) = watch::channel(1u64);
        let task = tokio::spawn(follow(monitor, replica, tx));
        Ok(ReplicaFeed { task, applied })
    }
}

async fn follow(mut monitor: Monitor, replica: Arc<Replica>, applied: watch::Sender<u64>) {
    // After a failed apply, queued deltas are useless until the full snapshot arrives.
    let mut awaiting_reset = false;
    while let Some(event) = monitor.next().await {
        if awaiting_reset && !event.is_reset() {
            continue;
        }
        awaiting_reset = false;
        let result = apply_event(&replica, event);
        match result {
            Ok(_) => applied.send_modify(|n| *n += 1),
            Err(e) => {
                warn!(error = %e, "replica could not apply a monitor update; resyncing from a full snapshot");
                awaiting_reset = true;
                if monitor.resync().is_err() {
                    return;
                }
            }
        }
    }
}

fn apply_event(replica: &Replica, event: MonitorEvent) -> Result<(), ReplicaError> {
    match event {
        MonitorEvent::Reset(u) => replica.reset_owned(u).map(drop),
        MonitorEvent::Update(u) => replica.apply_owned(u).map(drop),
        MonitorEvent::ResetText(raw) => {
            // Streamed straight into the replica: no JSON tree of the whole snapshot.
            let mut builder = replica.begin_reset();
            if let Err(e) = raw.load(builder.seed()) {
                return Err(builder.take_error().unwrap_or(ReplicaError::Json {
                    what: e.to_string(),
                }));
            }
            builder.set_last_txn_id(raw.last_txn_id);
            builder.finish();
            Ok(())
        }
    }
}
