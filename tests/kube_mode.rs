//! `run --source kubernetes` against the Kubernetes API test server, a real OVN NB and
//! node1's pods as real network namespaces.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;
mod kube_api;
mod kube_env;

use std::time::Instant;

use fixture::*;
use kube_env::*;

#[test]
fn routes_from_the_api_reach_pods_nb_and_status() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let foreign = ovn.foreign();
    let net = PodNet::new("k8s");
    let kube = Kube::start();
    load_world(&kube, Some(&net), &[NGINX]);
    kube.apply(WEB);
    let mut c = spawn_ic(&kube, &ovn, &net);
    c.wait_ready();
    let a = pod("client-a");
    wait_routes(
        &net,
        &mut c,
        a,
        &[
            "172.16.10.0/24 via 10.244.1.1 dev eth1",
            "10.96.100.10 via 10.244.1.1 dev eth1",
        ],
        &[],
        "routes programmed",
    );
    poll(10, "policy written", || {
        let p = ovn.owned_policies();
        if p.len() == 1 { Ok(()) } else { Err(p) }
    });
    let st = wait_status(&kube, &mut c, "web", "Applied");
    assert_eq!(st["selectedPods"], 1, "{st}");
    assert_eq!(st["programmedPods"], 1, "{st}");
    assert_eq!(st["observedGeneration"], 1, "{st}");
    let report = kube
        .bg
        .api
        .get("k8s.ovn.org/v1", "RouteNodeReport", None, "node1")
        .unwrap();
    assert_eq!(report["spec"]["routes"][0]["route"], "web", "{report}");
    assert_eq!(
        report["metadata"]["ownerReferences"][0]["name"], "node1",
        "{report}"
    );
    let out = kube.kubectl(&["get", "routes"]);
    assert!(out.contains("Applied"), "{out}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());
    assert_only_granted_calls(&kube);
    // SIGTERM: a clean exit that leaves everything programmed.
    let owned = ovn.owned();
    let table = net.routes(a);
    let pid = nix::unistd::Pid::from_raw(c.proc.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = c.proc.child.wait().unwrap();
    assert!(status.success(), "{status}: {}", c.proc.log());
    assert_eq!(ovn.owned(), owned);
    assert_eq!(net.routes(a), table);
}

fn pod_obj(
    name: &str,
    labels: serde_json::Value,
    owner: Option<serde_json::Value>,
) -> serde_json::Value {
    let p = pod(name);
    let n = &p.node[4..];
    let mut meta = serde_json::json!({"name": p.name, "namespace": p.ns, "labels": labels,
        "annotations": {"k8s.ovn.org/pod-networks": format!(
            "{{\"default\":{{\"ip_addresses\":[\"{ip}/24\"],\"gateway_ips\":[\"10.244.{n}.1\"]}}}}", ip = p.ovn_ip)}});
    if let Some(o) = owner {
        meta["ownerReferences"] = serde_json::json!([o]);
    }
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": p.node, "containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": p.calico_ip, "podIPs": [{"ip": p.calico_ip}]}})
}

/// Puts a pod into the API server and points its CNI cache entry at the uid it got.
fn put_pod(kube: &Kube, net: &PodNet, obj: serde_json::Value) {
    let stored = kube.put(&obj);
    let p = pod(obj["metadata"]["name"].as_str().unwrap());
    net.set_uid(p, stored["metadata"]["uid"].as_str().unwrap());
}

const TEAM: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: team}
spec:
  podSelector: {matchLabels: {team: x}}
  route:
    - {dst: "172.16.20.0/24", dev: eth1}
"#;

const PROD: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: prod}
spec:
  namespaceSelector: {matchLabels: {env: prod}}
  route:
    - {dst: "172.16.21.0/24", dev: eth1}
"#;

const DEPLOY: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: deploy}
spec:
  targets: [{kind: Deployment, namespace: default, name: web}]
  route:
    - {dst: "172.16.22.0/24", dev: eth1}
"#;

