//! `run --source kubernetes` when the API server misbehaves: dropped watches and 410 Gone
//! (relists), the API server down for 30 s, and `central` mode's leader failover (killed,
//! terminated, cut off from the API) with the NB's own transaction log as the witness that
//! there is never more than one writer.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;
mod kube_api;
mod kube_env;

use std::time::{Duration, Instant};

use fixture::*;
use kube_env::*;

fn ok_transactions(c: &Controller) -> f64 {
    c.metric("ovnkube_route_nb_transactions_total{result=\"ok\"}")
        .unwrap_or(0.0)
}

/// Lists come in pages of one object (`--kube-page-size 1`), so the first list and every
/// relist after 410 are paginated (`limit` / `continue`); a relist replaces the world only
/// once its last page is in.
#[test]
fn relist_after_dropped_watches_and_410_loses_repeats_and_deletes_nothing() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let net = PodNet::new("k8rl");
    let kube = Kube::start();
    load_world(&kube, Some(&net), &[NGINX]);
    kube.apply(WEB);
    let mut c = spawn(
        &kube,
        &ovn,
        Instance {
            mode: "ic",
            node: "node1",
            identity: "node1",
            net: Some(&net),
            extra: &["--kube-page-size", "1"],
        },
    );
    c.wait_ready();
    let (a, b) = (pod("client-a"), pod("client-b"));
    poll(15, "programmed", || {
        c.proc.assert_alive();
        if has_route(&net, a, "172.16.10.0/24") && ovn.owned_policies().len() == 1 {
            Ok(())
        } else {
            Err(c.proc.log())
        }
    });
    let owned = ovn.owned();
    let table_a = net.routes(a);
    let txns = ok_transactions(&c);
    let lists_before = kube.bg.api.count("list", "pods");
    let pages_before = kube.bg.api.lists_continued("pods");
    assert!(pages_before >= 2, "node1's pods were not listed in pages");
    // Every resourceVersion the controller holds becomes too old, and its watches are cut:
    // each re-watch gets 410 Gone and has to relist; a Route created meanwhile must arrive.
    kube.bg.api.compact();
    kube.bg.api.drop_watches();
    kube.apply(LATE);
    poll(20, "the new Route applied after the relist", || {
        c.proc.assert_alive();
        if has_route(&net, b, "172.16.23.0/24") && ovn.owned_policies().len() == 2 {
            Ok(())
        } else {
            Err(ovn.owned_policies())
        }
    });
    // Let the relists of every resource finish and settle.
    std::thread::sleep(Duration::from_secs(2));
    // (A watcher whose resourceVersion is the newest, as the Route watch's may be after a
    // status write, resumes without 410; the pod watch's is older and must relist.)
    assert!(
        kube.bg.api.count("list", "pods") > lists_before,
        "no relist happened"
    );
    assert!(
        kube.bg.api.lists_continued("pods") >= pages_before + 2,
        "the relist was not paginated"
    );
    let restarts = c
        .metric("ovnkube_route_watch_restarts_total{resource=\"pods\"}")
        .unwrap_or(0.0);
    assert!(
        restarts >= 1.0,
        "pods were not relisted:\n{}",
        c.get("/metrics").1
    );
    nothing_removed(&owned, &ovn.owned()).unwrap();
    assert_eq!(
        net.routes(a),
        table_a,
        "client-a's routes changed across the relist"
    );
    // Exactly one NB transaction: the new Route's rows. The relisted, unchanged world wrote
    // nothing.
    assert_eq!(ok_transactions(&c) - txns, 1.0, "{}", c.proc.log());
}

