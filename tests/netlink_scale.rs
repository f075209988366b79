//! Root test: 200 pods programmed at once, one netns deleted while programming runs.
mod netlink_support;

use netlink_support::*;
use ovnkube_route::netlink::{NetlinkError, PodRouteReconciler, ReconcilerConfig};
use ovnkube_route::plan::pod::PodRoutes;

const PODS: usize = 200;

fn want(p: &PodNs) -> PodRoutes {
    PodRoutes {
        routes: vec![
            route("10.96.0.0/12", "eth1", Some(&p.eth1_gw())),
            route("172.16.0.0/16", "eth0", None),
            route("192.168.0.0/16", "eth1", Some(&p.eth1_gw())),
            route("fd00:96::/64", "eth1", Some(&p.eth1_gw6())),
            route(&format!("10.200.{}.0/24", p.index % 250), "eth1", None),
        ],
        default_routes: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_pods_at_once_with_one_netns_vanishing() {
    let mut net = TestNet::new("scale");
    let pods = net.add_pods(PODS, true);
    let tmp = tempfile::tempdir().unwrap();
    let rec = PodRouteReconciler::new(ReconcilerConfig {
        state_dir: tmp.path().join("state"),
        ..Default::default()
    })
    .unwrap();
    let victim = pods[PODS / 2].clone();
    let batch: Vec<_> = pods
        .iter()
        .map(|p| (p.key.clone(), p.path(), want(p)))
        .collect();
    let rec2 = rec.clone();
    let run = tokio::spawn(async move { rec2.set_desired_many(batch).await });
    // Delete one pod's netns while the batch is in flight.
    let victim_name = victim.name.clone();
    let deleter = std::thread::spawn(move || sh(&["ip", "netns", "del", &victim_name]));
    let out = run.await.unwrap();
    deleter.join().unwrap();
    net.delete_pod_ns_forget(&victim.name);

    assert_eq!(out.len(), PODS);
    for (key, r) in &out {
        if *key == victim.key {
            // Either programmed before it vanished, or reported gone: never anything else.
            assert!(
                r.is_ok() || matches!(r.fatal, Some(NetlinkError::NetnsGone(_))),
                "{r:?}"
            );
            continue;
        }
        assert!(r.is_ok(), "{key}: {r:?}");
        assert_eq!(r.added, 5, "{key}: {r:?}");
    }
    for p in pods.iter().filter(|p| p.key != victim.key) {
        let ours = sh(&["ip", "-n", &p.name, "route", "show", "proto", "136"]);
        let ours6 = sh(&["ip", "-n", &p.name, "-6", "route", "show", "proto", "136"]);
        assert_eq!(
            ours.lines().count() + ours6.lines().count(),
            5,
            "{}",
            p.name
        );
    }

    // A second pass over all pods finds nothing to do.
    let again = rec.resync_all().await;
    let unexpected: Vec<_> = again.iter().filter(|(k, _)| *k != victim.key).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
}
