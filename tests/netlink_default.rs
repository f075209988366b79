//! Root tests: `defaultRoute` replaces the pod's default route, records the original in
//! a state file and restores it, also across a controller restart.
mod netlink_support;

use std::collections::HashSet;
use std::path::Path;

use netlink_support::*;
use ovnkube_route::netlink::{PodRouteReconciler, ReconcilerConfig};
use ovnkube_route::plan::pod::PodRoutes;

fn reconciler(state: &Path) -> PodRouteReconciler {
    PodRouteReconciler::new(ReconcilerConfig {
        state_dir: state.to_path_buf(),
        threads: 1,
        ..Default::default()
    })
    .expect("reconciler")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn state_file(state: &Path, uid: &str) -> std::path::PathBuf {
    state.join(format!("{uid}.json"))
}

#[tokio::test]
async fn default_route_replaced_and_restored_across_restart() {
    let mut net = TestNet::new("defrst");
    let pod = net.add_pods(1, true).remove(0);
    let (k, gw) = (pod.k(), pod.eth1_gw());
    let ns = pod.name.clone();
    // A second foreign default at another metric: recorded, removed, restored too.
    sh(&[
        "ip", "-n", &ns, "route", "add", "default", "via", &gw, "dev", "eth1", "metric", "200",
    ]);
    let original = sorted(
        base4(&pod)
            .into_iter()
            .chain([format!("default via 10.244.{k}.1 dev eth1 metric 200")])
            .collect(),
    );
    assert_eq!(table4(&ns), original);

    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let want = PodRoutes {
        routes: vec![route("10.96.0.0/12", "eth0", None)],
        default_routes: vec![default_route(false, "eth1", Some(&gw))],
    };
    let replaced = sorted(vec![
        format!("default via 10.244.{k}.1 dev eth1 proto 136"),
        format!("10.244.{k}.0/24 dev eth1 proto kernel scope link src 10.244.{k}.5"),
        "169.254.1.1 dev eth0 scope link".into(),
        // DevGateway on eth0 still finds 169.254.1.1: the recorded original default.
        "10.96.0.0/12 via 169.254.1.1 dev eth0 proto 136".into(),
    ]);
    {
        let rec = reconciler(&state);
        let r = rec
            .set_desired(pod.key.clone(), pod.path(), want.clone())
            .await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(table4(&ns), replaced);
        assert!(state_file(&state, &pod.key.uid).exists());
        // The reconciler is dropped here: a "restart".
    }
    let saved = std::fs::read(state_file(&state, &pod.key.uid)).unwrap();
    {
        let rec = reconciler(&state);
        // Same desired after restart: nothing changes, the record is not overwritten.
        let r = rec
            .set_desired(pod.key.clone(), pod.path(), want.clone())
            .await;
        assert_eq!((r.changes(), r.failed), (0, 0), "{r:?}");
        assert_eq!(
            std::fs::read(state_file(&state, &pod.key.uid)).unwrap(),
            saved
        );
    }
    {
        let rec = reconciler(&state);
        // The rule no longer asks for a default route: originals come back.
        let want = routes(vec![route("10.96.0.0/12", "eth0", None)]);
        let r = rec.set_desired(pod.key.clone(), pod.path(), want).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((r.restored, r.deleted), (2, 1));
        assert_eq!(
            table4(&ns),
            sorted(
                original
                    .iter()
                    .cloned()
                    .chain(["10.96.0.0/12 via 169.254.1.1 dev eth0 proto 136".to_string()])
                    .collect()
            )
        );
        assert!(!state_file(&state, &pod.key.uid).exists());
        let r = rec.remove(&pod.key).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(table4(&ns), original);
    }
}

#[tokio::test]
async fn ipv6_default_route_and_remove_restores() {
    let mut net = TestNet::new("def6");
    let pod = net.add_pods(1, true).remove(0);
    let (k, gw6) = (pod.k(), pod.eth1_gw6());
    let ns = pod.name.clone();
    sh(&[
        "ip", "-n", &ns, "-6", "route", "add", "default", "via", &gw6, "dev", "eth1",
    ]);
    let base6 = sorted(vec![
        format!("fd00:10:244:{k}::/64 dev eth1 proto kernel metric 256 pref medium"),
        format!("default via fd00:10:244:{k}::1 dev eth1 metric 1024 pref medium"),
    ]);
    assert_eq!(table6(&ns), base6);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let rec = reconciler(&state);
    let want = PodRoutes {
        routes: vec![],
        default_routes: vec![
            default_route(true, "eth0", Some("fe80::1")),
            default_route(false, "eth1", None),
        ],
    };
    let r = rec.set_desired(pod.key.clone(), pod.path(), want).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        table6(&ns),
        sorted(vec![
            format!("fd00:10:244:{k}::/64 dev eth1 proto kernel metric 256 pref medium"),
            "default via fe80::1 dev eth0 proto 136 metric 1024 pref medium".into(),
        ])
    );
    // IPv4 default on eth1 with no known eth1 gateway: a link route.
    assert!(table4(&ns).contains(&"default dev eth1 proto 136 scope link".to_string()));
    let r = rec.remove(&pod.key).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.restored, 2);
    assert_eq!(table6(&ns), base6);
    assert_eq!(table4(&ns), base4(&pod));
    assert!(!state_file(&state, &pod.key.uid).exists());
}

#[tokio::test]
async fn vanished_pods_state_is_pruned() {
    let mut net = TestNet::new("prune");
    let pods = net.add_pods(2, true);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    {
        let rec = reconciler(&state);
        for p in &pods {
            let want = PodRoutes {
                routes: vec![],
                default_routes: vec![default_route(false, "eth1", Some(&p.eth1_gw()))],
            };
            assert!(rec.set_desired(p.key.clone(), p.path(), want).await.is_ok());
            assert!(state_file(&state, &p.key.uid).exists());
        }
    }
    // While the controller was down: pod 0 vanished, pod 1 is no longer on this node's
    // list but its netns still exists.
    net.delete_pod_ns(&pods[0].name);
    let rec = reconciler(&state);
    let cleaned = rec.prune_state(&HashSet::new()).await.unwrap();
    assert_eq!(cleaned, 2);
    assert!(!state_file(&state, &pods[0].key.uid).exists());
    assert!(!state_file(&state, &pods[1].key.uid).exists());
    assert_eq!(table4(&pods[1].name), base4(&pods[1]));
}

#[tokio::test]
async fn live_pods_state_is_kept_by_prune() {
    let mut net = TestNet::new("keep");
    let pod = net.add_pods(1, true).remove(0);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let rec = reconciler(&state);
    let want = PodRoutes {
        routes: vec![],
        default_routes: vec![default_route(false, "eth1", Some(&pod.eth1_gw()))],
    };
    assert!(
        rec.set_desired(pod.key.clone(), pod.path(), want)
            .await
            .is_ok()
    );
    let live: HashSet<String> = [pod.key.uid.clone()].into();
    assert_eq!(rec.prune_state(&live).await.unwrap(), 0);
    assert!(state_file(&state, &pod.key.uid).exists());
}
