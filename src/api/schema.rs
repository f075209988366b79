//! Schema pieces the derives cannot say by themselves, and the CRD for older clusters.
//!
//! Owns: the schemas of fields whose items or inner fields carry bounds and rules (lists of
//! strings, the label selectors of `k8s-openapi`, which we cannot annotate), and
//! [`compat`]: the CRD without CEL rules for clusters before Kubernetes 1.31.
//! Must not: hold rule text (`api::rules`) or limits (`api::limits`).
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::generate::SchemaGenerator;
use schemars::{JsonSchema, Schema};
use serde_json::{Value, json};

use super::limits;
use super::rules::{self, AdmissionRule};

fn rules_json(rules: &[AdmissionRule]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| serde_json::to_value(kube::core::Rule::from(*r)).unwrap_or(Value::Null))
            .collect(),
    )
}

/// A list of strings, each at most `chars` long and checked by `rule`.
fn string_list(max_items: usize, chars: usize, rule: AdmissionRule, doc: &str) -> Schema {
    let mut s = json!({
        "type": "array",
        "maxItems": max_items,
        "items": {
            "type": "string",
            "maxLength": chars,
            "x-kubernetes-validations": rules_json(&[rule]),
        },
    });
    if !doc.is_empty() {
        s["description"] = json!(doc);
    }
    Schema::try_from(s).unwrap_or_default()
}

pub fn next_hops(_: &mut SchemaGenerator) -> Schema {
    string_list(
        limits::NEXT_HOPS,
        limits::ADDRESS_CHARS,
        rules::NEXT_HOP,
        "Reroute next hops for destinations sent over the OVN interface; several = ECMP.",
    )
}

pub fn exclude_pods(_: &mut SchemaGenerator) -> Schema {
    string_list(
        limits::EXCLUDES,
        limits::POD_REF_CHARS,
        rules::EXCLUDE_POD,
        "`namespace/name` of pods to leave alone.",
    )
}

pub fn exclude_namespaces(_: &mut SchemaGenerator) -> Schema {
    string_list(
        limits::EXCLUDES,
        limits::NAME_CHARS,
        rules::EXCLUDE_NAMESPACE,
        "Namespaces whose pods are left alone.",
    )
}

/// An optional metav1.LabelSelector with the bounds and rules of the selector at `at`.
fn selector(generator: &mut SchemaGenerator, at: &str, doc: &str) -> Schema {
    let mut s = LabelSelector::json_schema(generator);
    let [value, key_prefix, key_name, values, needs, takes_none] =
        *rules::selector_rules_at(at).expect("every selector field has its rules in api::rules");
    let Some(obj) = s.as_object_mut() else {
        return s;
    };
    obj.insert("nullable".into(), json!(true));
    if !doc.is_empty() {
        obj.insert("description".into(), json!(doc));
    }
    let props = &mut obj["properties"];
    let labels = &mut props["matchLabels"];
    labels["maxProperties"] = json!(limits::MATCH_LABELS);
    labels["additionalProperties"]["maxLength"] = json!(limits::LABEL_VALUE_CHARS);
    labels["additionalProperties"]["x-kubernetes-validations"] = rules_json(&[value]);
    let exprs = &mut props["matchExpressions"];
    exprs["maxItems"] = json!(limits::MATCH_EXPRESSIONS);
    let item = &mut exprs["items"];
    item["x-kubernetes-validations"] = rules_json(&[needs, takes_none]);
    let fields = &mut item["properties"];
    fields["key"]["maxLength"] = json!(limits::LABEL_KEY_CHARS);
    fields["key"]["x-kubernetes-validations"] = rules_json(&[key_prefix, key_name]);
    fields["operator"]["enum"] = json!(super::validate::selector::OPERATORS);
    fields["operator"]["maxLength"] = json!(limits::OPERATOR_CHARS);
    fields["values"]["maxItems"] = json!(limits::SELECTOR_VALUES);
    fields["values"]["items"]["maxLength"] = json!(limits::LABEL_VALUE_CHARS);
    fields["values"]["items"]["x-kubernetes-validations"] = rules_json(&[values]);
    s
}

pub fn pod_selector(g: &mut SchemaGenerator) -> Schema {
    selector(
        g,
        "spec.podSelector",
        "Selects pods by label. With no selection at all, the Route applies to every pod.",
    )
}

pub fn namespace_selector(g: &mut SchemaGenerator) -> Schema {
    selector(
        g,
        "spec.namespaceSelector",
        "Selects the namespaces whose pods the Route applies to.",
    )
}

pub fn exclude_pod_selector(g: &mut SchemaGenerator) -> Schema {
    selector(g, "spec.exclude.podSelector", "")
}

pub fn exclude_namespace_selector(g: &mut SchemaGenerator) -> Schema {
    selector(g, "spec.exclude.namespaceSelector", "")
}

pub fn hop_namespace_selector(g: &mut SchemaGenerator) -> Schema {
    selector(
        g,
        "spec.ovn.nextHopPods.namespaceSelector",
        "Namespaces of the gateway pods (required; `{}` is every namespace).",
    )
}

pub fn hop_pod_selector(g: &mut SchemaGenerator) -> Schema {
    selector(
        g,
        "spec.ovn.nextHopPods.podSelector",
        "The gateway pods in those namespaces (required; `{}` is every pod).",
    )
}

/// `ovn.bfd`: `true` / `false` or `{minTx, minRx, detectMult}`. A structural schema cannot
/// say "boolean or object", so the node keeps what is written and the controller checks it
/// (`InvalidBfd` in the Route's status).
pub fn bfd(_: &mut SchemaGenerator) -> Schema {
    Schema::try_from(json!({
        "description": "BFD to the next hops (static routes only): true, or the session timers {minTx, minRx, detectMult} (ms, ms, count).",
        "x-kubernetes-preserve-unknown-fields": true,
        "nullable": true,
    }))
    .unwrap_or_default()
}

/// `crd` for clusters before Kubernetes 1.31, whose CRDs cannot use the CEL IP/CIDR library:
/// every `x-kubernetes-validations` rule is dropped and the fields they checked get a
/// `pattern` instead ([`rules::COMPAT_PATTERNS`]), looser than the rules but never refusing
/// what the controller accepts. Lengths, item counts and enums stay. The controller's
/// validation still reports everything else (in the Route's status).
pub fn compat(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            strip_rules(root, "");
        }
    }
    crd
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn strip_rules(s: &mut JSONSchemaProps, path: &str) {
    s.x_kubernetes_validations = None;
    if let Some((_, pattern)) = rules::COMPAT_PATTERNS.iter().find(|(f, _)| *f == path) {
        s.pattern = Some((*pattern).to_owned());
    }
    if let Some(JSONSchemaPropsOrArray::Schema(item)) = s.items.as_mut() {
        strip_rules(item, &format!("{path}[]"));
    }
    if let Some(JSONSchemaPropsOrBool::Schema(value)) = s.additional_properties.as_mut() {
        strip_rules(value, &format!("{path}{{}}"));
    }
    for (name, prop) in s.properties.iter_mut().flatten() {
        strip_rules(prop, &join(path, name));
    }
}
