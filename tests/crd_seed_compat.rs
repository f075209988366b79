//! Every CR valid under the original (seed) CRD stays valid under the generated one and
//! reads back with the same meaning; extended CRs validate; broken ones are caught with a path.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use ovnkube_route::api::crd::{SchemaViolation, ViolationKind, check_document, route_schema};
use ovnkube_route::api::{Route, RouteRule, SvcRule};
use proptest::prelude::*;
use serde_json::{Value, json};

const SEED_CRD: &str = include_str!("corpus/seed/seed-crd.yaml");
const SEED_DEMO: &str = include_str!("corpus/seed/seed-demo.yaml");

fn seed_schema() -> JSONSchemaProps {
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(SEED_CRD).unwrap();
    crd.spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap()
}

fn yaml(s: &str) -> Value {
    serde_yaml_ng::from_str(s).unwrap()
}

fn paths(v: &[SchemaViolation]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

#[test]
fn seed_demo_is_valid_and_means_the_same() {
    let demo = yaml(SEED_DEMO);
    assert_eq!(
        paths(&check_document(route_schema(), &demo)),
        Vec::<String>::new()
    );
    let route: Route = serde_json::from_value(demo).unwrap();
    assert_eq!(route.metadata.name.as_deref(), Some("demo"));
    assert_eq!(
        route.spec.route,
        vec![
            RouteRule {
                dst: "172.16.10.0/24".into(),
                dev: "eth1".into(),
                via: None
            },
            RouteRule {
                dst: "172.16.11.0/24".into(),
                dev: "eth0".into(),
                via: None
            },
        ]
    );
    let svc = |ns: &str, name: &str, dev: &str| SvcRule {
        namespace: ns.into(),
        name: name.into(),
        dev: dev.into(),
        via: None,
    };
    assert_eq!(
        route.spec.svc,
        vec![
            svc("default", "nginx", "eth1"),
            svc("kube-system", "nginx1", "eth0"),
            svc("kube-system", "nginx2", "eth0")
        ]
    );
}

/// The seed's own schema marked `svc[].via` required although its Go type said optional,
/// so its own demo did not validate under it; ours accepts it.
#[test]
fn seed_schema_rejected_its_own_demo_for_missing_via() {
    let v = check_document(&seed_schema(), &yaml(SEED_DEMO));
    assert_eq!(
        paths(&v),
        vec![
            "spec.svc[0].via: required field is missing",
            "spec.svc[1].via: required field is missing",
            "spec.svc[2].via: required field is missing",
        ]
    );
}

#[test]
fn extended_routes_validate() {
    for doc in [
        r#"{"apiVersion":"k8s.ovn.org/v1","kind":"Route","metadata":{"name":"by-deploy"},
            "spec":{"targets":[{"kind":"Deployment","namespace":"default","name":"web"},
                               {"kind":"Namespace","name":"batch"}],
                    "route":[{"dst":"172.16.10.0/24","dev":"eth1","via":"10.124.0.1"}],
                    "exclude":{"pods":["default/web-0"],"namespaces":["kube-system"],
                               "podSelector":{"matchLabels":{"route":"off"}}},
                    "priority":10}}"#,
        r#"{"apiVersion":"k8s.ovn.org/v1","kind":"Route","metadata":{"name":"ecmp"},
            "spec":{"podSelector":{"matchExpressions":[{"key":"tier","operator":"In","values":["fast"]}]},
                    "namespaceSelector":{"matchLabels":{"team":"a"}},
                    "route":[{"dst":"fd00:10::/64","dev":"eth1"}],
                    "ovn":{"router":"ovn_cluster_router","nextHops":["100.64.0.2","100.64.0.3"],
                           "bfd":true,"enforce":true},
                    "defaultRoute":{"dev":"eth1"},
                    "feature_gate":{"anything":"goes"}},
            "status":{"status":"Applied","observedGeneration":3,"selectedPods":2,"programmedPods":2,
                      "conditions":[{"type":"Ready","status":"True","reason":"Applied","message":"",
                                     "lastTransitionTime":"2026-01-01T00:00:00Z"}],
                      "problems":[{"path":"spec.route[0].dst","reason":"InvalidCIDR","message":"x"}]}}"#,
        // A Route with no spec at all was valid under the seed (spec,omitempty).
        r#"{"apiVersion":"k8s.ovn.org/v1","kind":"Route","metadata":{"name":"empty"}}"#,
        // Nulls are pruned by the server before validation.
        r#"{"apiVersion":"k8s.ovn.org/v1","kind":"Route","metadata":{"name":"nulls"},
            "spec":{"route":null,"svc":[{"namespace":"a","name":"b","dev":"eth0","via":null}],"feature_gate":null}}"#,
    ] {
        let v: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(
            paths(&check_document(route_schema(), &v)),
            Vec::<String>::new(),
            "{doc}"
        );
    }
}

