//! The same oracle as `one_engine.rs` after scripted sequences of the real `run` binary,
//! with the audit off (`--audit-mins 0`): once with the file source, once with the
//! Kubernetes source (the tests' API server, the `ic` instance of node1). After every step a
//! fresh `ovnkube-route plan --nb ... -o json` on the same inputs, NB and pods must find
//! nothing to change. Nothing but the step's own events can make that true: no timer runs.
//!
//! Needs root (network namespaces) and Debian's ovn-central; fails loudly without them.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;
mod kube_api;
mod kube_env;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use fixture::*;
use kube_env::*;
use serde_json::{Value as Json, json};

/// The Route: every pod, a valid IPv6 rule with an IPv6 next hop and an invalid rule
/// (an IPv4 destination via an IPv6 address); `narrow` selects client-a only.
fn wide(narrow: bool) -> String {
    let sel = if narrow {
        "  podSelector: {matchLabels: {app: client-a}}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {{name: wide}}\nspec:\n{sel}  ovn: {{nextHops: [\"fd98::2\"]}}\n  route:\n  - {{dst: \"fd00:300::/64\", dev: eth1}}\n  - {{dst: \"172.16.90.0/24\", dev: eth1, via: \"fd98::5\"}}\n"
    )
}

fn ecmp(name: &str, app: &str, hops: &str) -> String {
    format!(
        "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {{name: {name}}}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  ovn: {{nextHops: [{hops}], enforce: true}}\n  route:\n  - {{dst: \"172.16.20.0/24\", dev: eth1}}\n  - {{dst: \"172.16.21.0/24\", dev: eth0}}\n  svc:\n  - {{namespace: default, name: nginx, dev: eth1}}\n"
    )
}

/// Adds the IPv6 router network the `wide` Route's next hop is on.
fn ipv6_router_port(ovn: &Ovn) {
    ovn.nbctl(&[
        "lrp-add",
        "ovn_cluster_router",
        "rtoj6-ovn_cluster_router",
        "0a:58:64:40:00:09",
        "fd98::1/64",
    ]);
}

