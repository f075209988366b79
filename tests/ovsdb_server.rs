//! The client against one real standalone ovsdb-server with the NB schema: unix and ptcp
//! remotes, transactions and their typed errors, monitors, liveness.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{NB, Server, apply, config, connect, names, next_event, row, wait_disconnected};
use ovnkube_route::ovsdb::{
    Atom, Client, Condition, Error, MonitorEvent, MonitorKind, MonitorSpec, Mutation, Mutator,
    Operation, TxnErrorKind, Value, WaitUntil,
};
use serde_json::json;

async fn expect_txn_error(client: &Client, ops: &[Operation]) -> ovnkube_route::ovsdb::TxnError {
    match client.transact(NB, ops).await {
        Err(Error::Transaction(t)) => t,
        other => panic!("expected a transaction error, got {other:?}"),
    }
}

#[tokio::test]
async fn unix_and_ptcp_transact_select_and_echo() {
    common::tracing();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path());
    for remote in [server.unix(), server.tcp()] {
        let client = connect(vec![remote.clone()]).await;
        let dbs = client.list_dbs().await.unwrap();
        assert!(dbs.contains(&NB.to_owned()) && dbs.contains(&"_Server".to_owned()));
        let schema = client.get_schema(NB).await.unwrap();
        assert_eq!(schema["name"], json!(NB));
        assert_eq!(client.echo(json!(["x", 1])).await.unwrap(), json!(["x", 1]));

        let name = format!("lr-{remote}");
        let res = client
            .transact(
                NB,
                &[
                    Operation::insert_named(
                        "Logical_Router_Static_Route",
                        row([
                            ("ip_prefix", "10.1.0.0/16".into()),
                            ("nexthop", "100.64.0.2".into()),
                        ]),
                        "r0",
                    ),
                    Operation::insert(
                        "Logical_Router",
                        row([
                            ("name", name.as_str().into()),
                            ("static_routes", Value::set([Atom::NamedUuid("r0".into())])),
                        ]),
                    ),
                    Operation::Comment("test".into()),
                ],
            )
            .await
            .unwrap();
        let route = res[0].uuid().unwrap();
        let lr = res[1].uuid().unwrap();
        let sel = client
            .transact(
                NB,
                &[Operation::Select {
                    table: "Logical_Router".into(),
                    conditions: vec![Condition::uuid(lr)],
                    columns: Some(vec!["name".into(), "static_routes".into()]),
                }],
            )
            .await
            .unwrap();
        let rows = sel[0].rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["name"], Value::from(name.as_str()));
        assert_eq!(
            rows[0]["static_routes"].clone().into_set(),
            [Atom::Uuid(route)].into()
        );
        // Mutate a reference set in place, then update and delete.
        let res = client
            .transact(
                NB,
                &[
                    Operation::mutate(
                        "Logical_Router",
                        vec![Condition::uuid(lr)],
                        vec![Mutation::delete(
                            "static_routes",
                            Value::set([Atom::Uuid(route)]),
                        )],
                    ),
                    Operation::update(
                        "Logical_Router",
                        vec![Condition::eq("name", name.as_str())],
                        row([("enabled", false.into())]),
                    ),
                    Operation::delete("Logical_Router", vec![Condition::uuid(lr)]),
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            res.iter().map(|r| r.count()).collect::<Vec<_>>(),
            [Some(1), Some(1), Some(1)]
        );
        assert_eq!(client.state().connections, 1);
    }
}

