//! The OVSDB client handle: a cheap, cloneable front to one background task that owns the
//! connection (see `connection`). Requests are multiplexed by id over one connection.
//!
//! Owns the public API (RFC 7047 section 4.1 methods plus ovsdb-server(7) extensions). It
//! must not hold connection state itself: everything stateful lives in the task, so a handle
//! can be used from any task and dropped at any time.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::codec::DEFAULT_MAX_MESSAGE;
use super::connection::{Command, Params, Supervisor};
use super::error::{Error, TlsFailure};
use super::monitor::{MonitorEvent, MonitorSpec};
use super::ops::{OpResult, Operation, check_results};
use super::transport::{Endpoint, TcpOptions, TlsFiles};

/// How to reach and watch the server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Remotes tried in order, round robin.
    pub remotes: Vec<Endpoint>,
    /// Needed for `ssl:` remotes.
    pub tls: Option<TlsFiles>,
    /// The database this client works on; leader checks look at its `_Server` row.
    pub database: String,
    /// For clustered databases, only use the Raft leader (the OVS library default). When
    /// false, any connected member is used.
    pub leader_only: bool,
    /// Send an echo after this much silence; the connection is dead after twice as much.
    /// `None` disables probing (rely on TCP keepalive / user timeout only).
    pub probe_interval: Option<Duration>,
    /// First reconnect delay; doubles per failed attempt up to `backoff_max`, with jitter.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub tcp: TcpOptions,
    /// Largest single message accepted from the server.
    pub max_message: usize,
    /// Capacity of each monitor's event channel; a consumer that lets it fill is resynced.
    pub monitor_buffer: usize,
    /// With several remotes in leader-only mode, watch the other members' `_Server`
    /// databases and move to a member as soon as it becomes leader (`peers`): a hung
    /// leader is left in seconds instead of two probe intervals.
    pub peers: bool,
    /// Told of every TLS handshake that fails for a reason retrying does not fix (the
    /// caller reports it). Without one, each such failure is logged at WARN.
    pub on_tls_failure: Option<TlsHook>,
}

/// What a [`TlsHook`] calls: the remote and why its handshake failed.
pub type TlsReport = dyn Fn(&Endpoint, &TlsFailure) + Send + Sync;

/// A callback for TLS failures ([`ClientConfig::on_tls_failure`]).
#[derive(Clone)]
pub struct TlsHook(pub Arc<TlsReport>);

impl std::fmt::Debug for TlsHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsHook")
    }
}

impl ClientConfig {
    pub fn new(remotes: Vec<Endpoint>, database: impl Into<String>) -> ClientConfig {
        ClientConfig {
            remotes,
            tls: None,
            database: database.into(),
            leader_only: true,
            probe_interval: Some(Duration::from_secs(5)),
            backoff_min: Duration::from_millis(100),
            // Short: a restarted server is used within half a second of accepting
            // connections (a connection attempt to a closed local port costs microseconds).
            backoff_max: Duration::from_millis(500),
            tcp: TcpOptions::default(),
            max_message: DEFAULT_MAX_MESSAGE,
            monitor_buffer: 1024,
            peers: true,
            on_tls_failure: None,
        }
    }
}

/// The connection as handles see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnState {
    /// Connected to a usable member (and its leader checks passed).
    pub connected: bool,
    /// The remote currently (or last) used.
    pub endpoint: Option<Endpoint>,
    /// How many connections became usable since start (1 after the first).
    pub connections: u64,
    /// For a clustered database, whether the member is the Raft leader, as its `_Server`
    /// database says; `None` for other models or before the first `_Server` update.
    pub leader: Option<bool>,
    /// The last TLS failure since the last usable connection, and the remote it came from.
    pub tls_failure: Option<(Endpoint, TlsFailure)>,
    /// Full rounds over the remotes that ended without a usable connection, since the last
    /// one.
    pub failed_rounds: u64,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnState>,
    monitor_buffer: usize,
}

/// A handle to the client; clone it freely. The connection task stops when every handle
/// (and every [`Monitor`]) is dropped, or on [`Client::close`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &*self.inner.state.borrow())
            .finish()
    }
}

