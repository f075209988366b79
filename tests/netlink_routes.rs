//! Root tests: routes programmed in real network namespaces, exact kernel tables.
mod netlink_support;

use netlink_support::*;
use ovnkube_route::netlink::{
    NetlinkError, PodRouteReconciler, ROUTE_PROTOCOL, ReconcilerConfig, RouteOp,
};
use ovnkube_route::plan::pod::PodRoutes;

fn reconciler(dir: &tempfile::TempDir) -> PodRouteReconciler {
    PodRouteReconciler::new(ReconcilerConfig {
        state_dir: dir.path().join("state"),
        threads: 2,
        ..Default::default()
    })
    .expect("reconciler")
}

fn with(base: &[String], extra: &[String]) -> Vec<String> {
    let mut v: Vec<String> = base.iter().chain(extra).cloned().collect();
    v.sort();
    v
}

#[tokio::test]
async fn add_change_delete_give_exact_tables() {
    let mut net = TestNet::new("addchg");
    let pod = net.add_pods(1, true).remove(0);
    let dir = tempfile::tempdir().unwrap();
    let rec = reconciler(&dir);
    let (k, gw) = (pod.k(), pod.eth1_gw());
    assert_eq!(ROUTE_PROTOCOL, 136);

    let want = routes(vec![
        route("10.96.0.0/12", "eth1", Some(&gw)),
        route("172.16.0.0/16", "eth0", None),
        route("192.168.50.0/24", "eth1", None),
    ]);
    let r = rec
        .set_desired(pod.key.clone(), pod.path(), want.clone())
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.added, r.replaced, r.deleted), (3, 0, 0));
    assert_eq!(
        table4(&pod.name),
        with(
            &base4(&pod),
            &[
                format!("10.96.0.0/12 via 10.244.{k}.1 dev eth1 proto 136"),
                // DevGateway on eth0: the gateway of the pod's own default route.
                "172.16.0.0/16 via 169.254.1.1 dev eth0 proto 136".into(),
                // DevGateway on eth1 with no gateway known: a link route.
                "192.168.50.0/24 dev eth1 proto 136 scope link".into(),
            ]
        )
    );

    // Same desired again: nothing written.
    let r = rec.set_desired(pod.key.clone(), pod.path(), want).await;
    assert_eq!((r.changes(), r.unchanged), (0, 3), "{r:?}");

    // Change one route's dev, drop one, add one.
    let want = routes(vec![
        route("10.96.0.0/12", "eth0", None),
        route("10.97.0.0/16", "eth1", Some(&gw)),
        route("172.16.0.0/16", "eth0", None),
    ]);
    let r = rec.set_desired(pod.key.clone(), pod.path(), want).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.added, r.replaced, r.deleted, r.unchanged), (1, 1, 1, 1));
    assert_eq!(
        table4(&pod.name),
        with(
            &base4(&pod),
            &[
                "10.96.0.0/12 via 169.254.1.1 dev eth0 proto 136".into(),
                format!("10.97.0.0/16 via 10.244.{k}.1 dev eth1 proto 136"),
                "172.16.0.0/16 via 169.254.1.1 dev eth0 proto 136".into(),
            ]
        )
    );

    // Remove the pod: exactly our routes go.
    let r = rec.remove(&pod.key).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.deleted, 3);
    assert_eq!(table4(&pod.name), base4(&pod));
}