#[test]
fn broken_routes_are_reported_with_paths() {
    let doc = json!({"apiVersion":"k8s.ovn.org/v1","kind":"Route","metadata":{"name":"bad"},
        "spec":{"route":[{"dst":"1.2.3.0/24"},{"dst":7,"dev":"eth0"}],
                "svc":{"namespace":"a"},
                "podSelecter":{"matchLabels":{"a":"b"}},
                "priority":4294967296i64,
                "feature_gate":{"x":1},
                "ovn":{"enforce":"yes","nextHops":"100.64.0.2"}}});
    let got = paths(&check_document(route_schema(), &doc));
    for want in [
        "spec.route[0].dev: required field is missing",
        "spec.route[1].dst: expected string, found integer",
        "spec.svc: expected array, found object",
        "spec.podSelecter: unknown field",
        "spec.priority: 4294967296 is not a valid int32",
        "spec.feature_gate.x: expected string, found integer",
        "spec.ovn.enforce: expected boolean, found string",
        "spec.ovn.nextHops: expected array, found string",
    ] {
        assert!(
            got.iter().any(|g| g == want),
            "missing {want:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), 8, "{got:#?}");
    let float = json!({"spec": {"priority": 1.5}});
    let v = check_document(route_schema(), &float);
    assert!(
        matches!(v[0].kind, ViolationKind::OutOfRange { .. }),
        "{v:?}"
    );
}

fn seed_rule() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9./:]{0,20}",
        "[a-z0-9]{0,6}",
        prop::option::of(prop::option::of("[0-9.]{0,15}")),
    )
        .prop_map(|(dst, dev, via)| {
            let mut m = json!({"dst": dst, "dev": dev});
            match via {
                Some(Some(v)) => m["via"] = json!(v),
                // The Go type had no omitempty: clients wrote `via: ""`.
                Some(None) => m["via"] = json!(""),
                None => {}
            }
            m
        })
}

fn seed_svc() -> impl Strategy<Value = Value> {
    (
        "[a-z-]{0,10}",
        "[a-z0-9-]{0,10}",
        "[a-z0-9]{0,6}",
        "[0-9.]{0,15}",
    )
        .prop_map(
            |(ns, name, dev, via)| json!({"namespace": ns, "name": name, "dev": dev, "via": via}),
        )
}

fn seed_cr() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(seed_rule(), 0..5),
        prop::collection::vec(seed_svc(), 0..5),
        prop::option::of(prop::collection::btree_map(
            "[a-z_]{1,8}",
            "[a-z0-9]{0,8}",
            0..4,
        )),
        prop::option::of("(Applied|Pending|)"),
    )
        .prop_map(|(route, svc, gate, status)| {
            let mut spec = json!({"route": route, "svc": svc});
            if let Some(g) = gate {
                spec["feature_gate"] = json!(g);
            }
            let mut cr = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route",
                                "metadata": {"name": "seed"}, "spec": spec});
            if let Some(s) = status {
                cr["status"] = json!({"status": s});
            }
            cr
        })
}

