//! What the API server checks on a custom resource against its CRD's `openAPIV3Schema`,
//! after pruning and defaulting: types, required fields, `enum`, `maxLength`, `maxItems`,
//! `maxProperties`, `minimum` / `maximum`, `pattern`, then the `x-kubernetes-validations`
//! rules, each failure a cause naming the field, in the API server's words.
//!
//! As in the API server, the rules are not run when a type or an enum is wrong (those are
//! "blocking" errors: the rules could not be typed against the value); one cause then says
//! that some rules were not checked.
use serde_json::Value;

/// One failure, as a `metav1.StatusCause`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `spec.route[0].dst`.
    pub field: String,
    pub kind: Kind,
    /// The body after the field, e.g. `Invalid value: "string": empty destination`.
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    TypeInvalid,
    Required,
    NotSupported,
    TooLong,
    TooMany,
    /// A failed `pattern`, `minimum` or `maximum`.
    Invalid,
    /// A failed (or failing to run) `x-kubernetes-validations` rule.
    Rule,
}

impl Cause {
    /// The cause's `reason`.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            Kind::TypeInvalid => "FieldValueTypeInvalid",
            Kind::Required => "FieldValueRequired",
            Kind::NotSupported => "FieldValueNotSupported",
            Kind::TooLong => "FieldValueTooLong",
            Kind::TooMany => "FieldValueTooMany",
            Kind::Invalid | Kind::Rule => "FieldValueInvalid",
        }
    }

    /// `field: message`, as the Status message lists it.
    pub fn error(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }

    /// The message a rule gave (after `Invalid value: "<type>": `), for rule causes.
    pub fn rule_message(&self) -> Option<&str> {
        (self.kind == Kind::Rule)
            .then(|| self.message.split_once("\": ").map(|(_, m)| m))
            .flatten()
    }
}

const NOT_CHECKED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// Validates a whole object (`apiVersion`, `kind` and `metadata` are the server's).
pub fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(m) = obj.as_object() else {
        return vec![cause(
            "<root>",
            Kind::TypeInvalid,
            "must be an object".into(),
        )];
    };
    let mut body = m.clone();
    for k in ["apiVersion", "kind", "metadata"] {
        body.remove(k);
    }
    let body = Value::Object(body);
    openapi(schema, &body, "", &mut out);
    if out
        .iter()
        .any(|c| matches!(c.kind, Kind::TypeInvalid | Kind::NotSupported))
    {
        out.push(cause(
            "<nil>",
            Kind::Invalid,
            format!("Invalid value: \"null\": {NOT_CHECKED}"),
        ));
        return out;
    }
    rules(schema, &body, "", &mut out);
    out
}