#[test]
fn selection_follows_pods_labels_namespaces_and_owners() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let net = PodNet::new("k8sel");
    let kube = Kube::start();
    // client-b is not in the API server yet.
    for name in ["nginx-1", "client-a", "client-c"] {
        let labels = serde_json::json!({"app": name});
        if pod(name).node == "node1" {
            put_pod(&kube, &net, pod_obj(name, labels, None));
        } else {
            kube.put(&pod_obj(name, labels, None));
        }
    }
    kube.put_yaml("apiVersion: v1\nkind: Service\nmetadata: {name: nginx, namespace: default}\nspec: {clusterIP: 10.96.100.10, clusterIPs: [10.96.100.10]}\n");
    for r in [TEAM, PROD, DEPLOY, LATE] {
        kube.apply(r);
    }
    let mut c = spawn_ic(&kube, &ovn, &net);
    c.wait_ready();
    let (a, b, n) = (pod("client-a"), pod("client-b"), pod("nginx-1"));
    // A pod created after start gets its Route's routes.
    put_pod(
        &kube,
        &net,
        pod_obj("client-b", serde_json::json!({"app": "client-b"}), None),
    );
    wait_routes(
        &net,
        &mut c,
        b,
        &["172.16.23.0/24 via 10.244.1.1 dev eth1"],
        &[],
        "pod created",
    );
    // Pod labels select and unselect.
    kube.put(&pod_obj(
        "client-a",
        serde_json::json!({"app": "client-a", "team": "x"}),
        None,
    ));
    wait_routes(
        &net,
        &mut c,
        a,
        &["172.16.20.0/24 via 10.244.1.1 dev eth1"],
        &[],
        "label added",
    );
    kube.bg
        .api
        .merge(
            &pod_obj("client-a", serde_json::json!({}), None),
            serde_json::json!({"metadata": {"labels": {"team": null}}}),
        )
        .unwrap();
    wait_routes(&net, &mut c, a, &[], &["172.16.20.0/24"], "label removed");
    // Namespace labels.
    kube.bg.api.merge(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
        serde_json::json!({"metadata": {"labels": {"env": "prod"}}})).unwrap();
    for p in [a, b, n] {
        wait_routes(
            &net,
            &mut c,
            p,
            &["172.16.21.0/24 via 10.244.1.1 dev eth1"],
            &[],
            "namespace labelled",
        );
    }
    // Deployment -> ReplicaSet -> Pod: the pod's owner is a ReplicaSet that appears later.
    // (Named unlike `<deployment>-<hash>`, so only the ReplicaSet's owner link can tie it.)
    let rs_ref = serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "frontend", "uid": "rs-uid", "controller": true});
    put_pod(
        &kube,
        &net,
        pod_obj(
            "nginx-1",
            serde_json::json!({"app": "nginx-1"}),
            Some(rs_ref),
        ),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !net.routes(n)
            .iter()
            .any(|l| l.starts_with("172.16.22.0/24")),
        "no owner link yet"
    );
    kube.put(&serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "frontend", "namespace": "default", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid", "controller": true}]},
        "spec": {"selector": {"matchLabels": {"app": "nginx-1"}}}}));
    wait_routes(
        &net,
        &mut c,
        n,
        &["172.16.22.0/24 via 10.244.1.1 dev eth1"],
        &[],
        "deployment target",
    );
    // The status counts follow.
    poll(10, "deploy counts", || {
        let st = kube.route("deploy").unwrap()["status"].clone();
        let got = (
            st["status"].clone(),
            st["selectedPods"].as_i64(),
            st["programmedPods"].as_i64(),
        );
        if got == (serde_json::json!("Applied"), Some(1), Some(1)) {
            Ok(())
        } else {
            Err(st)
        }
    });
    // A deleted pod loses nothing of another pod and leaves the selection.
    kube.delete("v1", "Pod", Some("default"), "client-b");
    poll(10, "prod count drops", || {
        let st = kube.route("prod").unwrap()["status"].clone();
        if st["selectedPods"] == 2 {
            Ok(())
        } else {
            Err(st)
        }
    });
}

const SVC_DEFAULT: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: svcdef}
spec:
  podSelector: {matchLabels: {app: client-a}}
  svc:
    - {namespace: default, name: db, dev: eth1}
  defaultRoute: {dev: eth1}
"#;

