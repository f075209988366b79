//! The verbs on a resource: get, list (selectors, pagination, resourceVersion semantics),
//! create, update (optimistic concurrency), patch (merge, JSON, strategic, apply), delete,
//! each with the status subresource's split of what may change.
use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use super::Shared;
use super::errors::ApiError;
use super::fields::{apply, track_update};
use super::http::{Format, Query, Target, check_identity, q, status_ok};
use super::patch::{json_patch, merge_patch, strategic_merge_patch};
use super::schema;
use super::select::{FieldSelector, LabelSelector};
use super::store::{Db, Obj, ObjKey, obj_key};
use super::table::{partial_object, table};
use super::types::{ResourceType, from_crd};

type Reply = Result<(u16, Value), ApiError>;

#[allow(clippy::too_many_arguments)]
pub fn resource(
    shared: &Shared,
    t: &Target,
    verb: &str,
    query: &Query,
    fmt: Format,
    body: Value,
    content_type: &str,
    manager: &str,
) -> Reply {
    let mut stored = shared.db.lock().expect("db lock");
    // `dryRun=All`: the whole request (defaulting, validation, admission) on a copy.
    let mut scratch;
    let db: &mut Db = match q(query, "dryRun") {
        Some("All") => {
            scratch = stored.scratch();
            &mut scratch
        }
        Some(other) if !other.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}"
            )));
        }
        _ => &mut stored,
    };
    match verb {
        "get" => get(db, t, query, fmt),
        "list" => list(db, t, query, fmt),
        "create" => create(db, t, query, body, manager),
        "update" => update(db, t, query, body, manager),
        "patch" => patch(db, t, query, body, content_type, manager),
        "delete" => delete(db, t),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn one(t: &ResourceType, o: &Obj, fmt: Format, query: &Query) -> Value {
    match fmt {
        Format::Table => {
            let rv = o
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            table(t, &[o], rv, q(query, "includeObject").unwrap_or("Metadata"))
        }
        Format::Metadata => partial_object(o),
        Format::Json => o.clone(),
    }
}

fn get(db: &Db, t: &Target, query: &Query, fmt: Format) -> Reply {
    let name = t.name.as_deref().unwrap_or_default();
    if t.subresource.as_deref().is_some_and(|s| s != "status") {
        return Err(ApiError::method_not_allowed());
    }
    let o = db
        .get(&t.ty.key(), &t.key(name))
        .ok_or_else(|| ApiError::not_found(&t.ty, name))?;
    Ok((200, one(&t.ty, &o, fmt, query)))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: u64,
    after: (String, String),
}

/// Objects, the resourceVersion of their snapshot, and the continue token of the next page.
pub type Page = (Vec<Arc<Obj>>, u64, Option<String>);

/// Objects matching the request, at the snapshot it asks for.
pub fn select(db: &Db, t: &Target, query: &Query) -> Result<Page, ApiError> {
    let labels = LabelSelector::parse(q(query, "labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(q(query, "fieldSelector").unwrap_or_default(), &t.ty)?;
    let token = match q(query, "continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(c)
                .map_err(|_| ApiError::bad_request("invalid continue token"))?;
            let tok: Continue = serde_json::from_slice(&raw)
                .map_err(|_| ApiError::bad_request("invalid continue token"))?;
            if tok.rv < db.compacted {
                return Err(ApiError {
                    code: 410,
                    reason: "Expired",
                    message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                    details: json!({}),
                });
            }
            Some(tok)
        }
        None => None,
    };
    let rv_param = q(query, "resourceVersion").filter(|r| !r.is_empty());
    let exact = q(query, "resourceVersionMatch") == Some("Exact");
    let ty = t.ty.key();
    let empty = BTreeMap::new();
    let current = db.objects.get(&ty).unwrap_or(&empty);
    // A snapshot is rebuilt from history only when this type changed after it; otherwise
    // the current objects are that snapshot (pages of a large list stay cheap).
    let changed_since = |rv: u64| {
        db.history
            .iter()
            .rev()
            .take_while(|c| c.rv > rv)
            .any(|c| c.ty == ty)
    };
    let rebuilt;
    let (snapshot, rv): (&BTreeMap<ObjKey, Arc<Obj>>, u64) = match (&token, rv_param) {
        (Some(tok), _) if tok.rv >= db.compacted && tok.rv <= db.rv && !changed_since(tok.rv) => {
            (current, tok.rv)
        }
        (Some(tok), _) => {
            rebuilt = db.snapshot_at(&ty, tok.rv)?;
            (&rebuilt, tok.rv)
        }
        (None, Some(r)) if exact => {
            let rv: u64 = r
                .parse()
                .map_err(|_| ApiError::bad_request("invalid resourceVersion"))?;
            rebuilt = db.snapshot_at(&ty, rv)?;
            (&rebuilt, rv)
        }
        (None, Some(r)) if r != "0" => {
            // NotOlderThan (the default for a set resourceVersion): the current state, unless
            // the client asks for a future version.
            let rv: u64 = r
                .parse()
                .map_err(|_| ApiError::bad_request("invalid resourceVersion"))?;
            if rv > db.rv {
                return Err(ApiError::too_large_rv(rv));
            }
            (current, db.rv)
        }
        _ => (current, db.rv),
    };
    let limit: usize = q(query, "limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let mut items = Vec::new();
    let mut next = None;
    let rest: Box<dyn Iterator<Item = (&ObjKey, &Arc<Obj>)>> = match &token {
        Some(tok) => Box::new(snapshot.range((
            std::ops::Bound::Excluded(tok.after.clone()),
            std::ops::Bound::Unbounded,
        ))),
        None => Box::new(snapshot.iter()),
    };
    for (key, o) in rest {
        if t.ty.namespaced && t.namespace.as_deref().is_some_and(|ns| ns != key.0) {
            continue;
        }
        if !labels.matches(o) || !fields.matches(o) {
            continue;
        }
        if items.len() == limit {
            let last = obj_key(items.last().map(|x: &Arc<Obj>| x.as_ref()).unwrap_or(o));
            let tok = serde_json::to_vec(&Continue { rv, after: last }).unwrap_or_default();
            next = Some(base64::engine::general_purpose::STANDARD.encode(tok));
            break;
        }
        items.push(o.clone());
    }
    Ok((items, rv, next))
}

/// A JSON list, serialized from the stored objects themselves (no copy of them) once the
/// lock is released: large lists cost what encoding them costs, as in the API server.
pub fn list_json(shared: &Shared, t: &Target, query: &Query) -> Result<Vec<u8>, ApiError> {
    #[derive(serde::Serialize)]
    struct Meta {
        #[serde(rename = "resourceVersion")]
        resource_version: String,
        #[serde(rename = "continue")]
        continue_: String,
    }
    #[derive(serde::Serialize)]
    struct List<'a> {
        kind: String,
        #[serde(rename = "apiVersion")]
        api_version: String,
        metadata: Meta,
        items: Vec<&'a Value>,
    }
    let (items, rv, next) = {
        let db = shared.db.lock().expect("db lock");
        select(&db, t, query)?
    };
    let list = List {
        kind: t.ty.list_kind(),
        api_version: t.ty.api_version(),
        metadata: Meta {
            resource_version: rv.to_string(),
            continue_: next.unwrap_or_default(),
        },
        items: items.iter().map(|o| o.as_ref()).collect(),
    };
    serde_json::to_vec(&list).map_err(|e| ApiError::internal(e.to_string()))
}

fn list(db: &Db, t: &Target, query: &Query, fmt: Format) -> Reply {
    let (items, rv, next) = select(db, t, query)?;
    let rv_s = rv.to_string();
    let body = match fmt {
        Format::Table => {
            let refs: Vec<&Obj> = items.iter().map(|o| o.as_ref()).collect();
            let mut tb = table(
                &t.ty,
                &refs,
                &rv_s,
                q(query, "includeObject").unwrap_or("Metadata"),
            );
            if let Some(c) = &next {
                tb["metadata"]["continue"] = json!(c);
            }
            tb
        }
        Format::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv_s, "continue": next.clone().unwrap_or_default()},
            "items": items.iter().map(|o| partial_object(o)).collect::<Vec<_>>(),
        }),
        Format::Json => json!({
            "kind": t.ty.list_kind(),
            "apiVersion": t.ty.api_version(),
            "metadata": {"resourceVersion": rv_s, "continue": next.unwrap_or_default()},
            "items": items.iter().map(|o| (**o).clone()).collect::<Vec<_>>(),
        }),
    };
    Ok((200, body))
}