fn cause(field: &str, kind: Kind, message: String) -> Cause {
    Cause {
        field: if field.is_empty() {
            "<root>".into()
        } else {
            field.to_owned()
        },
        kind,
        message,
    }
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

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn flag(s: &Value, k: &str) -> bool {
    s.get(k).and_then(Value::as_bool) == Some(true)
}

fn openapi(s: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        return;
    }
    if flag(s, "x-kubernetes-int-or-string") {
        return;
    }
    if let Some(want) = s.get("type").and_then(Value::as_str) {
        let got = type_name(v);
        if !(got == want || (want == "number" && got == "integer")) {
            out.push(cause(
                path,
                Kind::TypeInvalid,
                format!(
                    "Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
                ),
            ));
            return;
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        out.push(cause(
            path,
            Kind::NotSupported,
            format!(
                "Unsupported value: {v}: supported values: {}",
                list.join(", ")
            ),
        ));
    }
    match v {
        Value::String(text) => string(s, text, path, out),
        Value::Number(n) => number(s, n, path, out),
        Value::Array(items) => {
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                out.push(cause(
                    path,
                    Kind::TooMany,
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(item) = s.get("items") {
                for (i, x) in items.iter().enumerate() {
                    openapi(item, x, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => {
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = r.as_str()
                    && map.get(r).is_none_or(Value::is_null)
                {
                    out.push(cause(
                        &join(path, r),
                        Kind::Required,
                        "Required value".into(),
                    ));
                }
            }
            if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
                && map.len() as u64 > max
            {
                out.push(cause(
                    path,
                    Kind::TooMany,
                    format!("Too many: {}: must have at most {max} items", map.len()),
                ));
            }
            let props = s.get("properties").and_then(Value::as_object);
            let extra = s.get("additionalProperties").filter(|e| e.is_object());
            for (k, x) in map {
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    openapi(p, x, &join(path, k), out);
                } else if let Some(e) = extra {
                    openapi(e, x, &join(path, k), out);
                }
            }
        }
        _ => {}
    }
}

fn string(s: &Value, text: &str, path: &str, out: &mut Vec<Cause>) {
    // The OpenAPI validator counts characters (runes), not bytes.
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && text.chars().count() as u64 > max
    {
        out.push(cause(
            path,
            Kind::TooLong,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        let re = regex::Regex::new(p).unwrap_or_else(|e| panic!("pattern {p:?}: {e}"));
        if !re.is_match(text) {
            out.push(cause(
                path,
                Kind::Invalid,
                format!(
                    "Invalid value: {}: {path} in body should match '{p}'",
                    Value::String(text.to_owned())
                ),
            ));
        }
    }
}

fn number(s: &Value, n: &serde_json::Number, path: &str, out: &mut Vec<Cause>) {
    let Some(x) = n.as_f64() else { return };
    if let Some(max) = s.get("maximum").and_then(Value::as_f64)
        && x > max
    {
        out.push(cause(
            path,
            Kind::Invalid,
            format!("Invalid value: {n}: {path} in body should be less than or equal to {max}"),
        ));
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64)
        && x < min
    {
        out.push(cause(
            path,
            Kind::Invalid,
            format!("Invalid value: {n}: {path} in body should be greater than or equal to {min}"),
        ));
    }
}

/// Runs every `x-kubernetes-validations` rule on the values present.
fn rules(s: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        return;
    }
    for r in s
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        run_rule(s, r, v, path, out);
    }
    match v {
        Value::Array(items) => {
            if let Some(item) = s.get("items") {
                for (i, x) in items.iter().enumerate() {
                    rules(item, x, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            let extra = s.get("additionalProperties").filter(|e| e.is_object());
            for (k, x) in map {
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    rules(p, x, &join(path, k), out);
                } else if let Some(e) = extra {
                    rules(e, x, &format!("{path}[{k}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn run_rule(s: &Value, r: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    let rule = r.get("rule").and_then(Value::as_str).unwrap_or_default();
    let field = match r.get("fieldPath").and_then(Value::as_str) {
        Some(fp) => format!("{path}{fp}"),
        None => path.to_owned(),
    };
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("object");
    let vars = [("self", v)];
    match super::eval_bool(rule, &vars) {
        Ok(true) => {}
        Ok(false) => {
            let msg = r
                .get("messageExpression")
                .and_then(Value::as_str)
                .and_then(|m| super::eval_string(m, &vars).ok())
                .filter(|m| !m.trim().is_empty() && !m.contains('\n'))
                .or_else(|| r.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| format!("failed rule: {rule}"));
            out.push(cause(
                &field,
                Kind::Rule,
                format!("Invalid value: \"{ty}\": {msg}"),
            ));
        }
        Err(e) => out.push(cause(
            &field,
            Kind::Rule,
            format!("Invalid value: \"{ty}\": rule evaluation error: {e}"),
        )),
    }
}

/// Validation ratcheting (on by default since Kubernetes 1.30): on an update, a failure on a
/// value the update left as it was does not refuse the update.
pub fn ratchet(causes: Vec<Cause>, old: &Value, new: &Value) -> Vec<Cause> {
    let kept: Vec<Cause> = causes
        .into_iter()
        .filter(|c| {
            let was = lookup(old, &c.field);
            c.field == "<nil>" || was.is_none() || was != lookup(new, &c.field)
        })
        .collect();
    if kept.iter().all(|c| c.field == "<nil>") {
        return Vec::new();
    }
    kept
}

/// The value at a cause's field (`spec.route[1].dst`, `spec.podSelector.matchLabels[app]`).
fn lookup<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    let mut cur = v;
    let mut rest = field;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let key = &r[..end];
            cur = match cur {
                Value::Array(a) => a.get(key.parse::<usize>().ok()?)?,
                Value::Object(m) => m.get(key)?,
                _ => return None,
            };
            rest = &r[end + 1..];
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        }
    }
    Some(cur)
}