#[test]
fn services_are_followed_and_a_deleted_route_is_cleaned_up() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let foreign = ovn.foreign();
    let net = PodNet::new("k8svc");
    let kube = Kube::start();
    load_world(
        &kube,
        Some(&net),
        &[NGINX, ("default", "db", "10.96.100.30")],
    );
    let a = pod("client-a");
    let base = net.routes(a);
    kube.apply(SVC_DEFAULT);
    kube.apply(WEB);
    let mut c = spawn_ic(&kube, &ovn, &net);
    c.wait_ready();
    wait_routes(
        &net,
        &mut c,
        a,
        &[
            "10.96.100.30 via 10.244.1.1 dev eth1",
            "default via 10.244.1.1 dev eth1",
        ],
        &[],
        "svc + default route",
    );
    // The Service is recreated with another ClusterIP.
    kube.delete("v1", "Service", Some("default"), "db");
    wait_routes(&net, &mut c, a, &[], &["10.96.100.30"], "service deleted");
    kube.put_yaml("apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: default}\nspec: {clusterIP: 10.96.100.31, clusterIPs: [10.96.100.31]}\n");
    wait_routes(
        &net,
        &mut c,
        a,
        &["10.96.100.31 via 10.244.1.1 dev eth1"],
        &[],
        "service recreated",
    );
    // Deleting the Routes removes exactly their routes and rows and restores the default.
    kube.kubectl(&["delete", "route", "svcdef", "web"]);
    poll(15, "routes and rows removed", || {
        c.proc.assert_alive();
        let t = net.routes(a);
        let owned = ovn.owned();
        if t == base && owned.values().all(Vec::is_empty) {
            Ok(())
        } else {
            Err((t, owned))
        }
    });
    assert!(
        net.routes(a)
            .contains(&"default via 169.254.1.1 dev eth0".to_string())
    );
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

const BAD: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: bad}
spec:
  podSelector: {matchLabels: {app: client-a}}
  route:
    - {dst: "172.16.30.0/24", dev: eth1}
    - {dst: "172.16.300.0/24", dev: eth1}
"#;

#[test]
fn status_reports_counts_problems_and_events() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let net = PodNet::new("k8st");
    let kube = Kube::start();
    load_world(&kube, Some(&net), &[NGINX]);
    // A pod without the OVN interface the Route needs: skipped.
    kube.put(&serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "calico-only", "namespace": "default", "labels": {"app": "client-a"}},
        "spec": {"nodeName": "node1", "containers": [{"name": "m", "image": "x"}]},
        "status": {"phase": "Running", "podIP": "192.168.1.98", "podIPs": [{"ip": "192.168.1.98"}]}}));
    // A pod of this node whose network namespace does not exist (yet): pending.
    kube.put(&serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ghost", "namespace": "default", "labels": {"app": "client-a"},
            "annotations": {"k8s.ovn.org/pod-networks": "{\"default\":{\"ip_addresses\":[\"10.244.1.99/24\"],\"gateway_ips\":[\"10.244.1.1\"]}}"}},
        "spec": {"nodeName": "node1", "containers": [{"name": "m", "image": "x"}]},
        "status": {"phase": "Running", "podIP": "192.168.1.99", "podIPs": [{"ip": "192.168.1.99"}]}}));
    // The API server refuses this Route now (tests/admission_kubectl.rs); the controller
    // still meets such Routes (stored before the CRD had its rules, or under the `--compat
    // pre-1.31` CRD): store it unchecked, then check again, so the controller's status writes
    // go through validation ratcheting as on a real cluster.
    kube.bg.api.set_validation(false);
    kube.apply(BAD);
    kube.bg.api.set_validation(true);
    let mut c = spawn_ic(&kube, &ovn, &net);
    c.wait_ready();
    wait_routes(
        &net,
        &mut c,
        pod("client-a"),
        &["172.16.30.0/24 via 10.244.1.1 dev eth1"],
        &[],
        "valid rule applied",
    );
    let st = wait_status(&kube, &mut c, "bad", "Degraded");
    let count = |k: &str| st[k].as_i64().unwrap();
    assert_eq!(count("selectedPods"), 3, "{st}");
    assert_eq!(count("programmedPods"), 1, "{st}");
    assert_eq!(count("pendingPods"), 1, "{st}");
    assert_eq!(count("skippedPods"), 1, "{st}");
    // calico-only lacks eth1: the Route's one usable rule is skipped for it.
    assert_eq!(count("skippedRules"), 1, "{st}");
    assert_eq!(
        count("selectedPods"),
        count("programmedPods") + count("skippedPods") + count("failedPods") + count("pendingPods")
    );
    let problems = st["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["path"] == "spec.route[1].dst"),
        "{st}"
    );
    let degraded = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(degraded["status"], "True", "{st}");
    assert_eq!(degraded["observedGeneration"], 1);
    // The failure is an Event on the Route (kube's recorder, events.k8s.io).
    poll(10, "event published", || {
        let n = kube
            .bg
            .api
            .requests()
            .iter()
            .filter(|r| r.verb == "create" && r.resource == "events" && r.code == 201)
            .count();
        if n >= 1 { Ok(()) } else { Err(n) }
    });
    // Fixing the rule clears its problem; what remains is that the ghost pod has no OVN
    // logical switch port, which the status says (with the node that saw it).
    kube.apply(&BAD.replace("172.16.300.0/24", "172.16.31.0/24"));
    poll(10, "problem fixed", || {
        let st = kube.route("bad").unwrap()["status"].clone();
        let reasons: Vec<String> = st["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}@{}",
                    p["reason"].as_str().unwrap_or(""),
                    p["node"].as_str().unwrap_or("")
                )
            })
            .collect();
        if st["observedGeneration"] == 2 && reasons == ["PortNotFound@node1"] {
            Ok(())
        } else {
            Err(st)
        }
    });
    let out = kube.kubectl(&["get", "routes", "-o", "wide"]);
    assert!(
        out.contains("SELECTED") && out.contains("PROGRAMMED"),
        "{out}"
    );
}

