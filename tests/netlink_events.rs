//! Root tests of the event path, with the safety-net re-check turned off so that nothing
//! but events can repair: a route deleted by hand and a link flap (the kernel flushes IPv4
//! routes without route notifications) come back from netlink notifications; a removed
//! netns is let go at once (our watch socket must not keep it alive); a pod whose netns
//! appears after its routes were planned gets them from the CNI cache file's event.
#![allow(clippy::unwrap_used)]

mod netlink_support;

use std::time::Duration;

use netlink_support::*;
use ovnkube_route::netlink::{DiscoveryConfig, PodRouteReconciler, ReconcilerConfig};
use ovnkube_route::plan::pod::PodRoutes;

/// A reconciler watching `cni` (and an empty netns dir: the pods' own /var/run/netns is
/// watched because the watched netns files live there), with no re-check.
fn watching(tmp: &tempfile::TempDir) -> PodRouteReconciler {
    let rec = PodRouteReconciler::new(ReconcilerConfig {
        state_dir: tmp.path().join("state"),
        threads: 1,
        recheck: Duration::ZERO,
        ..Default::default()
    })
    .unwrap();
    for d in ["cni", "netns"] {
        std::fs::create_dir_all(tmp.path().join(d)).unwrap();
    }
    rec.start_watching(DiscoveryConfig {
        cni_cache: tmp.path().join("cni"),
        netns_dir: tmp.path().join("netns"),
        proc_root: None,
    })
    .unwrap();
    rec
}

fn want(pod: &PodNs) -> PodRoutes {
    PodRoutes {
        routes: vec![
            route("10.96.0.0/12", "eth1", Some(&pod.eth1_gw())),
            route("172.16.0.0/16", "eth0", None),
            route("fd00:96::/64", "eth1", Some(&pod.eth1_gw6())),
        ],
        default_routes: vec![default_route(false, "eth1", Some(&pod.eth1_gw()))],
    }
}

