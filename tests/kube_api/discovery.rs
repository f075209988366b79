//! Discovery (`/api`, `/apis`, `/api/v1`, `/apis/G/V`), `/version` and the health paths.
//! The legacy (unaggregated) discovery documents are served; clients that ask for the
//! aggregated form first fall back to them, as against API servers before 1.26.
use std::collections::BTreeMap;

use axum::body::Body;
use hyper::{Method, Response};
use serde_json::{Value, json};

use super::Shared;
use super::errors::ApiError;
use super::http::{error_response, json_response};

pub fn handle(shared: &Shared, method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET {
        return error_response(&ApiError::method_not_allowed());
    }
    let db = shared.db.lock().expect("db lock");
    let types: Vec<_> = db.types.values().cloned().collect();
    drop(db);
    let p = path.trim_end_matches('/');
    match p {
        "/healthz" | "/readyz" | "/livez" => Response::new(Body::from("ok")),
        "/version" => json_response(
            200,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "kube-api-test-server", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        "/openapi/v3" => {
            // The OpenAPI v3 index: one document per group-version.
            let mut paths = serde_json::Map::new();
            for t in &types {
                let gv = if t.group.is_empty() {
                    format!("api/{}", t.version)
                } else {
                    format!("apis/{}/{}", t.group, t.version)
                };
                paths.insert(
                    gv.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", gv.len())}),
                );
            }
            json_response(200, &json!({"paths": paths}))
        }
        _ if p.starts_with("/openapi/v3/") => openapi_gv(&types, &p["/openapi/v3/".len()..]),
        "/api" => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}]}),
        ),
        "/apis" => {
            let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for t in types.iter().filter(|t| !t.group.is_empty()) {
                let v = groups.entry(t.group.clone()).or_default();
                if !v.contains(&t.version) {
                    v.push(t.version.clone());
                }
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(g, vs)| {
                    let versions: Vec<Value> = vs
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                        .collect();
                    json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                })
                .collect();
            json_response(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        _ => {
            let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
            let (group, version) = match segs.as_slice() {
                ["api", v] => ("", *v),
                ["apis", g, v] => (*g, *v),
                ["apis", g] => {
                    let versions: Vec<Value> = types
                        .iter()
                        .filter(|t| t.group == *g)
                        .map(|t| json!({"groupVersion": t.api_version(), "version": t.version}))
                        .collect();
                    if versions.is_empty() {
                        return error_response(&ApiError::no_route(path));
                    }
                    return json_response(
                        200,
                        &json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": versions, "preferredVersion": versions[0]}),
                    );
                }
                _ => return error_response(&ApiError::no_route(path)),
            };
            let mut resources = Vec::new();
            for t in types
                .iter()
                .filter(|t| t.group == group && t.version == version)
            {
                resources.push(json!({
                    "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
                    "kind": t.kind, "verbs": t.verbs(), "shortNames": t.short_names,
                }));
                if t.status_subresource {
                    resources.push(json!({
                        "name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced,
                        "kind": t.kind, "verbs": ["get", "patch", "update"],
                    }));
                }
            }
            if resources.is_empty() {
                return error_response(&ApiError::no_route(path));
            }
            let gv = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            json_response(
                200,
                &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
            )
        }
    }
}

/// The OpenAPI v3 document of one group-version: each kind's PATCH operation with the
/// `fieldValidation` parameter (how kubectl learns that the server validates fields itself,
/// so it sends `fieldValidation=Strict` instead of validating on the client).
fn openapi_gv(types: &[super::types::ResourceType], gv: &str) -> Response<Body> {
    let segs: Vec<&str> = gv.split('/').collect();
    let (group, version) = match segs.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return error_response(&ApiError::no_route(gv)),
    };
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": t.kind});
        let param = |n: &str| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        paths.insert(path, json!({
            "patch": {
                "operationId": format!("patch{}", t.kind),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation"), param("force")],
                "responses": {"200": {"description": "OK"}}
            }
        }));
        let mut schema = t.schema.as_deref().cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        let id = format!(
            "{}.{}.{}",
            if group.is_empty() {
                "io.k8s.api.core"
            } else {
                group
            },
            version,
            t.kind
        );
        schemas.insert(id, schema);
    }
    if paths.is_empty() {
        return error_response(&ApiError::no_route(gv));
    }
    json_response(
        200,
        &json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths,
            "components": {"schemas": schemas},
        }),
    )
}
