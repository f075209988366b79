//! The client against a real 3-member Raft cluster of the NB database on 127.0.0.1:
//! leader-only failover, no lost or doubled acknowledged write, monitor_cond_since deltas.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Cluster, NB, apply, config, connect, names, next_event, row};
use std::sync::Arc;

use ovnkube_route::ovsdb::{
    Atom, Client, Condition, DatabaseSchema, Endpoint, Error, MonitorEvent, MonitorSpec, Mutation,
    Operation, Replica, TableSpec, Uuid, Value,
};

fn member_index(cluster: &Cluster, endpoint: &Endpoint) -> usize {
    cluster
        .remotes()
        .iter()
        .position(|e| e == endpoint)
        .expect("client is on a cluster member")
}

async fn router_names(client: &Client) -> Vec<String> {
    let res = client
        .transact(NB, &[Operation::select("Logical_Router", vec![])])
        .await
        .unwrap();
    let mut v: Vec<String> = res[0]
        .rows()
        .iter()
        .filter_map(|r| r.get("name")?.as_atom()?.as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

fn router(name: &str) -> Operation {
    Operation::insert("Logical_Router", row([("name", Value::from(name))]))
}

/// Insert `name` until acknowledged. On an unknown outcome, re-read instead of blindly
/// retrying: the write may already be committed.
async fn write_once(client: &Client, name: &str) -> u32 {
    let mut unknown = 0;
    loop {
        match client.transact(NB, &[router(name)]).await {
            Ok(_) => return unknown,
            Err(Error::OutcomeUnknown) => {
                unknown += 1;
                loop {
                    match client
                        .transact(
                            NB,
                            &[Operation::select(
                                "Logical_Router",
                                vec![Condition::eq("name", name)],
                            )],
                        )
                        .await
                    {
                        Ok(r) if !r[0].rows().is_empty() => return unknown,
                        Ok(_) => break,
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("write {name}: {e}"),
        }
    }
}

#[tokio::test]
async fn kill_leader_while_writing_every_acknowledged_write_once() {
    common::tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path());
    let client = connect(cluster.remotes()).await;
    let leader = member_index(&cluster, &client.state().endpoint.unwrap());

    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut unknown = 0;
            for i in 0..150 {
                unknown += write_once(&client, &format!("w{i:03}")).await;
            }
            unknown
        })
    };
    // Let some writes land, then kill -9 the leader in the middle of the stream.
    while router_names(&client).await.len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.members[leader].kill();
    let unknown = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("writer stuck")
        .unwrap();

    let state = client.state();
    let now = member_index(&cluster, &state.endpoint.unwrap());
    assert_ne!(now, leader, "client still on the killed member");
    assert!(state.connections >= 2);
    let got = router_names(&client).await;
    let want: Vec<String> = (0..150).map(|i| format!("w{i:03}")).collect();
    assert_eq!(
        got, want,
        "a write was lost or doubled ({unknown} unknown outcomes)"
    );
}

#[tokio::test]
async fn monitor_cond_since_resumes_with_a_delta_on_another_member() {
    common::tracing();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    let writer = connect(cluster.remotes()).await;
    let leader = member_index(&cluster, &writer.state().endpoint.unwrap());
    // The watcher reads from followers first (followers allowed), with fast probes.
    let mut remotes = cluster.remotes();
    remotes.rotate_left(leader + 1);
    let mut cfg = config(remotes);
    cfg.leader_only = false;
    cfg.probe_interval = Some(Duration::from_millis(300));
    let watcher = Client::connect(cfg).await.unwrap();
    let watched = member_index(&cluster, &watcher.state().endpoint.unwrap());
    assert_ne!(watched, leader);

    for n in ["a", "b", "c"] {
        writer.transact(NB, &[router(n)]).await.unwrap();
    }
    let mut m = watcher
        .monitor(MonitorSpec::new(NB, ["Logical_Router"]))
        .await
        .unwrap();
    let mut content = BTreeMap::new();
    while names(&content) != ["a", "b", "c"] {
        apply(&mut content, &next_event(&mut m).await);
    }

    // Freeze the watcher's member: the cluster goes on, the watcher must move elsewhere.
    let pid = nix::unistd::Pid::from_raw(cluster.members[watched].pid().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    writer
        .transact(
            NB,
            &[Operation::delete(
                "Logical_Router",
                vec![Condition::eq("name", "a")],
            )],
        )
        .await
        .unwrap();
    writer.transact(NB, &[router("d")]).await.unwrap();
    let reconnected =
        tokio::time::timeout(Duration::from_secs(20), watcher.wait_reconnected(1)).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    reconnected.expect("watcher did not move").unwrap();
    assert_ne!(
        member_index(&cluster, &watcher.state().endpoint.unwrap()),
        watched
    );

    // The first event after resuming is a delta, not a full snapshot.
    let e = next_event(&mut m).await;
    assert!(
        matches!(e, MonitorEvent::Update(_)),
        "expected a delta, got {e:?}"
    );
    apply(&mut content, &e);
    while names(&content) != ["b", "c", "d"] {
        let e = next_event(&mut m).await;
        assert!(matches!(e, MonitorEvent::Update(_)), "{e:?}");
        apply(&mut content, &e);
    }
    assert_eq!(names(&content), router_names(&writer).await);
}

/// A column value in one canonical form whatever its encoding (a bare atom is a
/// one-element set, RFC 7047 section 5.1), to compare select results with the replica.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Map(_) => v.clone(),
        other => Value::Set(other.clone().into_set()),
    }
}