impl Client {
    /// Start the connection task and wait until a usable server is connected. Reconnects
    /// forever (one log line per attempt); wrap in `tokio::time::timeout` to bound the wait.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        let client = Client::start(config)?;
        client.wait_connected().await?;
        Ok(client)
    }

    /// Start the connection task without waiting for a connection.
    pub fn start(config: ClientConfig) -> Result<Client, Error> {
        if config.remotes.is_empty() {
            return Err(Error::BadRemote {
                remote: String::new(),
                reason: "no remote given".into(),
            });
        }
        let needs_tls = config
            .remotes
            .iter()
            .any(|r| matches!(r, Endpoint::Ssl { .. }));
        let tls = match (&config.tls, needs_tls) {
            (Some(files), true) => Some(files.load()?),
            (None, true) => {
                return Err(Error::Tls(
                    "ssl: remote given without private key, certificate and CA".into(),
                ));
            }
            _ => None,
        };
        let monitor_buffer = config.monitor_buffer.max(1);
        let (tx, rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(ConnState::default());
        let supervisor = Supervisor::new(config, tls, rx, tx.downgrade(), state_tx);
        tokio::spawn(supervisor.run());
        Ok(Client {
            inner: Arc::new(Inner {
                commands: tx,
                state: state_rx,
                monitor_buffer,
            }),
        })
    }

    /// The current connection state.
    pub fn state(&self) -> ConnState {
        self.inner.state.borrow().clone()
    }

    pub fn is_connected(&self) -> bool {
        self.inner.state.borrow().connected
    }

    /// A receiver of every state change (connections, leadership), for callers that react
    /// to reconnects (e.g. retrying a write whose outcome was unknown).
    pub fn state_changes(&self) -> watch::Receiver<ConnState> {
        self.inner.state.clone()
    }

    /// Wait until connected to a usable server.
    pub async fn wait_connected(&self) -> Result<(), Error> {
        let mut rx = self.inner.state.clone();
        rx.wait_for(|s| s.connected)
            .await
            .map(|_| ())
            .map_err(|_| Error::Closed)
    }

    /// Wait until connected to a usable server, or until a whole round over the remotes
    /// failed and a TLS handshake failed in it: a certificate problem does not go away by
    /// retrying, so a caller that cannot wait forever learns it at once.
    pub async fn wait_usable(&self) -> Result<(), Error> {
        let mut rx = self.inner.state.clone();
        let s = rx
            .wait_for(|s| s.connected || (s.tls_failure.is_some() && s.failed_rounds > 0))
            .await
            .map_err(|_| Error::Closed)?;
        match (&s.tls_failure, s.connected) {
            (Some((remote, failure)), false) => Err(Error::TlsHandshake {
                remote: remote.to_string(),
                failure: failure.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Wait until the client has made more than `connections` usable connections.
    pub async fn wait_reconnected(&self, connections: u64) -> Result<(), Error> {
        let mut rx = self.inner.state.clone();
        rx.wait_for(|s| s.connected && s.connections > connections)
            .await
            .map(|_| ())
            .map_err(|_| Error::Closed)
    }

    fn send(&self, cmd: Command) -> Result<(), Error> {
        self.inner.commands.send(cmd).map_err(|_| Error::Closed)
    }

    /// Send one JSON-RPC request and wait for its result. `outcome_unknown_on_loss` decides
    /// which error a dropped connection gives ([`Error::OutcomeUnknown`] for writes).
    pub async fn request(
        &self,
        method: &str,
        params: Json,
        outcome_unknown_on_loss: bool,
    ) -> Result<Json, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request {
            method: method.to_owned(),
            params: Params::Json(params),
            outcome_unknown_on_loss,
            reply,
        })?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// `list_dbs` (RFC 7047 section 4.1.1).
    pub async fn list_dbs(&self) -> Result<Vec<String>, Error> {
        let r = self.request("list_dbs", json!([]), false).await?;
        serde_json::from_value(r.clone()).map_err(|_| Error::BadReply {
            method: "list_dbs".into(),
            reason: format!("not a list of strings: {r}"),
        })
    }

    /// `get_schema` (RFC 7047 section 4.1.2), as raw JSON for the schema parser.
    pub async fn get_schema(&self, database: &str) -> Result<Json, Error> {
        self.request("get_schema", json!([database]), false).await
    }

    /// `transact` (RFC 7047 section 4.1.3): every operation's result is checked; the first
    /// failure (or a commit-time failure) is returned as [`Error::Transaction`].
    pub async fn transact(
        &self,
        database: &str,
        ops: &[Operation],
    ) -> Result<Vec<OpResult>, Error> {
        self.send_transact(database, ops)?.reply(ops).await
    }

    /// Sends a `transact` request without waiting for its reply: requests on one connection
    /// are executed in the order they are sent, so a caller may send the next while the
    /// server still works on this one ([`SentTxn::reply`] waits for the outcome).
    pub fn send_transact(&self, database: &str, ops: &[Operation]) -> Result<SentTxn, Error> {
        // Encoded here, in the caller's task, straight to bytes.
        let mut params = Vec::with_capacity(64 + ops.len() * 128);
        params.push(b'[');
        serde_json::to_writer(&mut params, database).map_err(encode)?;
        for op in ops {
            params.push(b',');
            serde_json::to_writer(&mut params, op).map_err(encode)?;
        }
        params.push(b']');
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request {
            method: "transact".into(),
            params: Params::Encoded(params),
            outcome_unknown_on_loss: true,
            reply,
        })?;
        Ok(SentTxn { rx })
    }

    /// `echo` (RFC 7047 section 4.1.11): the server returns `params` unchanged.
    pub async fn echo(&self, params: Json) -> Result<Json, Error> {
        self.request("echo", params, false).await
    }

    /// Start a monitor session (`monitor`, `monitor_cond` or `monitor_cond_since` per
    /// `spec.kind`). Waits for the first establishment; the first event is the initial
    /// snapshot as [`MonitorEvent::Reset`]. The session survives reconnects (see
    /// `monitor`'s module comment). Dropping the [`Monitor`] cancels it.
    pub async fn monitor(&self, spec: MonitorSpec) -> Result<Monitor, Error> {
        let (events_tx, events) = mpsc::channel(self.inner.monitor_buffer);
        let (ack, ack_rx) = oneshot::channel();
        let (id_tx, id_rx) = oneshot::channel();
        self.send(Command::AddMonitor {
            spec,
            events: events_tx,
            ack,
            id: id_tx,
        })?;
        let id = id_rx.await.map_err(|_| Error::Closed)?;
        let monitor = Monitor {
            id,
            events,
            client: self.clone(),
        };
        ack_rx.await.map_err(|_| Error::Closed)??;
        Ok(monitor)
    }

    /// Drop the current connection (pending transactions end with
    /// [`Error::OutcomeUnknown`]) and reconnect, resuming monitors.
    pub fn reconnect(&self) -> Result<(), Error> {
        self.send(Command::Reconnect)
    }

    /// Stop the connection task; every handle then fails with [`Error::Closed`].
    pub fn close(&self) {
        let _ = self.send(Command::Shutdown);
    }
}

fn encode(e: serde_json::Error) -> Error {
    Error::Encode(e.to_string())
}

/// A monitor session's receiving end. `monitor_cancel` is sent when it is dropped.
pub struct Monitor {
    id: u64,
    events: mpsc::Receiver<MonitorEvent>,
    client: Client,
}

impl Monitor {
    /// The next event; `None` when the session ended (client closed, or the server refused
    /// to re-establish it).
    pub async fn next(&mut self) -> Option<MonitorEvent> {
        self.events.recv().await
    }

    /// The next event if one is ready.
    pub fn try_next(&mut self) -> Option<MonitorEvent> {
        self.events.try_recv().ok()
    }

    /// Start over: the server is asked for a full snapshot, delivered as
    /// [`MonitorEvent::Reset`] after any events already queued. For a consumer that found
    /// its copy inconsistent.
    pub fn resync(&self) -> Result<(), Error> {
        self.client.send(Command::Restart { id: self.id })
    }

    /// The client this session runs on.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.client.send(Command::CancelMonitor { id: self.id });
    }
}

/// A `transact` request on its way ([`Client::send_transact`]).
#[must_use = "the outcome of a transaction is unknown until its reply is read"]
pub struct SentTxn {
    rx: oneshot::Receiver<Result<Json, Error>>,
}

impl SentTxn {
    /// The reply, every result checked against `ops` (the operations sent).
    pub async fn reply(self, ops: &[Operation]) -> Result<Vec<OpResult>, Error> {
        let result = self.rx.await.map_err(|_| Error::Closed)??;
        check_results(ops, &result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Clone + Send + Sync + 'static>() {}

    #[test]
    fn handles_are_shareable_across_tasks() {
        shareable::<Client>();
        fn send<T: Send>() {}
        send::<Monitor>();
    }

    #[tokio::test]
    async fn config_errors_are_reported_before_connecting() {
        let e = Client::start(ClientConfig::new(vec![], "db")).unwrap_err();
        assert!(matches!(e, Error::BadRemote { .. }));
        let ssl = Endpoint::Ssl {
            host: "127.0.0.1".into(),
            port: 1,
        };
        let e = Client::start(ClientConfig::new(vec![ssl], "db")).unwrap_err();
        assert!(matches!(e, Error::Tls(_)));
    }

    #[tokio::test]
    async fn requests_fail_fast_while_disconnected() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ClientConfig::new(vec![Endpoint::Unix(dir.path().join("none.sock"))], "db");
        let client = Client::start(cfg).unwrap();
        let e = client.list_dbs().await.unwrap_err();
        assert!(matches!(e, Error::NotConnected), "{e:?}");
        assert!(e.is_retryable());
        client.close();
        let e = client.echo(serde_json::json!([])).await.unwrap_err();
        assert!(matches!(e, Error::Closed | Error::NotConnected), "{e:?}");
    }
}
