//! File mode: every accepted format loads into the right typed objects.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::Path;

use ovnkube_route::api::{RouteRule, SvcRule};
use ovnkube_route::config::{
    ConfigError, SOURCE_ANNOTATION, load_bytes, load_path, load_paths, route_name_for_file,
};

const SEED_DEMO: &str = include_str!("corpus/seed/seed-demo.yaml");

fn rule(dst: &str, dev: &str, via: Option<&str>) -> RouteRule {
    RouteRule {
        dst: dst.into(),
        dev: dev.into(),
        via: via.map(Into::into),
    }
}

fn svc(ns: &str, name: &str, dev: &str, via: Option<&str>) -> SvcRule {
    SvcRule {
        namespace: ns.into(),
        name: name.into(),
        dev: dev.into(),
        via: via.map(Into::into),
    }
}

#[test]
fn the_seed_demo_loads_from_yaml_and_from_json() {
    let y = load_bytes(Path::new("demo.yaml"), SEED_DEMO.as_bytes());
    assert!(y.errors.is_empty(), "{:?}", y.errors);
    assert_eq!(y.documents.routes.len(), 1);
    let demo = &y.documents.routes[0];
    assert_eq!(demo.metadata.name.as_deref(), Some("demo"));
    assert_eq!(demo.spec.route.len(), 2);
    assert_eq!(demo.spec.svc[2], svc("kube-system", "nginx2", "eth0", None));
    let as_json =
        serde_json::to_string(&serde_yaml_ng::from_str::<serde_json::Value>(SEED_DEMO).unwrap())
            .unwrap();
    let j = load_bytes(Path::new("demo.json"), as_json.as_bytes());
    assert!(j.errors.is_empty());
    assert_eq!(j.documents.routes, y.documents.routes);
}

#[test]
fn short_form_json_rules_make_one_route_for_every_pod_named_after_the_file() {
    let text = r#"[
        {"svc": "default/nginx1", "dev": "eth0"},
        {"route": "172.16.0.0/16", "dev": "eth1"},
        {"route": "172.17.0.0/16", "dev": "eth1", "via": "10.124.0.1"},
        {"dst": "fd00::/64", "dev": "eth1"},
        {"svc": "kube-system/dns", "dev": "eth1", "via": "10.124.0.1"}
    ]"#;
    let l = load_bytes(
        Path::new("/etc/ovnkube-route/cr-config.json"),
        text.as_bytes(),
    );
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.documents.routes.len(), 1);
    let r = &l.documents.routes[0];
    assert_eq!(r.metadata.name.as_deref(), Some("cr-config"));
    assert_eq!(
        r.metadata.annotations.as_ref().unwrap()[SOURCE_ANNOTATION],
        "/etc/ovnkube-route/cr-config.json"
    );
    assert_eq!(
        r.spec.route,
        vec![
            rule("172.16.0.0/16", "eth1", None),
            rule("172.17.0.0/16", "eth1", Some("10.124.0.1")),
            rule("fd00::/64", "eth1", None),
        ]
    );
    assert_eq!(
        r.spec.svc,
        vec![
            svc("default", "nginx1", "eth0", None),
            svc("kube-system", "dns", "eth1", Some("10.124.0.1"))
        ]
    );
    // No selection at all: the Route applies to every pod.
    assert!(r.spec.pod_selector.is_none() && r.spec.namespace_selector.is_none());
    assert!(r.spec.targets.is_empty() && r.spec.exclude.is_none());
}

#[test]
fn short_form_yaml_rules_across_documents_and_single_rules_join_one_route() {
    let text = "- route: 172.16.0.0/16\n  dev: eth1\n---\nsvc: default/nginx1\ndev: eth0\n---\n- {svc: a/b, dev: eth1}\n";
    let l = load_bytes(Path::new("cr-config.yaml"), text.as_bytes());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let r = &l.documents.routes[0];
    assert_eq!(r.metadata.name.as_deref(), Some("cr-config"));
    assert_eq!(r.spec.route.len(), 1);
    assert_eq!(
        r.spec.svc,
        vec![
            svc("default", "nginx1", "eth0", None),
            svc("a", "b", "eth1", None)
        ]
    );
}

