//! The connection task: connects (round robin over the remotes, backoff with jitter,
//! forever), checks the member through the `_Server` database (ovsdb-server(5) `Database`
//! table: clustered members must be connected, and the leader unless followers are
//! allowed), multiplexes requests by id, answers and sends echo probes, routes monitor
//! notifications to sessions and re-establishes them after every reconnect.
//!
//! Owns all connection state. It never retries a caller's request on its own: a request
//! cut off by a lost connection fails, with [`Error::OutcomeUnknown`] for writes.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::client::{ClientConfig, ConnState};
use super::codec::Decoder;
use super::error::{Error, TlsFailure};
use super::monitor::{MonitorEvent, MonitorSpec, Session};
use super::peers::Peers;
use super::rpc::Message;
use super::transport::{Endpoint, Stream, connect};
use super::value::{Row, Uuid};

/// Wire id of our own `_Server` monitor.
pub(super) const SERVER_MONITOR: &str = "_server";

/// A request's params: a JSON value, or already encoded JSON text (bulk transactions).
pub(crate) enum Params {
    Json(Json),
    Encoded(Vec<u8>),
}

impl From<Json> for Params {
    fn from(j: Json) -> Params {
        Params::Json(j)
    }
}

pub(crate) enum Command {
    Request {
        method: String,
        params: Params,
        outcome_unknown_on_loss: bool,
        reply: oneshot::Sender<Result<Json, Error>>,
    },
    AddMonitor {
        spec: MonitorSpec,
        events: mpsc::Sender<MonitorEvent>,
        ack: oneshot::Sender<Result<(), Error>>,
        id: oneshot::Sender<u64>,
    },
    CancelMonitor {
        id: u64,
    },
    /// A lagging consumer has room again.
    Resume {
        id: u64,
    },
    /// The consumer lost track: start the session over with a full snapshot.
    Restart {
        id: u64,
    },
    Reconnect,
    Shutdown,
}

pub(super) enum Pending {
    Caller {
        method: String,
        outcome_unknown_on_loss: bool,
        reply: oneshot::Sender<Result<Json, Error>>,
    },
    MonitorStart {
        session: u64,
        generation: u64,
    },
    ServerMonitor,
    /// Our echo probe, `monitor_cancel` and other replies nobody waits for.
    Ignored,
}

pub(super) enum Exit {
    Shutdown,
    Lost(String),
    /// Before the connection became usable, the TLS session failed in a way retrying does
    /// not fix (under TLS 1.3 a server that refuses our certificate says so at the first
    /// read, after the handshake looked complete).
    Tls(TlsFailure),
    /// The member is not usable (not the leader, not in the cluster, no such database).
    NotUsable(String),
}

pub(super) struct Conn {
    pub(super) endpoint: Endpoint,
    pub(super) writes: mpsc::UnboundedSender<Vec<u8>>,
    pub(super) pending: HashMap<u64, Pending>,
    /// Wire monitor id -> session id.
    pub(super) routes: HashMap<String, u64>,
    pub(super) ready: bool,
    /// Requests received before the member checks passed.
    pub(super) queued: Vec<Command>,
    pub(super) server_rows: BTreeMap<Uuid, Row>,
    /// The `_Server` monitor is active (clustered databases only, once checked).
    pub(super) watching_server: bool,
}

pub(crate) struct Supervisor {
    pub(super) config: ClientConfig,
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    pub(super) weak_commands: mpsc::WeakUnboundedSender<Command>,
    pub(super) state: watch::Sender<ConnState>,
    pub(super) sessions: BTreeMap<u64, Session>,
    pub(super) next_session: u64,
    pub(super) next_id: u64,
    /// Connection attempts so far (for the log).
    pub(super) attempt: u64,
    /// Leadership watches on the other cluster members (started once the database is
    /// known to be clustered; see `peers`).
    peers: Option<Peers>,
    /// The remote to try next, when a peer said it became leader.
    prefer: Option<Endpoint>,
}

impl Supervisor {
    pub fn new(
        config: ClientConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
        commands: mpsc::UnboundedReceiver<Command>,
        weak_commands: mpsc::WeakUnboundedSender<Command>,
        state: watch::Sender<ConnState>,
    ) -> Supervisor {
        Supervisor {
            config,
            tls,
            commands,
            weak_commands,
            state,
            sessions: BTreeMap::new(),
            next_session: 1,
            next_id: 1,
            attempt: 0,
            peers: None,
            prefer: None,
        }
    }