#[tokio::test]
async fn every_typed_error_from_real_failing_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path());
    let client = connect(vec![server.unix()]).await;
    let set = |n: &str| Operation::insert("Address_Set", row([("name", n.into())]));

    // Duplicate index value: detected at commit, reported after the operations' results.
    let t = expect_txn_error(&client, &[set("dup"), set("dup")]).await;
    assert_eq!(t.kind, TxnErrorKind::ConstraintViolation);
    assert_eq!(t.op_index, None);
    assert!(t.details.is_some());

    // Deleting a strongly referenced row.
    let res = client
        .transact(
            NB,
            &[
                Operation::insert_named(
                    "Logical_Router_Static_Route",
                    row([
                        ("ip_prefix", "10.0.0.0/8".into()),
                        ("nexthop", "1.1.1.1".into()),
                    ]),
                    "r",
                ),
                Operation::insert(
                    "Logical_Router",
                    row([
                        ("name", "lr".into()),
                        ("static_routes", Value::set([Atom::NamedUuid("r".into())])),
                    ]),
                ),
            ],
        )
        .await
        .unwrap();
    let route = res[0].uuid().unwrap();
    let t = expect_txn_error(
        &client,
        &[Operation::delete(
            "Logical_Router_Static_Route",
            vec![Condition::uuid(route)],
        )],
    )
    .await;
    assert_eq!(t.kind, TxnErrorKind::ReferentialIntegrityViolation);

    // A stale optimistic-concurrency guard.
    let t = expect_txn_error(
        &client,
        &[
            Operation::Comment("guard".into()),
            Operation::Wait {
                table: "Logical_Router".into(),
                conditions: vec![Condition::eq("name", "lr")],
                columns: vec!["name".into()],
                until: WaitUntil::Equal,
                rows: vec![row([("name", "someone-else".into())])],
                timeout_ms: Some(0),
            },
        ],
    )
    .await;
    assert_eq!((t.kind, t.op_index), (TxnErrorKind::TimedOut, Some(1)));

    let t = expect_txn_error(&client, &[set("a1"), Operation::Abort]).await;
    assert_eq!((t.kind, t.op_index), (TxnErrorKind::Aborted, Some(1)));

    let t = expect_txn_error(
        &client,
        &[Operation::Assert {
            lock: "nope".into(),
        }],
    )
    .await;
    assert_eq!((t.kind, t.op_index), (TxnErrorKind::NotOwner, Some(0)));

    let t = expect_txn_error(
        &client,
        &[
            set("x"),
            set("y"),
            Operation::insert_named("Address_Set", row([("name", "z".into())]), "n"),
            Operation::insert_named("Address_Set", row([("name", "w".into())]), "n"),
        ],
    )
    .await;
    assert_eq!(
        (t.kind, t.op_index),
        (TxnErrorKind::DuplicateUuidName, Some(3))
    );

    // ACL priority is 0..=32767.
    let t = expect_txn_error(
        &client,
        &[Operation::insert(
            "ACL",
            row([
                ("priority", 40000.into()),
                ("direction", "to-lport".into()),
                ("match", "ip4".into()),
                ("action", "drop".into()),
            ]),
        )],
    )
    .await;
    assert_eq!(t.kind, TxnErrorKind::ConstraintViolation);

    let t = expect_txn_error(
        &client,
        &[Operation::mutate(
            "Logical_Router_Static_Route",
            vec![],
            vec![Mutation::new(
                "route_table",
                ovnkube_route::ovsdb::Mutator::Add,
                1,
            )],
        )],
    )
    .await;
    assert!(matches!(t.kind, TxnErrorKind::Syntax(_)), "{t:?}");

    // Integer mutations: division by zero and overflow.
    let nb_global = || Operation::insert("NB_Global", row([]));
    let mutate = |m: Mutator, v: i64| {
        Operation::mutate("NB_Global", vec![], vec![Mutation::new("nb_cfg", m, v)])
    };
    let t = expect_txn_error(&client, &[nb_global(), mutate(Mutator::Div, 0)]).await;
    assert_eq!((t.kind, t.op_index), (TxnErrorKind::DomainError, Some(1)));
    let t = expect_txn_error(
        &client,
        &[
            nb_global(),
            mutate(Mutator::Add, i64::MAX),
            mutate(Mutator::Add, 9),
        ],
    )
    .await;
    assert_eq!((t.kind, t.op_index), (TxnErrorKind::RangeError, Some(2)));

    let t = expect_txn_error(&client, &[Operation::select("No_Such_Table", vec![])]).await;
    assert!(matches!(t.kind, TxnErrorKind::Syntax(_)), "{t:?}");

    // A whole-request failure is a JSON-RPC error, not a transaction error.
    match client.transact("No_Such_Db", &[set("q")]).await {
        Err(Error::Rpc { error, .. }) => assert_eq!(error["error"], json!("unknown database")),
        other => panic!("{other:?}"),
    }
    // Nothing of the failed transactions was committed.
    let sel = client
        .transact(NB, &[Operation::select("Address_Set", vec![])])
        .await
        .unwrap();
    assert!(sel[0].rows().is_empty(), "{:?}", sel[0]);
}

