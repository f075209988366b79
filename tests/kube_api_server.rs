//! The Kubernetes API test server, checked against the API conventions with an independent
//! client, `kubectl` 1.32 (the machine image's), and with kube-rs and raw HTTP for what
//! kubectl does not show (watch resumption, bookmarks, 410, pagination, optimistic
//! concurrency, server-side apply conflicts, faults).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod kube_api;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube_api::{ApiServer, Background};
use ovnkube_route::api::Route;
use serde_json::{Value, json};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// kubectl against the server: (exit ok, stdout, stderr).
fn kubectl(kubeconfig: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("kubectl 1.32 is in the machine image; this test needs it");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(r: (bool, String, String)) -> String {
    assert!(r.0, "kubectl failed:\n{}\n{}", r.1, r.2);
    r.1
}

/// One raw HTTP/1.1 request: (status code, body as JSON or Null).
fn raw(api: &ApiServer, method: &str, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(api.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn route(name: &str, dst: &str) -> Value {
    json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": name},
           "spec": {"route": [{"dst": dst, "dev": "eth1"}]}})
}

#[test]
fn kubectl_drives_the_server_as_it_would_a_cluster() {
    let bg = Background::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = bg.api.kubeconfig(dir.path());
    let k = |args: &[&str]| kubectl(&kc, &[], args);
    ok(k(&[
        "apply",
        "-f",
        repo("deploy/crd.yaml").to_str().unwrap(),
    ]));
    ok(k(&[
        "apply",
        "-f",
        repo("deploy/examples").to_str().unwrap(),
    ]));
    let out = ok(k(&["get", "routes"]));
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ROUTE", "STATUS", "AGE"], "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    // The printer column shows the status subresource.
    let (code, _) = raw(
        &bg.api,
        "PATCH",
        "/apis/k8s.ovn.org/v1/routes/demo/status",
        "application/merge-patch+json",
        r#"{"status": {"status": "Applied", "selectedPods": 3, "programmedPods": 2}}"#,
    );
    assert_eq!(code, 200);
    let out = ok(k(&["get", "route", "demo"]));
    assert!(out.lines().nth(1).unwrap().contains("Applied"), "{out}");
    let wide = ok(k(&["get", "route", "demo", "-o", "wide"]));
    let cells: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&cells[..4], ["demo", "Applied", "3", "2"], "{wide}");
    // Client-side apply of a changed file patches the spec and bumps the generation only.
    let ecmp = std::fs::read_to_string(repo("deploy/examples/ecmp.yaml")).unwrap();
    let changed = dir.path().join("ecmp.yaml");
    std::fs::write(&changed, ecmp.replace("172.16.20.0/24", "172.16.29.0/24")).unwrap();
    ok(k(&["apply", "-f", changed.to_str().unwrap()]));
    let got = ok(k(&["get", "route", "ecmp", "-o", "json"]));
    let v: Value = serde_json::from_str(&got).unwrap();
    assert!(got.contains("172.16.29.0/24"));
    assert_eq!(v["metadata"]["generation"], 2);
    // Server-side apply by kubectl.
    std::fs::write(&changed, ecmp.replace("172.16.20.0/24", "172.16.28.0/24")).unwrap();
    ok(k(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        changed.to_str().unwrap(),
    ]));
    let v: Value = serde_json::from_str(&ok(k(&[
        "get",
        "route",
        "ecmp",
        "-o",
        "json",
        "--show-managed-fields",
    ])))
    .unwrap();
    assert!(v.to_string().contains("172.16.28.0/24"));
    assert_eq!(v["metadata"]["generation"], 3);
    let managers: Vec<&str> = v["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");
    // kubectl edit, with a scripted editor.
    let editor = dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/172.16.10.0\\/24/172.16.19.0\\/24/' \"$1\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&editor)
        .status()
        .unwrap();
    ok(kubectl(
        &kc,
        &[("KUBE_EDITOR", editor.to_str().unwrap())],
        &["edit", "route", "demo"],
    ));
    let out = ok(k(&[
        "get",
        "route",
        "demo",
        "-o",
        "jsonpath={.spec.route[0].dst} {.metadata.generation} {.status.status}",
    ]));
    assert_eq!(
        out, "172.16.19.0/24 2 Applied",
        "edit changed the spec, kept the status"
    );
    // Unknown fields are refused under kubectl's strict field validation.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: typo}\nspec:\n  podSelectr: {matchLabels: {a: b}}\n").unwrap();
    let (good, _, err) = k(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(
        !good && err.contains("unknown field") && err.contains("spec.podSelectr"),
        "{err}"
    );
    // Delete.
    ok(k(&[
        "delete",
        "-f",
        repo("deploy/examples").to_str().unwrap(),
    ]));
    let (found, _, err) = k(&["get", "route", "demo"]);
    assert!(!found && err.contains("NotFound"), "{err}");
    assert_eq!(ok(k(&["get", "routes", "-o", "name"])), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_generation_and_optimistic_concurrency() {
    let api = ApiServer::start().await;
    api.create_crds(&repo("deploy/crd.yaml"));
    let routes: Api<Route> = Api::all(api.client());
    let mut r: Route = serde_json::from_value(route("a", "10.0.0.0/8")).unwrap();
    r.status = Some(ovnkube_route::api::RouteStatus {
        status: Some("Applied".into()),
        ..Default::default()
    });
    let created = routes.create(&PostParams::default(), &r).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none(), "status is ignored on create");
    // Status through the main resource: ignored; no generation bump.
    let mut upd = created.clone();
    upd.status = Some(ovnkube_route::api::RouteStatus {
        status: Some("Applied".into()),
        ..Default::default()
    });
    let after = routes
        .replace("a", &PostParams::default(), &upd)
        .await
        .unwrap();
    assert!(after.status.is_none());
    assert_eq!(after.metadata.generation, Some(1));
    // Spec through the status subresource: ignored.
    let patch = json!({"spec": {"route": [{"dst": "192.168.0.0/16", "dev": "eth0"}]}, "status": {"status": "Degraded"}});
    let after = routes
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(after.spec.route[0].dst, "10.0.0.0/8");
    assert_eq!(after.status.unwrap().status.as_deref(), Some("Degraded"));
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "status writes never bump generation"
    );
    // A spec change bumps it.
    let after = routes
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"priority": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(2));
    // A stale resourceVersion is a 409 Conflict; no resourceVersion on a custom resource, 422.
    let err = routes
        .replace("a", &PostParams::default(), &created)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );
    let mut no_rv = after.clone();
    no_rv.metadata.resource_version = None;
    let err = routes
        .replace("a", &PostParams::default(), &no_rv)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    // Leases (built-in, unconditional updates allowed) still refuse a stale resourceVersion.
    let leases: Api<Lease> = Api::namespaced(api.client(), "default");
    let l: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}))
            .unwrap();
    let l = leases.create(&PostParams::default(), &l).await.unwrap();
    let mut b = l.clone();
    b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("l", &PostParams::default(), &b)
        .await
        .unwrap();
    let mut c = l.clone();
    c.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = leases
        .replace("l", &PostParams::default(), &c)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "the second writer must lose: {err:?}"
    );
    assert_eq!(
        leases
            .get("l")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_send_bookmarks_and_expire_with_410() {
    let api = ApiServer::start().await;
    api.create_crds(&repo("deploy/crd.yaml"));
    api.set_bookmark_interval(Duration::from_millis(200));
    let routes: Api<Route> = Api::all(api.client());
    let a: Route = serde_json::from_value(route("a", "10.0.0.0/8")).unwrap();
    let a = routes.create(&PostParams::default(), &a).await.unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    let b: Route = serde_json::from_value(route("b", "10.1.0.0/16")).unwrap();
    routes.create(&PostParams::default(), &b).await.unwrap();
    routes.delete("a", &Default::default()).await.unwrap();
    // From a's resourceVersion: exactly what happened after it, then bookmarks.
    let wp = WatchParams::default().timeout(5); // bookmarks are on by default
    let mut s = routes.watch(&wp, &rv).await.unwrap().boxed();
    let mut seen = Vec::new();
    while let Some(ev) = s.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(r) => seen.push(format!("ADDED {}", r.metadata.name.unwrap())),
            WatchEvent::Deleted(r) => seen.push(format!("DELETED {}", r.metadata.name.unwrap())),
            WatchEvent::Bookmark(b) => {
                seen.push("BOOKMARK".into());
                assert!(
                    b.metadata.resource_version.parse::<u64>().unwrap()
                        >= rv.parse::<u64>().unwrap()
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["ADDED b", "DELETED a", "BOOKMARK"]);
    // Compacted: a watch from the old resourceVersion gets 410 Gone.
    api.compact();
    let mut s = routes
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match s.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    // kube's watcher answers a 410 with a relist: Init, the objects, InitDone.
    let mut w =
        kube::runtime::watcher(routes.clone(), kube::runtime::watcher::Config::default()).boxed();
    let mut kinds = Vec::new();
    while let Some(ev) = w.try_next().await.unwrap() {
        match ev {
            kube::runtime::watcher::Event::Init => kinds.push("Init".to_string()),
            kube::runtime::watcher::Event::InitApply(r) => kinds.push(r.metadata.name.unwrap()),
            kube::runtime::watcher::Event::InitDone => {
                kinds.push("InitDone".into());
                break;
            }
            _ => {}
        }
    }
    assert_eq!(kinds, ["Init", "b", "InitDone"]);
    // Selectors on watches: an object leaving the selection is DELETED for that watcher.
    let pods: Api<Pod> = Api::namespaced(api.client(), "default");
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "labels": {"app": "x"}}, "spec": {"nodeName": "n1", "containers": []}})).unwrap();
    let p = pods.create(&PostParams::default(), &p).await.unwrap();
    let wp = WatchParams::default()
        .labels("app=x")
        .fields("spec.nodeName=n1")
        .timeout(5);
    let mut s = pods
        .watch(&wp, p.metadata.resource_version.as_deref().unwrap())
        .await
        .unwrap()
        .boxed();
    pods.patch(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.try_next().await.unwrap(),
        Some(WatchEvent::Deleted(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_a_consistent_snapshot_and_filter() {
    let api = ApiServer::start().await;
    let pods: Api<Pod> = Api::namespaced(api.client(), "default");
    for i in 0..5 {
        let node = if i % 2 == 0 { "n1" } else { "n2" };
        let p: Pod = serde_json::from_value(
            json!({"metadata": {"name": format!("p{i}"), "labels": {"i": i.to_string()}},
            "spec": {"nodeName": node, "containers": []}}),
        )
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let first = pods.list(&ListParams::default().limit(2)).await.unwrap();
    let names: Vec<String> = first
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["p0", "p1"]);
    let token = first.metadata.continue_.clone().unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    // Changes after the first page do not show in the next pages: one snapshot.
    pods.delete("p3", &Default::default()).await.unwrap();
    pods.patch(
        "p2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"late": "yes"}}})),
    )
    .await
    .unwrap();
    let next = pods
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let names: Vec<String> = next
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["p2", "p3"]);
    assert!(
        next.items[0]
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get("late")
            .is_none()
    );
    assert_eq!(next.metadata.resource_version.as_deref(), Some(rv.as_str()));
    // Selectors.
    let on_n1 = pods
        .list(&ListParams::default().fields("spec.nodeName=n1"))
        .await
        .unwrap();
    assert_eq!(on_n1.items.len(), 3, "p0, p2, p4");
    let sel = pods
        .list(&ListParams::default().labels("i in (0,1),late!=yes"))
        .await
        .unwrap();
    assert_eq!(sel.items.len(), 2);
    let err = pods
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400),
        "{err:?}"
    );
    // A continue token older than the history: 410.
    api.compact();
    let err = pods
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 410),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_tracks_owners_and_conflicts() {
    let api = ApiServer::start().await;
    api.create_crds(&repo("deploy/crd.yaml"));
    let routes: Api<Route> = Api::all(api.client());
    let a = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "r"},
        "spec": {"priority": 3, "route": [{"dst": "10.0.0.0/8", "dev": "eth1"}]}});
    routes
        .patch("r", &PatchParams::apply("alice"), &Patch::Apply(&a))
        .await
        .unwrap();
    // Bob sets a field alice owns to another value: conflict, unless forced.
    let b = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "r"}, "spec": {"priority": 7}});
    let err = routes
        .patch("r", &PatchParams::apply("bob"), &Patch::Apply(&b))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("alice") && s.message.contains(".spec.priority"),
                "{}",
                s.message
            );
        }
        other => panic!("{other:?}"),
    }
    // The same value is shared ownership, not a conflict.
    let same = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "r"}, "spec": {"priority": 3}});
    routes
        .patch("r", &PatchParams::apply("carol"), &Patch::Apply(&same))
        .await
        .unwrap();
    let r = routes
        .patch("r", &PatchParams::apply("bob").force(), &Patch::Apply(&b))
        .await
        .unwrap();
    assert_eq!(r.spec.priority, 7);
    // Alice stops applying `route`: it goes (nobody else owns it). Priority is bob's now.
    let a2 = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "r"}, "spec": {"priority": 7}});
    let r = routes
        .patch("r", &PatchParams::apply("alice"), &Patch::Apply(&a2))
        .await
        .unwrap();
    assert!(r.spec.route.is_empty(), "{:?}", r.spec);
    // Apply without a field manager is refused; strategic merge patch on a custom resource too.
    let (code, _) = raw(
        &api,
        "PATCH",
        "/apis/k8s.ovn.org/v1/routes/r",
        "application/apply-patch+yaml",
        "spec: {priority: 1}",
    );
    assert_eq!(code, 400);
    let (code, _) = raw(
        &api,
        "PATCH",
        "/apis/k8s.ovn.org/v1/routes/r",
        "application/strategic-merge-patch+json",
        r#"{"spec":{"priority":1}}"#,
    );
    assert_eq!(code, 415);
    // JSON patch.
    let (code, v) = raw(
        &api,
        "PATCH",
        "/apis/k8s.ovn.org/v1/routes/r",
        "application/json-patch+json",
        r#"[{"op":"test","path":"/spec/priority","value":7},{"op":"replace","path":"/spec/priority","value":9}]"#,
    );
    assert_eq!((code, &v["spec"]["priority"]), (200, &json!(9)));
    // Apply on a missing object creates it; on its status subresource, only status changes.
    let fresh = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "new"}, "spec": {"priority": 1}});
    let r = routes
        .patch("new", &PatchParams::apply("alice"), &Patch::Apply(&fresh))
        .await
        .unwrap();
    assert_eq!(r.metadata.generation, Some(1));
    let st = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "new"}, "spec": {"priority": 99}, "status": {"status": "Applied"}});
    let r = routes
        .patch_status(
            "new",
            &PatchParams::apply("ctl").force(),
            &Patch::Apply(&st),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.spec.priority, r.status.unwrap().status.as_deref()),
        (1, Some("Applied"))
    );
}

