//! `meta.k8s.io/v1` Table responses (what `kubectl get` asks for): a Name column, the type's
//! printer columns (a CRD's `additionalPrinterColumns`, evaluated as simple JSONPath) and
//! Age; date columns are shown as the API server's human durations.
use serde_json::{Value, json};

use super::types::ResourceType;

/// `.a.b[0].c` style JSONPath (the subset printer columns use); `None` when absent.
pub fn json_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = v;
    for seg in p.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// k8s.io/apimachinery's `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(ts: &str) -> Value {
    let Ok(t) = ts.parse::<k8s_openapi::jiff::Timestamp>() else {
        return Value::Null;
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    json!(human_duration(now.as_second() - t.as_second()))
}

fn cell(v: Option<&Value>, type_: &str) -> Value {
    match (v, type_) {
        (None | Some(Value::Null), _) => Value::Null,
        (Some(Value::String(s)), "date") => age(s),
        (Some(v), _) => v.clone(),
    }
}

fn partial(o: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// The Table for `objects`; `include` is the request's `includeObject` (None, Metadata,
/// Object).
pub fn table(t: &ResourceType, objects: &[&Value], rv: &str, include: &str) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    let mut cols = t.columns.clone();
    let has_age = cols.iter().any(|c| c.name == "Age");
    for c in &cols {
        columns.push(json!({"name": c.name, "type": c.type_, "format": "", "description": c.description, "priority": c.priority}));
    }
    if !has_age {
        columns.push(json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
        cols.push(super::types::Column {
            name: "Age".into(),
            type_: "date".into(),
            json_path: ".metadata.creationTimestamp".into(),
            priority: 0,
            description: String::new(),
        });
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
            cells.extend(
                cols.iter()
                    .map(|c| cell(json_path(o, &c.json_path), &c.type_)),
            );
            let object = match include {
                "None" => Value::Null,
                "Object" => (*o).clone(),
                _ => partial(o),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// A whole object as `PartialObjectMetadata` (metadata-only requests).
pub fn partial_object(o: &Value) -> Value {
    partial(o)
}
