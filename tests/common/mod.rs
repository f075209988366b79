//! Test harness of the OVSDB integration tests (ovsdb_*, replica_*, and through `fixture` the
//! nb_* and run_* tests). `server` owns every ovsdb-server process (temp dirs, pid files, free
//! ports, unix/tcp/ssl remotes, Raft cluster, loud failure on a missing tool); `certs` makes TLS
//! material; this file holds the client-side helpers of the OVSDB tests.
#![allow(dead_code)]
// Test code: a panic is a test failure with a message, which is what we want.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use ovnkube_route::ovsdb::{
    Client, ClientConfig, Endpoint, Monitor, MonitorEvent, Row, RowUpdate2, Update, Uuid, Value,
};

mod certs;
mod server;

pub use certs::*;
pub use server::*;

pub fn config(remotes: Vec<Endpoint>) -> ClientConfig {
    let mut c = ClientConfig::new(remotes, NB);
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(500);
    c
}

pub async fn connect(remotes: Vec<Endpoint>) -> Client {
    tokio::time::timeout(Duration::from_secs(20), Client::connect(config(remotes)))
        .await
        .expect("connect timed out")
        .expect("connect")
}

pub fn tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ovnkube_route=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn row<const N: usize>(cols: [(&str, Value); N]) -> Row {
    cols.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Collect a monitor's content (insert/delete only: the tests below never modify).
pub fn apply(content: &mut BTreeMap<Uuid, Row>, event: &MonitorEvent) {
    if let MonitorEvent::Reset(_) = event {
        content.clear();
    }
    let updates = match event.update() {
        Some(Update::V2(u) | Update::V3 { updates: u, .. }) => u,
        other => panic!("not used here: {other:?}"),
    };
    for (uuid, change) in updates.values().flatten() {
        match change {
            RowUpdate2::Initial(r) | RowUpdate2::Insert(r) => {
                content.insert(*uuid, r.clone());
            }
            RowUpdate2::Delete => {
                content.remove(uuid);
            }
            RowUpdate2::Modify(_) => panic!("no modify expected"),
        }
    }
}

pub fn names(content: &BTreeMap<Uuid, Row>) -> Vec<String> {
    let mut v: Vec<String> = content
        .values()
        .filter_map(|r| r.get("name")?.as_atom()?.as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

pub async fn next_event(m: &mut Monitor) -> MonitorEvent {
    tokio::time::timeout(Duration::from_secs(10), m.next())
        .await
        .expect("no monitor event within 10 s")
        .expect("monitor ended")
}

/// Waits (10 s at most) until `client` has noticed that its server went away.
pub async fn wait_disconnected(client: &Client) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while client.is_connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("watcher did not notice the closed remote");
}

/// Sends `ops` as one `transact` written raw to a fresh unix socket and waits for the reply:
/// the floor a client's transaction is compared with. Returns the time from the first byte
/// written to the whole reply decoded, and the reply.
pub async fn raw_transact(
    server: &Server,
    ops: &[ovnkube_route::ovsdb::Operation],
) -> (Duration, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut params = vec![serde_json::json!(NB)];
    params.extend(ops.iter().map(ovnkube_route::ovsdb::Operation::to_json));
    let request = serde_json::json!({"id": 1, "method": "transact", "params": params});
    let bytes = serde_json::to_vec(&request).unwrap();
    let mut s = tokio::net::UnixStream::connect(&server.sock).await.unwrap();
    let mut dec = ovnkube_route::ovsdb::codec::Decoder::default();
    let mut buf = vec![0u8; 1 << 20];
    let t = std::time::Instant::now();
    s.write_all(&bytes).await.unwrap();
    let reply = loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "server closed");
        dec.extend(&buf[..n]);
        if let Some(m) = dec.next_message().unwrap() {
            break m;
        }
    };
    (t.elapsed(), reply)
}