#[test]
fn api_down_for_30_s_keeps_everything_and_drift_is_still_repaired() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let net = PodNet::new("k8dn");
    let kube = Kube::start();
    load_world(&kube, Some(&net), &[NGINX]);
    kube.apply(WEB);
    let mut c = spawn_ic(&kube, &ovn, &net);
    c.wait_ready();
    let a = pod("client-a");
    poll(15, "programmed", || {
        if has_route(&net, a, "172.16.10.0/24") && ovn.owned_policies().len() == 1 {
            Ok(())
        } else {
            Err(())
        }
    });
    let owned = ovn.owned();
    let table = net.routes(a);
    let start = Instant::now();
    kube.bg.down_for(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    // Drift on both sides is repaired from the last good world.
    ip(&["-n", &net.ns(a), "route", "del", "172.16.10.0/24"]);
    let uuid = ovn.nbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Logical_Router_Policy",
        "external_ids:k8s.ovn.org/name=web",
    ]);
    ovn.nbctl(&["lr-policy-del", "ovn_cluster_router", uuid.trim()]);
    poll(15, "drift repaired while the API is down", || {
        c.proc.assert_alive();
        if net.routes(a) == table && ovn.owned() == owned {
            Ok(())
        } else {
            Err((net.routes(a), ovn.owned()))
        }
    });
    while start.elapsed() < Duration::from_secs(29) {
        c.proc.assert_alive();
        assert_eq!(
            c.get("/healthz").0,
            200,
            "an API outage must not fail liveness"
        );
        assert_eq!(
            net.routes(a),
            table,
            "pod routes changed while the API was down"
        );
        nothing_removed(&owned, &ovn.owned()).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    // Back: a change made now is applied.
    poll(20, "API back", || {
        std::net::TcpStream::connect(kube.bg.api.addr()).map(|_| ())
    });
    kube.apply(&WEB.replace("172.16.10.0/24", "172.16.12.0/24"));
    poll(20, "edit after the outage applied", || {
        c.proc.assert_alive();
        if has_route(&net, a, "172.16.12.0/24") && !has_route(&net, a, "172.16.10.0/24") {
            Ok(())
        } else {
            Err(net.routes(a))
        }
    });
}

/// `ovsdb-tool show-log -m`: the writer named in each of our transactions' comments, in
/// commit order.
fn writers(ovn: &Ovn) -> Vec<String> {
    let out = std::process::Command::new("ovsdb-tool")
        .args(["show-log", "-m"])
        .arg(ovn.nb_db_file())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(" change(s) by ").nth(1))
        .map(|w| w.trim_end_matches('"').to_owned())
        .collect()
}

/// Instance "a" in central mode on node1, once it holds the Lease and has written WEB's policy.
fn leader_a(kube: &Kube, ovn: &Ovn, net: Option<&PodNet>) -> Controller {
    let mut a = spawn(
        kube,
        ovn,
        Instance {
            mode: "central",
            node: "node1",
            identity: "a",
            net,
            extra: &[],
        },
    );
    a.wait_ready();
    poll(15, "a leads and writes", || {
        if kube.lease_holder().as_deref() == Some("a") && ovn.owned_policies().len() == 1 {
            Ok(())
        } else {
            Err(kube.lease_holder())
        }
    });
    a
}

