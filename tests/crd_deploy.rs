//! `kubectl kustomize deploy/` renders the CRD, least-privilege RBAC and the DaemonSet,
//! and the rendered objects say what the design requires. Needs kubectl (1.32 ships with
//! the machine image); fails, never skips, without it.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[path = "cel/mod.rs"]
mod cel_k8s;

use std::collections::BTreeSet;
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::{Value, json};

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
            // The generated settings ConfigMap's name carries a content hash.
            let name = if d["kind"] == "ConfigMap" && name != "ovnkube-route-admission" {
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
        ("ConfigMap", "ovnkube-route-admission", "ovn-kubernetes"),
        ("ValidatingAdmissionPolicy", "ovnkube-route-node-report", ""),
        (
            "ValidatingAdmissionPolicyBinding",
            "ovnkube-route-node-report",
            "",
        ),
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
    let cm = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("ovnkube-route-settings")
        })
        .unwrap();
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

/// Runs a ValidatingAdmissionPolicy as the API server does: `matchConditions` decide whether it
/// applies, `variables` are evaluated in order, then every validation; `Err` is the message of
/// the first that fails.
fn admit(policy: &Value, request: &Value, object: &Value, params: &Value) -> Result<(), String> {
    let spec = &policy["spec"];
    let old = Value::Null;
    let mut variables = serde_json::Map::new();
    let vars = |variables: &serde_json::Map<String, Value>| -> Vec<(&'static str, Value)> {
        vec![
            ("request", request.clone()),
            ("object", object.clone()),
            ("oldObject", old.clone()),
            ("params", params.clone()),
            ("variables", Value::Object(variables.clone())),
        ]
    };
    let run = |expr: &str, variables: &serde_json::Map<String, Value>| {
        let owned = vars(variables);
        let bound: Vec<(&str, &Value)> = owned.iter().map(|(n, v)| (*n, v)).collect();
        cel_k8s::eval(expr, &bound)
    };
    for m in spec["matchConditions"].as_array().into_iter().flatten() {
        let expr = m["expression"].as_str().unwrap();
        match run(expr, &variables) {
            Ok(cel::objects::Value::Bool(true)) => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(format!("matchCondition {expr}: {e}")),
        }
    }
    for v in spec["variables"].as_array().into_iter().flatten() {
        let value = run(v["expression"].as_str().unwrap(), &variables)
            .map_err(|e| format!("variable {}: {e}", v["name"]))?;
        variables.insert(
            v["name"].as_str().unwrap().to_owned(),
            cel_k8s::to_json(&value),
        );
    }
    for v in spec["validations"].as_array().into_iter().flatten() {
        let expr = v["expression"].as_str().unwrap();
        match run(expr, &variables) {
            Ok(cel::objects::Value::Bool(true)) => {}
            Ok(_) => {
                let message = match v["messageExpression"].as_str() {
                    Some(m) => match run(m, &variables).unwrap() {
                        cel::objects::Value::String(s) => s.to_string(),
                        other => panic!("messageExpression gave {other:?}"),
                    },
                    None => v["message"].as_str().unwrap_or(expr).to_owned(),
                };
                return Err(message);
            }
            // failurePolicy: Fail.
            Err(e) => return Err(format!("{expr}: {e}")),
        }
    }
    Ok(())
}

/// The node-report policy, run with the same CEL interpreter as the CRD's rules: a node's
/// instance writes its own report; another node's report, a report naming another node, and
/// a token without the node claim are refused (unless the documented setting allows the
/// latter); other users are left alone.
#[test]
fn node_report_policy_keeps_each_node_to_its_own_report() {
    let docs = rendered();
    let policy = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .unwrap()
        .clone();
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicyBinding")
        .unwrap();
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert_eq!(
        binding["spec"]["paramRef"]["parameterNotFoundAction"],
        "Deny"
    );
    let param = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap" && d["metadata"]["name"] == binding["spec"]["paramRef"]["name"]
        })
        .expect("the binding's ConfigMap is rendered under the name it uses")
        .clone();
    assert_eq!(
        param["metadata"]["namespace"],
        binding["spec"]["paramRef"]["namespace"]
    );
    assert_eq!(
        param["data"]["allowWithoutNodeClaim"], "false",
        "fail closed by default"
    );
    let rules = &policy["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(rules["resources"], json!(["routenodereports"]));
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");

    let sa = "system:serviceaccount:ovn-kubernetes:ovnkube-route";
    let request = |user: &str, node: Option<&str>, op: &str, name: &str| {
        let mut extra = serde_json::Map::new();
        if let Some(n) = node {
            extra.insert("authentication.kubernetes.io/node-name".into(), json!([n]));
            extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                json!(["ovnkube-route-x"]),
            );
        }
        json!({"name": name, "operation": op, "userInfo": {"username": user, "extra": extra}})
    };
    let report = |name: &str, node: &str| json!({"apiVersion": "k8s.ovn.org/v1", "kind": "RouteNodeReport", "metadata": {"name": name}, "spec": {"node": node}});
    let ok = |r: Result<(), String>| r.unwrap();
    let refused = |r: Result<(), String>, want: &str| {
        let e = r.unwrap_err();
        assert!(e.contains(want), "{e}");
    };
    for op in ["CREATE", "UPDATE"] {
        // Own node.
        ok(admit(
            &policy,
            &request(sa, Some("node1"), op, "node1"),
            &report("node1", "node1"),
            &param,
        ));
        // Another node's report.
        refused(
            admit(
                &policy,
                &request(sa, Some("node1"), op, "node2"),
                &report("node2", "node2"),
                &param,
            ),
            "node node1 may write only its own RouteNodeReport, not node2",
        );
        // Its own name, another node inside.
        refused(
            admit(
                &policy,
                &request(sa, Some("node1"), op, "node1"),
                &report("node1", "node2"),
                &param,
            ),
            "node node1 may write only its own RouteNodeReport, not node1",
        );
        // No node claim: refused, unless the setting says so.
        refused(
            admit(
                &policy,
                &request(sa, None, op, "node1"),
                &report("node1", "node1"),
                &param,
            ),
            "carries no node",
        );
        let mut allow = param.clone();
        allow["data"]["allowWithoutNodeClaim"] = json!("true");
        ok(admit(
            &policy,
            &request(sa, None, op, "node2"),
            &report("node2", "node2"),
            &allow,
        ));
        // The claim still binds when the setting is on.
        refused(
            admit(
                &policy,
                &request(sa, Some("node1"), op, "node2"),
                &report("node2", "node2"),
                &allow,
            ),
            "not node2",
        );
        // Other users (an admin, the status writer of another tool) are left alone.
        ok(admit(
            &policy,
            &request("kubernetes-admin", None, op, "node2"),
            &report("node2", "node2"),
            &param,
        ));
        ok(admit(
            &policy,
            &request(
                "system:serviceaccount:other:ovnkube-route",
                Some("node1"),
                op,
                "node2",
            ),
            &report("node2", "node2"),
            &param,
        ));
    }
    // Delete: no object, the name decides.
    ok(admit(
        &policy,
        &request(sa, Some("node1"), "DELETE", "node1"),
        &Value::Null,
        &param,
    ));
    refused(
        admit(
            &policy,
            &request(sa, Some("node1"), "DELETE", "node2"),
            &Value::Null,
            &param,
        ),
        "not node2",
    );
}
