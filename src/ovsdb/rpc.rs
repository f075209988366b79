//! JSON-RPC 1.0 messages as ovsdb-server speaks them (RFC 7047 section 4; FACTS.md quirks):
//! no `jsonrpc` member, replies carry `"error": null` beside `result`, error replies carry
//! `error` and no `result`, notifications have `"id": null`, and ids may be any JSON value
//! (the server's own probe uses the string `"echo"`).
//!
//! Owns classifying a decoded JSON text; it does not route replies to callers (`client`).
use serde_json::{Value as Json, json};

use super::error::Error;

/// One message from either side.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request expecting a reply with the same id (e.g. the server's `echo`).
    Request {
        id: Json,
        method: String,
        params: Json,
    },
    /// A successful reply.
    Response { id: Json, result: Json },
    /// A failed reply: `error` is usually `{"error": "...", "details": "..."}`.
    ErrorResponse { id: Json, error: Json },
    /// A request without reply (`update`, `update2`, `update3`, `locked`, `stolen`).
    Notification { method: String, params: Json },
}

impl Message {
    /// Classify a decoded JSON text.
    pub fn from_json(j: Json) -> Result<Message, Error> {
        let mut obj = match j {
            Json::Object(o) => o,
            other => {
                return Err(Error::Protocol(format!(
                    "message is not an object: {other}"
                )));
            }
        };
        let id = obj.remove("id").unwrap_or(Json::Null);
        if let Some(method) = obj.remove("method") {
            let method = match method {
                Json::String(s) => s,
                other => return Err(Error::Protocol(format!("method is not a string: {other}"))),
            };
            let params = obj.remove("params").unwrap_or(Json::Array(vec![]));
            return Ok(if id.is_null() {
                Message::Notification { method, params }
            } else {
                Message::Request { id, method, params }
            });
        }
        let error = obj.remove("error").unwrap_or(Json::Null);
        if !error.is_null() {
            return Ok(Message::ErrorResponse { id, error });
        }
        match obj.remove("result") {
            Some(result) => Ok(Message::Response { id, result }),
            None => Err(Error::Protocol(format!(
                "message with neither method, result nor error (id {id})"
            ))),
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Message::Request { id, method, params } => {
                json!({"id": id, "method": method, "params": params})
            }
            Message::Response { id, result } => json!({"id": id, "result": result, "error": null}),
            Message::ErrorResponse { id, error } => {
                json!({"id": id, "result": null, "error": error})
            }
            Message::Notification { method, params } => {
                json!({"id": null, "method": method, "params": params})
            }
        }
    }

    /// A JSON string literal (quoted and escaped).
    pub fn encode_str(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap_or_default()
    }

    /// The wire bytes, serialised straight from the borrowed parts (a bulk transaction's
    /// params can be megabytes; building an intermediate JSON value would copy them).
    pub fn to_bytes(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            id: &'a Json,
            #[serde(skip_serializing_if = "Option::is_none")]
            method: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            params: Option<&'a Json>,
            #[serde(skip_serializing_if = "Option::is_none")]
            result: Option<&'a Json>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a Json>,
        }
        const NULL: &Json = &Json::Null;
        let wire = match self {
            Message::Request { id, method, params } => Wire {
                id,
                method: Some(method),
                params: Some(params),
                result: None,
                error: None,
            },
            Message::Response { id, result } => Wire {
                id,
                method: None,
                params: None,
                result: Some(result),
                error: Some(NULL),
            },
            Message::ErrorResponse { id, error } => Wire {
                id,
                method: None,
                params: None,
                result: Some(NULL),
                error: Some(error),
            },
            Message::Notification { method, params } => Wire {
                id: NULL,
                method: Some(method),
                params: Some(params),
                result: None,
                error: None,
            },
        };
        // Serialising JSON values with string keys cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

/// The `error` string of an error reply, when it has the usual object shape.
pub fn error_name(error: &Json) -> Option<&str> {
    error.get("error").and_then(Json::as_str).or(error.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_server_messages() {
        let m = Message::from_json(json!({"id": "echo", "method": "echo", "params": []})).unwrap();
        assert_eq!(
            m,
            Message::Request {
                id: json!("echo"),
                method: "echo".into(),
                params: json!([])
            }
        );
        let m = Message::from_json(json!({"id": 3, "result": ["a"], "error": null})).unwrap();
        assert_eq!(
            m,
            Message::Response {
                id: json!(3),
                result: json!(["a"])
            }
        );
        let m =
            Message::from_json(json!({"id": 4, "error": {"error": "unknown database"}})).unwrap();
        match &m {
            Message::ErrorResponse { error, .. } => {
                assert_eq!(error_name(error), Some("unknown database"))
            }
            other => panic!("{other:?}"),
        }
        let m = Message::from_json(json!({"id": null, "method": "update2", "params": [1, {}]}))
            .unwrap();
        assert!(matches!(m, Message::Notification { .. }));
        // A reply with result null and error null is still a success.
        let m = Message::from_json(json!({"id": 5, "result": null, "error": null})).unwrap();
        assert!(matches!(m, Message::Response { .. }));
        assert!(Message::from_json(json!([1])).is_err());
        assert!(Message::from_json(json!({"id": 1})).is_err());
        assert!(Message::from_json(json!({"id": 1, "method": 3})).is_err());
    }

    #[test]
    fn writes_json_rpc_1_0_without_jsonrpc_member() {
        let m = Message::Request {
            id: json!(1),
            method: "list_dbs".into(),
            params: json!([]),
        };
        let j = m.to_json();
        assert!(j.get("jsonrpc").is_none());
        assert_eq!(Message::from_json(j).unwrap(), m);
        for m in [
            m,
            Message::Response {
                id: json!("echo"),
                result: json!([1]),
            },
            Message::ErrorResponse {
                id: json!(2),
                error: json!({"error": "x"}),
            },
            Message::Notification {
                method: "update".into(),
                params: json!([]),
            },
        ] {
            let wire: Json = serde_json::from_slice(&m.to_bytes()).unwrap();
            assert_eq!(wire, m.to_json());
        }
    }
}