proptest! {
    /// Any CR the seed CRD accepts, ours accepts, and the typed Route holds the same values.
    #[test]
    fn seed_valid_crs_stay_valid_and_keep_their_meaning(cr in seed_cr()) {
        prop_assert!(check_document(&seed_schema(), &cr).is_empty());
        let ours = check_document(route_schema(), &cr);
        prop_assert!(ours.is_empty(), "{:?}", ours);
        let route: Route = serde_json::from_value(cr.clone()).unwrap();
        let spec = &cr["spec"];
        let rules = spec["route"].as_array().unwrap();
        prop_assert_eq!(route.spec.route.len(), rules.len());
        for (r, v) in route.spec.route.iter().zip(rules) {
            prop_assert_eq!(&r.dst, v["dst"].as_str().unwrap());
            prop_assert_eq!(&r.dev, v["dev"].as_str().unwrap());
            prop_assert_eq!(r.via.as_deref(), v.get("via").and_then(Value::as_str));
        }
        let svcs = spec["svc"].as_array().unwrap();
        prop_assert_eq!(route.spec.svc.len(), svcs.len());
        for (s, v) in route.spec.svc.iter().zip(svcs) {
            prop_assert_eq!(&s.namespace, v["namespace"].as_str().unwrap());
            prop_assert_eq!(&s.name, v["name"].as_str().unwrap());
            prop_assert_eq!(s.via.as_deref(), v["via"].as_str());
        }
        let gate: std::collections::BTreeMap<String, String> =
            spec.get("feature_gate").map(|g| serde_json::from_value(g.clone()).unwrap()).unwrap_or_default();
        prop_assert_eq!(&route.spec.feature_gate, &gate);
        prop_assert_eq!(
            route.status.and_then(|s| s.status),
            cr.get("status").and_then(|s| s["status"].as_str()).map(str::to_string)
        );
    }
}

/// What the typed Route serializes (every field set) is exactly what the CRD accepts, so
/// status patches and examples written from the types never hit pruned or rejected fields.
#[test]
fn a_fully_populated_route_serializes_into_the_schema() {
    let full = json!({"apiVersion":"k8s.ovn.org/v1","kind":"Route","metadata":{"name":"full"},
        "spec":{"route":[{"dst":"1.0.0.0/8","dev":"eth1","via":"10.0.0.1"}],
                "svc":[{"namespace":"a","name":"b","dev":"eth0","via":"192.168.0.1"}],
                "feature_gate":{"k":"v"},
                "podSelector":{"matchLabels":{"a":"b"},"matchExpressions":[{"key":"k","operator":"Exists"}]},
                "namespaceSelector":{"matchLabels":{"c":"d"}},
                "targets":[{"kind":"Pod","namespace":"a","name":"p"}],
                "exclude":{"pods":["a/p"],"namespaces":["n"],"podSelector":{},"namespaceSelector":{}},
                "defaultRoute":{"dev":"eth1","via":"10.0.0.1"},
                "priority":-5,
                "ovn":{"router":"r","nextHops":["100.64.0.2"],"bfd":false,"enforce":true}},
        "status":{"status":"Degraded","observedGeneration":2,
                  "conditions":[{"type":"Ready","status":"False","reason":"Conflict","message":"m",
                                 "lastTransitionTime":"2026-01-01T00:00:00Z","observedGeneration":2}],
                  "selectedPods":3,"programmedPods":1,"skippedPods":1,"failedPods":1,
                  "problems":[{"path":"spec.route[0]","pod":"a/p","reason":"Conflict","message":"m"}]}});
    let route: Route = serde_json::from_value(full.clone()).unwrap();
    let back = serde_json::to_value(&route).unwrap();
    assert_eq!(
        back, full,
        "every field must survive a round trip through the types"
    );
    assert_eq!(
        paths(&check_document(route_schema(), &back)),
        Vec::<String>::new()
    );
}
