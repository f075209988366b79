//! What the API server does with a custom resource's structural schema before storing it:
//! prune unknown fields (or refuse them under `fieldValidation=Strict`), drop nulls of
//! non-nullable fields, apply defaults, and check types, required fields and enums
//! (422 Invalid, one cause per problem).
use serde_json::{Map, Value};

#[derive(Debug, Default)]
pub struct Outcome {
    /// Unknown fields found (pruned).
    pub unknown: Vec<String>,
    /// Validation errors.
    pub errors: Vec<String>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn flag(s: &Value, k: &str) -> bool {
    s.get(k).and_then(Value::as_bool) == Some(true)
}

/// Processes a whole object (apiVersion, kind and metadata are the server's, not the
/// schema's).
pub fn process(schema: &Value, obj: &mut Value) -> Outcome {
    let mut out = Outcome::default();
    let Some(m) = obj.as_object_mut() else {
        out.errors.push("<root>: must be an object".into());
        return out;
    };
    let kept: Vec<(String, Value)> = ["apiVersion", "kind", "metadata"]
        .iter()
        .filter_map(|k| m.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect();
    let mut rest = Value::Object(std::mem::take(m));
    walk(schema, &mut rest, "", &mut out);
    let m = obj.as_object_mut().expect("checked above");
    if let Value::Object(r) = rest {
        *m = r;
    }
    for (k, v) in kept {
        m.insert(k, v);
    }
    out
}

fn walk(s: &Value, v: &mut Value, path: &str, out: &mut Outcome) {
    if flag(s, "x-kubernetes-int-or-string") {
        if !(v.is_string() || type_name(v) == "integer") {
            out.errors.push(format!(
                "{path}: Invalid value: \"{}\": {path} in body must be of type integer-or-string",
                type_name(v)
            ));
        }
        return;
    }
    let want = s.get("type").and_then(Value::as_str);
    if let Some(want) = want {
        let got = type_name(v);
        let ok = got == want || (want == "number" && got == "integer");
        if !ok {
            out.errors.push(format!(
                "{path}: Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
            ));
            return;
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        out.errors.push(format!("{path}: Unsupported value: {v}"));
    }
    match v {
        Value::Object(map) => object(s, map, path, out),
        Value::Array(items) => {
            if let Some(item) = s.get("items") {
                for (i, x) in items.iter_mut().enumerate() {
                    walk(item, x, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn object(s: &Value, map: &mut Map<String, Value>, path: &str, out: &mut Outcome) {
    let props = s.get("properties").and_then(Value::as_object);
    let extra = s.get("additionalProperties");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    // Nulls of non-nullable fields are pruned, then defaults apply.
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let nullable = props
            .and_then(|p| p.get(&k))
            .is_some_and(|p| flag(p, "nullable"));
        if map.get(&k).is_some_and(Value::is_null) && !nullable {
            map.remove(&k);
        }
    }
    if let Some(props) = props {
        for (k, p) in props {
            if !map.contains_key(k)
                && let Some(d) = p.get("default")
            {
                map.insert(k.clone(), d.clone());
            }
        }
    }
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let at = child(path, &k);
        if let Some(p) = props.and_then(|p| p.get(&k)) {
            if let Some(v) = map.get_mut(&k) {
                walk(p, v, &at, out);
            }
        } else if let Some(e) = extra.filter(|e| e.is_object()) {
            if let Some(v) = map.get_mut(&k) {
                walk(e, v, &at, out);
            }
        } else if preserve || extra == Some(&Value::Bool(true)) {
        } else {
            map.remove(&k);
            out.unknown.push(at);
        }
    }
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = r.as_str()
            && !map.contains_key(r)
        {
            out.errors
                .push(format!("{}: Required value", child(path, r)));
        }
    }
}