#[test]
fn file_names_become_route_names() {
    for (file, name) in [
        ("cr-config.yaml", "cr-config"),
        ("/x/My_Rules.JSON", "my-rules"),
        ("__.yaml", "rules"),
        ("a..b.yml", "a..b"),
        ("-edge-.json", "edge"),
    ] {
        assert_eq!(route_name_for_file(Path::new(file)), name, "{file}");
    }
}

const WORLD: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: default, labels: {team: a}}
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-7d9c-abcde
    namespace: default
    uid: 174eecc3-58fa-42d1-8501-7f9004a28b76
    labels: {app: web}
    annotations:
      k8s.ovn.org/pod-networks: '{"default":{"ip_addresses":["10.124.0.3/24"],"gateway_ips":["10.124.0.1"]}}'
    ownerReferences:
    - {apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9c, uid: u1, controller: true}
  spec:
    nodeName: node1
    containers: [{name: web, image: nginx}]
  status:
    phase: Running
    podIPs: [{ip: 192.168.2.10}]
- apiVersion: v1
  kind: Service
  metadata: {name: nginx, namespace: default}
  spec:
    clusterIP: 10.86.205.109
    clusterIPs: [10.86.205.109]
    ports: [{port: 80}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-7d9c
  namespace: default
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: u0, controller: true}]
spec:
  selector: {matchLabels: {app: web}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: nginx}]}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: agent}}
  template: {spec: {containers: [{name: a, image: a}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  template: {spec: {containers: [{name: a, image: a}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template: {spec: {containers: [{name: a, image: a}], restartPolicy: Never}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: default}
spec:
  schedule: "0 0 * * *"
  jobTemplate: {spec: {template: {spec: {containers: [{name: a, image: a}]}}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: headless-abc, namespace: default, labels: {kubernetes.io/service-name: headless}}
addressType: IPv4
endpoints: [{addresses: [192.168.2.11], conditions: {ready: true}}]
---
apiVersion: v1
kind: PodList
items:
- metadata: {name: bare, namespace: other}
  spec: {containers: [{name: c, image: c}], hostNetwork: true}
"#;

#[test]
fn world_objects_load_as_kubectl_prints_them() {
    let l = load_bytes(Path::new("world.yaml"), WORLD.as_bytes());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let d = &l.documents;
    assert_eq!(d.namespaces.len(), 1);
    assert_eq!(d.pods.len(), 2);
    assert_eq!(d.services.len(), 1);
    assert_eq!(d.replica_sets.len(), 1);
    assert_eq!(d.deployments.len(), 1);
    assert_eq!(d.daemon_sets.len(), 1);
    assert_eq!(d.stateful_sets.len(), 1);
    assert_eq!(d.jobs.len(), 1);
    assert_eq!(d.cron_jobs.len(), 1);
    assert_eq!(d.endpoint_slices.len(), 1);
    assert_eq!(d.len(), 11);
    let web = &d.pods[0];
    assert_eq!(
        web.metadata.owner_references.as_ref().unwrap()[0].kind,
        "ReplicaSet"
    );
    assert_eq!(
        web.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node1")
    );
    assert_eq!(
        d.services[0].spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("10.86.205.109")
    );
    // Items of a typed list take its kind; namespaced objects default to `default`.
    assert_eq!(d.pods[1].metadata.name.as_deref(), Some("bare"));
    assert_eq!(d.jobs[0].metadata.namespace.as_deref(), Some("default"));
    assert_eq!(d.namespaces[0].metadata.namespace, None);
}

#[test]
fn a_route_without_spec_or_with_nulls_loads_like_the_api_server_reads_it() {
    let text = "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: empty}\n---\n\
                apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: nulls}\nspec:\n  route:\n  svc: [{namespace: a, name: b, dev: eth0, via: null}]\n  feature_gate: ~\n";
    let l = load_bytes(Path::new("n.yaml"), text.as_bytes());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.documents.routes.len(), 2);
    assert!(l.documents.routes[0].spec.route.is_empty());
    assert_eq!(
        l.documents.routes[1].spec.svc,
        vec![svc("a", "b", "eth0", None)]
    );
}

#[test]
fn a_route_list_and_a_json_list_of_crs_load() {
    let text = r#"{"apiVersion": "k8s.ovn.org/v1", "kind": "RouteList", "items": [
        {"metadata": {"name": "a"}, "spec": {"route": [{"dst": "1.0.0.0/8", "dev": "eth1"}]}},
        {"metadata": {"name": "b"}, "spec": {"targets": [{"kind": "Deployment", "namespace": "default", "name": "web"}]}}
    ]}"#;
    let l = load_bytes(Path::new("list.json"), text.as_bytes());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.documents.routes.len(), 2);
    let text = r#"[{"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "a"}},
                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]"#;
    let l = load_bytes(Path::new("arr.json"), text.as_bytes());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(
        (l.documents.routes.len(), l.documents.namespaces.len()),
        (1, 1)
    );
}

#[test]
fn a_directory_loads_sorted_config_files_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    w("b-routes.yaml", SEED_DEMO);
    w(
        "a-rules.json",
        r#"[{"route": "172.16.0.0/16", "dev": "eth1"}]"#,
    );
    w(
        "c-broken.yml",
        "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: [x\n",
    );
    w("d-notes.txt", "not loaded");
    w(".hidden.yaml", "not: loaded");
    std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
    let l = load_path(dir.path()).unwrap();
    let names: Vec<_> = l
        .documents
        .routes
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["a-rules", "demo"]);
    let files: Vec<_> = l
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["a-rules.json", "b-routes.yaml", "c-broken.yml"]);
    assert_eq!(l.errors.len(), 2, "{:?}", l.errors);
    let text: Vec<String> = l.errors.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|e| e.contains("c-broken.yml:4:1") && e.contains("YAML syntax error")),
        "{text:?}"
    );
    // sub.yaml is a directory: reported as skipped, the rest still loads.
    assert!(
        text.iter()
            .any(|e| e.contains("sub.yaml: not a regular file: a directory; skipped")),
        "{text:?}"
    );
    assert!(l.into_result().is_err());
}

