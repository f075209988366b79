//! API errors as `metav1.Status` objects with the reasons and codes of the real API server.
use serde_json::{Value, json};

use super::types::ResourceType;

#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }

    pub fn not_found(t: &ResourceType, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{}.{} \"{name}\" not found", t.plural, t.group_or_core()),
            details: json!({"name": name, "group": t.group, "kind": t.plural}),
        }
    }

    pub fn not_found_ns(ns: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("namespaces \"{ns}\" not found"),
            details: json!({"name": ns, "kind": "namespaces"}),
        }
    }

    pub fn no_route(path: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("the server could not find the requested resource ({path})"),
            details: json!({}),
        }
    }

    pub fn already_exists(t: &ResourceType, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!(
                "{}.{} \"{name}\" already exists",
                t.plural,
                t.group_or_core()
            ),
            details: json!({"name": name, "group": t.group, "kind": t.plural}),
        }
    }

    pub fn conflict(t: &ResourceType, name: &str, why: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {}.{} \"{name}\": {why}",
                t.plural,
                t.group_or_core()
            ),
            details: json!({"name": name, "group": t.group, "kind": t.plural}),
        }
    }

    /// Server-side apply conflicts: which fields, held by which managers.
    pub fn apply_conflict(t: &ResourceType, name: &str, fields: &[(String, String)]) -> Self {
        let causes: Vec<Value> = fields
            .iter()
            .map(|(field, manager)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{manager}\""), "field": field})
            })
            .collect();
        let list: Vec<String> = fields.iter().map(|(f, m)| format!("- {m}: {f}")).collect();
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Apply failed with {} conflict(s): conflicts with other managers:\n{}",
                fields.len(),
                list.join("\n")
            ),
            details: json!({"name": name, "group": t.group, "kind": t.plural, "causes": causes}),
        }
    }

    pub fn invalid(kind: &str, name: &str, message: &str) -> Self {
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{kind} \"{name}\" is invalid: {message}"),
            details: json!({"name": name, "kind": kind, "causes": [{"message": message}]}),
        }
    }

    /// 422 Invalid for a custom resource, one cause per failed check, as the API server
    /// words it: `Route.k8s.ovn.org "x" is invalid: [spec.a: ..., spec.b: ...]`.
    pub fn invalid_causes(
        group: &str,
        kind: &str,
        name: &str,
        causes: &[super::cel::crd::Cause],
    ) -> Self {
        let list: Vec<String> = causes.iter().map(|c| c.error()).collect();
        let all = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{kind}.{group} \"{name}\" is invalid: {all}"),
            details: json!({
                "name": name,
                "group": group,
                "kind": kind,
                "causes": causes.iter().map(|c| json!({
                    "reason": c.reason(),
                    "message": c.message,
                    "field": c.field,
                })).collect::<Vec<_>>(),
            }),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn method_not_allowed() -> Self {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".into(),
            details: json!({}),
        }
    }

    pub fn unsupported_media_type(ct: &str) -> Self {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct:?})"
            ),
            details: json!({}),
        }
    }

    /// A resourceVersion older than the kept history.
    pub fn gone(rv: u64, oldest: u64) -> Self {
        ApiError {
            code: 410,
            reason: "Expired",
            message: format!("too old resource version: {rv} ({oldest})"),
            details: json!({}),
        }
    }

    pub fn too_large_rv(rv: u64) -> Self {
        ApiError {
            code: 504,
            reason: "Timeout",
            message: format!("Too large resource version: {rv}"),
            details: json!({"causes": [{"reason": "ResourceVersionTooLarge"}]}),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            code: 500,
            reason: "InternalError",
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn unavailable() -> Self {
        ApiError {
            code: 503,
            reason: "ServiceUnavailable",
            message: "the server is currently unable to handle the request".into(),
            details: json!({}),
        }
    }
}
