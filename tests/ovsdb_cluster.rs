//! The client against a real 3-member Raft cluster of the NB database on 127.0.0.1:
//! leader-only failover, no lost or doubled acknowledged write, monitor_cond_since deltas.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Cluster, NB, apply, config, connect, names, next_event, row};
use ovnkube_route::ovsdb::{
    Client, Condition, Endpoint, Error, MonitorEvent, MonitorSpec, Operation, Value,
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

#[tokio::test]
async fn fifty_reconnects_with_writes_in_between_converge() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());
    let writer = connect(cluster.remotes()).await;
    let mut cfg = config(cluster.remotes());
    cfg.leader_only = false;
    let watcher = Client::connect(cfg).await.unwrap();
    let mut m = watcher
        .monitor(MonitorSpec::new(NB, ["Logical_Router"]))
        .await
        .unwrap();
    let mut content = BTreeMap::new();
    apply(&mut content, &next_event(&mut m).await);
    let mut resets = 0;
    for cycle in 0..50u32 {
        let before = watcher.state().connections;
        watcher.reconnect().unwrap();
        writer
            .transact(
                NB,
                &[router(&format!("r{cycle}a")), router(&format!("r{cycle}b"))],
            )
            .await
            .unwrap();
        if cycle > 0 {
            writer
                .transact(
                    NB,
                    &[Operation::delete(
                        "Logical_Router",
                        vec![Condition::eq("name", format!("r{}a", cycle - 1))],
                    )],
                )
                .await
                .unwrap();
        }
        watcher.wait_reconnected(before).await.unwrap();
        while let Some(e) = m.try_next() {
            resets += usize::from(matches!(e, MonitorEvent::Reset(_)));
            apply(&mut content, &e);
        }
    }
    // Drain until the watcher's copy equals a fresh read of the server.
    let want = router_names(&writer).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while names(&content) != want {
            let e = next_event(&mut m).await;
            resets += usize::from(matches!(e, MonitorEvent::Reset(_)));
            apply(&mut content, &e);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("watcher content {:?} != server {want:?}", names(&content)));
    assert_eq!(want.len(), 51);
    // On a cluster a resume finds its txn id and gets a delta; only a member that has not
    // yet caught up with that txn answers with a full snapshot. A client that always got
    // snapshots would show 50 resets here.
    assert!(resets < 25, "{resets} full resyncs in 50 resumes");
    assert!(watcher.state().connections >= 51);
    let names: BTreeSet<String> = want.into_iter().collect();
    assert!(names.contains("r49a") && names.contains("r49b") && !names.contains("r48a"));
}
