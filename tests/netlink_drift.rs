//! Root tests: routes removed by someone else, or flushed by a link going down and up,
//! come back within 10 s through the reconciler's periodic resync (default period).
mod netlink_support;

use netlink_support::*;
use ovnkube_route::netlink::{DEFAULT_RESYNC, PodRouteReconciler, ReconcilerConfig};
use ovnkube_route::plan::pod::PodRoutes;

#[tokio::test]
async fn deleted_and_flushed_routes_come_back_within_the_bound() {
    assert!(DEFAULT_RESYNC.as_secs() < 10);
    let mut net = TestNet::new("drift");
    let pod = net.add_pods(1, true).remove(0);
    let (k, gw) = (pod.k(), pod.eth1_gw());
    let ns = pod.name.clone();
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
    let rec = PodRouteReconciler::new(ReconcilerConfig {
        state_dir: tmp.path().join("state"),
        threads: 1,
        ..Default::default()
    })
    .unwrap();
    let want = PodRoutes {
        routes: vec![
            route("10.96.0.0/12", "eth1", Some(&gw)),
            route("172.16.0.0/16", "eth0", None),
            route("fd00:96::/64", "eth1", Some(&pod.eth1_gw6())),
        ],
        default_routes: vec![default_route(false, "eth1", Some(&gw))],
    };
    let r = rec.set_desired(pod.key.clone(), pod.path(), want).await;
    assert!(r.is_ok(), "{r:?}");
    let programmed4 = table4(&ns);
    let programmed6 = table6(&ns);
    assert!(programmed4.contains(&format!("10.96.0.0/12 via 10.244.{k}.1 dev eth1 proto 136")));
    let resync = rec.spawn_resync();

    // 1. A route deleted by hand.
    sh(&["ip", "-n", &ns, "route", "del", "10.96.0.0/12"]);
    assert_ne!(table4(&ns), programmed4);
    assert!(
        eventually(10, || table4(&ns) == programmed4).await,
        "route not restored within 10 s: {:?}",
        table4(&ns)
    );

    // 2. eth1 down and up: the kernel flushes every route on it (ours, our default
    //    route, the IPv6 one) and only re-adds its connected routes.
    sh(&["ip", "-n", &ns, "link", "set", "eth1", "down"]);
    sh(&["ip", "-n", &ns, "link", "set", "eth1", "up"]);
    assert!(!table4(&ns).iter().any(|l| l.starts_with("10.96.0.0/12")));
    assert!(
        eventually(10, || table4(&ns) == programmed4
            && table6(&ns) == programmed6)
        .await,
        "routes not restored within 10 s after link flap: {:?} {:?}",
        table4(&ns),
        table6(&ns)
    );
    resync.abort();
}
