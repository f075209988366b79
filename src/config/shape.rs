//! JSON documents -> typed objects: kind dispatch, Lists, Routes checked against the CRD
//! schema, and the short-form rule lists of the original design.
//!
//! Owns the shape of documents only. Must not judge rule contents (CIDRs, devices, target
//! kinds, conflicts): a `dst: "not-a-cidr"` loads and `api::validate` reports it.
use std::collections::BTreeMap;

use k8s_openapi::Resource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Documents;
use super::error::{ConfigError, Location};
use crate::api::crd::{SchemaViolation, ViolationKind, check_document, route_schema};
use crate::api::quote::{bounded, quote};
use crate::api::{Route, RouteRule, SvcRule};

/// Lists inside lists deeper than this are refused (a `List` of `List`s is already odd).
const MAX_LIST_DEPTH: usize = 4;

/// Accumulates objects from every document of every file, remembering where each came from
/// so duplicates can point at the first definition.
pub(crate) struct Shaper {
    pub documents: Documents,
    pub errors: Vec<ConfigError>,
    /// (kind, namespace, name) -> where it is first defined.
    pub seen: BTreeMap<(String, String, String), Location>,
    schema: &'static k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
}

/// Short-form rules of one file, collected into one Route named after the file.
#[derive(Default)]
pub(crate) struct FileRules {
    pub route: Vec<RouteRule>,
    pub svc: Vec<SvcRule>,
    pub first: Option<Location>,
}

impl Shaper {
    pub fn new() -> Self {
        Shaper {
            documents: Documents::default(),
            errors: Vec::new(),
            seen: BTreeMap::new(),
            schema: route_schema(),
        }
    }

