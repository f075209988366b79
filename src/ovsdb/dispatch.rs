//! Handling what the server sends on a connection: replies matched to requests by id,
//! the server's echo probes, monitor notifications routed to sessions (with the lagging
//! consumer resync), and the `_Server` `Database` rows that decide whether the member is
//! usable (ovsdb-server(5): a clustered member must be connected, and the leader unless
//! followers are allowed).
//!
//! Part of the connection task (`connection`); it owns no state of its own.
use std::time::Duration;

use serde_json::{Value as Json, json};
use tracing::{debug, warn};

use super::codec::Decoder;
use super::connection::{Command, Conn, Exit, Pending, SERVER_MONITOR, Supervisor};
use super::error::Error;
use super::monitor::{
    Delivery, MonitorEvent, MonitorKind, RawSnapshot, ReplyHead, parse_monitor_reply,
    parse_notification,
};
use super::rpc::Message;
use super::update::{RowUpdate2, TableUpdates2, Update, parse_table_updates2_owned};
use super::value::Row;

/// Replies at least this large are candidates for delivery as text (full snapshots).
const RAW_SNAPSHOT_MIN: usize = 64 * 1024;

impl Supervisor {
    /// Deliver a large `monitor_cond_since` full snapshot as its text to a session that
    /// asked for that ([`MonitorSpec::raw_snapshots`]), skipping the JSON tree. False when
    /// `text` is anything else; it is then parsed as usual.
    ///
    /// [`MonitorSpec::raw_snapshots`]: super::monitor::MonitorSpec::raw_snapshots
    fn take_raw_snapshot(&mut self, conn: &mut Conn, text: &[u8]) -> bool {
        let wants_raw = conn.pending.values().any(|p| match p {
            Pending::MonitorStart { session, .. } => self
                .sessions
                .get(session)
                .is_some_and(|s| s.spec.raw_snapshots && s.spec.kind == MonitorKind::V3),
            _ => false,
        });
        if !wants_raw {
            return false;
        }
        let Ok(head) = serde_json::from_slice::<ReplyHead>(text) else {
            return false;
        };
        let (Some(id), true, Some((found, txn, _))) =
            (head.id.as_u64(), head.error.is_null(), head.result)
        else {
            return false;
        };
        let Some(Pending::MonitorStart {
            session,
            generation,
        }) = conn.pending.get(&id)
        else {
            return false;
        };
        let (sid, generation) = (*session, *generation);
        let Some(s) = self.sessions.get(&sid) else {
            return false;
        };
        // A delta (found, with a resume point) is small and goes the parsed way.
        if s.generation != generation || (found && s.last_txn_id.is_some()) {
            return false;
        }
        let Ok(last_txn_id) = txn.parse() else {
            return false;
        };
        conn.pending.remove(&id);
        debug!(
            session = sid,
            bytes = text.len(),
            "monitor snapshot delivered as text"
        );
        let event = MonitorEvent::ResetText(RawSnapshot {
            last_txn_id,
            text: text.to_vec(),
        });
        self.deliver(conn, sid, event);
        true
    }
    pub(super) fn drain_messages(
        &mut self,
        conn: &mut Conn,
        decoder: &mut Decoder,
    ) -> Option<Exit> {
        loop {
            let range = match decoder.next_frame() {
                Ok(Some(r)) => r,
                Ok(None) => return None,
                Err(e) => return Some(Exit::Lost(e.to_string())),
            };
            let text = decoder.frame(range);
            if text.len() >= RAW_SNAPSHOT_MIN && self.take_raw_snapshot(conn, text) {
                continue;
            }
            let json = match serde_json::from_slice(text) {
                Ok(j) => j,
                Err(e) => return Some(Exit::Lost(format!("invalid JSON message: {e}"))),
            };
            let msg = match Message::from_json(json) {
                Ok(m) => m,
                Err(e) => return Some(Exit::Lost(e.to_string())),
            };
            if let Some(exit) = self.handle_message(conn, msg) {
                return Some(exit);
            }
        }
    }