/// Pruning, defaulting and validation of custom resources; `fieldValidation` decides whether
/// unknown fields are an error.
fn check_schema(
    db: &Db,
    t: &ResourceType,
    query: &Query,
    obj: &mut Obj,
    old: Option<&Obj>,
) -> Result<(), ApiError> {
    let Some(s) = &t.schema else { return Ok(()) };
    let out = schema::process(s, obj);
    if !out.unknown.is_empty() && q(query, "fieldValidation") == Some("Strict") {
        let list: Vec<String> = out
            .unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            list.join(", ")
        )));
    }
    if !db.validation {
        return Ok(());
    }
    // Validation after pruning and defaulting, as the API server orders it; on an update,
    // a failure on a value the update did not change is let through (validation ratcheting,
    // on by default since Kubernetes 1.30), so an object stored before its CRD had a rule can
    // still have its status written.
    let mut causes = super::cel::crd::validate(s, obj);
    if let Some(old) = old {
        causes = super::cel::crd::ratchet(causes, old, obj);
    }
    if !causes.is_empty() {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(ApiError::invalid_causes(&t.group, &t.kind, name, &causes));
    }
    Ok(())
}

fn strip_managed(obj: &mut Obj) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
}

fn create(db: &mut Db, t: &Target, query: &Query, mut body: Value, manager: &str) -> Reply {
    if t.subresource.is_some() || t.name.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    if !body.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    check_identity(t, &body, None)?;
    strip_managed(&mut body);
    check_schema(db, &t.ty, query, &mut body, None)?;
    if t.ty.namespaced && t.namespace.is_none() {
        return Err(ApiError::bad_request(
            "a namespaced object is created under /namespaces/{namespace}/",
        ));
    }
    let crd = if t.ty.plural == "customresourcedefinitions" {
        Some(from_crd(&body).map_err(|e| ApiError::invalid("CustomResourceDefinition", "", &e))?)
    } else {
        None
    };
    if crd.is_some() {
        body["status"] = crd_status(&body);
    }
    track_update(&t.ty, None, &mut body, manager, "");
    let ns = t.namespace.clone().unwrap_or_default();
    let created = db.create(&t.ty, &ns, body)?;
    if let Some(c) = crd {
        db.types.insert(c.key(), c);
    }
    Ok((201, (*created).clone()))
}