const MANY: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: many}
spec:
  podSelector: {matchLabels: {app: many}}
  route:
    - {dst: "172.16.40.0/24", dev: eth1}
"#;

fn many_pod(i: usize, app: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("many-{i}"), "namespace": "default", "labels": {"app": app},
            "annotations": {"k8s.ovn.org/pod-networks": format!("{{\"default\":{{\"ip_addresses\":[\"10.245.{}.{}/16\"],\"gateway_ips\":[\"10.245.0.1\"]}}}}", i / 250, i % 250 + 2)}},
        "spec": {"nodeName": "node1", "containers": [{"name": "m", "image": "x"}]},
        "status": {"phase": "Running", "podIP": format!("192.169.{}.{}", i / 250, i % 250 + 2)}})
}

/// An NB with the topology and an API server holding Route `many` over `pods` pods of node1.
fn many_cluster(pods: usize) -> (Ovn, Kube) {
    let ovn = Ovn::start();
    ovn.build_topology();
    let kube = Kube::start();
    load_world(&kube, None, &[NGINX]);
    for i in 0..pods {
        kube.put(&many_pod(i, "many"));
    }
    kube.apply(MANY);
    (ovn, kube)
}

/// 1,000 pods churning make at most one status write per Route per interval; a quiet
/// cluster makes none (neither Route status nor node reports).
#[test]
fn status_writes_are_coalesced_and_none_when_nothing_changes() {
    let (ovn, kube) = many_cluster(1000);
    let mut c = spawn(
        &kube,
        &ovn,
        Instance {
            mode: "ic",
            node: "node1",
            identity: "node1",
            net: None,
            extra: &["--skip-pods", "--status-interval-ms", "1000"],
        },
    );
    c.wait_ready();
    poll(30, "1,000 pods counted", || {
        let st = kube.route("many").unwrap()["status"].clone();
        if st["selectedPods"] == 1000 {
            Ok(())
        } else {
            Err(st)
        }
    });
    let api = &kube.bg.api;
    let status_writes = || {
        api.requests()
            .iter()
            .filter(|r| r.verb == "patch" && r.resource == "routes/status")
            .count()
    };
    let report_writes = || {
        api.requests()
            .iter()
            .filter(|r| r.verb == "patch" && r.resource == "routenodereports")
            .count()
    };
    api.clear_requests();
    let churn = Instant::now();
    let mut flips = 0;
    while churn.elapsed() < std::time::Duration::from_secs(6) {
        for k in 0..50 {
            let i = (flips * 50 + k) % 1000;
            let app = if flips % 2 == 0 { "other" } else { "many" };
            kube.bg
                .api
                .merge(
                    &many_pod(i, app),
                    serde_json::json!({"metadata": {"labels": {"app": app}}}),
                )
                .unwrap();
        }
        flips += 1;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let secs = churn.elapsed().as_secs_f64();
    let (s, r) = (status_writes(), report_writes());
    println!(
        "churn: {} pod label changes in {secs:.1} s -> {s} Route status writes, {r} node report writes",
        flips * 50
    );
    assert!(s >= 2, "status did not follow the churn ({s} writes)");
    assert!(
        (s as f64) <= secs + 2.0,
        "{s} status writes in {secs:.1} s: not coalesced"
    );
    assert!(
        (r as f64) <= secs + 2.0,
        "{r} node report writes in {secs:.1} s: not coalesced"
    );
    // Settle, then a quiet cluster writes nothing.
    std::thread::sleep(std::time::Duration::from_secs(3));
    api.clear_requests();
    std::thread::sleep(std::time::Duration::from_secs(5));
    c.proc.assert_alive();
    assert_eq!(
        (status_writes(), report_writes()),
        (0, 0),
        "writes while nothing changed"
    );
    println!("quiet: 0 status writes and 0 report writes in 5 s");
}

/// A Route object the controller cannot decode (here a priority beyond int32, which the CRD
/// refuses now but an older CRD, `format: int32` alone, did not) stops nothing else, keeps what its last
/// readable version programmed, and says so in its status.
#[test]
fn an_undecodable_route_blocks_nothing_and_keeps_what_it_programmed() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let net = PodNet::new("k8ud");
    let kube = Kube::start();
    load_world(&kube, Some(&net), &[NGINX]);
    kube.apply(WEB);
    // Never readable from the start. The CRD's int32 bounds refuse such a priority now; a
    // Route can still be stored that way under an older CRD: store it unchecked.
    kube.bg.api.set_validation(false);
    kube.put(&serde_json::json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "huge"},
        "spec": {"priority": 99_999_999_999_i64, "route": [{"dst": "172.16.50.0/24", "dev": "eth1"}]}}));
    kube.bg.api.set_validation(true);
    let mut c = spawn_ic(&kube, &ovn, &net);
    c.wait_ready();
    let (a, b) = (pod("client-a"), pod("client-b"));
    wait_routes(
        &net,
        &mut c,
        a,
        &["172.16.10.0/24 via 10.244.1.1 dev eth1"],
        &[],
        "the readable Route applies",
    );
    let st = wait_status(&kube, &mut c, "huge", "Invalid");
    assert_eq!(st["problems"][0]["reason"], "Undecodable", "{st}");
    // A programmed Route turns undecodable: what it programmed stays.
    let owned = ovn.owned();
    let table = net.routes(a);
    let web = kube.route("web").unwrap();
    kube.bg.api.set_validation(false);
    kube.bg
        .api
        .merge(
            &web,
            serde_json::json!({"spec": {"priority": 5_000_000_000_i64}}),
        )
        .unwrap();
    kube.bg.api.set_validation(true);
    let st = wait_status(&kube, &mut c, "web", "Invalid");
    assert!(
        st["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("last readable version"),
        "{st}"
    );
    assert_eq!(st["observedGeneration"], 2);
    // Other Routes still flow.
    kube.apply(LATE);
    wait_routes(
        &net,
        &mut c,
        b,
        &["172.16.23.0/24 via 10.244.1.1 dev eth1"],
        &[],
        "another Route meanwhile",
    );
    assert_eq!(net.routes(a), table);
    for (t, rows) in &owned {
        for r in rows {
            assert!(ovn.owned()[t].contains(r), "{t}: {r} removed");
        }
    }
    // Fixed: back to Applied.
    kube.bg
        .api
        .merge(&web, serde_json::json!({"spec": {"priority": 5}}))
        .unwrap();
    wait_status(&kube, &mut c, "web", "Applied");
    assert_only_granted_calls(&kube);
}

