//! Subscribers and concurrent readers: change sets arrive in order, a slow subscriber is
//! told to resync instead of missing changes, and readers never see half an update.
use serde_json::json;

use super::tests::{schema, seeded, u, us, v2};
use super::*;

#[tokio::test]
async fn subscribers_get_change_sets_in_order() {
    let r = seeded();
    let mut sub = r.subscribe();
    for prio in [1, 2, 3] {
        r.apply(&v2(
            json!({"Logical_Router_Policy": {us(3): {"modify": {"priority": prio}}}}),
        ))
        .unwrap();
    }
    for prio in [1, 2, 3] {
        match sub.recv().await.unwrap() {
            ReplicaEvent::Changes(cs) => {
                let new = cs.changes[0].new.as_ref().unwrap();
                assert_eq!(new.get("priority"), Some(Value::from(prio)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(sub.try_recv().is_none());
}

#[tokio::test]
async fn slow_subscribers_get_a_resync_not_silence() {
    let r = Replica::with_capacity(&schema(), &[TableSpec::all("Address_Set")], 2).unwrap();
    r.reset(&v2(
        json!({"Address_Set": {us(1): {"initial": {"name": "a"}}}}),
    ))
    .unwrap();
    let mut sub = r.subscribe();
    for i in 0..5 {
        r.apply(&v2(
            json!({"Address_Set": {us(1): {"modify": {"name": format!("n{i}")}}}}),
        ))
        .unwrap();
    }
    match sub.recv().await.unwrap() {
        ReplicaEvent::Resync { missed, snapshot } => {
            assert_eq!(missed, 3);
            let row = snapshot.get("Address_Set", u(1)).unwrap();
            assert_eq!(row.get("name"), Some(Value::from("n4")));
        }
        other => panic!("expected a resync, got {other:?}"),
    }
    // The stream continues with what is still buffered.
    assert!(matches!(sub.recv().await, Some(ReplicaEvent::Changes(_))));
    drop(r);
    assert!(matches!(sub.recv().await, Some(ReplicaEvent::Changes(_))));
    assert!(sub.recv().await.is_none());
}

#[test]
fn concurrent_readers_see_whole_updates() {
    // Each update moves one element between two address sets; a reader must always see
    // the total unchanged.
    let r = std::sync::Arc::new(Replica::new(&schema(), &[TableSpec::all("Address_Set")]).unwrap());
    let all: Vec<String> = (0..50).map(|i| format!("10.0.0.{i}")).collect();
    r.reset(&v2(json!({"Address_Set": {
        us(1): {"initial": {"name": "a", "addresses": ["set", all]}},
        us(2): {"initial": {"name": "b"}}}})))
        .unwrap();
    let reader = {
        let r = std::sync::Arc::clone(&r);
        std::thread::spawn(move || {
            let mut seen = 0;
            while seen < 2000 {
                let s = r.snapshot();
                let n: usize = [u(1), u(2)]
                    .iter()
                    .map(|id| {
                        s.get("Address_Set", *id)
                            .unwrap()
                            .get("addresses")
                            .unwrap()
                            .set_iter()
                            .count()
                    })
                    .sum();
                assert_eq!(
                    n,
                    50,
                    "half an update seen at generation {}",
                    s.generation()
                );
                seen += 1;
            }
        })
    };
    for i in 0..400 {
        let a = format!("10.0.0.{}", i % 50);
        // Odd rounds move back.
        r.apply(&v2(json!({"Address_Set": {
            us(1): {"modify": {"addresses": a.clone()}},
            us(2): {"modify": {"addresses": a}}}})))
            .unwrap();
    }
    reader.join().unwrap();
}

#[test]
fn replica_types_cross_threads() {
    // The monitor loop, the reconcilers and the subscribers run on different tasks.
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Replica>();
    send_sync::<Snapshot>();
    send_sync::<ReplicaRow>();
    send_sync::<ChangeSet>();
    send::<Subscription>();
    send::<ReplicaEvent>();
}