    fn handle_message(&mut self, conn: &mut Conn, msg: Message) -> Option<Exit> {
        match msg {
            Message::Request { id, method, params } => {
                let reply = if method == "echo" {
                    Message::Response { id, result: params }
                } else {
                    Message::ErrorResponse {
                        id,
                        error: json!({"error": "unknown method", "details": method}),
                    }
                };
                let _ = conn.writes.send(reply.to_bytes());
                None
            }
            Message::Response { id, result } => self.handle_reply(conn, &id, Ok(result)),
            Message::ErrorResponse { id, error } => self.handle_reply(conn, &id, Err(error)),
            Message::Notification { method, params } => match method.as_str() {
                "update" | "update2" | "update3" => {
                    let (wire_id, update) = match parse_notification(&method, params) {
                        Ok(x) => x,
                        Err(e) => return Some(Exit::Lost(e.to_string())),
                    };
                    if wire_id == SERVER_MONITOR {
                        if !conn.watching_server {
                            return None;
                        }
                        return match update {
                            Update::V2(u) => self.server_rows_changed(conn, u),
                            _ => None,
                        };
                    }
                    let Some(&sid) = conn.routes.get(&wire_id) else {
                        debug!(%wire_id, "update for a cancelled monitor ignored");
                        return None;
                    };
                    self.deliver(conn, sid, MonitorEvent::Update(update));
                    None
                }
                other => {
                    debug!(method = other, "notification ignored");
                    None
                }
            },
        }
    }

    fn deliver(&mut self, conn: &mut Conn, sid: u64, event: MonitorEvent) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        match s.deliver(event) {
            Delivery::Sent => {
                if let Some(ack) = s.ack.take() {
                    let _ = ack.send(Ok(()));
                }
            }
            Delivery::Lagged => {
                warn!(
                    session = sid,
                    "monitor consumer fell behind; pausing the monitor, will resync"
                );
                let wire_id = s.wire_id.take();
                let events = s.events.clone();
                let capacity = events.max_capacity();
                self.cancel_on_server(conn, wire_id);
                let weak = self.weak_commands.clone();
                tokio::spawn(async move {
                    // Resume once the consumer has drained at least half the buffer, so a
                    // resync is not immediately followed by another one.
                    loop {
                        if events.reserve().await.is_err() {
                            return;
                        }
                        if events.capacity() * 2 >= capacity {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    if let Some(tx) = weak.upgrade() {
                        let _ = tx.send(Command::Resume { id: sid });
                    }
                });
            }
            Delivery::Closed => {
                if let Some(s) = self.sessions.remove(&sid) {
                    self.cancel_on_server(conn, s.wire_id);
                }
            }
        }
    }

    fn handle_reply(
        &mut self,
        conn: &mut Conn,
        id: &Json,
        result: Result<Json, Json>,
    ) -> Option<Exit> {
        let Some(pending) = id.as_u64().and_then(|n| conn.pending.remove(&n)) else {
            warn!(%id, "reply to an unknown request id ignored");
            return None;
        };
        match pending {
            Pending::Caller { method, reply, .. } => {
                let _ = reply.send(result.map_err(|error| Error::Rpc { method, error }));
                None
            }
            Pending::Ignored => None,
            Pending::MonitorStart {
                session,
                generation,
            } => {
                self.monitor_started(conn, session, generation, result);
                None
            }
            Pending::ServerMonitor => match result {
                Ok(r) => match parse_table_updates2_owned(r) {
                    Ok(u) => self.server_rows_changed(conn, u),
                    Err(e) => Some(Exit::Lost(format!("bad _Server monitor reply: {e}"))),
                },
                // A server without `_Server` (older than OVS 2.9) is never clustered.
                Err(e) if e.get("error").and_then(Json::as_str) == Some("unknown database") => {
                    self.become_ready(conn);
                    None
                }
                Err(e) => Some(Exit::Lost(format!("_Server monitor refused: {e}"))),
            },
        }
    }

    fn monitor_started(
        &mut self,
        conn: &mut Conn,
        sid: u64,
        generation: u64,
        result: Result<Json, Json>,
    ) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.generation != generation {
            return;
        }
        let parsed = result
            .map_err(|error| Error::Rpc {
                method: "monitor".into(),
                error,
            })
            .and_then(|r| parse_monitor_reply(s.spec.kind, r));
        match parsed {
            Ok((found, update)) => {
                let resumed = found && s.spec.kind == MonitorKind::V3 && s.last_txn_id.is_some();
                debug!(session = sid, resumed, "monitor established");
                let event = if resumed {
                    MonitorEvent::Update(update)
                } else {
                    MonitorEvent::Reset(update)
                };
                self.deliver(conn, sid, event);
            }
            Err(e) => {
                warn!(session = sid, error = %e, "monitor refused by the server; session ended");
                if let Some(mut s) = self.sessions.remove(&sid) {
                    if let Some(w) = s.wire_id.take() {
                        conn.routes.remove(&w);
                    }
                    if let Some(ack) = s.ack.take() {
                        let _ = ack.send(Err(e));
                    }
                }
            }
        }
    }