/// A new central leader writes each Route's status once at start: nothing before its loop
/// has a view (here the NB is down at first, so the loop cannot start), then the final one;
/// never `Pending` first and again.
#[test]
fn a_new_leader_writes_each_route_status_once() {
    let (mut ovn, kube) = many_cluster(300);
    ovn.nb.kill();
    let mut c = spawn(
        &kube,
        &ovn,
        Instance {
            mode: "central",
            node: "node1",
            identity: "node1",
            net: None,
            extra: &["--skip-pods", "--status-interval-ms", "100"],
        },
    );
    poll(30, "the Lease held", || match kube.lease_holder() {
        Some(h) if h == "node1" => Ok(()),
        other => Err(other),
    });
    // Leading, its Route list and the node reports listed, for many status intervals.
    std::thread::sleep(std::time::Duration::from_secs(2));
    c.proc.assert_alive();
    ovn.nb.start();
    c.wait_ready();
    poll(30, "the final status", || {
        let st = kube.route("many").unwrap()["status"].clone();
        // Degraded: the pods have no switch ports in this NB; what counts is that it is final.
        if st["selectedPods"] == 300 && st["status"] == "Degraded" {
            Ok(())
        } else {
            Err(st)
        }
    });
    // Whatever a second write would have carried has been written by now.
    std::thread::sleep(std::time::Duration::from_secs(1));
    c.proc.assert_alive();
    let writes: Vec<String> = kube
        .bg
        .api
        .requests()
        .iter()
        .filter(|r| r.verb == "patch" && r.resource == "routes/status")
        .filter(|r| r.path.ends_with("/routes/many/status"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(writes.len(), 1, "one status write: {writes:?}");
}