#[test]
fn a_route_defined_in_two_files_is_used_from_neither_and_named_with_both() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.yaml"), SEED_DEMO).unwrap();
    std::fs::write(
        dir.path().join("two.yaml"),
        SEED_DEMO.replace("172.16.10.0/24", "9.9.9.0/24"),
    )
    .unwrap();
    let l = load_paths(&[dir.path().join("one.yaml"), dir.path().join("two.yaml")]).unwrap();
    // Which one the user meant is unknown: neither is planned, the caller keeps what is
    // programmed for it (route_name() lets it do so).
    assert!(l.documents.routes.is_empty());
    assert_eq!(l.errors.len(), 1);
    assert_eq!(l.errors[0].route_name(), Some("demo"));
    let e = l.errors[0].to_string();
    assert!(
        e.contains("two.yaml")
            && e.contains("one.yaml")
            && e.contains("duplicate Route \"demo\"")
            && e.contains("neither definition is used"),
        "{e}"
    );
    // A world object defined twice keeps the first.
    let pod =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: d}\nspec: {containers: []}\n";
    std::fs::write(dir.path().join("p1.yaml"), pod).unwrap();
    std::fs::write(dir.path().join("p2.yaml"), pod).unwrap();
    let l = load_paths(&[dir.path().join("p1.yaml"), dir.path().join("p2.yaml")]).unwrap();
    assert_eq!(l.documents.pods.len(), 1);
    assert!(l.errors[0].to_string().contains("keeping the first"));
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let err = load_path(Path::new("/nonexistent/cr-config.yaml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .contains("/nonexistent/cr-config.yaml: cannot read"),
        "{err}"
    );
}

#[test]
fn a_rejected_route_still_names_itself_so_a_reload_can_keep_the_last_good_one() {
    let text = "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: keep-me}\nspec:\n  route: [{dst: 1.0.0.0/8, dev: eth1, oops: 1}]\n";
    let l = load_bytes(Path::new("k.yaml"), text.as_bytes());
    assert_eq!(l.errors.len(), 1);
    assert_eq!(l.errors[0].route_name(), Some("keep-me"));
    assert_eq!(l.errors[0].location().document, Some(1));
}