#[tokio::test]
async fn standalone_resync_replaces_everything_after_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path());
    let writer = connect(vec![server.unix()]).await;
    let watcher = connect(vec![server.tcp()]).await;
    let set = |n: &str| Operation::insert("Address_Set", row([("name", n.into())]));
    writer.transact(NB, &[set("a"), set("b")]).await.unwrap();

    let mut m = watcher
        .monitor(MonitorSpec::new(NB, ["Address_Set"]))
        .await
        .unwrap();
    let mut content = BTreeMap::new();
    let first = next_event(&mut m).await;
    assert!(matches!(first, MonitorEvent::Reset(_)));
    apply(&mut content, &first);
    assert_eq!(names(&content), ["a", "b"]);
    writer.transact(NB, &[set("c")]).await.unwrap();
    let e = next_event(&mut m).await;
    assert!(matches!(e, MonitorEvent::Update(_)));
    apply(&mut content, &e);
    assert_eq!(names(&content), ["a", "b", "c"]);

    // Take the tcp remote away so the watcher stays disconnected while "a" is deleted.
    server.remove_tcp_remote();
    wait_disconnected(&watcher).await;
    writer
        .transact(
            NB,
            &[Operation::delete(
                "Address_Set",
                vec![Condition::eq("name", "a")],
            )],
        )
        .await
        .unwrap();
    server.add_tcp_remote();
    watcher.wait_reconnected(1).await.unwrap();

    // Standalone servers never find the old txn id: a full snapshot flagged Reset.
    let e = next_event(&mut m).await;
    assert!(matches!(e, MonitorEvent::Reset(_)), "{e:?}");
    apply(&mut content, &e);
    assert_eq!(names(&content), ["b", "c"]);
}

#[tokio::test]
async fn slow_consumer_is_resynced_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path());
    let mut cfg = config(vec![server.unix()]);
    cfg.monitor_buffer = 4;
    let client = Client::connect(cfg).await.unwrap();
    let mut m = client
        .monitor(MonitorSpec::new(NB, ["Address_Set"]).with_kind(MonitorKind::V2))
        .await
        .unwrap();
    // Do not read while 40 single-row transactions produce 40 notifications.
    for i in 0..40 {
        client
            .transact(
                NB,
                &[Operation::insert(
                    "Address_Set",
                    row([("name", format!("s{i}").into())]),
                )],
            )
            .await
            .unwrap();
    }
    let mut content = BTreeMap::new();
    let mut resets = 0;
    while names(&content).len() < 40 {
        let e = next_event(&mut m).await;
        resets += usize::from(matches!(e, MonitorEvent::Reset(_)));
        apply(&mut content, &e);
    }
    // The initial snapshot plus at least one resync after falling behind.
    assert!(resets >= 2, "resets {resets}");
    assert_eq!(names(&content).len(), 40);
}

#[tokio::test]
async fn idle_client_on_ptcp_answers_server_probes_for_30s() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path());
    // Our own probes off: only answering the server's echo keeps the connection.
    let mut cfg = config(vec![server.tcp()]);
    cfg.probe_interval = None;
    let client = Client::connect(cfg).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let s = client.state();
    assert!(s.connected);
    assert_eq!(s.connections, 1, "the connection was dropped and re-made");
    assert!(client.list_dbs().await.unwrap().contains(&NB.to_owned()));
}