    /// One top-level document: an object, a list of objects and / or short-form rules, or
    /// a single short-form rule.
    pub fn document(&mut self, value: Value, at: &Location, rules: &mut FileRules) {
        match value {
            Value::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    self.item(item, &at.with_item(i), rules, 0);
                }
            }
            other => self.item(other, at, rules, 0),
        }
    }

    fn item(&mut self, value: Value, at: &Location, rules: &mut FileRules, depth: usize) {
        let Value::Object(map) = value else {
            return self.errors.push(ConfigError::Shape {
                at: at.clone(),
                message: format!(
                    "expected a Kubernetes object (apiVersion, kind, metadata) or a rule \
                     ({{route|svc, dev}}), found {}",
                    type_name(&value)
                ),
            });
        };
        if !map.contains_key("kind") && !map.contains_key("apiVersion") {
            if ["route", "svc", "dst"].iter().any(|k| map.contains_key(*k)) {
                return self.rule(map, at, rules);
            }
            let keys: Vec<String> = map.keys().map(|k| quote(k)).take(5).collect();
            return self.errors.push(ConfigError::Shape {
                at: at.clone(),
                message: format!(
                    "neither a Kubernetes object (no apiVersion/kind) nor a rule (no route/svc \
                     key); keys: {}",
                    keys.join(", ")
                ),
            });
        }
        let api_version = str_field(&map, "apiVersion");
        let kind = str_field(&map, "kind");
        if kind.ends_with("List") && map.contains_key("items") {
            return self.list(map, at, rules, depth, &api_version, &kind);
        }
        let value = Value::Object(map);
        match (api_version.as_str(), kind.as_str()) {
            ("k8s.ovn.org/v1", "Route") => self.route(value, at),
            ("v1", "Pod") => self.object(value, at, |d, o| d.pods.push(o)),
            ("v1", "Service") => self.object(value, at, |d, o| d.services.push(o)),
            ("v1", "Namespace") => self.object(value, at, |d, o| d.namespaces.push(o)),
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                self.object(value, at, |d, o| d.endpoint_slices.push(o))
            }
            ("apps/v1", "Deployment") => self.object(value, at, |d, o| d.deployments.push(o)),
            ("apps/v1", "ReplicaSet") => self.object(value, at, |d, o| d.replica_sets.push(o)),
            ("apps/v1", "DaemonSet") => self.object(value, at, |d, o| d.daemon_sets.push(o)),
            ("apps/v1", "StatefulSet") => self.object(value, at, |d, o| d.stateful_sets.push(o)),
            ("batch/v1", "Job") => self.object(value, at, |d, o| d.jobs.push(o)),
            ("batch/v1", "CronJob") => self.object(value, at, |d, o| d.cron_jobs.push(o)),
            _ => self.errors.push(ConfigError::UnknownKind {
                at: at.clone(),
                api_version,
                kind,
            }),
        }
    }

    /// `kind: List` (what `kubectl get -o yaml` prints) or a typed `PodList`, whose items
    /// may omit apiVersion / kind as API list responses do.
    fn list(
        &mut self,
        mut map: Map<String, Value>,
        at: &Location,
        rules: &mut FileRules,
        depth: usize,
        api_version: &str,
        kind: &str,
    ) {
        if depth >= MAX_LIST_DEPTH {
            return self.errors.push(ConfigError::Shape {
                at: at.clone(),
                message: format!("lists nested deeper than {MAX_LIST_DEPTH} levels"),
            });
        }
        let Some(Value::Array(items)) = map.remove("items") else {
            return self.errors.push(ConfigError::Shape {
                at: at.clone(),
                message: format!("{kind}: items must be a list"),
            });
        };
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
        for (i, mut item) in items.into_iter().enumerate() {
            let at = at.with_item(i);
            if let (Value::Object(m), Some(item_kind)) = (&mut item, item_kind) {
                m.entry("apiVersion")
                    .or_insert_with(|| Value::String(api_version.to_string()));
                m.entry("kind")
                    .or_insert_with(|| Value::String(item_kind.to_string()));
            }
            self.item(item, &at, rules, depth + 1);
        }
    }

    fn route(&mut self, mut value: Value, at: &Location) {
        strip_nulls(&mut value);
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Value::Object(m) = &mut value {
            // The CRD defaults spec to {} (a seed-valid Route may have none).
            m.entry("spec").or_insert_with(|| Value::Object(Map::new()));
            if let Some(Value::Object(meta)) = m.get_mut("metadata") {
                // Cluster-scoped: the API server ignores a namespace here, so do we.
                meta.remove("namespace");
            }
        }
        let mut violations = check_document(self.schema, &value);
        match name.as_deref() {
            None => violations.insert(
                0,
                SchemaViolation {
                    path: "metadata.name".into(),
                    kind: ViolationKind::Missing,
                },
            ),
            Some(n) if !is_dns_subdomain(n) => violations.insert(
                0,
                SchemaViolation {
                    path: "metadata.name".into(),
                    kind: ViolationKind::WrongType {
                        expected: "a DNS subdomain (lowercase a-z, 0-9, '-', '.'; at most 253)",
                        found: "string",
                    },
                },
            ),
            Some(_) => {}
        }
        if !violations.is_empty() {
            return self.errors.push(ConfigError::RouteSchema {
                at: at.clone(),
                name,
                violations,
            });
        }
        match serde_json::from_value::<Route>(value) {
            Ok(route) => self.add(at, "Route", None, name.unwrap_or_default(), |d| {
                d.routes.push(route)
            }),
            Err(e) => self.errors.push(ConfigError::Object {
                at: at.clone(),
                kind: "Route".into(),
                name,
                message: bounded(e.to_string()),
            }),
        }
    }

    fn object<K>(&mut self, value: Value, at: &Location, push: impl FnOnce(&mut Documents, K))
    where
        K: DeserializeOwned + k8s_openapi::Metadata<Ty = ObjectMeta> + Resource,
    {
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let error = |message: String| ConfigError::Object {
            at: at.clone(),
            kind: K::KIND.to_string(),
            name: name.clone(),
            message,
        };
        let mut obj = match serde_json::from_value::<K>(value) {
            Ok(o) => o,
            Err(e) => return self.errors.push(error(bounded(e.to_string()))),
        };
        let Some(obj_name) = name.clone().filter(|n| !n.is_empty()) else {
            return self.errors.push(error("metadata.name is missing".into()));
        };
        let namespaced = K::KIND != "Namespace";
        let meta = obj.metadata_mut();
        let namespace = if namespaced {
            // As `kubectl apply` does for a namespaced object without one.
            Some(
                meta.namespace
                    .get_or_insert_with(|| "default".to_string())
                    .clone(),
            )
        } else {
            meta.namespace = None;
            None
        };
        self.add(at, K::KIND, namespace, obj_name, |d| push(d, obj));
    }

    fn add(
        &mut self,
        at: &Location,
        kind: &str,
        namespace: Option<String>,
        name: String,
        push: impl FnOnce(&mut Documents),
    ) {
        let key = (
            kind.to_string(),
            namespace.clone().unwrap_or_default(),
            name,
        );
        if let Some(first) = self.seen.get(&key) {
            if kind == "Route" {
                // Ambiguous: which one the user meant is unknown, so neither is planned.
                self.documents
                    .routes
                    .retain(|r| r.metadata.name.as_deref() != Some(key.2.as_str()));
            }
            let name = match namespace {
                Some(ns) => format!("{ns}/{}", key.2),
                None => key.2.clone(),
            };
            return self.errors.push(ConfigError::Duplicate {
                at: at.clone(),
                kind: kind.to_string(),
                name,
                first: first.clone(),
            });
        }
        self.seen.insert(key, at.clone());
        push(&mut self.documents);
    }

    fn rule(&mut self, map: Map<String, Value>, at: &Location, rules: &mut FileRules) {
        match short_rule(map) {
            Ok(Rule::Route(r)) => rules.route.push(r),
            Ok(Rule::Svc(s)) => rules.svc.push(s),
            Err(message) => {
                return self.errors.push(ConfigError::Rule {
                    at: at.clone(),
                    message,
                });
            }
        }
        rules.first.get_or_insert_with(|| at.clone());
    }

    /// Turns a file's short-form rules into one Route that applies to every pod (the
    /// original design's default), named after the file.
    pub fn file_rules(&mut self, rules: FileRules, route_name: String) {
        let Some(at) = rules.first else { return };
        let mut route = Route::new(
            &route_name,
            crate::api::RouteSpec {
                route: rules.route,
                svc: rules.svc,
                ..Default::default()
            },
        );
        route.metadata.annotations = Some(BTreeMap::from([(
            SOURCE_ANNOTATION.to_string(),
            at.file.display().to_string(),
        )]));
        self.add(&at, "Route", None, route_name, |d| d.routes.push(route));
    }
}