#[test]
fn central_mode_fails_over_with_one_writer_and_deletes_nothing() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let foreign = ovn.foreign();
    let net = PodNet::new("k8ha");
    let kube = Kube::start();
    load_world(&kube, Some(&net), &[NGINX]);
    kube.apply(WEB);
    let mut first = leader_a(&kube, &ovn, Some(&net));
    let mut second = spawn(
        &kube,
        &ovn,
        Instance {
            mode: "central",
            node: "node2",
            identity: "b",
            net: None,
            extra: &[],
        },
    );
    second.wait_ready();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(kube.lease_holder().as_deref(), Some("a"));
    assert!(
        writers(&ovn).iter().all(|w| w == "a"),
        "{:?}",
        writers(&ovn)
    );
    let owned = ovn.owned();

    // 1. The leader is killed: b takes over within the lease duration (4 s here) plus its
    //    retry period, and writes; nothing is deleted during the handover.
    let killed = Instant::now();
    first.proc.child.kill().unwrap();
    first.proc.child.wait().unwrap();
    kube.apply(LATE);
    poll(15, "b writes after a is killed", || {
        second.proc.assert_alive();
        nothing_removed(&owned, &ovn.owned())?;
        if ovn.owned_policies().len() == 2 {
            Ok(())
        } else {
            Err(format!("{:?}", writers(&ovn)))
        }
    });
    println!("failover after kill -9: {:?}", killed.elapsed());
    assert_eq!(kube.lease_holder().as_deref(), Some("b"));
    let w = writers(&ovn);
    let first_b = w.iter().position(|x| x == "b").unwrap();
    assert!(
        w[first_b..].iter().all(|x| x == "b"),
        "a wrote after b took over: {w:?}"
    );

    // 2. a comes back as a follower; b is terminated (SIGTERM): it releases the Lease and a
    //    takes over in about one retry period, not a lease duration.
    let mut first = spawn(
        &kube,
        &ovn,
        Instance {
            mode: "central",
            node: "node1",
            identity: "a",
            net: Some(&net),
            extra: &[],
        },
    );
    first.wait_ready();
    let owned = ovn.owned();
    let term = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.proc.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    second.proc.child.wait().unwrap();
    poll(10, "a holds the lease after b's SIGTERM", || {
        if kube.lease_holder().as_deref() == Some("a") {
            Ok(())
        } else {
            Err(kube.lease_holder())
        }
    });
    println!("handover after SIGTERM: {:?}", term.elapsed());
    assert!(
        term.elapsed() < Duration::from_secs(4),
        "handover waited for the lease to expire"
    );
    kube.apply(&LATE.replace("172.16.23.0/24", "172.16.24.0/24"));
    poll(15, "a writes again", || {
        first.proc.assert_alive();
        let m = ovn.nbctl(&["lr-policy-list", "ovn_cluster_router"]);
        if m.contains("172.16.24.0/24") {
            Ok(())
        } else {
            Err(m)
        }
    });
    let w = writers(&ovn);
    let last_b = w.iter().rposition(|x| x == "b").unwrap();
    assert!(
        w[last_b + 1..].iter().all(|x| x == "a") && !w[last_b + 1..].is_empty(),
        "{w:?}"
    );
    nothing_removed(
        &owned
            .into_iter()
            .map(|(t, r)| {
                (
                    t,
                    r.into_iter()
                        .filter(|x| !x.contains("172.16.23.0/24"))
                        .collect(),
                )
            })
            .collect(),
        &ovn.owned(),
    )
    .unwrap();

    // 3. The leader cut off from the API server stops writing before its lease can expire:
    //    NB drift is not repaired while it cannot renew, and is once the API is back.
    kube.bg.down_for(Duration::from_secs(8));
    std::thread::sleep(Duration::from_secs(4)); // > renew deadline (3 s)
    let uuid = ovn.nbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Logical_Router_Policy",
        "external_ids:k8s.ovn.org/name=web",
    ]);
    ovn.nbctl(&["lr-policy-del", "ovn_cluster_router", uuid.trim()]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !ovn.nbctl(&["lr-policy-list", "ovn_cluster_router"])
            .contains("172.16.10.0/24"),
        "a leader that could not renew its lease still wrote"
    );
    poll(25, "repaired once the lease is renewed", || {
        first.proc.assert_alive();
        let m = ovn.nbctl(&["lr-policy-list", "ovn_cluster_router"]);
        if m.contains("172.16.10.0/24") {
            Ok(())
        } else {
            Err(m)
        }
    });
    assert_foreign_unchanged(&foreign, &ovn.foreign());
    assert_only_granted_calls(&kube);
}

/// A leader renews its Lease with one conditional update per retry period, without reading
/// it first. When someone else writes the Lease meanwhile, that update fails (409): the
/// leader reads the Lease, finds another holder and steps down; it never overwrites the
/// other claim, and writes no NB row while the other holds it.
#[test]
fn the_leader_renews_in_one_request_and_yields_to_another_claim() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let kube = Kube::start();
    load_world(&kube, None, &[NGINX]);
    kube.apply(WEB);
    let mut a = leader_a(&kube, &ovn, None);
    let api = &kube.bg.api;
    api.clear_requests();
    // Four retry periods (1 s in these tests) as the leader.
    std::thread::sleep(Duration::from_secs(4));
    let (reads, renewals) = (api.count("get", "leases"), api.count("update", "leases"));
    assert_eq!(reads, 0, "the leader read its Lease before renewing it");
    assert!(renewals >= 3, "{renewals} renewals in 4 s");

    // Another claim, renewed now and valid for a minute.
    let lease = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some(LEASE_NS),
            "ovnkube-route",
        )
        .unwrap();
    let now = serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    ))
    .unwrap();
    api.merge(
        &lease,
        serde_json::json!({"spec": {"holderIdentity": "other", "renewTime": now,
            "leaseDurationSeconds": 60}}),
    )
    .unwrap();
    api.clear_requests();
    std::thread::sleep(Duration::from_secs(4));
    a.proc.assert_alive();
    assert_eq!(
        kube.lease_holder().as_deref(),
        Some("other"),
        "a overwrote another holder's claim"
    );
    assert!(api.count("get", "leases") >= 1, "a never read the Lease");
    let written: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|l| l.resource == "leases" && l.verb == "update" && l.code < 300)
        .collect();
    assert!(
        written.is_empty(),
        "a renewed over the other claim: {}",
        written.len()
    );
    // A Route created now is not written by a (it follows).
    kube.apply(LATE);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        ovn.owned_policies().len(),
        1,
        "a wrote the NB while following"
    );
}