fn crd_status(crd: &Value) -> Value {
    json!({
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(json!({})),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": super::store::now_rfc3339()},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": super::store::now_rfc3339()}
        ],
        "storedVersions": crd.pointer("/spec/versions").and_then(Value::as_array).map(|v| v.iter().filter_map(|x| x.get("name").cloned()).collect::<Vec<_>>()).unwrap_or_default(),
    })
}

/// `new` restricted to what a request on `subresource` may change, the rest from `old`.
fn scoped(
    t: &ResourceType,
    subresource: Option<&str>,
    old: &Obj,
    mut new: Obj,
) -> Result<Obj, ApiError> {
    match (t.status_subresource, subresource) {
        (_, Some(s)) if s != "status" => Err(ApiError::method_not_allowed()),
        (false, Some(_)) => Err(ApiError::method_not_allowed()),
        (true, Some(_)) => {
            let mut out = old.clone();
            out["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if out["status"].is_null()
                && let Some(m) = out.as_object_mut()
            {
                m.remove("status");
            }
            Ok(out)
        }
        (true, None) => {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            Ok(new)
        }
        (false, None) => Ok(new),
    }
}

fn precondition(
    t: &ResourceType,
    name: &str,
    old: &Obj,
    new: &Obj,
    required: bool,
) -> Result<(), ApiError> {
    let current = old
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    match new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        Some(rv) if Some(rv) != current => Err(ApiError::conflict(
            t,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )),
        None if required => Err(ApiError::invalid(
            &t.kind,
            name,
            "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
        )),
        _ => Ok(()),
    }
}

fn update(db: &mut Db, t: &Target, query: &Query, mut body: Value, manager: &str) -> Reply {
    let name = t.name.clone().ok_or_else(ApiError::method_not_allowed)?;
    if !body.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    check_identity(t, &body, Some(&name))?;
    let key = t.key(&name);
    let old = db
        .get(&t.ty.key(), &key)
        .ok_or_else(|| ApiError::not_found(&t.ty, &name))?;
    precondition(&t.ty, &name, &old, &body, !t.ty.unconditional_update())?;
    strip_managed(&mut body);
    let mut new = scoped(&t.ty, t.subresource.as_deref(), &old, body)?;
    check_schema(db, &t.ty, query, &mut new, Some(old.as_ref()))?;
    track_update(
        &t.ty,
        Some(&old),
        &mut new,
        manager,
        t.subresource.as_deref().unwrap_or_default(),
    );
    let stored = db.replace(&t.ty, &key, new)?;
    Ok((200, (*stored).clone()))
}

