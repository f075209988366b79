//! OVSDB client figures against a real ovsdb-server with the NB schema (prints, no asserts):
//! 1. 10,000 static routes + router reference in one transaction: client vs the same JSON
//!    written raw to the socket (floor) vs one chained `ovn-nbctl` (peer);
//! 2. single-row change latency, commit until visible in the replica, 20,000 rows present;
//! 3. initial monitor sync of 20,000 rows into the replica;
//! 4. RSS of a process whose replica holds 20,000 rows (measured in a child process).
//!
//! Run: `cargo bench --bench ovsdb`.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{NB, Server, row};
use ovnkube_route::ovsdb::codec::Decoder;
use ovnkube_route::ovsdb::{
    Atom, Client, ClientConfig, Condition, DatabaseSchema, Endpoint, Mutation, Operation, Replica,
    ReplicaEvent, TableSpec, Uuid, Value,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROUTES: usize = 10_000;

fn route_ops(router: &str) -> Vec<Operation> {
    let mut ops: Vec<Operation> = (0..ROUTES)
        .map(|i| {
            Operation::insert_named(
                "Logical_Router_Static_Route",
                row([
                    (
                        "ip_prefix",
                        format!("10.{}.{}.0/24", i / 256, i % 256).into(),
                    ),
                    ("nexthop", "100.64.0.2".into()),
                ]),
                format!("r{i}"),
            )
        })
        .collect();
    ops.push(Operation::insert(
        "Logical_Router",
        row([
            ("name", router.into()),
            (
                "static_routes",
                Value::set((0..ROUTES).map(|i| Atom::NamedUuid(format!("r{i}")))),
            ),
        ]),
    ));
    ops
}

async fn client_for(server: &Server) -> Client {
    let mut cfg = ClientConfig::new(vec![server.unix()], NB);
    cfg.probe_interval = None;
    Client::connect(cfg).await.unwrap()
}

async fn bulk_client(dir: &std::path::Path) -> Duration {
    let server = Server::standalone(dir);
    let client = client_for(&server).await;
    let t = Instant::now();
    let res = client.transact(NB, &route_ops("lr0")).await.unwrap();
    let d = t.elapsed();
    assert_eq!(res.len(), ROUTES + 1);
    d
}

async fn bulk_raw(dir: &std::path::Path) -> Duration {
    let server = Server::standalone(dir);
    let (d, reply) = common::raw_transact(&server, &route_ops("lr0")).await;
    assert_eq!(reply["result"].as_array().map(Vec::len), Some(ROUTES + 1));
    d
}

fn bulk_nbctl(dir: &std::path::Path) -> Duration {
    let server = Server::standalone(dir);
    let mut args = vec![
        format!("--db=unix:{}", server.sock.display()),
        "lr-add".into(),
        "lr0".into(),
    ];
    for i in 0..ROUTES {
        args.extend([
            "--".into(),
            "lr-route-add".into(),
            "lr0".into(),
            format!("10.{}.{}.0/24", i / 256, i % 256),
            "100.64.0.2".into(),
        ]);
    }
    let t = Instant::now();
    let out = std::process::Command::new("ovn-nbctl")
        .args(&args)
        .output()
        .unwrap();
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

/// A router with 10k static routes and one with 10k policies: 20,002 rows.
async fn populate(client: &Client) {
    client.transact(NB, &route_ops("lr-routes")).await.unwrap();
    let mut ops: Vec<Operation> = (0..ROUTES)
        .map(|i| {
            Operation::insert_named(
                "Logical_Router_Policy",
                row([
                    ("priority", (i as i64 % 30000).into()),
                    (
                        "match",
                        format!("ip4.src == 10.{}.{}.0/24", i / 256, i % 256).into(),
                    ),
                    ("action", "allow".into()),
                ]),
                format!("p{i}"),
            )
        })
        .collect();
    ops.push(Operation::insert(
        "Logical_Router",
        row([
            ("name", "lr-policies".into()),
            (
                "policies",
                Value::set((0..ROUTES).map(|i| Atom::NamedUuid(format!("p{i}")))),
            ),
        ]),
    ));
    client.transact(NB, &ops).await.unwrap();
}

fn replica_tables() -> Vec<TableSpec> {
    vec![
        TableSpec::all("Logical_Router"),
        TableSpec::all("Logical_Router_Static_Route"),
        TableSpec::all("Logical_Router_Policy"),
    ]
}

async fn new_replica(client: &Client) -> Arc<Replica> {
    let schema = DatabaseSchema::from_json(&client.get_schema(NB).await.unwrap()).unwrap();
    Arc::new(Replica::new(&schema, &replica_tables()).unwrap())
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Child mode: sync the replica from `sock` and print its RSS.
async fn rss_child(sock: &str) {
    let mut cfg = ClientConfig::new(vec![Endpoint::Unix(sock.into())], NB);
    cfg.probe_interval = None;
    let client = Client::connect(cfg).await.unwrap();
    let replica = new_replica(&client).await;
    let before = vm_rss_kib();
    let _feed = client.monitor_replica(NB, replica.clone()).await.unwrap();
    let snap = replica.snapshot();
    let rows = snap.len("Logical_Router_Static_Route") + snap.len("Logical_Router_Policy");
    println!("{rows} {} {before}", vm_rss_kib());
}

#[tokio::main]
async fn main() {
    if let Ok(sock) = std::env::var("OVSDB_BENCH_RSS_CHILD") {
        rss_child(&sock).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    println!("OVSDB client benchmark (ovsdb-server 3.1, NB schema, unix socket)");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;

    // 1. Bulk transaction, each on a fresh server; three rounds, alternating, best of each
    // (the machine is shared, single runs vary by tens of percent).
    let (mut client, mut raw, mut nbctl) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for round in 0..3 {
        let d = dir.path().join(format!("round{round}"));
        client = client.min(bulk_client(&d.join("client").tap_mkdir()).await);
        raw = raw.min(bulk_raw(&d.join("raw").tap_mkdir()).await);
        nbctl = nbctl.min(bulk_nbctl(&d.join("nbctl").tap_mkdir()));
    }
    println!(
        "1. {ROUTES} static routes + router, one transaction (best of 3): client {:.3} s | raw socket (floor) {:.3} s | ovn-nbctl chained (peer) {:.3} s | client/floor {:.2}x (goal <= 1.3x)",
        client.as_secs_f64(),
        raw.as_secs_f64(),
        nbctl.as_secs_f64(),
        client.as_secs_f64() / raw.as_secs_f64()
    );

    // Where the client's own time goes, without a server: building and encoding.
    let t = Instant::now();
    let ops = route_ops("lr0");
    let built = t.elapsed();
    let mut bytes = vec![];
    for op in &ops {
        serde_json::to_writer(&mut bytes, op).unwrap();
    }
    println!(
        "   client-side work for that request: build operations {:.1} ms, encode {} bytes {:.1} ms",
        ms(built),
        bytes.len(),
        ms(t.elapsed() - built)
    );

    // 2-4 on one server holding 20,002 rows.
    let server = Server::standalone(&dir.path().join("big").tap_mkdir());
    let writer = client_for(&server).await;
    populate(&writer).await;

    let reader = client_for(&server).await;
    let replica = new_replica(&reader).await;
    // Floor: the same monitor request on a raw socket, until its reply is complete.
    let sync_floor = {
        let req = serde_json::to_vec(&json!({"id": 1, "method": "monitor_cond_since",
            "params": [NB, "m", replica.monitor_requests(), Uuid::ZERO.to_string()]}))
        .unwrap();
        let mut s = tokio::net::UnixStream::connect(&server.sock).await.unwrap();
        let mut dec = Decoder::default();
        let mut buf = vec![0u8; 1 << 20];
        let t = Instant::now();
        s.write_all(&req).await.unwrap();
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed");
            dec.extend(&buf[..n]);
            if dec.next_message().unwrap().is_some() {
                break t.elapsed();
            }
        }
    };
    let t = Instant::now();
    let _feed = reader.monitor_replica(NB, replica.clone()).await.unwrap();
    let sync = t.elapsed();
    let snap = replica.snapshot();
    let rows = snap.len("Logical_Router_Static_Route") + snap.len("Logical_Router_Policy");
    println!(
        "3. initial monitor sync of {rows} rows into the replica: {:.3} s | server reply alone on a raw socket (floor) {:.3} s (goal <= 0.3 s; Python IDL 2.9 s)",
        sync.as_secs_f64(),
        sync_floor.as_secs_f64()
    );

    // 2. Single-row changes: 250 updates of one route's nexthop, 250 inserts of a route
    // referenced by a mutate (insert into the router's set, never rewriting it).
    let mut sub = replica.subscribe();
    let route = snap
        .iter("Logical_Router_Static_Route")
        .next()
        .unwrap()
        .uuid();
    let mut updates = vec![];
    let mut inserts = vec![];
    let mut acks = vec![];
    for i in 0..500 {
        let ops = if i % 2 == 0 {
            vec![Operation::update(
                "Logical_Router_Static_Route",
                vec![Condition::uuid(route)],
                row([("nexthop", format!("100.64.{}.{}", i / 250, i % 250).into())]),
            )]
        } else {
            vec![
                Operation::insert_named(
                    "Logical_Router_Static_Route",
                    row([
                        (
                            "ip_prefix",
                            format!("172.16.{}.{}/32", i / 250, i % 250).into(),
                        ),
                        ("nexthop", "100.64.0.3".into()),
                    ]),
                    "new",
                ),
                Operation::mutate(
                    "Logical_Router",
                    vec![Condition::eq("name", "lr-routes")],
                    vec![Mutation::insert(
                        "static_routes",
                        Value::set([Atom::NamedUuid("new".into())]),
                    )],
                ),
            ]
        };
        let t = Instant::now();
        let res = writer.transact(NB, &ops).await.unwrap();
        acks.push(t.elapsed());
        let want: Uuid = res[0].uuid().unwrap_or(route);
        loop {
            match sub.recv().await.unwrap() {
                ReplicaEvent::Changes(c) if c.changes.iter().any(|ch| ch.uuid == want) => break,
                ReplicaEvent::Changes(_) => {}
                ReplicaEvent::Resync { .. } => panic!("subscriber fell behind"),
            }
        }
        let d = t.elapsed();
        if i % 2 == 0 {
            updates.push(d)
        } else {
            inserts.push(d)
        }
    }
    let mut all: Vec<Duration> = updates.iter().chain(&inserts).copied().collect();
    for v in [&mut updates, &mut inserts, &mut all, &mut acks] {
        v.sort();
    }
    println!(
        "2. single-row change, commit until visible in the replica, {rows} rows present, 500 changes: p50 {:.3} ms p99 {:.3} ms (update p50 {:.3}/p99 {:.3}; insert+mutate p50 {:.3}/p99 {:.3}) (goal p50 <= 0.3 ms, p99 <= 1 ms; Python IDL 0.30 / 1.1 ms)",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(percentile(&updates, 0.5)),
        ms(percentile(&updates, 0.99)),
        ms(percentile(&inserts, 0.5)),
        ms(percentile(&inserts, 0.99)),
    );
    println!(
        "   of which the writer's transact round trip (server commit + reply): p50 {:.3} ms p99 {:.3} ms",
        ms(percentile(&acks, 0.5)),
        ms(percentile(&acks, 0.99)),
    );

    // 4. RSS in a fresh process that only holds the replica.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("OVSDB_BENCH_RSS_CHILD", &server.sock)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let mut num = || -> u64 { it.next().and_then(|s| s.parse().ok()).unwrap_or(0) };
    let (rows, kib, before) = (num(), num(), num());
    println!(
        "4. RSS of a process whose replica holds {rows} rows: {:.1} MiB (goal <= 40 MiB; {:.1} MiB before the initial sync)",
        kib as f64 / 1024.0,
        before as f64 / 1024.0
    );
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