    /// Apply a `_Server` `Database` update and decide whether this member is still usable.
    fn server_rows_changed(&mut self, conn: &mut Conn, updates: TableUpdates2) -> Option<Exit> {
        for (uuid, change) in updates.into_values().flatten() {
            match change {
                RowUpdate2::Initial(r) | RowUpdate2::Insert(r) => {
                    conn.server_rows.insert(uuid, r);
                }
                // All four columns are scalars: a modify carries their new values.
                RowUpdate2::Modify(r) => conn.server_rows.entry(uuid).or_default().extend(r),
                RowUpdate2::Delete => {
                    conn.server_rows.remove(&uuid);
                }
            }
        }
        let leader = self.leader_flag(conn);
        self.state.send_if_modified(|s| {
            let changed = s.leader != leader;
            s.leader = leader;
            changed
        });
        match self.member_check(conn) {
            Err(reason) => Some(Exit::NotUsable(reason)),
            Ok(clustered) => {
                // Only a clustered member's role can change under a live connection; for
                // other models the monitor is dropped, as ovsdb-server measurably slows
                // down large transactions on a connection that has one.
                if !clustered && conn.watching_server {
                    conn.watching_server = false;
                    self.send_request(
                        conn,
                        "monitor_cancel",
                        json!([SERVER_MONITOR]),
                        Pending::Ignored,
                    );
                }
                if !conn.ready {
                    self.become_ready(conn);
                }
                None
            }
        }
    }

    /// The member's Raft leader flag for our database; `None` unless it is clustered.
    fn leader_flag(&self, conn: &Conn) -> Option<bool> {
        let db = self.config.database.as_str();
        let atom = |r: &Row, c: &str| r.get(c).and_then(|v| v.as_atom()).cloned();
        let row = conn
            .server_rows
            .values()
            .find(|r| atom(r, "name").as_ref().and_then(|a| a.as_str()) == Some(db))?;
        if atom(row, "model").as_ref().and_then(|a| a.as_str()) != Some("clustered") {
            return None;
        }
        Some(
            atom(row, "leader")
                .and_then(|a| a.as_bool())
                .unwrap_or(false),
        )
    }

    /// Whether this member may be used; `Ok(true)` for a clustered database.
    fn member_check(&self, conn: &Conn) -> Result<bool, String> {
        let db = &self.config.database;
        let flag = |r: &Row, c: &str| {
            r.get(c)
                .and_then(|v| v.as_atom())
                .and_then(|a| a.as_bool())
                .unwrap_or(false)
        };
        let Some(row) = conn.server_rows.values().find(|r| {
            r.get("name")
                .and_then(|v| v.as_atom())
                .and_then(|a| a.as_str())
                == Some(db.as_str())
        }) else {
            return Err(format!("database {db} is not served here"));
        };
        let model = row
            .get("model")
            .and_then(|v| v.as_atom())
            .and_then(|a| a.as_str());
        if model != Some("clustered") {
            return Ok(false);
        }
        if !flag(row, "connected") {
            return Err("member is not connected to its cluster".into());
        }
        if self.config.leader_only && !flag(row, "leader") {
            return Err("member is not the cluster leader".into());
        }
        Ok(true)
    }
}
