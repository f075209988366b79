//! The kubectl plugin: kubectl 1.32 finds `kubectl-route` (a symlink to the binary) on
//! PATH and runs `kubectl route status | explain | plan` against the Kubernetes API test
//! server. The what-if (`plan -f`) reads the cluster once, with list calls only, and writes
//! nothing: not to the API server, not to the NB (real ovsdb-server, with `--nb`).
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;
mod kube_api;
mod kube_env;

use std::process::Command;

use serde_json::{Value, json};

use fixture::*;
use kube_env::*;

/// `kubectl route ARGS` with the plugin on PATH.
fn kubectl_route(kube: &Kube, args: &[&str]) -> Run {
    let bin = kube.dir.path().join("bin");
    if !bin.exists() {
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("kubectl-route")).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("kubectl")
        .arg("route")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", &kube.kubeconfig)
        .output()
        .expect("kubectl (1.32, in the machine image) is needed");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn file(kube: &Kube, name: &str, text: &str) -> String {
    let p = kube.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Every request the plugin sent was a granted list call.
fn only_lists(kube: &Kube) {
    assert_only_granted_calls(kube);
    for r in kube.bg.api.requests() {
        if r.verb.is_empty() || r.user_agent.starts_with("kubectl") {
            continue;
        }
        assert_eq!(r.verb, "list", "the plugin sent {} {}", r.method, r.path);
    }
}

#[test]
fn kubectl_finds_the_plugin_and_status_lists_routes_with_their_problems() {
    let kube = Kube::start();
    load_world(&kube, None, &[NGINX]);
    let web: Value = serde_yaml_ng::from_str(WEB).unwrap();
    let mut web = web;
    web["status"] = json!({
        "status": "Applied", "observedGeneration": 1, "selectedPods": 1, "programmedPods": 1,
        "skippedPods": 0, "failedPods": 0, "pendingPods": 0
    });
    kube.put(&web);
    let mut late: Value = serde_yaml_ng::from_str(LATE).unwrap();
    late["status"] = json!({
        "status": "Degraded", "observedGeneration": 1, "selectedPods": 2, "programmedPods": 1,
        "skippedPods": 0, "failedPods": 1, "pendingPods": 0,
        "problems": [
            {"path": "spec.ovn.nextHops[0]", "reason": "NextHopUnreachable", "message": "100.64.0.3 is on no network of ovn_cluster_router"},
            {"pod": "default/client-b", "node": "node2", "reason": "PodFailed", "message": "kernel: File exists"}
        ],
        "failingNodes": ["node2"]
    });
    kube.put(&late);

    let r = kubectl_route(&kube, &["status"]);
    assert_eq!(r.code, 0, "{r}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("PROGRAMMED"),
        "{r}"
    );
    let row = |name: &str| lines.iter().find(|l| l.starts_with(name)).copied().unwrap();
    let late_row: Vec<&str> = row("late ").split_whitespace().collect();
    assert_eq!(
        late_row[..7],
        ["late", "Degraded", "2", "1", "0", "1", "0"],
        "{r}"
    );
    assert_eq!(
        row("web ").split_whitespace().nth(1),
        Some("Applied"),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("  [node2] default/client-b PodFailed: kernel: File exists"),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("  spec.ovn.nextHops[0] NextHopUnreachable:"),
        "{r}"
    );
    assert!(r.stdout.contains("  failing nodes: node2"), "{r}");

    let r = kubectl_route(&kube, &["status", "web", "-o", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let j: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["routes"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(j["routes"][0]["status"]["status"], "Applied");
    assert_eq!(j["routes"][0]["current"], true);

    let r = kubectl_route(&kube, &["status", "nope"]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("Route \"nope\" not found"), "{r}");

    // explain, with the Kubernetes source, through kubectl.
    let r = kubectl_route(
        &kube,
        &["explain", "default/client-a", "172.16.10.5", "-o", "json"],
    );
    assert_eq!(r.code, 0, "{r}");
    let j: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        j["destinations"][0]["plan"]["decision"]["route"], "web",
        "{r}"
    );
    only_lists(&kube);
}

/// Takes 172.16.10.0/24 from web in client-a (higher priority), adds client-c on node2, and
/// asks for client-a's own OVN subnet over eth0 (a guard rail refuses it for client-a).
const TAKEOVER: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: takeover}
spec:
  priority: 10
  podSelector: {matchExpressions: [{key: app, operator: In, values: [client-a, client-c]}]}
  route:
    - {dst: "172.16.10.0/24", dev: eth0}
    - {dst: "10.244.1.0/24", dev: eth0}
"#;

/// Wants 172.16.10.0/24 in client-a too, with a lower priority than web.
const UNDERDOG: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: underdog}
spec:
  priority: -5
  podSelector: {matchLabels: {app: client-a}}
  route:
    - {dst: "172.16.10.0/24", dev: eth0}
"#;

#[test]
fn plan_shows_what_a_route_would_do_before_it_is_applied() {
    let kube = Kube::start();
    load_world(&kube, None, &[NGINX]);
    kube.apply(WEB);
    let routes_before = kube.kubectl(&["get", "routes", "-o", "json"]);

    let f = file(&kube, "takeover.yaml", TAKEOVER);
    let r = kubectl_route(&kube, &["plan", "-f", &f]);
    assert_eq!(r.code, 1, "the guard rail's refusal makes it Degraded: {r}");
    println!("kubectl route plan -f takeover.yaml:\n{}", r.stdout);
    let out = &r.stdout;
    assert!(out.contains("== Route takeover (new): Degraded"), "{r}");
    assert!(
        out.contains("selected: 2 pod(s): default/client-a, default/client-c"),
        "{r}"
    );
    assert!(
        out.contains("wins 172.16.10.0/24 in default/client-a from Route web"),
        "{r}"
    );
    assert!(
        out.contains("refused spec.route[1].dst (default/client-a): CapturesPodSubnet:"),
        "{r}"
    );
    assert!(out.contains("web: Applied -> Degraded"), "{r}");
    assert!(
        out.contains("Conflict: 172.16.10.0/24 is routed differently by Route \"takeover\""),
        "{r}"
    );
    assert!(
        out.contains("+ Address_Set ovnkube_route_takeover_v4 addresses=[10.244.1.4,10.244.2.4]  (Route takeover)"),
        "{r}"
    );
    assert!(
        out.contains("node1:\n  ~ default/client-a 172.16.10.0/24: dev eth1"),
        "{r}"
    );
    assert!(
        out.contains("-> dev eth0 via eth0's gateway (Route takeover)"),
        "{r}"
    );
    assert!(
        out.contains("node2:\n  + default/client-c 10.244.1.0/24: dev eth0"),
        "{r}"
    );
    assert!(
        out.contains("  + default/client-c 172.16.10.0/24: dev eth0"),
        "{r}"
    );
    assert!(
        !out.contains("+ default/client-a 10.244.1.0/24"),
        "refused: {r}"
    );
    assert!(
        r.stderr.contains("error: Route takeover would be Degraded"),
        "{r}"
    );

    // The same as JSON.
    let r = kubectl_route(&kube, &["plan", "-f", &f, "-o", "json"]);
    let j: Value = serde_json::from_str(&r.stdout).unwrap();
    let t = &j["routes"][0];
    assert_eq!(t["name"], "takeover");
    assert_eq!(
        t["wins"][0],
        json!({"pod": "default/client-a", "dst": "172.16.10.0/24", "route": "web"})
    );
    assert_eq!(t["refused"][0]["reason"], "CapturesPodSubnet");
    assert_eq!(j["otherRoutes"][0]["name"], "web");
    assert_eq!(j["nbAgainst"], "plan");
    assert!(j["pods"]["node2"].as_array().unwrap().len() == 2, "{j}");

    // A Route that loses to web.
    let f = file(&kube, "underdog.yaml", UNDERDOG);
    let r = kubectl_route(&kube, &["plan", "-f", &f]);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stdout
            .contains("loses 172.16.10.0/24 in default/client-a to Route web"),
        "{r}"
    );
    assert!(r.stdout.contains("(no pod route changes)"), "{r}");

    // Nothing was written: the Routes are as they were, and every call was a list.
    assert_eq!(
        kube.kubectl(&["get", "routes", "-o", "json"]),
        routes_before
    );
    only_lists(&kube);
    // The plan's read of the cluster comes in pages (`limit`, then `continue`).
    let plan_lists: Vec<_> = kube
        .bg
        .api
        .requests()
        .into_iter()
        .filter(|r| r.verb == "list" && !r.user_agent.starts_with("kubectl"))
        .filter(|r| r.resource == "pods")
        .collect();
    assert!(!plan_lists.is_empty());
    for r in &plan_lists {
        assert!(
            r.query.iter().any(|(k, v)| k == "limit" && v == "500"),
            "a list without a page size: {:?}",
            r.query
        );
    }
}

/// Selects client-c (node2) and reroutes 172.16.30.0/24 through GR node2.
const CLEAN: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: clean}
spec:
  podSelector: {matchLabels: {app: client-c}}
  route:
    - {dst: "172.16.30.0/24", dev: eth1}
  ovn:
    nextHops: ["100.64.0.3"]
