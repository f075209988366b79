//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch (for
//! built-in types: merge patch plus list merging by the key of the lists used here), and
//! server-side apply with managed fields (see [`apply`]).
use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::errors::ApiError;

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target
        .as_object_mut()
        .expect("target was just made an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Keys by which strategic merge patch merges lists of built-in types.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "volumes" | "volumeMounts" | "env" | "ports" => {
            Some("name")
        }
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Strategic merge patch: merge patch, except that lists with a known merge key merge by it
/// (`$patch: delete` removes an element) and `$retainKeys` / other directives are ignored.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target
        .as_object_mut()
        .expect("target was just made an object");
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(k), v, t.get_mut(k)) {
            (Some(key), Value::Array(items), Some(Value::Array(existing))) => {
                for item in items {
                    let id = item.get(key);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    let pos = existing.iter().position(|e| e.get(key) == id);
                    match (pos, delete) {
                        (Some(i), true) => {
                            existing.remove(i);
                        }
                        (Some(i), false) => strategic_merge_patch(&mut existing[i], item),
                        (None, false) => existing.push(item.clone()),
                        (None, true) => {}
                    }
                }
            }
            _ => strategic_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v),
        }
    }
}

fn pointer_parts(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_mut<'a>(doc: &'a mut Value, parts: &[String]) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get_mut(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::invalid(
                "",
                "",
                &format!("doc is missing path: /{}", parts.join("/")),
            )
        })?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let parts = pointer_parts(path)?;
    let Some((last, parent)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| ApiError::bad_request("bad array index"))?
            };
            if i > a.len() {
                return Err(ApiError::invalid("", "", "array index out of range"));
            }
            a.insert(i, value);
        }
        _ => return Err(ApiError::invalid("", "", "cannot add to a scalar")),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let parts = pointer_parts(path)?;
    let (last, parent) = parts
        .split_last()
        .ok_or_else(|| ApiError::invalid("", "", "cannot remove the root"))?;
    let missing = || {
        ApiError::invalid(
            "",
            "",
            &format!("unable to remove nonexistent key: {last}: missing value"),
        )
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i = last.parse::<usize>().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

/// RFC 6902.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), ApiError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch is an array of operations"))?;
    for op in ops {
        let s = |k: &str| op.get(k).and_then(Value::as_str).map(str::to_owned);
        let path = s("path").ok_or_else(|| ApiError::bad_request("operation without path"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::bad_request("operation without value"))
        };
        match s("op").as_deref() {
            Some("add") => add(doc, &path, value()?)?,
            Some("remove") => {
                remove(doc, &path)?;
            }
            Some("replace") => {
                remove(doc, &path)?;
                add(doc, &path, value()?)?;
            }
            Some("move") => {
                let from = s("from").ok_or_else(|| ApiError::bad_request("move without from"))?;
                let v = remove(doc, &from)?;
                add(doc, &path, v)?;
            }
            Some("copy") => {
                let from = s("from").ok_or_else(|| ApiError::bad_request("copy without from"))?;
                let v = doc
                    .pointer(&from)
                    .cloned()
                    .ok_or_else(|| ApiError::invalid("", "", "copy from a missing path"))?;
                add(doc, &path, v)?;
            }
            Some("test") => {
                if doc.pointer(&path) != Some(&value()?) {
                    return Err(ApiError::invalid(
                        "",
                        "",
                        &format!("testing value {path} failed"),
                    ));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown JSON patch op {other:?}"
                )));
            }
        }
    }
    Ok(())
}

/// A field path: object keys from the root; lists are leaves (atomic).
pub type FieldPath = Vec<String>;

/// Fields an object sets, as leaf paths. Identity and bookkeeping fields are not owned by
/// anybody (as in the API server's field manager).
pub fn leaf_paths(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "managedFields",
                "selfLink",
            ] {
                m.remove(f);
            }
            if m.is_empty() {
                o.remove("metadata");
            }
        }
    }
    walk(&v, &mut Vec::new(), &mut out);
    out.retain(|p| !p.is_empty());
    out
}

pub fn get_path<'a>(v: &'a Value, p: &FieldPath) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, k| cur.get(k))
}

pub fn set_path(v: &mut Value, p: &FieldPath, value: Value) {
    let mut cur = v;
    for (i, k) in p.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let m = cur.as_object_mut().expect("made an object above");
        if i == p.len() - 1 {
            m.insert(k.clone(), value);
            return;
        }
        cur = m.entry(k.clone()).or_insert_with(|| json!({}));
    }
}

pub fn remove_path(v: &mut Value, p: &FieldPath) {
    fn go(v: &mut Value, p: &[String]) {
        let Some((first, rest)) = p.split_first() else {
            return;
        };
        let Some(m) = v.as_object_mut() else { return };
        if rest.is_empty() {
            m.remove(first);
            return;
        }
        if let Some(child) = m.get_mut(first) {
            go(child, rest);
            if child.as_object().is_some_and(Map::is_empty) {
                m.remove(first);
            }
        }
    }
    go(v, p);
}

/// Two paths overlap when one is a prefix of the other (a field and something inside it).
pub fn overlaps(a: &FieldPath, b: &FieldPath) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// fieldsV1 encoding of a set of paths (`{"f:spec": {"f:route": {}}}`).
pub fn fields_v1(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = json!({});
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            cur = cur
                .as_object_mut()
                .expect("fieldsV1 nodes are objects")
                .entry(format!("f:{k}"))
                .or_insert_with(|| json!({}));
        }
    }
    root
}

/// Decodes fieldsV1 back into paths (leaves are empty objects or `.`).
pub fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let Some(m) = v.as_object() else { return };
        let children: Vec<(&String, &Value)> =
            m.iter().filter(|(k, _)| k.starts_with("f:")).collect();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (k, child) in children {
            path.push(k[2..].to_owned());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}
