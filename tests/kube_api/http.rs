//! Request dispatch: discovery, the resource paths and their verbs, content negotiation.
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::errors::ApiError;
use super::store::{Obj, ObjKey, meta_str, obj_key};
use super::types::ResourceType;
use super::{Logged, Shared, handlers, watch};

/// A parsed resource request.
pub struct Target {
    pub ty: ResourceType,
    /// The namespace in the path (`None`: all namespaces, or cluster-scoped).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    pub fn key(&self, name: &str) -> ObjKey {
        (
            if self.ty.namespaced {
                self.namespace.clone().unwrap_or_default()
            } else {
                String::new()
            },
            name.to_owned(),
        )
    }
}

/// Query parameters, decoded.
pub type Query = Vec<(String, String)>;

pub fn q<'a>(query: &'a Query, k: &str) -> Option<&'a str> {
    query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_query(raw: Option<&str>) -> Query {
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("static response parts are valid")
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

/// Resolves `/api/v1/...` and `/apis/G/V/...` into a target.
fn parse_target(shared: &Shared, path: &str) -> Result<Option<Target>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Ok(None),
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let db = shared.db.lock().expect("db lock");
    let find = |plural: &str| {
        db.types
            .get(&(group.to_owned(), plural.to_owned()))
            .filter(|t| t.version == version)
            .cloned()
    };
    let target = |ty: ResourceType,
                  namespace: Option<String>,
                  name: Option<&&str>,
                  sub: Option<&&str>| Target {
        ty,
        namespace,
        name: name.map(|s| (*s).to_owned()),
        subresource: sub.map(|s| (*s).to_owned()),
    };
    // /namespaces/{ns}/{plural}/... is namespaced; /namespaces/{name}[/status] is a Namespace.
    if rest[0] == "namespaces" && rest.len() >= 3 && find(rest[2]).is_some_and(|t| t.namespaced) {
        let ty = find(rest[2]).expect("checked");
        return Ok(Some(target(
            ty,
            Some(rest[1].to_owned()),
            rest.get(3),
            rest.get(4),
        )));
    }
    match find(rest[0]) {
        Some(ty) => Ok(Some(target(ty, None, rest.get(1), rest.get(2)))),
        None => Err(ApiError::no_route(path)),
    }
}

/// The response format the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Table,
    Metadata,
}

fn format(accept: &str) -> Format {
    for part in accept.split(',') {
        if part.contains("as=Table") {
            return Format::Table;
        }
        if part.contains("as=PartialObjectMetadata") {
            return Format::Metadata;
        }
        if part.trim().starts_with("application/json") || part.trim() == "*/*" {
            return Format::Json;
        }
    }
    Format::Json
}

fn verb_of(method: &Method, t: &Target, query: &Query) -> &'static str {
    match (method.clone(), t.name.is_some()) {
        (Method::GET, true) => "get",
        (Method::GET, false) if q(query, "watch").is_some_and(|w| w == "1" || w == "true") => {
            "watch"
        }
        (Method::GET, false) => "list",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
}

async fn body_json(req: Request<Incoming>, content_type: &str) -> Result<Value, ApiError> {
    let bytes: Bytes = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?
        .to_bytes();
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    if content_type.contains("yaml") {
        serde_yaml_ng::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
    }
}

/// Handles one request (after faults and logging).
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query());
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let content_type = header("content-type");
    let accept = header("accept");
    let user_agent = header("user-agent");
    let mut logged = Logged {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        user_agent: user_agent.clone(),
        verb: String::new(),
        at: std::time::Instant::now(),
        group: String::new(),
        resource: String::new(),
        code: 0,
    };
    let response = match shared.fault_before(&path).await {
        Some(e) => error_response(&e),
        None => {
            let target = match parse_target(&shared, &path) {
                Ok(t) => t,
                Err(e) => {
                    logged.code = e.code;
                    shared.record(logged);
                    return error_response(&e);
                }
            };
            match target {
                None => super::discovery::handle(&shared, &method, &path),
                Some(t) => {
                    logged.verb = verb_of(&method, &t, &query).to_owned();
                    logged.group = t.ty.group.clone();
                    logged.resource = match &t.subresource {
                        Some(s) => format!("{}/{s}", t.ty.plural),
                        None => t.ty.plural.clone(),
                    };
                    let fmt = format(&accept);
                    match logged.verb.as_str() {
                        "watch" => watch::watch(&shared, &t, &query, fmt),
                        verb => {
                            let body = if matches!(
                                method,
                                Method::POST | Method::PUT | Method::PATCH | Method::DELETE
                            ) {
                                match body_json(req, &content_type).await {
                                    Ok(b) => b,
                                    Err(e) => {
                                        logged.code = e.code;
                                        shared.record(logged);
                                        return error_response(&e);
                                    }
                                }
                            } else {
                                Value::Null
                            };
                            let manager = q(&query, "fieldManager")
                                .map(str::to_owned)
                                .unwrap_or_else(|| {
                                    user_agent.split('/').next().unwrap_or("unknown").to_owned()
                                });
                            if verb == "list"
                                && fmt == Format::Json
                                && q(&query, "dryRun").is_none()
                            {
                                let r = handlers::list_json(&shared, &t, &query);
                                let response = match r {
                                    Ok(bytes) => Response::builder()
                                        .status(StatusCode::OK)
                                        .header("Content-Type", "application/json")
                                        .body(Body::from(bytes))
                                        .expect("static response parts are valid"),
                                    Err(e) => error_response(&e),
                                };
                                logged.code = response.status().as_u16();
                                shared.record(logged);
                                return response;
                            }
                            let r = handlers::resource(
                                &shared,
                                &t,
                                verb,
                                &query,
                                fmt,
                                body,
                                &content_type,
                                &manager,
                            );
                            match r {
                                Ok((code, v)) => json_response(code, &v),
                                Err(e) => error_response(&e),
                            }
                        }
                    }
                }
            }
        }
    };
    logged.code = response.status().as_u16();
    shared.record(logged);
    response
}

/// Names and namespace of an object in a request body must agree with the path.
pub fn check_identity(t: &Target, obj: &Obj, name: Option<&str>) -> Result<(), ApiError> {
    if let Some(ns) = meta_str(obj, "namespace")
        && t.ty.namespaced
        && t.namespace.as_deref().is_some_and(|p| p != ns)
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if let (Some(want), Some(got)) = (name, meta_str(obj, "name"))
        && want != got
    {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && av != t.ty.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            t.ty.api_version()
        )));
    }
    Ok(())
}

pub fn key_of(o: &Obj) -> ObjKey {
    obj_key(o)
}

pub fn status_ok(details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}