fn patch(
    db: &mut Db,
    t: &Target,
    query: &Query,
    body: Value,
    content_type: &str,
    manager: &str,
) -> Reply {
    let name = t.name.clone().ok_or_else(ApiError::method_not_allowed)?;
    let key = t.key(&name);
    let old = db.get(&t.ty.key(), &key);
    let sub = t.subresource.as_deref().unwrap_or_default();
    let ct = content_type.split(';').next().unwrap_or_default().trim();
    if ct == "application/apply-patch+yaml" {
        let Some(field_manager) = q(query, "fieldManager").filter(|m| !m.is_empty()) else {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set",
            ));
        };
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "an apply configuration must be an object",
            ));
        }
        check_identity(t, &body, Some(&name))?;
        if body
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k != t.ty.kind)
        {
            return Err(ApiError::bad_request(
                "the kind of the apply configuration does not match the URL",
            ));
        }
        let force = q(query, "force").is_some_and(|f| f == "true");
        let mut config = body;
        config["metadata"]["name"] = json!(name);
        let mut new = apply(&t.ty, old.as_deref(), &config, field_manager, force, sub)?;
        return match old {
            None => {
                if sub == "status" {
                    return Err(ApiError::not_found(&t.ty, &name));
                }
                check_schema(db, &t.ty, query, &mut new, None)?;
                let ns = t.namespace.clone().unwrap_or_default();
                let created = db.create(&t.ty, &ns, new)?;
                Ok((201, (*created).clone()))
            }
            Some(old) => {
                // The managed fields apply computed cover both parts of the object.
                let managed = new.pointer("/metadata/managedFields").cloned();
                let mut new = scoped(&t.ty, t.subresource.as_deref(), &old, new)?;
                check_schema(db, &t.ty, query, &mut new, Some(old.as_ref()))?;
                if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                    match managed {
                        Some(mf) => meta.insert("managedFields".into(), mf),
                        None => meta.remove("managedFields"),
                    };
                }
                let stored = db.replace(&t.ty, &key, new)?;
                Ok((200, (*stored).clone()))
            }
        };
    }
    let old = old.ok_or_else(|| ApiError::not_found(&t.ty, &name))?;
    let mut new = (*old).clone();
    match ct {
        "application/merge-patch+json" => merge_patch(&mut new, &body),
        "application/json-patch+json" => json_patch(&mut new, &body)?,
        "application/strategic-merge-patch+json" if t.ty.custom => {
            return Err(ApiError::unsupported_media_type(ct));
        }
        "application/strategic-merge-patch+json" => strategic_merge_patch(&mut new, &body),
        other => return Err(ApiError::unsupported_media_type(other)),
    }
    check_identity(t, &new, Some(&name))?;
    precondition(&t.ty, &name, &old, &new, false)?;
    strip_managed(&mut new);
    let mut new = scoped(&t.ty, t.subresource.as_deref(), &old, new)?;
    check_schema(db, &t.ty, query, &mut new, Some(old.as_ref()))?;
    track_update(&t.ty, Some(&old), &mut new, manager, sub);
    let stored = db.replace(&t.ty, &key, new)?;
    Ok((200, (*stored).clone()))
}

fn delete(db: &mut Db, t: &Target) -> Reply {
    let name = t.name.clone().ok_or_else(ApiError::method_not_allowed)?;
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let key = t.key(&name);
    let gone = db.delete(&t.ty, &key)?;
    if t.ty.plural == "customresourcedefinitions"
        && let Ok(c) = from_crd(&gone)
        && db.get(&t.ty.key(), &key).is_none()
    {
        db.types.remove(&c.key());
        db.objects.remove(&c.key());
    }
    if db.get(&t.ty.key(), &key).is_some() {
        // Finalizers pending: the object stays, marked for deletion.
        return Ok((202, (*gone).clone()));
    }
    Ok((
        200,
        status_ok(
            json!({"name": name, "group": t.ty.group, "kind": t.ty.plural, "uid": gone.pointer("/metadata/uid")}),
        ),
    ))
}