    /// Connect, serve, reconnect, forever. Each attempt logs exactly one line: "connected"
    /// (with the attempt number) or why it failed and when the next one starts.
    pub async fn run(mut self) {
        let n = self.config.remotes.len();
        let mut next = 0usize;
        let mut failures = 0u32;
        let mut delay = Duration::ZERO;
        loop {
            if let Some(leader) = self.prefer.take()
                && let Some(i) = self.config.remotes.iter().position(|r| *r == leader)
            {
                next = i;
                delay = Duration::ZERO;
            }
            if !delay.is_zero() && !self.idle(delay).await {
                break;
            }
            let endpoint = self.config.remotes[next % n].clone();
            next += 1;
            self.attempt += 1;
            let attempt = self.attempt;
            debug!(%endpoint, attempt, "connecting to OVSDB server");
            let stream = match connect(&endpoint, self.tls.as_ref(), &self.config.tcp).await {
                Ok(s) => s,
                Err(e) => {
                    failures += 1;
                    delay = self.round_backoff(failures, n);
                    let tls = match &e {
                        Error::TlsHandshake { failure, .. } => Some(failure.clone()),
                        _ => None,
                    };
                    self.attempt_failed(&endpoint, tls, failures, n);
                    if !matches!(e, Error::TlsHandshake { .. })
                        || self.config.on_tls_failure.is_none()
                    {
                        warn!(%endpoint, attempt, error = %e, retry_in_ms = delay.as_millis() as u64,
                            "OVSDB connection attempt failed");
                    }
                    continue;
                }
            };
            let (exit, was_ready) = self.run_connection(endpoint.clone(), stream).await;
            self.state.send_modify(|s| s.connected = false);
            // After a working connection, the next remote is tried at once.
            failures = if was_ready { 0 } else { failures + 1 };
            // Back off per full round over the remotes: the next member of a cluster is
            // tried at once (during an election one of them is about to be leader).
            delay = self.round_backoff(failures, n);
            let retry_in_ms = delay.as_millis() as u64;
            if !was_ready && !matches!(exit, Exit::Shutdown) {
                let tls = match &exit {
                    Exit::Tls(f) => Some(f.clone()),
                    _ => None,
                };
                self.attempt_failed(&endpoint, tls, failures, n);
            }
            match exit {
                Exit::Shutdown => break,
                Exit::Tls(failure) if self.config.on_tls_failure.is_some() => {
                    debug!(%endpoint, attempt, %failure, retry_in_ms, "OVSDB TLS handshake failed");
                }
                Exit::Tls(failure) => {
                    warn!(%endpoint, attempt, error = %failure, retry_in_ms, "OVSDB connection attempt failed")
                }
                Exit::Lost(reason) if was_ready => {
                    warn!(%endpoint, %reason, retry_in_ms, "OVSDB connection lost")
                }
                Exit::Lost(reason) => {
                    warn!(%endpoint, attempt, %reason, retry_in_ms, "OVSDB connection attempt failed")
                }
                Exit::NotUsable(reason) => {
                    info!(%endpoint, attempt, %reason, retry_in_ms, "OVSDB server not usable, trying the next remote")
                }
            }
        }
        info!("OVSDB client stopped");
        // Dropping the sessions closes every consumer's channel.
        self.sessions.clear();
    }