#[tokio::test]
async fn hung_server_is_noticed_by_our_probes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path());
    let mut cfg = config(vec![server.unix()]);
    cfg.probe_interval = Some(Duration::from_millis(500));
    let client = Client::connect(cfg).await.unwrap();
    let pid = nix::unistd::Pid::from_raw(server.pid().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    // A write sent to the frozen server: when the connection is declared dead, its outcome
    // is unknown (the server may commit it when it wakes up).
    let write = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .transact(
                    NB,
                    &[Operation::insert(
                        "Address_Set",
                        row([("name", "frozen".into())]),
                    )],
                )
                .await
        })
    };
    let noticed = tokio::time::timeout(Duration::from_secs(10), async {
        while client.is_connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(noticed.is_ok(), "a stopped server was not detected");
    assert!(matches!(write.await.unwrap(), Err(Error::OutcomeUnknown)));
    client.wait_reconnected(1).await.unwrap();
    client.list_dbs().await.unwrap();
}

#[tokio::test]
async fn monitor_and_monitor_cond_flavours() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path());
    let client = connect(vec![server.unix()]).await;
    let mut v1 = client
        .monitor(MonitorSpec::new(NB, ["Address_Set"]).with_kind(MonitorKind::V1))
        .await
        .unwrap();
    let mut v2 = client
        .monitor(MonitorSpec::new(NB, ["Address_Set"]).with_kind(MonitorKind::V2))
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut v1).await,
        MonitorEvent::Reset(ovnkube_route::ovsdb::Update::V1(_))
    ));
    assert!(matches!(
        next_event(&mut v2).await,
        MonitorEvent::Reset(ovnkube_route::ovsdb::Update::V2(_))
    ));
    client
        .transact(
            NB,
            &[Operation::insert(
                "Address_Set",
                row([("name", "x".into())]),
            )],
        )
        .await
        .unwrap();
    match next_event(&mut v1).await {
        MonitorEvent::Update(ovnkube_route::ovsdb::Update::V1(u)) => {
            let r = u["Address_Set"].values().next().unwrap();
            assert!(r.old.is_none());
            assert_eq!(r.new.as_ref().unwrap()["name"], Value::from("x"));
        }
        other => panic!("{other:?}"),
    }
    match next_event(&mut v2).await {
        MonitorEvent::Update(ovnkube_route::ovsdb::Update::V2(u)) => {
            assert!(matches!(
                u["Address_Set"].values().next().unwrap(),
                ovnkube_route::ovsdb::RowUpdate2::Insert(_)
            ));
        }
        other => panic!("{other:?}"),
    }
    // Cancelling one monitor leaves the other running.
    drop(v1);
    client
        .transact(NB, &[Operation::delete("Address_Set", vec![])])
        .await
        .unwrap();
    assert!(matches!(next_event(&mut v2).await, MonitorEvent::Update(_)));
    // A monitor on an unknown table is refused with the server's error.
    let e = client
        .monitor(MonitorSpec::new(NB, ["No_Such_Table"]))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, Error::Rpc { .. }), "{e:?}");
}

#[tokio::test]
async fn replica_loads_large_snapshots_and_drops_rows_deleted_while_away() {
    common::tracing();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::standalone(dir.path());
    let writer = connect(vec![server.unix()]).await;
    // About 200 kB of snapshot: large enough to be streamed into the replica as text.
    let ops: Vec<Operation> = (0..1500)
        .map(|i| {
            Operation::insert(
                "Address_Set",
                row([
                    ("name", format!("as{i:04}").into()),
                    (
                        "addresses",
                        Value::set(
                            (0..4).map(|j| Atom::string(format!("10.{}.{}.{j}", i / 256, i % 256))),
                        ),
                    ),
                ]),
            )
        })
        .collect();
    writer.transact(NB, &ops).await.unwrap();

    let watcher = connect(vec![server.tcp()]).await;
    let schema =
        ovnkube_route::ovsdb::DatabaseSchema::from_json(&watcher.get_schema(NB).await.unwrap())
            .unwrap();
    let replica = std::sync::Arc::new(
        ovnkube_route::ovsdb::Replica::new(
            &schema,
            &[ovnkube_route::ovsdb::TableSpec::all("Address_Set")],
        )
        .unwrap(),
    );
    let feed = watcher.monitor_replica(NB, replica.clone()).await.unwrap();
    assert_eq!(replica.snapshot().len("Address_Set"), 1500);

    // Take the tcp remote away, delete a third, bring it back.
    server.remove_tcp_remote();
    wait_disconnected(&watcher).await;
    let dels: Vec<Operation> = (0..1500)
        .step_by(3)
        .map(|i| {
            Operation::delete(
                "Address_Set",
                vec![Condition::eq("name", format!("as{i:04}"))],
            )
        })
        .collect();
    writer.transact(NB, &dels).await.unwrap();
    let applied = feed.applied();
    server.add_tcp_remote();
    watcher.wait_reconnected(1).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), feed.wait_applied(applied))
        .await
        .expect("no resync applied")
        .unwrap();
    let snap = replica.snapshot();
    assert_eq!(snap.len("Address_Set"), 1000);
    let sel = writer
        .transact(NB, &[Operation::select("Address_Set", vec![])])
        .await
        .unwrap();
    for r in sel[0].rows() {
        let uuid = r["_uuid"].as_atom().and_then(|a| a.as_uuid()).unwrap();
        let got = snap
            .get("Address_Set", uuid)
            .expect("row missing from the replica");
        assert_eq!(got.get("name"), r.get("name").cloned());
        assert_eq!(
            got.get("addresses").map(Value::into_set),
            r.get("addresses").cloned().map(Value::into_set)
        );
    }
}