"#;

#[test]
fn plan_with_nb_diffs_against_the_database_and_writes_nothing() {
    let (ovn, inputs) = with_topology(Ovn::start());
    let kube = Kube::start();
    load_world(&kube, None, &[NGINX]);
    kube.apply(WEB);
    // web is programmed in the NB (apply of the same world and Route from files).
    inputs.put("web.yaml", WEB);
    let a = apply_nb(&ovn, &inputs);
    assert_eq!(a.code, 0, "{a}");

    let nb_before = ovn.dump();

    let f = file(&kube, "clean.yaml", CLEAN);
    let r = kubectl_route(&kube, &["plan", "-f", &f, "--nb", &ovn.nb_remote()]);
    assert_eq!(r.code, 0, "{r}");
    let out = &r.stdout;
    assert!(out.contains("== Route clean (new): Applied"), "{r}");
    assert!(out.contains("== NB (against the database"), "{r}");
    let commands: Vec<&str> = out.lines().filter(|l| l.starts_with("ovn-nbctl")).collect();
    assert!(
        commands
            .iter()
            .any(|l| l.contains("create Address_Set") && l.contains("ovnkube_route_clean_v4")),
        "{r}"
    );
    assert!(
        commands
            .iter()
            .any(|l| l.contains("Logical_Router_Policy") && l.contains("100.64.0.3")),
        "{r}"
    );
    // web's rows are in the NB already and web does not change: nothing for it.
    assert!(!commands.iter().any(|l| l.contains("web")), "{r}");

    // A next hop on no network of the router: only the NB knows; the Route would be Degraded.
    let bad = CLEAN.replace("100.64.0.3", "192.0.2.1");
    let f = file(&kube, "bad.yaml", &bad);
    let r = kubectl_route(&kube, &["plan", "-f", &f, "--nb", &ovn.nb_remote()]);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("== Route clean (new): Degraded"), "{r}");
    assert!(r.stdout.contains("# clean: NextHopUnreachable:"), "{r}");

    assert_eq!(ovn.dump(), nb_before, "plan --nb wrote to the NB");
    only_lists(&kube);
    drop(inputs);
}