    /// Wait `delay` while answering commands; false when the client is shutting down.
    async fn idle(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => return false,
                    Some(c) => self.offline_command(c),
                },
            }
        }
    }

    fn offline_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(Error::NotConnected));
            }
            Command::AddMonitor {
                spec,
                events,
                ack,
                id,
            } => {
                self.add_session(spec, events, ack, id);
            }
            Command::CancelMonitor { id } => {
                self.sessions.remove(&id);
            }
            Command::Resume { id } => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.lagged = false;
                }
            }
            Command::Restart { id } => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.last_txn_id = None;
                }
            }
            Command::Reconnect | Command::Shutdown => {}
        }
    }

    fn add_session(
        &mut self,
        spec: MonitorSpec,
        events: mpsc::Sender<MonitorEvent>,
        ack: oneshot::Sender<Result<(), Error>>,
        id: oneshot::Sender<u64>,
    ) -> u64 {
        let sid = self.next_session;
        self.next_session += 1;
        let _ = id.send(sid);
        let since = spec.since;
        self.sessions.insert(
            sid,
            Session {
                spec,
                events,
                last_txn_id: since,
                generation: 0,
                wire_id: None,
                lagged: false,
                ack: Some(ack),
            },
        );
        sid
    }

    async fn run_connection(
        &mut self,
        endpoint: Endpoint,
        stream: Box<dyn Stream>,
    ) -> (Exit, bool) {
        let (mut rd, wr) = tokio::io::split(stream);
        let (writes, write_rx) = mpsc::unbounded_channel();
        let mut writer = tokio::spawn(write_loop(wr, write_rx));
        let mut conn = self.open(endpoint, writes);
        let mut decoder = Decoder::new(self.config.max_message);
        let mut buf = vec![0u8; 256 * 1024];
        let probe = self.config.probe_interval;
        let mut tick = tokio::time::interval(
            probe
                .map(|p| p / 4)
                .unwrap_or(Duration::from_secs(3600))
                .max(Duration::from_millis(20)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_rx = Instant::now();
        let mut probe_sent = false;
        // Taken out of `self` for the loop, so its future can run beside the handlers.
        let mut peers = self.peers.take();
        if let Some(p) = peers.as_mut() {
            p.baseline();
        }
        let exit = loop {
            if peers.is_none()
                && conn.ready
                && self.config.peers
                && self.state.borrow().leader.is_some()
            {
                peers = Peers::start(&self.config);
                if let Some(p) = peers.as_mut() {
                    p.baseline();
                }
            }
            let current = conn.endpoint.clone();
            let watch_peers = async {
                match peers.as_mut() {
                    Some(p) if conn.ready => p.new_leader(&current).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                leader = watch_peers => {
                    self.prefer = Some(leader.clone());
                    break Exit::NotUsable(format!("{leader} became the cluster leader"));
                },
                r = rd.read(&mut buf) => match r {
                    Ok(0) => break Exit::Lost("closed by the server".into()),
                    Ok(n) => {
                        last_rx = Instant::now();
                        probe_sent = false;
                        decoder.extend(&buf[..n]);
                        if let Some(e) = self.drain_messages(&mut conn, &mut decoder) {
                            break e;
                        }
                    }
                    Err(e) => break read_failed(&e, conn.ready),
                },
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break Exit::Shutdown,
                    Some(Command::Reconnect) => break Exit::Lost("reconnect requested".into()),
                    Some(c) => self.online_command(&mut conn, c),
                },
                _ = tick.tick(), if probe.is_some() => {
                    if let Some(e) = self.probe(&mut conn, probe.unwrap_or_default(), last_rx, &mut probe_sent) {
                        break e;
                    }
                },
                r = &mut writer => break Exit::Lost(match r {
                    Ok(Err(e)) => format!("write failed: {e}"),
                    _ => "writer stopped".into(),
                }),
            }
        };
        writer.abort();
        self.peers = peers;
        let was_ready = conn.ready;
        self.fail_pending(conn);
        (exit, was_ready)
    }

    /// A new connection's state, with the `_Server` monitor that tells a cluster's leader
    /// asked for.
    fn open(&mut self, endpoint: Endpoint, writes: mpsc::UnboundedSender<Vec<u8>>) -> Conn {
        let mut conn = Conn {
            endpoint,
            writes,
            pending: HashMap::new(),
            routes: HashMap::new(),
            ready: false,
            queued: vec![],
            server_rows: BTreeMap::new(),
            watching_server: true,
        };
        let columns = json!({"Database": [{"columns": ["name", "model", "connected", "leader"]}]});
        self.send_request(
            &mut conn,
            "monitor_cond",
            json!(["_Server", SERVER_MONITOR, columns]),
            Pending::ServerMonitor,
        );
        conn
    }

    /// The inactivity probe: an `echo` after `p` without traffic, the connection given up
    /// after two.
    fn probe(
        &mut self,
        conn: &mut Conn,
        p: Duration,
        last_rx: Instant,
        sent: &mut bool,
    ) -> Option<Exit> {
        let silent = last_rx.elapsed();
        if silent >= p * 2 {
            return Some(Exit::Lost(format!(
                "no traffic for {} ms (2 probe intervals)",
                silent.as_millis()
            )));
        }
        if silent >= p && !*sent {
            *sent = true;
            self.send_request(conn, "echo", json!([]), Pending::Ignored);
        }
        None
    }

    fn fail_pending(&mut self, conn: Conn) {
        for (_, p) in conn.pending {
            if let Pending::Caller {
                method,
                outcome_unknown_on_loss,
                reply,
            } = p
            {
                let _ = reply.send(Err(if outcome_unknown_on_loss {
                    Error::OutcomeUnknown
                } else {
                    Error::ConnectionLost { method }
                }));
            }
        }
        for c in conn.queued {
            if let Command::Request { reply, .. } = c {
                let _ = reply.send(Err(Error::NotConnected));
            }
        }
        for s in self.sessions.values_mut() {
            s.wire_id = None;
        }
    }

    pub(super) fn send_request(
        &mut self,
        conn: &mut Conn,
        method: &str,
        params: impl Into<Params>,
        pending: Pending,
    ) {
        let params = params.into();
        let id = self.next_id;
        self.next_id += 1;
        let bytes = match params {
            Params::Json(params) => Message::Request {
                id: json!(id),
                method: method.to_owned(),
                params,
            }
            .to_bytes(),
            Params::Encoded(params) => {
                let mut b = Vec::with_capacity(params.len() + 64);
                b.extend_from_slice(format!("{{\"id\":{id},\"method\":").as_bytes());
                b.extend_from_slice(&Message::encode_str(method));
                b.extend_from_slice(b",\"params\":");
                b.extend_from_slice(&params);
                b.push(b'}');
                b
            }
        };
        // A send error means the writer died; the select loop notices and fails `pending`.
        let _ = conn.writes.send(bytes);
        conn.pending.insert(id, pending);
    }

    pub(super) fn online_command(&mut self, conn: &mut Conn, cmd: Command) {
        match cmd {
            Command::Request {
                method,
                params,
                outcome_unknown_on_loss,
                reply,
            } => {
                if !conn.ready {
                    conn.queued.push(Command::Request {
                        method,
                        params,
                        outcome_unknown_on_loss,
                        reply,
                    });
                    return;
                }
                let pending = Pending::Caller {
                    method: method.clone(),
                    outcome_unknown_on_loss,
                    reply,
                };
                self.send_request(conn, &method, params, pending);
            }
            Command::AddMonitor {
                spec,
                events,
                ack,
                id,
            } => {
                let sid = self.add_session(spec, events, ack, id);
                if conn.ready {
                    self.start_monitor(conn, sid);
                }
            }
            Command::CancelMonitor { id } => {
                if let Some(s) = self.sessions.remove(&id) {
                    self.cancel_on_server(conn, s.wire_id);
                }
            }
            Command::Resume { id } => {
                let start = match self.sessions.get_mut(&id) {
                    Some(s) => {
                        s.lagged = false;
                        conn.ready && s.wire_id.is_none()
                    }
                    None => false,
                };
                if start {
                    info!(session = id, "monitor consumer caught up, resuming");
                    self.start_monitor(conn, id);
                }
            }
            Command::Restart { id } => {
                let Some(s) = self.sessions.get_mut(&id) else {
                    return;
                };
                s.last_txn_id = None;
                let (wire_id, lagged) = (s.wire_id.take(), s.lagged);
                let established = wire_id.is_some();
                self.cancel_on_server(conn, wire_id);
                if conn.ready && established && !lagged {
                    self.start_monitor(conn, id);
                }
            }
            Command::Reconnect | Command::Shutdown => {}
        }
    }

    pub(super) fn cancel_on_server(&mut self, conn: &mut Conn, wire_id: Option<String>) {
        if let Some(w) = wire_id {
            conn.routes.remove(&w);
            self.send_request(conn, "monitor_cancel", json!([w]), Pending::Ignored);
        }
    }

    pub(super) fn start_monitor(&mut self, conn: &mut Conn, sid: u64) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.generation += 1;
        let wire_id = format!("m{sid}.{}", s.generation);
        let since = s.last_txn_id;
        let (method, params) = s.spec.request(&wire_id, since);
        s.wire_id = Some(wire_id.clone());
        let generation = s.generation;
        conn.routes.insert(wire_id, sid);
        self.send_request(
            conn,
            method,
            params,
            Pending::MonitorStart {
                session: sid,
                generation,
            },
        );
    }

    pub(super) fn become_ready(&mut self, conn: &mut Conn) {
        conn.ready = true;
        let endpoint = conn.endpoint.clone();
        self.state.send_modify(|s| {
            s.connected = true;
            s.endpoint = Some(endpoint.clone());
            s.connections += 1;
            s.tls_failure = None;
            s.failed_rounds = 0;
        });
        info!(%endpoint, attempt = self.attempt, "connected to OVSDB server");
        let ids: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.lagged)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.start_monitor(conn, id);
        }
        for c in std::mem::take(&mut conn.queued) {
            self.online_command(conn, c);
        }
    }
}

/// A failed read: a TLS failure before the connection became usable (under TLS 1.3 a
/// server that refuses our certificate says so at the first read), else a lost connection.
fn read_failed(e: &std::io::Error, ready: bool) -> Exit {
    match TlsFailure::of_io(e) {
        Some(f) if !ready => Exit::Tls(f),
        _ => Exit::Lost(format!("read failed: {e}")),
    }
}

async fn write_loop(
    mut wr: WriteHalf<Box<dyn Stream>>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) -> std::io::Result<()> {
    while let Some(first) = rx.recv().await {
        wr.write_all(&first).await?;
        // Batch whatever else is queued before flushing (one TLS record / segment).
        while let Ok(more) = rx.try_recv() {
            wr.write_all(&more).await?;
        }
        wr.flush().await?;
    }
    Ok(())
}