#[tokio::test]
async fn deleted_and_flushed_routes_come_back_from_events() {
    let mut net = TestNet::new("events");
    let pod = net.add_pods(1, true).remove(0);
    let (k, ns) = (pod.k(), pod.name.clone());
    // Keep eth1's static IPv6 address across the flap (the kernel drops it by default,
    // and then no IPv6 gateway on eth1 would be reachable for anyone).
    sh(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.eth1.keep_addr_on_down=1",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let rec = watching(&tmp);
    let r = rec
        .set_desired(pod.key.clone(), pod.path(), want(&pod))
        .await;
    assert!(r.is_ok(), "{r:?}");
    let programmed4 = table4(&ns);
    let programmed6 = table6(&ns);
    assert!(programmed4.contains(&format!("10.96.0.0/12 via 10.244.{k}.1 dev eth1 proto 136")));
    assert_eq!(rec.stats().watched_pods, 1);
    let before = rec.stats();

    // 1. A route deleted by hand.
    sh(&["ip", "-n", &ns, "route", "del", "10.96.0.0/12"]);
    assert_ne!(table4(&ns), programmed4);
    assert!(
        eventually(10, || table4(&ns) == programmed4).await,
        "route not restored from the event: {:?}",
        table4(&ns)
    );

    // 2. eth1 down and up: the kernel flushes every route on it (ours, our default
    //    route, the IPv6 one) and only re-adds its connected routes; for IPv4 it sends no
    //    route notification, only the link events.
    sh(&["ip", "-n", &ns, "link", "set", "eth1", "down"]);
    sh(&["ip", "-n", &ns, "link", "set", "eth1", "up"]);
    assert!(
        eventually(10, || table4(&ns) == programmed4
            && table6(&ns) == programmed6)
        .await,
        "routes not restored after a link flap: {:?} {:?}",
        table4(&ns),
        table6(&ns)
    );
    let after = rec.stats();
    assert_eq!(after.passes_recheck, 0, "the re-check is off");
    assert!(after.netlink_events > before.netlink_events, "{after:?}");
    assert!(after.passes_event >= 2, "{after:?}");
}

#[tokio::test]
async fn our_own_writes_are_not_events() {
    let mut net = TestNet::new("evown");
    let pod = net.add_pods(1, true).remove(0);
    let tmp = tempfile::tempdir().unwrap();
    let rec = watching(&tmp);
    let r = rec
        .set_desired(pod.key.clone(), pod.path(), want(&pod))
        .await;
    assert!(r.is_ok(), "{r:?}");
    // Let the pod settle (IPv6 duplicate address detection on new links sends address
    // events; those are real changes, not ours).
    settle(&pod.name).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rec.stats();
    // A plan change: one route added, one deleted, the default replaced back and forth.
    let mut next = want(&pod);
    next.routes.remove(1);
    next.routes
        .push(route("172.17.0.0/16", "eth1", Some(&pod.eth1_gw())));
    next.default_routes.clear();
    let r = rec.set_desired(pod.key.clone(), pod.path(), next).await;
    assert!(r.is_ok() && r.changes() >= 3, "{r:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rec.stats();
    assert_eq!(after.passes_event, before.passes_event, "{after:?}");
    assert_eq!(after.netlink_events, before.netlink_events, "{after:?}");
}

#[tokio::test]
async fn a_removed_netns_is_let_go() {
    let mut net = TestNet::new("evgone");
    let pod = net.add_pods(1, true).remove(0);
    let tmp = tempfile::tempdir().unwrap();
    let rec = watching(&tmp);
    let r = rec
        .set_desired(pod.key.clone(), pod.path(), want(&pod))
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(rec.stats().watched_pods, 1);
    let peers = [format!("a{}", pod.index), format!("b{}", pod.index)];
    assert!(peers.iter().all(|p| links(&net.node).contains(p)));

    // The runtime deletes the sandbox: only our watch socket could keep the namespace
    // (and its veth pairs) alive. Once let go, the kernel destroys it and the peers vanish.
    net.delete_pod_ns(&pod.name);
    assert!(
        eventually(10, || {
            let l = links(&net.node);
            peers.iter().all(|p| !l.contains(p))
        })
        .await,
        "the pod's netns is still alive: {:?}",
        links(&net.node)
    );
    assert!(
        eventually(5, || rec.stats().watched_pods == 0).await,
        "{:?}",
        rec.stats()
    );
    let s = rec.stats();
    assert_eq!(
        s.pod_failures, 0,
        "a pod going away is not a failure: {s:?}"
    );
    assert_eq!(s.pending_pods, 1, "it waits for a new netns: {s:?}");
}

#[tokio::test]
async fn a_pod_gets_its_routes_when_its_netns_appears() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = watching(&tmp);
    let mut net = TestNet::new("evnew");
    // The plan knows the pod before its sandbox exists (the scheduler ran, CNI has not).
    let key = ovnkube_route::plan::pod::PodKey {
        namespace: "default".into(),
        name: "pod-0".into(),
        uid: format!(
            "00000000-0000-4000-8000-{:012}",
            std::process::id() as usize * 1000
        ),
    };
    let gw = "10.244.1.1";
    let desired = PodRoutes {
        routes: vec![route("10.96.0.0/12", "eth1", Some(gw))],
        default_routes: vec![],
    };
    let s = rec.sync(vec![(key.clone(), desired.into())]).await;
    assert_eq!(s.pending, vec![key.clone()]);
    assert_eq!(rec.stats().pending_pods, 1);

    // CNI ADD: the netns and its interfaces, then the cache file. No call from us.
    let pod = net.add_pods(1, true).remove(0);
    assert_eq!(pod.key, key);
    write_cni_cache(&tmp.path().join("cni"), &pod);
    let line = "10.96.0.0/12 via 10.244.1.1 dev eth1 proto 136".to_string();
    assert!(
        eventually(10, || table4(&pod.name).contains(&line)).await,
        "routes did not follow the netns: {:?}",
        table4(&pod.name)
    );
    let st = rec.stats();
    assert_eq!(st.passes_appeared, 1, "{st:?}");
    assert_eq!((st.pending_pods, st.watched_pods), (0, 1), "{st:?}");
}