#[test]
fn faults_fail_requests_and_take_the_server_down_and_back() {
    let bg = Background::start();
    bg.api.fail_next(2, 500);
    assert_eq!(
        raw(&bg.api, "GET", "/api/v1/namespaces", "application/json", "").0,
        500
    );
    assert_eq!(
        raw(&bg.api, "GET", "/api/v1/namespaces", "application/json", "").0,
        500
    );
    assert_eq!(
        raw(&bg.api, "GET", "/api/v1/namespaces", "application/json", "").0,
        200
    );
    bg.down_for(Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::net::TcpStream::connect(bg.api.addr()).is_err(),
        "the server should be down"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (code, v) = raw(
        &bg.api,
        "GET",
        "/api/v1/namespaces/default",
        "application/json",
        "",
    );
    assert_eq!(
        (code, v["metadata"]["name"].as_str()),
        (200, Some("default")),
        "back with its data"
    );
}

#[test]
fn label_selectors_parse_and_match_like_the_api_server() {
    use kube_api::LabelSelector;
    let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe", "k8s.io/x": "1"}}});
    for (s, want) in [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app!=web", false),
        ("app in (web,db)", true),
        ("app notin (web)", false),
        ("missing notin (web)", true),
        ("app,tier=fe", true),
        ("!app", false),
        ("!missing", true),
        ("k8s.io/x=1", true),
        ("app in (db), tier=fe", false),
    ] {
        assert_eq!(LabelSelector::parse(s).unwrap().matches(&o), want, "{s}");
    }
    for bad in ["app=we b", "=x", "app in web", "a,,b", "app in (we$b)"] {
        assert!(LabelSelector::parse(bad).is_err(), "{bad}");
    }
}

/// `limit` / `continue` as kubectl's pager uses them (`--chunk-size`): every object once,
/// in order, over as many pages as the size makes, in JSON and in table form.
#[test]
fn kubectl_pages_through_a_list_with_chunk_size() {
    let bg = Background::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = bg.api.kubeconfig(dir.path());
    let k = |args: &[&str]| kubectl(&kc, &[], args);
    ok(k(&[
        "apply",
        "-f",
        repo("deploy/crd.yaml").to_str().unwrap(),
    ]));
    let names: Vec<String> = (0..7).map(|i| format!("r{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        let (code, _) = raw(
            &bg.api,
            "POST",
            "/apis/k8s.ovn.org/v1/routes",
            "application/json",
            &route(n, &format!("172.16.{i}.0/24")).to_string(),
        );
        assert_eq!(code, 201, "create {n}");
    }
    let out = ok(k(&["get", "routes", "--chunk-size=2", "-o", "name"]));
    let got: Vec<&str> = out.lines().collect();
    let want: Vec<String> = names
        .iter()
        .map(|n| format!("route.k8s.ovn.org/{n}"))
        .collect();
    assert_eq!(got, want, "{out}");
    // 7 objects by 2: 4 pages, 3 of them asked for with a continue token.
    assert_eq!(bg.api.lists_continued("routes"), 3);
    let out = ok(k(&["get", "routes", "--chunk-size=3"]));
    let rows: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(rows, names, "{out}");
    assert_eq!(bg.api.lists_continued("routes"), 3 + 2);
    // One page holds everything: no continue.
    ok(k(&["get", "routes", "--chunk-size=50", "-o", "name"]));
    assert_eq!(bg.api.lists_continued("routes"), 5);
}
