//! `kubectl kustomize deploy/` renders the CRD, least-privilege RBAC and the DaemonSet,
//! and the rendered objects say what the design requires. Needs kubectl (1.32 ships with
//! the machine image); fails, never skips, without it.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::BTreeSet;
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
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
    let kinds: BTreeSet<(String, String, String)> = docs
        .iter()
        .map(|d| {
            let name = d["metadata"]["name"].as_str().unwrap();
            // The generated ConfigMap's name carries a content hash.
            let name = if d["kind"] == "ConfigMap" {
                name.rsplit_once('-').unwrap().0
            } else {
                name
            };
            (
                d["kind"].as_str().unwrap().to_string(),
                name.to_string(),
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("CustomResourceDefinition", "routes.k8s.ovn.org", ""),
        (
            "CustomResourceDefinition",
            "routenodereports.k8s.ovn.org",
            "",
        ),
        ("ServiceAccount", "ovnkube-route", "ovn-kubernetes"),
        ("ClusterRole", "ovnkube-route", ""),
        ("ClusterRoleBinding", "ovnkube-route", ""),
        ("Role", "ovnkube-route-leader-election", "ovn-kubernetes"),
        (
            "RoleBinding",
            "ovnkube-route-leader-election",
            "ovn-kubernetes",
        ),
        ("Role", "ovnkube-route-events", "default"),
        ("RoleBinding", "ovnkube-route-events", "default"),
        ("ConfigMap", "ovnkube-route-settings", "ovn-kubernetes"),
        ("DaemonSet", "ovnkube-route", "ovn-kubernetes"),
    ]
    .into_iter()
    .map(|(k, n, ns)| (k.to_string(), n.to_string(), ns.to_string()))
    .collect();
    assert_eq!(kinds, want);
    // The rendered CRDs are the generated ones.
    let crd: CustomResourceDefinition =
        find(&docs, "CustomResourceDefinition", "routes.k8s.ovn.org");
    assert_eq!(crd, ovnkube_route::api::crd());
    let crd: CustomResourceDefinition = find(
        &docs,
        "CustomResourceDefinition",
        "routenodereports.k8s.ovn.org",
    );
    assert_eq!(crd, ovnkube_route::api::node_report_crd());
}

/// `group/resource:verb` for every grant, and which ones are restricted by name.
fn grants(rules: &[PolicyRule]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in rules {
        assert!(r.non_resource_urls.is_none());
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    out.insert(format!("{g}/{res}:{v}"));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_grants_exactly_the_calls_the_code_makes() {
    let docs = rendered();
    let mut got = BTreeSet::new();
    for d in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        let rules: Vec<PolicyRule> = serde_json::from_value(d["rules"].clone()).unwrap();
        got.extend(grants(&rules));
    }
    let want: BTreeSet<String> = ovnkube_route::k8s::access::ACCESS
        .iter()
        .flat_map(|a| {
            a.verbs
                .iter()
                .map(move |v| format!("{}/{}:{v}", a.group, a.resource))
        })
        .collect();
    assert_eq!(got, want, "deploy/rbac.yaml and src/k8s/access.rs disagree");
    assert!(!got.iter().any(|g| g.contains('*')), "no wildcards");
    // Narrower than the resource: the Lease by name, Events in `default` only.
    let role: Role = find(&docs, "Role", "ovnkube-route-leader-election");
    let rules = role.rules.unwrap();
    let by_name: Vec<&PolicyRule> = rules
        .iter()
        .filter(|r| r.resource_names.is_some())
        .collect();
    assert_eq!(by_name.len(), 1);
    assert_eq!(
        by_name[0].resource_names.as_deref().unwrap(),
        ["ovnkube-route"]
    );
    assert_eq!(by_name[0].verbs, ["get", "update"]);
    let events: Role = find(&docs, "Role", "ovnkube-route-events");
    assert_eq!(events.metadata.namespace.as_deref(), Some("default"));
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        for b in docs.iter().filter(|d| d["kind"] == binding) {
            assert_eq!(b["subjects"][0]["name"], "ovnkube-route");
            assert_eq!(b["subjects"][0]["namespace"], "ovn-kubernetes");
        }
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
            "--mode",
            "$(OVNKUBE_ROUTE_MODE)",
            "--nb",
            "$(OVNKUBE_ROUTE_NB)",
            "--priority-band",
            "$(OVNKUBE_ROUTE_PRIORITY_BAND)",
            "--node",
            "$(NODE_NAME)"
        ]
    );
    let env = c.env.as_ref().unwrap();
    let field = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no env {name}"))
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path
            .clone()
    };
    assert_eq!(field("NODE_NAME"), "spec.nodeName");
    assert_eq!(field("POD_NAME"), "metadata.name");
    assert_eq!(field("POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(field("POD_UID"), "metadata.uid");
    // The settings come from the generated ConfigMap, whose keys the binary reads.
    let cm_name = c.env_from.as_ref().unwrap()[0]
        .config_map_ref
        .as_ref()
        .unwrap()
        .name
        .clone();
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(
        cm["metadata"]["name"],
        cm_name.as_str(),
        "envFrom must name the generated ConfigMap"
    );
    let data = cm["data"].as_object().unwrap();
    for key in [
        "OVNKUBE_ROUTE_MODE",
        "OVNKUBE_ROUTE_NB",
        "OVNKUBE_ROUTE_PRIORITY_BAND",
        "OVNKUBE_ROUTE_LOG",
    ] {
        assert!(data.contains_key(key), "settings lack {key}");
    }
    assert!(
        !data.contains_key("RUST_LOG"),
        "the binary reads OVNKUBE_ROUTE_LOG"
    );
    assert!(matches!(
        data["OVNKUBE_ROUTE_MODE"].as_str(),
        Some("ic" | "central")
    ));
    let help = Command::new(env!("CARGO_BIN_EXE_ovnkube-route"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for key in [
        "OVNKUBE_ROUTE_NB_PRIVATE_KEY",
        "OVNKUBE_ROUTE_NB_CERTIFICATE",
        "OVNKUBE_ROUTE_NB_CA_CERT",
        "OVNKUBE_ROUTE_LOG",
        "POD_NAME",
        "POD_UID",
        "POD_NAMESPACE",
        "NODE_NAME",
    ] {
        assert!(help.contains(key), "`run --help` does not mention {key}");
    }
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
    assert_eq!(caps, ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]);
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
        ("/readyz".to_string(), serde_json::json!(9476))
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
    for (path, read_only) in [
        ("/var/lib/cni/results", true),
        ("/var/run/netns", true),
        ("/var/run/ovn", true),
        ("/var/lib/ovnkube-route", false),
    ] {
        assert_eq!(
            host_path(&mount(path).name),
            path,
            "{path} must be the host's"
        );
        assert_eq!(
            mount(path).read_only.unwrap_or(false),
            read_only,
            "{path} read-only"
        );
    }
    assert_eq!(
        mount("/var/run/netns").mount_propagation.as_deref(),
        Some("HostToContainer")
    );
    let tls = volumes
        .iter()
        .find(|v| v.name == "nb-tls")
        .unwrap()
        .secret
        .clone()
        .unwrap();
    assert_eq!(
        tls.optional,
        Some(true),
        "the TLS Secret is only needed for ssl: endpoints"
    );
}