#[tokio::test]
async fn dev_gateway_comes_from_the_pods_own_routes() {
    let mut net = TestNet::new("devgw");
    let pod = net.add_pods(1, true).remove(0);
    let (k, gw) = (pod.k(), pod.eth1_gw());
    // Like an OVN pod: the cluster subnet via the eth1 gateway.
    sh(&[
        "ip",
        "-n",
        &pod.name,
        "route",
        "add",
        "10.244.0.0/16",
        "via",
        &gw,
        "dev",
        "eth1",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let rec = reconciler(&dir);
    let r = rec
        .set_desired(
            pod.key.clone(),
            pod.path(),
            routes(vec![route("10.96.0.0/12", "eth1", None)]),
        )
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert!(
        table4(&pod.name).contains(&format!("10.96.0.0/12 via 10.244.{k}.1 dev eth1 proto 136")),
        "{:?}",
        table4(&pod.name)
    );
}

#[tokio::test]
async fn foreign_routes_are_untouched_and_conflicts_reported() {
    let mut net = TestNet::new("foreign");
    let pod = net.add_pods(1, true).remove(0);
    let (k, gw) = (pod.k(), pod.eth1_gw());
    let ns = pod.name.clone();
    // Same destination as ours at another metric: coexists.
    sh(&[
        "ip",
        "-n",
        &ns,
        "route",
        "add",
        "10.96.0.0/12",
        "via",
        &gw,
        "dev",
        "eth1",
        "metric",
        "100",
    ]);
    // Same destination and metric as one we want: a conflict, left alone.
    sh(&[
        "ip",
        "-n",
        &ns,
        "route",
        "add",
        "10.50.0.0/16",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
        "proto",
        "static",
    ]);
    // Unrelated foreign route.
    sh(&[
        "ip",
        "-n",
        &ns,
        "route",
        "add",
        "10.60.0.0/16",
        "dev",
        "eth1",
        "proto",
        "static",
    ]);
    let foreign = vec![
        format!("10.96.0.0/12 via 10.244.{k}.1 dev eth1 metric 100"),
        "10.50.0.0/16 via 169.254.1.1 dev eth0 proto static".to_string(),
        "10.60.0.0/16 dev eth1 proto static scope link".to_string(),
    ];
    let before = with(&base4(&pod), &foreign);
    assert_eq!(table4(&ns), before);

    let dir = tempfile::tempdir().unwrap();
    let rec = reconciler(&dir);
    let want = routes(vec![
        route("10.96.0.0/12", "eth1", Some(&gw)),
        route("10.50.0.0/16", "eth1", Some(&gw)),
    ]);
    let r = rec.set_desired(pod.key.clone(), pod.path(), want).await;
    assert_eq!((r.added, r.failed), (1, 1), "{r:?}");
    assert_eq!(r.errors[0].op, RouteOp::Conflict);
    assert_eq!(r.errors[0].dst, "10.50.0.0/16".parse().unwrap());
    assert!(matches!(
        r.errors[0].error,
        NetlinkError::Conflict {
            protocol: 4,
            metric: 0,
            ..
        }
    ));
    assert_eq!(
        table4(&ns),
        with(
            &before,
            &[format!("10.96.0.0/12 via 10.244.{k}.1 dev eth1 proto 136")]
        )
    );

    let r = rec
        .set_desired(pod.key.clone(), pod.path(), PodRoutes::default())
        .await;
    assert_eq!(r.deleted, 1, "{r:?}");
    assert_eq!(table4(&ns), before);
}

#[tokio::test]
async fn ipv6_routes() {
    let mut net = TestNet::new("ipv6");
    let pod = net.add_pods(1, true).remove(0);
    let (k, gw6) = (pod.k(), pod.eth1_gw6());
    let dir = tempfile::tempdir().unwrap();
    let rec = reconciler(&dir);
    let base6 = vec![format!(
        "fd00:10:244:{k}::/64 dev eth1 proto kernel metric 256 pref medium"
    )];
    assert_eq!(table6(&pod.name), base6);

    let want = routes(vec![
        route("fd00:96::/64", "eth1", Some(&gw6)),
        route("fd00:97::/64", "eth1", None),
        route("10.96.0.0/12", "eth1", Some(&pod.eth1_gw())),
    ]);
    let r = rec.set_desired(pod.key.clone(), pod.path(), want).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.added, 3);
    assert_eq!(
        table6(&pod.name),
        with(
            &base6,
            &[
                format!(
                    "fd00:96::/64 via fd00:10:244:{k}::1 dev eth1 proto 136 metric 1024 pref medium"
                ),
                "fd00:97::/64 dev eth1 proto 136 metric 1024 pref medium".into(),
            ]
        )
    );

    // Change the next hop of one: replaced in place.
    let want = routes(vec![
        route("fd00:96::/64", "eth1", Some(&format!("fd00:10:244:{k}::2"))),
        route("10.96.0.0/12", "eth1", Some(&pod.eth1_gw())),
    ]);
    let r = rec.set_desired(pod.key.clone(), pod.path(), want).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.replaced, r.deleted, r.unchanged), (1, 1, 1));
    assert_eq!(
        table6(&pod.name),
        with(
            &base6,
            &[format!(
                "fd00:96::/64 via fd00:10:244:{k}::2 dev eth1 proto 136 metric 1024 pref medium"
            )]
        )
    );
    let r = rec.remove(&pod.key).await;
    assert_eq!(r.deleted, 2, "{r:?}");
    assert_eq!(table6(&pod.name), base6);
    assert_eq!(table4(&pod.name), base4(&pod));
}

