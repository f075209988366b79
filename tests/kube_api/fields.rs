//! Managed fields: who set which field (`metadata.managedFields`), and server-side apply on
//! top of it: conflicts with other managers (409 unless `force`), removal of fields a
//! manager stopped applying, shared ownership of equal values, and ownership moving to
//! whoever updates a field with an ordinary update or patch.
use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::errors::ApiError;
use super::patch::{
    FieldPath, fields_v1, from_fields_v1, get_path, leaf_paths, overlaps, remove_path, set_path,
};
use super::store::now_rfc3339;
use super::types::ResourceType;

#[derive(Clone, Debug, PartialEq)]
pub struct Managed {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<FieldPath>,
}

pub fn read_managed(obj: &Value) -> Vec<Managed> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let s = |k: &str| {
                        e.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    Managed {
                        manager: s("manager"),
                        operation: s("operation"),
                        subresource: s("subresource"),
                        api_version: s("apiVersion"),
                        time: s("time"),
                        fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn write_managed(obj: &mut Value, managed: &[Managed]) {
    let entries: Vec<Value> = managed
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut e = json!({
                "manager": m.manager,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(&m.fields),
            });
            if !m.subresource.is_empty() {
                e["subresource"] = json!(m.subresource);
            }
            e
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// The part of an object a request on `subresource` may touch.
pub fn in_scope(t: &ResourceType, subresource: &str, path: &FieldPath) -> bool {
    let status = path.first().is_some_and(|f| f == "status");
    match (t.status_subresource, subresource) {
        (true, "status") => status,
        (true, _) => !status,
        (false, _) => true,
    }
}

fn dotted(p: &FieldPath) -> String {
    format!(".{}", p.join("."))
}

/// Server-side apply of `config` by `manager`. `live` is the stored object (`None`: the
/// apply creates it). Returns the new object with its managed fields.
pub fn apply(
    t: &ResourceType,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    subresource: &str,
) -> Result<Value, ApiError> {
    let name = config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let cfg_paths: BTreeSet<FieldPath> = leaf_paths(config)
        .into_iter()
        .filter(|p| in_scope(t, subresource, p))
        .collect();
    let mut obj = live.cloned().unwrap_or_else(|| {
        json!({"apiVersion": t.api_version(), "kind": t.kind, "metadata": config.get("metadata").cloned().unwrap_or(json!({}))})
    });
    let mut managed = read_managed(&obj);
    let ours = |m: &Managed| {
        m.manager == manager && m.operation == "Apply" && m.subresource == subresource
    };
    // Conflicts: another manager owns a field we set, and the values differ.
    let mut conflicts = Vec::new();
    for m in managed.iter_mut().filter(|m| !ours(m)) {
        let mut lost = Vec::new();
        for q in &m.fields {
            for p in cfg_paths.iter().filter(|p| overlaps(p, q)) {
                let at = if q.len() >= p.len() { q } else { p };
                if get_path(&obj, at) != get_path(config, at) {
                    conflicts.push((dotted(q), m.manager.clone()));
                    lost.push(q.clone());
                    break;
                }
            }
        }
        if force {
            for q in lost {
                m.fields.remove(&q);
            }
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort();
        conflicts.dedup();
        return Err(ApiError::apply_conflict(t, name, &conflicts));
    }
    // Fields we applied before and no longer apply go, unless someone else owns them too.
    let previous: BTreeSet<FieldPath> = managed
        .iter()
        .filter(|m| ours(m))
        .flat_map(|m| m.fields.iter().cloned())
        .collect();
    for q in previous
        .iter()
        .filter(|q| !cfg_paths.iter().any(|p| overlaps(p, q)))
    {
        let shared = managed
            .iter()
            .filter(|m| !ours(m))
            .any(|m| m.fields.iter().any(|o| overlaps(o, q)));
        if !shared {
            remove_path(&mut obj, q);
        }
    }
    for p in &cfg_paths {
        if let Some(v) = get_path(config, p) {
            set_path(&mut obj, p, v.clone());
        }
    }
    managed.retain(|m| !ours(m));
    managed.push(Managed {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        subresource: subresource.to_owned(),
        api_version: t.api_version(),
        time: now_rfc3339(),
        fields: cfg_paths,
    });
    write_managed(&mut obj, &managed);
    Ok(obj)
}

/// Records an ordinary update: fields whose value changed now belong to `manager`.
pub fn track_update(
    t: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
) {
    let mut managed = old.map(read_managed).unwrap_or_default();
    let new_paths = leaf_paths(new);
    let old_paths = old.map(leaf_paths).unwrap_or_default();
    let changed: BTreeSet<FieldPath> = new_paths
        .iter()
        .filter(|p| in_scope(t, subresource, p))
        .filter(|p| old.and_then(|o| get_path(o, p)) != get_path(new, p))
        .cloned()
        .collect();
    let removed: Vec<&FieldPath> = old_paths
        .iter()
        .filter(|p| get_path(new, p).is_none())
        .collect();
    for m in managed.iter_mut() {
        m.fields
            .retain(|q| !changed.iter().any(|p| overlaps(p, q)) && !removed.contains(&q));
    }
    if !changed.is_empty() {
        let entry = managed.iter_mut().find(|m| {
            m.manager == manager && m.operation == "Update" && m.subresource == subresource
        });
        match entry {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now_rfc3339();
            }
            None => managed.push(Managed {
                manager: manager.to_owned(),
                operation: "Update".into(),
                subresource: subresource.to_owned(),
                api_version: t.api_version(),
                time: now_rfc3339(),
                fields: changed,
            }),
        }
    }
    write_managed(new, &managed);
}