/// Polls a fresh `plan` process until it finds nothing to change (or fails after 10 s).
fn converged(args: &[String], ctx: &str) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = ovnkube(&refs);
        assert!(r.code == 0 || r.code == 1, "{ctx}: plan failed:\n{r}");
        let v: Json = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{ctx}: {e}\n{r}"));
        let nb = v["nb"].as_array().map_or(0, Vec::len);
        let pods = v["podChanges"].as_u64().unwrap();
        if nb == 0 && pods == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ctx}: a fresh plan still finds {nb} NB and {pods} pod change(s): {:#} {:#}",
            v["nb"],
            v["pods"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn oracle_args(ovn: &Ovn, dir: &Path, net: &PodNet, mode: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "plan",
        "-o",
        "json",
        "--mode",
        mode,
        "--nb",
        &ovn.nb_remote(),
        "-f",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(dir.to_str().unwrap().into());
    a.extend(net.args());
    a
}

/// One scripted edit: what it is, and doing it.
type Step<'a> = (&'static str, Box<dyn Fn() + 'a>);

#[test]
fn a_scripted_file_source_run_leaves_what_a_fresh_plan_computes() {
    let (ovn, inputs) = with_topology(Ovn::start());
    ipv6_router_port(&ovn);
    let net = PodNet::new("seqfile");
    let args: Vec<String> = net.args();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = spawn_run(&ovn, &inputs, &refs);
    let world = std::fs::read_to_string(inputs.world()).unwrap();
    // The oracle reads the same files: the world and the Route directory.
    let dir = tempfile::tempdir().unwrap();
    let sync = |ctx: &str| {
        for e in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        std::fs::copy(inputs.world(), dir.path().join("world.yaml")).unwrap();
        for e in std::fs::read_dir(inputs.routes()).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
        converged(&oracle_args(&ovn, dir.path(), &net, "central"), ctx);
    };
    let steps: Vec<Step> = vec![
        (
            "wide, select-all",
            Box::new(|| inputs.put("wide.yaml", &wide(false))),
        ),
        (
            "wide narrowed",
            Box::new(|| inputs.put("wide.yaml", &wide(true))),
        ),
        (
            "wide widened",
            Box::new(|| inputs.put("wide.yaml", &wide(false))),
        ),
        (
            "ecmp",
            Box::new(|| {
                inputs.put(
                    "ecmp.yaml",
                    &ecmp("ecmp", "client-a", "\"100.64.0.2\", \"100.64.0.3\""),
                )
            }),
        ),
        (
            "ecmp renamed",
            Box::new(|| inputs.put("ecmp.yaml", &ecmp("ecmp2", "client-a", "\"100.64.0.2\""))),
        ),
        (
            "the same name in a second file",
            Box::new(|| inputs.put("dup.yaml", &ecmp("ecmp2", "client-b", "\"100.64.0.3\""))),
        ),
        (
            "second file removed",
            Box::new(|| inputs.remove("dup.yaml")),
        ),
        (
            "an unreadable file",
            Box::new(|| {
                inputs.put(
                    "broken.yaml",
                    "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: x\n",
                )
            }),
        ),
        (
            "the unreadable file fixed",
            Box::new(|| inputs.remove("broken.yaml")),
        ),
        (
            "a pod relabelled and the Service moved",
            Box::new(|| {
                inputs.set_world(
                    &world
                        .replace("app: client-b", "app: client-a")
                        .replace("10.96.100.10", "10.96.100.11"),
                )
            }),
        ),
        (
            "a next hop on no router network",
            Box::new(|| inputs.put("late.yaml", &ecmp("late", "nginx", "\"100.99.0.2\""))),
        ),
        (
            "its router port added by hand",
            Box::new(|| {
                ovn.nbctl(&[
                    "lrp-add",
                    "ovn_cluster_router",
                    "rtoj-late",
                    "0a:58:64:63:00:01",
                    "100.99.0.1/24",
                ]);
            }),
        ),
        (
            "every Route deleted",
            Box::new(|| {
                for f in ["wide.yaml", "ecmp.yaml", "late.yaml"] {
                    inputs.remove(f);
                }
            }),
        ),
    ];
    for (what, step) in steps {
        step();
        sync(what);
        run.assert_alive();
    }
    assert!(ovn.owned().values().all(Vec::is_empty), "{:?}", ovn.owned());
}

/// The oracle's world file: the objects as the API server stores them (uids included).
fn write_world(dir: &Path, objects: &BTreeMap<String, Json>, routes: &BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let docs: Vec<String> = objects.values().map(|o| o.to_string()).collect();
    std::fs::write(dir.join("world.yaml"), docs.join("\n---\n")).unwrap();
    for (name, text) in routes {
        std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
    }
}

#[test]
fn a_scripted_kubernetes_source_run_leaves_what_a_fresh_plan_computes() {
    let kube = Kube::start();
    // The partly invalid `wide` Route gets past admission only on a cluster with the compat
    // CRD (`crd --compat pre-1.31`): store objects unchecked, as such a cluster would.
    kube.bg.api.set_validation(false);
    let ovn = Ovn::start();
    ovn.build_topology();
    ipv6_router_port(&ovn);
    let net = PodNet::new("seqkube");
    let mut objects: BTreeMap<String, Json> = BTreeMap::new();
    for obj in kube.put_yaml(&world_yaml(&[NGINX])) {
        let key = format!(
            "{}/{}/{}",
            obj["kind"].as_str().unwrap(),
            obj["metadata"]["namespace"].as_str().unwrap_or(""),
            obj["metadata"]["name"].as_str().unwrap()
        );
        if obj["kind"] == "Pod" {
            let name = obj["metadata"]["name"].as_str().unwrap();
            let p = PODS.iter().find(|p| p.name == name).unwrap();
            if p.node == "node1" {
                net.set_uid(p, obj["metadata"]["uid"].as_str().unwrap());
            }
        }
        objects.insert(key, obj);
    }
    let mut c = spawn_ic(&kube, &ovn, &net);
    c.wait_ready();
    let dir = tempfile::tempdir().unwrap();
    let mut routes: BTreeMap<String, String> = BTreeMap::new();
    let check = |routes: &BTreeMap<String, String>, objects: &BTreeMap<String, Json>, ctx: &str| {
        write_world(dir.path(), objects, routes);
        converged(&oracle_args(&ovn, dir.path(), &net, "ic"), ctx);
    };
    let apply = |routes: &mut BTreeMap<String, String>, name: &str, yaml: String| {
        kube.apply(&yaml);
        routes.insert(name.to_owned(), yaml);
    };
    apply(&mut routes, "wide", wide(false));
    check(&routes, &objects, "wide, select-all");
    apply(&mut routes, "wide", wide(true));
    check(&routes, &objects, "wide narrowed");
    apply(&mut routes, "wide", wide(false));
    check(&routes, &objects, "wide widened");
    apply(
        &mut routes,
        "ecmp",
        ecmp("ecmp", "client-a", "\"100.64.0.2\", \"100.64.0.3\""),
    );
    check(&routes, &objects, "ecmp");
    // Renamed: the old one deleted, the new one created.
    kube.delete("k8s.ovn.org/v1", "Route", None, "ecmp");
    routes.remove("ecmp");
    apply(
        &mut routes,
        "ecmp2",
        ecmp("ecmp2", "client-a", "\"100.64.0.2\""),
    );
    check(&routes, &objects, "ecmp renamed");
    // A pod relabelled and the Service's address changed.
    let key = "Pod/default/client-b".to_string();
    let mut pod = objects[&key].clone();
    pod["metadata"]["labels"] = json!({"app": "client-a"});
    objects.insert(key, kube.put(&pod));
    let key = "Service/default/nginx".to_string();
    let mut svc = objects[&key].clone();
    svc["spec"]["clusterIP"] = json!("10.96.100.11");
    svc["spec"]["clusterIPs"] = json!(["10.96.100.11"]);
    objects.insert(key, kube.put(&svc));
    check(&routes, &objects, "a pod relabelled and the Service moved");
    apply(&mut routes, "late", ecmp("late", "nginx", "\"100.99.0.2\""));
    check(&routes, &objects, "a next hop on no router network");
    ovn.nbctl(&[
        "lrp-add",
        "ovn_cluster_router",
        "rtoj-late",
        "0a:58:64:63:00:01",
        "100.99.0.1/24",
    ]);
    check(&routes, &objects, "its router port added by hand");
    for name in ["wide", "ecmp2", "late"] {
        kube.delete("k8s.ovn.org/v1", "Route", None, name);
        routes.remove(name);
    }
    check(&routes, &objects, "every Route deleted");
    c.proc.assert_alive();
    assert!(ovn.owned().values().all(Vec::is_empty), "{:?}", ovn.owned());
}