async fn server_content(client: &Client, table: &str) -> BTreeMap<Uuid, BTreeMap<String, Value>> {
    let res = client
        .transact(NB, &[Operation::select(table, vec![])])
        .await
        .unwrap();
    res[0]
        .rows()
        .iter()
        .map(|r| {
            let uuid = r["_uuid"].as_atom().and_then(|a| a.as_uuid()).unwrap();
            let cols = r
                .iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect();
            (uuid, cols)
        })
        .collect()
}

fn replica_content(replica: &Replica, table: &str) -> BTreeMap<Uuid, BTreeMap<String, Value>> {
    replica
        .snapshot()
        .iter(table)
        .map(|r| {
            let cols = r
                .to_row()
                .iter()
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect();
            (r.uuid(), cols)
        })
        .collect()
}

#[tokio::test]
async fn a_hundred_reconnects_with_writes_in_between_replica_equals_server() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    let writer = connect(cluster.remotes()).await;
    let mut cfg = config(cluster.remotes());
    cfg.leader_only = false;
    let watcher = Client::connect(cfg).await.unwrap();
    let schema = DatabaseSchema::from_json(&watcher.get_schema(NB).await.unwrap()).unwrap();
    let replica = Arc::new(
        Replica::new(
            &schema,
            &[
                TableSpec::all("Logical_Router"),
                TableSpec::all("Logical_Router_Static_Route"),
            ],
        )
        .unwrap(),
    );
    let feed = watcher.monitor_replica(NB, replica.clone()).await.unwrap();
    for cycle in 0..100u32 {
        let before = watcher.state().connections;
        watcher.reconnect().unwrap();
        let name = format!("r{cycle}");
        writer
            .transact(
                NB,
                &[
                    Operation::insert_named(
                        "Logical_Router_Static_Route",
                        row([
                            ("ip_prefix", format!("10.{cycle}.0.0/16").into()),
                            ("nexthop", "1.1.1.1".into()),
                        ]),
                        "route",
                    ),
                    Operation::insert(
                        "Logical_Router",
                        row([
                            ("name", name.as_str().into()),
                            (
                                "static_routes",
                                Value::set([Atom::NamedUuid("route".into())]),
                            ),
                        ]),
                    ),
                ],
            )
            .await
            .unwrap();
        if cycle > 0 {
            let prev = format!("r{}", cycle - 1);
            let mut ops = vec![
                Operation::mutate(
                    "Logical_Router",
                    vec![Condition::eq("name", prev.as_str())],
                    vec![Mutation::insert(
                        "external_ids",
                        Value::map([(format!("k{cycle}"), "v")]),
                    )],
                ),
                Operation::update(
                    "Logical_Router",
                    vec![Condition::eq("name", prev.as_str())],
                    row([("enabled", (cycle % 2 == 0).into())]),
                ),
            ];
            if cycle % 3 == 0 {
                // Deleting the router garbage-collects its (non-root) routes.
                ops.push(Operation::delete(
                    "Logical_Router",
                    vec![Condition::eq("name", prev.as_str())],
                ));
            }
            writer.transact(NB, &ops).await.unwrap();
        }
        watcher.wait_reconnected(before).await.unwrap();
    }
    assert!(watcher.state().connections >= 101);
    assert!(feed.is_running());
    // The replica converges to exactly what a fresh select returns.
    let mut last = (BTreeMap::new(), BTreeMap::new());
    let converged = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let want = (
                server_content(&writer, "Logical_Router").await,
                server_content(&writer, "Logical_Router_Static_Route").await,
            );
            last = (
                replica_content(&replica, "Logical_Router"),
                replica_content(&replica, "Logical_Router_Static_Route"),
            );
            if last == want {
                return want;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let want = converged.unwrap_or_else(|_| panic!("replica never matched the server: {last:?}"));
    assert_eq!(want.0.len(), 100 - 33, "routers left after 33 deletions");
    assert_eq!(want.1.len(), want.0.len());
}

#[tokio::test]
async fn leader_leaving_the_cluster_makes_the_client_move() {
    common::tracing();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    let client = connect(cluster.remotes()).await;
    let leader = member_index(&cluster, &client.state().endpoint.unwrap());
    let before = client.state().connections;
    cluster.wait_settled();
    cluster.members[leader].appctl(&["cluster/leave", NB]);
    tokio::time::timeout(Duration::from_secs(20), client.wait_reconnected(before))
        .await
        .expect("client did not move")
        .unwrap();
    assert_ne!(
        member_index(&cluster, &client.state().endpoint.unwrap()),
        leader
    );
    write_once(&client, "after-leave").await;
    assert_eq!(router_names(&client).await, ["after-leave"]);
}