/// Set on a Route built from a file's short-form rules: the file it came from.
pub const SOURCE_ANNOTATION: &str = "ovnkube-route.k8s.ovn.org/source-file";

enum Rule {
    Route(RouteRule),
    Svc(SvcRule),
}

/// `{"route": CIDR, "dev": IF, "via"?: GW}`, `{"dst": CIDR, "dev": IF, "via"?: GW}` or
/// `{"svc": "namespace/name", "dev": IF, "via"?: GW}`.
fn short_rule(mut map: Map<String, Value>) -> Result<Rule, String> {
    let present: Vec<&'static str> = ["route", "dst", "svc"]
        .into_iter()
        .filter(|k| map.contains_key(*k))
        .collect();
    let mut take = |key: &str, required: bool| -> Result<Option<String>, String> {
        match map.remove(key) {
            None | Some(Value::Null) if required => {
                Err(format!("{key}: required field is missing"))
            }
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!(
                "{key}: expected string, found {}",
                type_name(&other)
            )),
        }
    };
    if present.len() > 1 {
        return Err(format!(
            "a rule has exactly one of route / dst / svc, found {present:?}"
        ));
    }
    let rule = match present.first().copied() {
        Some("svc") => {
            let svc = take("svc", true)?.unwrap_or_default();
            let (namespace, name) = match svc.split_once('/') {
                Some((ns, n)) if !ns.is_empty() && !n.is_empty() && !n.contains('/') => (ns, n),
                _ => return Err(format!("svc: {} is not \"namespace/name\"", quote(&svc))),
            };
            Rule::Svc(SvcRule {
                namespace: namespace.to_string(),
                name: name.to_string(),
                dev: take("dev", true)?.unwrap_or_default(),
                via: take("via", false)?,
            })
        }
        Some(key) => Rule::Route(RouteRule {
            dst: take(key, true)?.unwrap_or_default(),
            dev: take("dev", true)?.unwrap_or_default(),
            via: take("via", false)?,
        }),
        None => return Err("a rule needs route, dst or svc".into()),
    };
    if let Some(unknown) = map.keys().next() {
        return Err(format!(
            "{unknown}: unknown field (a rule has route|svc, dev and optional via)"
        ));
    }
    Ok(rule)
}

/// Route name for a file's short-form rules: the file name without its extension,
/// lowercased, every character outside `a-z 0-9 . -` replaced by `-`, trimmed to start
/// and end with a letter or digit (`cr-config.yaml` -> `cr-config`, `My_Rules.JSON` ->
/// `my-rules`); `rules` when nothing is left.
pub fn route_name_for_file(path: &std::path::Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mapped: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name: String = mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(253)
        .collect();
    name = name
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if name.is_empty() {
        "rules".to_string()
    } else {
        name
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn str_field(map: &Map<String, Value>, key: &str) -> String {
    match map.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Drops null-valued fields, as the API server prunes them before validation: for our
/// types a null means the same as an absent field.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