#[tokio::test]
async fn pod_without_the_dev_is_skipped_and_counted() {
    let mut net = TestNet::new("nodev");
    let pod = net.add_pods(1, false).remove(0);
    let dir = tempfile::tempdir().unwrap();
    let rec = reconciler(&dir);
    let want = routes(vec![
        route("10.96.0.0/12", "eth1", Some("10.244.1.1")),
        route("fd00:96::/64", "eth1", None),
        route("172.16.0.0/16", "eth0", None),
    ]);
    let r = rec.set_desired(pod.key.clone(), pod.path(), want).await;
    assert!(r.is_ok(), "a missing dev is not an error: {r:?}");
    assert_eq!((r.added, r.skipped, r.failed), (1, 2, 0));
    assert!(r.skips.iter().all(|s| s.dev == "eth1"));
    assert_eq!(
        table4(&pod.name),
        lines(&[
            "default via 169.254.1.1 dev eth0",
            "169.254.1.1 dev eth0 scope link",
            "172.16.0.0/16 via 169.254.1.1 dev eth0 proto 136",
        ])
    );
}

#[tokio::test]
async fn netns_gone_is_reported_per_pod() {
    let mut net = TestNet::new("gone");
    let pods = net.add_pods(2, true);
    let dir = tempfile::tempdir().unwrap();
    let rec = reconciler(&dir);
    let gone = pods[0].clone();
    net.delete_pod_ns(&gone.name);
    let want = |p: &PodNs| routes(vec![route("10.96.0.0/12", "eth1", Some(&p.eth1_gw()))]);
    let out = rec
        .set_desired_many(
            pods.iter()
                .map(|p| (p.key.clone(), p.path(), want(p)))
                .collect(),
        )
        .await;
    let by = |p: &PodNs| &out.iter().find(|(k, _)| *k == p.key).unwrap().1;
    assert!(
        matches!(by(&gone).fatal, Some(NetlinkError::NetnsGone(_))),
        "{:?}",
        by(&gone)
    );
    assert!(by(&pods[1]).is_ok());
    assert_eq!(by(&pods[1]).added, 1);
    // Removing a pod whose netns is gone is clean, not an error.
    assert_eq!(rec.known_pods(), {
        let mut v = vec![gone.key.clone(), pods[1].key.clone()];
        v.sort();
        v
    });
    let r = rec.remove(&gone.key).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(rec.known_pods(), vec![pods[1].key.clone()]);
}

#[tokio::test]
async fn bad_input_is_reported_and_keeps_what_is_programmed() {
    let mut net = TestNet::new("badin");
    let pod = net.add_pods(1, true).remove(0);
    let dir = tempfile::tempdir().unwrap();
    let rec = reconciler(&dir);
    let gw = pod.eth1_gw();
    let good = routes(vec![route("10.96.0.0/12", "eth1", Some(&gw))]);
    assert!(
        rec.set_desired(pod.key.clone(), pod.path(), good)
            .await
            .is_ok()
    );
    let programmed = table4(&pod.name);

    // The same destination now with an IPv6 gateway: refused, nothing removed.
    let bad = routes(vec![route("10.96.0.0/12", "eth1", Some("fd00::1"))]);
    let r = rec.set_desired(pod.key.clone(), pod.path(), bad).await;
    assert_eq!((r.failed, r.changes()), (1, 0), "{r:?}");
    assert!(matches!(r.errors[0].error, NetlinkError::InvalidRoute(_)));
    assert_eq!(table4(&pod.name), programmed);

    // A gateway the kernel refuses (not on any link): that route fails, others proceed.
    let mixed = routes(vec![
        route("10.96.0.0/12", "eth1", Some(&gw)),
        route("10.97.0.0/16", "eth1", Some("192.0.2.1")),
    ]);
    let r = rec.set_desired(pod.key.clone(), pod.path(), mixed).await;
    assert_eq!((r.failed, r.unchanged), (1, 1), "{r:?}");
    assert_eq!(r.errors[0].op, RouteOp::Add);
    assert!(matches!(r.errors[0].error, NetlinkError::Kernel { .. }));
    assert_eq!(table4(&pod.name), programmed);
}
