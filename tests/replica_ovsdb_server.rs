//! The replica against a real ovsdb-server with the real NB schema: rows written with
//! `ovn-nbctl` reach three replicas through `monitor` (update), `monitor_cond` (update2) and
//! `monitor_cond_since` (update3) notifications, applied incrementally; afterwards each
//! replica must equal both a fresh monitor snapshot and `ovsdb-client dump`, and typed rows
//! must read what `ovn-nbctl` wrote.
//!
//! The tests speak the wire protocol directly (see `support`) so they check only the
//! replica; they panic when ovsdb-server or ovn-nbctl is missing.

// Test helpers may unwrap, like the tests themselves (see clippy.toml).
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::json;

use ovnkube_route::nb::model::{
    Acl, AddressSet, Bfd, LoadBalancer, LogicalRouter, LogicalRouterPolicy, LogicalRouterPort,
    LogicalRouterStaticRoute, LogicalSwitch, LogicalSwitchPort, NbGlobal, PortGroup,
};
use ovnkube_route::ovsdb::{ChangeKind, Replica, ReplicaEvent, Snapshot, TypedRow, Value};
use support::*;

#[test]
fn replicas_follow_a_real_server_exactly() {
    let server = Server::start();
    let schema = schema();
    let mut monitors = Vec::new();
    for method in ["monitor", "monitor_cond", "monitor_cond_since"] {
        let replica = Replica::new(&schema, &specs(&schema)).unwrap();
        let (mon, result) = Monitor::open(&server, method, replica.monitor_requests());
        replica.reset(&snapshot_update(method, &result)).unwrap();
        monitors.push((mon, replica));
    }
    // Every write below is one transaction, so one notification per monitor.
    let writes: Vec<Vec<&str>> = vec![
        vec!["lr-add", "r1"],
        vec![
            "lrp-add",
            "r1",
            "rtoj",
            "00:00:00:00:00:01",
            "100.64.0.1/16",
        ],
        vec![
            "lr-policy-add",
            "r1",
            "1005",
            "ip4.src == 10.244.1.5",
            "reroute",
            "100.64.0.2,100.64.0.3",
        ],
        vec![
            "lr-policy-add",
            "r1",
            "1004",
            "ip4.src == 10.244.1.6",
            "allow",
        ],
        vec!["lr-route-add", "r1", "10.96.0.0/16", "100.64.0.2"],
        vec![
            "create",
            "Address_Set",
            "name=as1",
            "addresses=\"10.0.0.1\",\"10.0.0.2\"",
            "external_ids:k8s.ovn.org/id=as-one",
        ],
        vec!["add", "Address_Set", "as1", "addresses", "10.0.0.3"],
        vec!["remove", "Address_Set", "as1", "addresses", "10.0.0.1"],
        vec!["set", "Address_Set", "as1", "external_ids:owner=route-a"],
        vec![
            "set",
            "Address_Set",
            "as1",
            "external_ids:k8s.ovn.org/id=as-uno",
        ],
        vec!["remove", "Address_Set", "as1", "external_ids", "owner"],
        vec!["ls-add", "s1"],
        vec!["lsp-add", "s1", "p1"],
        vec!["pg-add", "pg1", "p1"],
        vec![
            "acl-add",
            "pg1",
            "to-lport",
            "1001",
            "outport == @pg1 && ip4",
            "allow-related",
        ],
        vec!["set", "Logical_Router", "r1", "enabled=false"],
        vec![
            "set",
            "Logical_Router",
            "r1",
            "enabled=true",
            "options:chassis=gw1",
        ],
        vec!["lr-policy-del", "r1", "1004", "ip4.src == 10.244.1.6"],
        vec![
            "lb-add",
            "lb1",
            "10.96.0.10:80",
            "10.244.1.5:8080,10.244.1.6:8080",
            "tcp",
        ],
        vec!["lr-lb-add", "r1", "lb1"],
        vec!["lsp-del", "p1"],
        vec!["destroy", "Address_Set", "as1"],
        vec![
            "create",
            "Address_Set",
            "name=as2",
            "external_ids:k8s.ovn.org/id=as-two",
        ],
    ];
    for w in &writes {
        server.nbctl(w);
        for (mon, replica) in &mut monitors {
            let u = mon.update();
            replica
                .apply(&u)
                .unwrap_or_else(|e| panic!("{} after {w:?}: {e}\n{u:?}", mon.method));
        }
    }

    // Compare each replica with a fresh snapshot and with ovsdb-client dump.
    let fresh = Replica::new(&schema, &specs(&schema)).unwrap();
    let (_m, result) = Monitor::open(&server, "monitor_cond", fresh.monitor_requests());
    fresh
        .reset(&snapshot_update("monitor_cond", &result))
        .unwrap();
    let want = content(&fresh.snapshot());
    let dump = canonical_dump(&server, &schema);
    assert_eq!(
        want, dump,
        "a fresh snapshot differs from ovsdb-client dump"
    );
    for (mon, replica) in &monitors {
        assert_eq!(
            content(&replica.snapshot()),
            want,
            "{} replica drifted",
            mon.method
        );
    }

    // Typed rows and indexes over the followed content.
    let snap = monitors[2].1.snapshot();
    // Logical_Router has no name index: the lookup scans.
    let by_name = snap
        .find_by_index("Logical_Router", "name", &"r1".into())
        .unwrap();
    let routers: Vec<LogicalRouter> = snap.iter_typed().collect::<Result<_, _>>().unwrap();
    assert_eq!(routers.len(), 1);
    let r1 = &routers[0];
    assert_eq!((r1.name.as_str(), r1.uuid), ("r1", by_name.uuid()));
    assert_eq!(r1.enabled, Some(true));
    assert_eq!(r1.options.get("chassis").map(String::as_str), Some("gw1"));
    assert_eq!(
        (
            r1.policies.len(),
            r1.static_routes.len(),
            r1.load_balancer.len()
        ),
        (1, 1, 1)
    );
    let policy_uuid = *r1.policies.iter().next().unwrap();
    let p: LogicalRouterPolicy = snap.get_typed(policy_uuid).unwrap().unwrap();
    assert_eq!((p.priority, p.action.as_str()), (1005, "reroute"));
    assert_eq!(p.r#match, "ip4.src == 10.244.1.5");
    assert_eq!(
        p.nexthops.iter().map(String::as_str).collect::<Vec<_>>(),
        ["100.64.0.2", "100.64.0.3"]
    );
    assert_eq!(
        snap.len("Logical_Router_Policy"),
        1,
        "the deleted policy is gone"
    );
    let as2 = snap
        .find_by_index("Address_Set", "name", &"as2".into())
        .unwrap();
    assert_eq!(AddressSet::from_replica(&as2).unwrap().name, "as2");
    assert!(
        snap.find_by_index("Address_Set", "name", &"as1".into())
            .is_none()
    );
    assert!(
        snap.find_by_external_id("Address_Set", ID_KEY, "as-uno")
            .is_empty()
    );
    assert_eq!(
        snap.find_by_external_id("Address_Set", ID_KEY, "as-two")[0].uuid(),
        as2.uuid()
    );
    let lsp = snap.find_by_index("Logical_Switch_Port", "name", &"p1".into());
    assert!(lsp.is_none(), "deleted port still indexed");
    // Every row of the tables the project uses reads as a typed row.
    fn typed<T: TypedRow>(snap: &Snapshot) -> usize {
        let rows: Result<Vec<T>, _> = snap.iter_typed().collect();
        let rows = rows.unwrap_or_else(|e| panic!("{}: {e}", T::TABLE));
        assert_eq!(rows.len(), snap.len(T::TABLE));
        rows.len()
    }
    let counts = [
        typed::<NbGlobal>(&snap),
        typed::<LogicalRouter>(&snap),
        typed::<LogicalRouterPort>(&snap),
        typed::<LogicalRouterPolicy>(&snap),
        typed::<LogicalRouterStaticRoute>(&snap),
        typed::<Bfd>(&snap),
        typed::<Acl>(&snap),
        typed::<AddressSet>(&snap),
        typed::<PortGroup>(&snap),
        typed::<LogicalSwitch>(&snap),
        typed::<LogicalSwitchPort>(&snap),
        typed::<LoadBalancer>(&snap),
    ];
    // ovn-nbctl creates the NB_Global row on first use.
    assert_eq!(counts, [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1]);
    let lb: Vec<LoadBalancer> = snap.iter_typed().collect::<Result<_, _>>().unwrap();
    assert_eq!(lb[0].protocol.as_deref(), Some("tcp"));
    assert_eq!(
        lb[0].vips.get("10.96.0.10:80").map(String::as_str),
        Some("10.244.1.5:8080,10.244.1.6:8080")
    );
    assert_eq!(snap.len("ACL"), 1);
    assert_eq!(
        snap.iter("ACL").next().unwrap().get("action"),
        Some(Value::from("allow-related"))
    );
}

/// After a disconnect, a standalone server answers `monitor_cond_since` with `found = false`
/// and a full snapshot: the replica's reset must drop the rows deleted meanwhile and report
/// exactly what changed.
#[test]
fn resync_after_reconnect_drops_rows_deleted_meanwhile() {
    let server = Server::start();
    let schema = schema();
    server.nbctl(&["lr-add", "gone"]);
    server.nbctl(&["lr-policy-add", "gone", "100", "ip4", "drop"]);
    server.nbctl(&["lr-add", "kept"]);
    let replica = Replica::new(&schema, &specs(&schema)).unwrap();
    {
        let (_mon, result) =
            Monitor::open(&server, "monitor_cond_since", replica.monitor_requests());
        replica
            .reset(&snapshot_update("monitor_cond_since", &result))
            .unwrap();
    } // connection closed
    let before = replica.snapshot();
    assert_eq!(before.len("Logical_Router"), 2);
    assert_eq!(before.len("Logical_Router_Policy"), 1);
    let gone = before
        .find_by_index("Logical_Router", "name", &"gone".into())
        .unwrap()
        .uuid();
    let kept = before
        .find_by_index("Logical_Router", "name", &"kept".into())
        .unwrap()
        .uuid();

    // While disconnected: delete a router (its policy is garbage-collected), change another.
    server.nbctl(&["lr-del", "gone"]);
    server.nbctl(&[
        "set",
        "Logical_Router",
        "kept",
        "external_ids:k8s.ovn.org/id=k",
    ]);
    server.nbctl(&["create", "Address_Set", "name=new"]);

    let mut sub = replica.subscribe();
    let (_mon, result) = Monitor::open(&server, "monitor_cond_since", replica.monitor_requests());
    let cs = replica
        .reset_owned(snapshot_update("monitor_cond_since", &result))
        .unwrap();
    let mut got: Vec<(&str, String)> = cs
        .changes
        .iter()
        .map(|c| (c.table.as_str(), format!("{:?}", c.kind)))
        .collect();
    got.sort();
    let want = [
        ("Address_Set", "Inserted"),
        ("Logical_Router", "Deleted"),
        ("Logical_Router", "Modified"),
        ("Logical_Router_Policy", "Deleted"),
    ];
    assert_eq!(got, want.map(|(t, k)| (t, k.to_owned())));
    let deleted = cs
        .table("Logical_Router")
        .find(|c| c.kind == ChangeKind::Deleted)
        .unwrap();
    assert_eq!(deleted.uuid, gone);
    let now = replica.snapshot();
    assert!(now.get("Logical_Router", gone).is_none());
    assert_eq!(now.len("Logical_Router_Policy"), 0);
    let kept_row = now.get("Logical_Router", kept).unwrap();
    assert_eq!(kept_row.external_id(ID_KEY), Some("k"));
    assert_eq!(
        now.find_by_external_id("Logical_Router", ID_KEY, "k")[0].uuid(),
        kept
    );
    // The old snapshot still shows the old world.
    assert!(before.get("Logical_Router", gone).is_some());
    // The subscriber saw the reset as one change set.
    match sub.try_recv() {
        Some(ReplicaEvent::Changes(c)) => assert!(c.reset && c.changes.len() == 4),
        other => panic!("expected the reset's change set, got {other:?}"),
    }
    assert_eq!(content(&now), content(&fresh_snapshot(&server, &schema)));
}

/// Large reference sets on real data: one transaction adds 1,000 policies to a router (a
/// 1,000-element set diff), another removes every other one; the replica must match a
/// fresh snapshot and ovsdb-client dump after each.
#[test]
fn large_reference_set_diffs_from_a_real_server() {
    let server = Server::start();
    let schema = schema();
    server.nbctl(&["lr-add", "big"]);
    let replica = Replica::new(&schema, &specs(&schema)).unwrap();
    let (mut mon, result) = Monitor::open(&server, "monitor_cond", replica.monitor_requests());
    replica
        .reset(&snapshot_update("monitor_cond", &result))
        .unwrap();

    let check = |replica: &Replica, what: &str| {
        let want = content(&fresh_snapshot(&server, &schema));
        assert_eq!(
            content(&replica.snapshot()),
            want,
            "replica differs after {what}"
        );
        let dump = canonical_dump(&server, &schema);
        assert_eq!(
            want, dump,
            "fresh snapshot differs from ovsdb-client dump after {what}"
        );
    };

    let mut add: Vec<String> = Vec::new();
    for i in 0..1000 {
        if i > 0 {
            add.push("--".into());
        }
        let m = format!("ip4.src == 10.{}.{}.1", i / 250, i % 250);
        add.extend(["lr-policy-add", "big", "1000", &m, "allow"].map(String::from));
    }
    let args: Vec<&str> = add.iter().map(String::as_str).collect();
    server.nbctl(&args);
    let cs = replica.apply_owned(mon.update()).unwrap();
    assert_eq!(cs.table("Logical_Router_Policy").count(), 1000);
    check(&replica, "adding 1,000 policies");
    let router = replica
        .snapshot()
        .find_by_index("Logical_Router", "name", &"big".into())
        .unwrap();
    assert_eq!(router.column("policies").unwrap().set_iter().count(), 1000);

    let mut del: Vec<String> = Vec::new();
    for i in (0..1000).step_by(2) {
        if i > 0 {
            del.push("--".into());
        }
        let m = format!("ip4.src == 10.{}.{}.1", i / 250, i % 250);
        del.extend(["lr-policy-del", "big", "1000", &m].map(String::from));
    }
    let args: Vec<&str> = del.iter().map(String::as_str).collect();
    server.nbctl(&args);
    let cs = replica.apply_owned(mon.update()).unwrap();
    let deleted = cs
        .table("Logical_Router_Policy")
        .filter(|c| c.kind == ChangeKind::Deleted)
        .count();
    assert_eq!(deleted, 500);
    check(&replica, "deleting 500 policies");
}

/// The initial snapshot streamed from the socket into the replica (no JSON tree) equals the
/// one parsed into an `Update` first.
#[test]
fn snapshot_streams_from_the_socket_into_the_replica() {
    use serde::Deserializer as _;
    let server = Server::start();
    let schema = schema();
    server.nbctl(&["lr-add", "r1"]);
    server.nbctl(&[
        "lr-policy-add",
        "r1",
        "10",
        "ip4.src == 10.0.0.1",
        "reroute",
        "1.1.1.1,2.2.2.2",
    ]);
    server.nbctl(&[
        "create",
        "Address_Set",
        "name=as1",
        "addresses=\"10.0.0.1\"",
        "external_ids:k8s.ovn.org/id=a",
    ]);
    server.nbctl(&["ls-add", "s1", "--", "lsp-add", "s1", "p1"]);

    let replica = Replica::new(&schema, &specs(&schema)).unwrap();
    let mut stream = UnixStream::connect(server.sock()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let req = json!({"id": 1, "method": "monitor_cond",
        "params": ["OVN_Northbound", null, replica.monitor_requests()]});
    stream.write_all(req.to_string().as_bytes()).unwrap();
    let mut builder = replica.begin_reset();
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(stream));
    de.deserialize_map(ReplyIntoReset(&mut builder)).unwrap();
    assert!(builder.take_error().is_none());
    let cs = builder.finish();
    assert!(cs.reset);
    assert_eq!(
        cs.changes.len(),
        replica
            .snapshot()
            .tables()
            .map(|t| replica.snapshot().len(t))
            .sum::<usize>()
    );
    assert_eq!(
        content(&replica.snapshot()),
        content(&fresh_snapshot(&server, &schema))
    );
    let a = replica
        .snapshot()
        .find_by_external_id("Address_Set", ID_KEY, "a");
    assert_eq!(a[0].get("name"), Some(Value::from("as1")));
}
