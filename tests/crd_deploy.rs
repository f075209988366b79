//! `kubectl kustomize deploy/` renders the CRD, least-privilege RBAC and the DaemonSet,
//! and the rendered objects say what the design requires. Needs kubectl (1.32 ships with
//! the machine image); fails, never skips, without it.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::BTreeSet;
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::Value;

fn rendered() -> Vec<Value> {
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let out = Command::new("kubectl")
        .args(["kustomize", deploy])
        .output()
        .unwrap_or_else(|e| panic!("kubectl is required for this test and could not run: {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/ failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str, name: &str) -> T {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered deploy/"));
    serde_json::from_value(doc.clone()).unwrap()
}

#[test]
fn renders_the_expected_objects() {
    let docs = rendered();
    let kinds: BTreeSet<(String, String)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("CustomResourceDefinition", "routes.k8s.ovn.org"),
        ("ServiceAccount", "ovnkube-route"),
        ("ClusterRole", "ovnkube-route"),
        ("ClusterRoleBinding", "ovnkube-route"),
        ("Role", "ovnkube-route-leader-election"),
        ("RoleBinding", "ovnkube-route-leader-election"),
        ("DaemonSet", "ovnkube-route"),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(kinds, want);
    for d in &docs {
        let namespaced = !matches!(
            d["kind"].as_str(),
            Some("CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding")
        );
        if namespaced {
            assert_eq!(
                d["metadata"]["namespace"], "ovn-kubernetes",
                "{}",
                d["kind"]
            );
        }
    }
    // The rendered CRD is the generated one.
    let crd: CustomResourceDefinition =
        find(&docs, "CustomResourceDefinition", "routes.k8s.ovn.org");
    assert_eq!(crd, ovnkube_route::api::crd());
}

fn grants(rules: &[PolicyRule]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in rules {
        assert!(r.non_resource_urls.is_none());
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    let names = r
                        .resource_names
                        .as_ref()
                        .map(|n| format!("[{}]", n.join(",")))
                        .unwrap_or_default();
                    out.insert(format!("{g}/{res}{names}:{v}"));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_is_least_privilege() {
    let docs = rendered();
    let cluster: ClusterRole = find(&docs, "ClusterRole", "ovnkube-route");
    let got = grants(cluster.rules.as_deref().unwrap());
    let mut want = BTreeSet::new();
    let read = ["get", "list", "watch"];
    for (group, resources) in [
        ("k8s.ovn.org", &["routes"][..]),
        ("", &["pods", "services", "namespaces"][..]),
        ("discovery.k8s.io", &["endpointslices"][..]),
        (
            "apps",
            &["replicasets", "deployments", "daemonsets", "statefulsets"][..],
        ),
        ("batch", &["jobs", "cronjobs"][..]),
    ] {
        for r in resources {
            for v in read {
                want.insert(format!("{group}/{r}:{v}"));
            }
        }
    }
    for v in ["patch", "update"] {
        want.insert(format!("k8s.ovn.org/routes/status:{v}"));
    }
    for g in ["", "events.k8s.io"] {
        for v in ["create", "patch"] {
            want.insert(format!("{g}/events:{v}"));
        }
    }
    assert_eq!(got, want);
    assert!(!got.iter().any(|g| g.contains('*')), "no wildcards");
    let role: Role = find(&docs, "Role", "ovnkube-route-leader-election");
    assert_eq!(
        grants(role.rules.as_deref().unwrap()),
        [
            "coordination.k8s.io/leases:create",
            "coordination.k8s.io/leases[ovnkube-route]:get",
            "coordination.k8s.io/leases[ovnkube-route]:update"
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        let b = docs.iter().find(|d| d["kind"] == binding).unwrap();
        assert_eq!(b["subjects"][0]["name"], "ovnkube-route");
        assert_eq!(b["subjects"][0]["namespace"], "ovn-kubernetes");
    }
}

#[test]
fn daemonset_runs_on_every_node_with_the_host_access_it_needs() {
    let docs = rendered();
    let ds: DaemonSet = find(&docs, "DaemonSet", "ovnkube-route");
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.host_pid, Some(true));
    assert_eq!(pod.service_account_name.as_deref(), Some("ovnkube-route"));
    let tolerations = pod.tolerations.unwrap();
    assert!(
        tolerations
            .iter()
            .any(|t| t.operator.as_deref() == Some("Exists")
                && t.key.is_none()
                && t.effect.is_none()),
        "must tolerate every taint"
    );
    let c = &pod.containers[0];
    assert_eq!(
        c.args.as_deref().unwrap(),
        [
            "run",
            "--source",
            "kubernetes",
            "--nb",
            "unix:/var/run/ovn/ovnnb_db.sock",
            "--node",
            "$(NODE_NAME)"
        ]
    );
    let env = c.env.as_ref().unwrap();
    let node = env.iter().find(|e| e.name == "NODE_NAME").unwrap();
    assert_eq!(
        node.value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "spec.nodeName"
    );
    let caps = c
        .security_context
        .as_ref()
        .unwrap()
        .capabilities
        .as_ref()
        .unwrap()
        .add
        .clone()
        .unwrap();
    for cap in ["NET_ADMIN", "SYS_ADMIN"] {
        assert!(caps.iter().any(|c| c == cap), "missing capability {cap}");
    }
    let port = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = probe.as_ref().unwrap().http_get.clone().unwrap();
        (get.path.unwrap(), serde_json::to_value(get.port).unwrap())
    };
    assert_eq!(
        port(&c.liveness_probe),
        ("/healthz".to_string(), serde_json::json!(9476))
    );
    assert_eq!(
        port(&c.readiness_probe),
        ("/healthz".to_string(), serde_json::json!(9476))
    );
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 9476);
    let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    let volumes = pod.volumes.unwrap();
    let host_path = |name: &str| {
        volumes
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .host_path
            .as_ref()
            .unwrap()
            .path
            .clone()
    };
    let mounts = c.volume_mounts.as_ref().unwrap();
    let mount = |path: &str| {
        mounts
            .iter()
            .find(|m| m.mount_path == path)
            .unwrap_or_else(|| panic!("no mount {path}"))
    };
    for path in [
        "/var/lib/cni/results",
        "/var/run/netns",
        "/var/run/ovn",
        "/var/lib/ovnkube-route",
    ] {
        assert_eq!(
            host_path(&mount(path).name),
            path,
            "{path} must be the host's"
        );
    }
    assert_eq!(
        mount("/var/run/netns").mount_propagation.as_deref(),
        Some("HostToContainer")
    );
    assert_ne!(
        mount("/var/lib/ovnkube-route").read_only,
        Some(true),
        "state dir must be writable"
    );
}
