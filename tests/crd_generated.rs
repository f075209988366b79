//! `deploy/crd.yaml` is exactly `ovnkube-route crd`'s output, and the generated CRD keeps
//! the names, scope, version flags and printer column of the original CRD.
//!
//! `UPDATE_GENERATED=1 cargo test --test crd_generated` rewrites a stale `deploy/crd.yaml`.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrBool,
};
use ovnkube_route::api::crd::{check_structural, crd, crd_yaml, route_schema};

fn deploy_crd_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd.yaml")
}

#[test]
fn deploy_crd_yaml_is_the_generated_crd() {
    let path = deploy_crd_path();
    let want = crd_yaml();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == want {
        return;
    }
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &want).unwrap();
        eprintln!("rewrote {}", path.display());
        return;
    }
    let first_diff = have
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .map(|i| i + 1)
        .unwrap_or_else(|| have.lines().count().min(want.lines().count()) + 1);
    panic!(
        "{} is stale (first difference at line {first_diff}); the Route types changed.\n\
         Regenerate it with: UPDATE_GENERATED=1 cargo test --test crd_generated\n\
         (or: cargo run -- crd > deploy/crd.yaml)",
        path.display()
    );
}

#[test]
fn deploy_crd_yaml_parses_back_to_the_same_crd() {
    let parsed: CustomResourceDefinition = serde_yaml_ng::from_str(&crd_yaml()).unwrap();
    assert_eq!(parsed, crd());
}

#[test]
fn names_scope_and_versions_match_the_original_crd() {
    let crd = crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("routes.k8s.ovn.org"));
    assert_eq!(crd.spec.group, "k8s.ovn.org");
    assert_eq!(crd.spec.names.kind, "Route");
    assert_eq!(crd.spec.names.list_kind.as_deref(), Some("RouteList"));
    assert_eq!(crd.spec.names.plural, "routes");
    assert_eq!(crd.spec.names.singular.as_deref(), Some("route"));
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.versions.len(), 1);
    let v1 = &crd.spec.versions[0];
    assert_eq!(v1.name, "v1");
    assert!(
        v1.served && v1.storage,
        "v1 must be served and the storage version"
    );
    let subresources = v1.subresources.as_ref().expect("subresources");
    assert!(
        subresources.status.is_some(),
        "status subresource is missing"
    );
    let columns = v1
        .additional_printer_columns
        .as_ref()
        .expect("printer columns");
    let status_col = columns
        .iter()
        .find(|c| c.name == "Route Status")
        .expect("printer column \"Route Status\"");
    assert_eq!(status_col.json_path, ".status.status");
    assert_eq!(status_col.type_, "string");
    assert_eq!(
        status_col.priority, None,
        "Route Status must show in the default view"
    );
}

fn prop<'a>(s: &'a JSONSchemaProps, name: &str) -> &'a JSONSchemaProps {
    s.properties
        .as_ref()
        .and_then(|p| p.get(name))
        .unwrap_or_else(|| panic!("schema has no property {name:?}"))
}

fn items(s: &JSONSchemaProps) -> &JSONSchemaProps {
    match &s.items {
        Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(i)) => i,
        other => panic!("expected a single items schema, got {other:?}"),
    }
}

fn required(s: &JSONSchemaProps) -> Vec<&str> {
    s.required.iter().flatten().map(String::as_str).collect()
}

#[test]
fn route_svc_via_and_spec_are_optional() {
    let root = route_schema().clone();
    assert!(
        !required(&root).contains(&"spec"),
        "spec must stay optional"
    );
    let spec = prop(&root, "spec");
    assert_eq!(
        spec.default.as_ref().map(|d| &d.0),
        Some(&serde_json::json!({}))
    );
    assert!(
        required(spec).is_empty(),
        "spec fields must all be optional: {:?}",
        required(spec)
    );
    let route_item = items(prop(spec, "route"));
    assert_eq!(required(route_item), vec!["dev", "dst"]);
    let svc_item = items(prop(spec, "svc"));
    let mut svc_req = required(svc_item);
    svc_req.sort();
    assert_eq!(
        svc_req,
        vec!["dev", "name", "namespace"],
        "svc.via must be optional"
    );
}

#[test]
fn feature_gate_stays_a_string_map() {
    let spec = prop(route_schema(), "spec").clone();
    let gate = prop(&spec, "feature_gate");
    assert_eq!(gate.type_.as_deref(), Some("object"));
    assert!(gate.properties.is_none());
    match &gate.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(v)) => assert_eq!(v.type_.as_deref(), Some("string")),
        other => panic!("feature_gate must be map<string,string>, got {other:?}"),
    }
}

#[test]
fn schema_is_structural() {
    let problems = check_structural(route_schema());
    assert!(
        problems.is_empty(),
        "not a structural schema:\n{}",
        problems.join("\n")
    );
    // LabelSelector and Condition come from k8s-openapi: make sure they were inlined.
    let yaml = crd_yaml();
    assert!(!yaml.contains("$ref"), "generated CRD contains $ref");
    assert!(!yaml.contains("$defs") && !yaml.contains("definitions"));
}

#[test]
fn the_spec_default_validates_against_the_spec_schema() {
    let root = route_schema().clone();
    let spec = prop(&root, "spec");
    let doc = serde_json::json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route",
        "metadata": {"name": "x"}, "spec": spec.default.as_ref().unwrap().0});
    assert!(ovnkube_route::api::crd::check_document(&root, &doc).is_empty());
}

#[test]
fn structural_checker_catches_what_the_api_server_refuses() {
    let bad: JSONSchemaProps = serde_json::from_value(serde_json::json!({
        "type": "object",
        "required": ["gone"],
        "properties": {
            "a": {"$ref": "#/definitions/A"},
            "b": {"type": "array"},
            "c": {"type": "object", "properties": {"x": {"type": "string"}},
                  "additionalProperties": {"type": "string"}},
            "d": {"type": "integer", "format": "int16"},
            "e": {"anyOf": [{"type": "string"}]},
        }
    }))
    .unwrap();
    let problems = check_structural(&bad).join("\n");
    for needle in [
        "<root>.a: type is missing",
        "<root>.a: $ref is not allowed",
        "<root>.b: array without items",
        "<root>.c: properties and additionalProperties are exclusive",
        "<root>.d: unknown format \"int16\"",
        "<root>.e: anyOf",
        "required field \"gone\" is not a property",
    ] {
        assert!(
            problems.contains(needle),
            "missing {needle:?} in:\n{problems}"
        );
    }
}

#[test]
fn deploy_node_report_crd_is_the_generated_crd() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd-nodereport.yaml");
    let want = ovnkube_route::api::node_report_crd_yaml();
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want && std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    assert!(
        have == want,
        "{} is stale; regenerate it with: UPDATE_GENERATED=1 cargo test --test crd_generated \
         (or: cargo run -- crd --node-report > deploy/crd-nodereport.yaml)",
        path.display()
    );
    let crd = ovnkube_route::api::node_report_crd();
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.names.plural, "routenodereports");
    assert!(
        check_structural(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap()
        )
        .is_empty()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovnkube-route"))
        .args(["crd", "--node-report"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
}
