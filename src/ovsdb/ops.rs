//! Typed `transact` operations (RFC 7047 section 5.2), their conditions (section 5.1
//! `<condition>`) and mutations (section 5.1 `<mutation>`), and the checking of a
//! transaction's result array.
//!
//! Owns the wire shape of operations and the mapping of per-operation errors to
//! [`TxnError`]; it does not send anything (that is `client`).
use serde_json::{Map, Value as Json, json};

use super::error::{Error, TxnError, TxnErrorKind};
use super::value::{Atom, Row, Uuid, Value, row_from_json, row_to_json};

/// A condition's function (RFC 7047 section 5.1 `<function>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
    Includes,
    Excludes,
}

impl Function {
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Lt => "<",
            Function::Le => "<=",
            Function::Eq => "==",
            Function::Ne => "!=",
            Function::Ge => ">=",
            Function::Gt => ">",
            Function::Includes => "includes",
            Function::Excludes => "excludes",
        }
    }
}

/// `[column, function, value]`: selects rows for select/update/mutate/delete/wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub column: String,
    pub function: Function,
    pub value: Value,
}

impl Condition {
    pub fn new(column: impl Into<String>, function: Function, value: impl Into<Value>) -> Self {
        Condition {
            column: column.into(),
            function,
            value: value.into(),
        }
    }
    pub fn eq(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Condition::new(column, Function::Eq, value)
    }
    /// The row whose `_uuid` is `uuid`.
    pub fn uuid(uuid: Uuid) -> Self {
        Condition::eq("_uuid", uuid)
    }
    /// Rows whose set/map column includes `value` (e.g. one `external_ids` pair).
    pub fn includes(column: impl Into<String>, value: Value) -> Self {
        Condition::new(column, Function::Includes, value)
    }
    pub fn to_json(&self) -> Json {
        json!([self.column, self.function.as_str(), self.value.to_json()])
    }
}

/// A mutation's mutator (RFC 7047 section 5.1 `<mutator>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    /// Add elements to a set / pairs to a map (existing map keys are kept as they are).
    Insert,
    /// Remove elements from a set; for a map, remove keys (given as a set) or pairs.
    Delete,
}

impl Mutator {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutator::Add => "+=",
            Mutator::Sub => "-=",
            Mutator::Mul => "*=",
            Mutator::Div => "/=",
            Mutator::Mod => "%=",
            Mutator::Insert => "insert",
            Mutator::Delete => "delete",
        }
    }
}

/// `[column, mutator, value]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub column: String,
    pub mutator: Mutator,
    pub value: Value,
}

impl Mutation {
    pub fn new(column: impl Into<String>, mutator: Mutator, value: impl Into<Value>) -> Self {
        Mutation {
            column: column.into(),
            mutator,
            value: value.into(),
        }
    }
    /// Add these elements to a set column (or pairs to a map column): the cheap way to
    /// change a large reference set, instead of rewriting it.
    pub fn insert(column: impl Into<String>, value: Value) -> Self {
        Mutation::new(column, Mutator::Insert, value)
    }
    pub fn delete(column: impl Into<String>, value: Value) -> Self {
        Mutation::new(column, Mutator::Delete, value)
    }
    pub fn to_json(&self) -> Json {
        json!([self.column, self.mutator.as_str(), self.value.to_json()])
    }
}

/// `until` of a wait operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    Equal,
    NotEqual,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Insert `row`; `uuid_name` lets later operations of the same transaction refer to it
    /// as `["named-uuid", name]` ([`Atom::NamedUuid`]).
    Insert {
        table: String,
        row: Row,
        uuid_name: Option<String>,
        /// The new row's UUID, chosen by the client (an Open vSwitch 2.13+ extension of
        /// RFC 7047, ovsdb-server(7) section 5.2.1): what the transaction will do is known
        /// before the reply. `None`: the server picks one.
        uuid: Option<Uuid>,
    },
    /// Read rows; `columns: None` means all columns.
    Select {
        table: String,
        conditions: Vec<Condition>,
        columns: Option<Vec<String>>,
    },
    /// Set columns of every matching row.
    Update {
        table: String,
        conditions: Vec<Condition>,
        row: Row,
    },
    /// Mutate columns of every matching row.
    Mutate {
        table: String,
        conditions: Vec<Condition>,
        mutations: Vec<Mutation>,
    },
    /// Delete every matching row.
    Delete {
        table: String,
        conditions: Vec<Condition>,
    },
    /// Block (up to `timeout_ms`, `None` = forever) until the matching rows' `columns`
    /// equal (or differ from) `rows`; the optimistic-concurrency guard.
    Wait {
        table: String,
        conditions: Vec<Condition>,
        columns: Vec<String>,
        until: WaitUntil,
        rows: Vec<Row>,
        timeout_ms: Option<u64>,
    },
    Commit {
        durable: bool,
    },
    Abort,
    /// A comment for the server's log (`ovsdb-tool show-log`).
    Comment(String),
    /// Fails the transaction with "not owner" unless this session holds `lock`.
    Assert {
        lock: String,
    },
}

impl Operation {
    pub fn insert(table: impl Into<String>, row: Row) -> Operation {
        Operation::Insert {
            table: table.into(),
            row,
            uuid_name: None,
            uuid: None,
        }
    }
    pub fn insert_named(table: impl Into<String>, row: Row, uuid_name: impl Into<String>) -> Self {
        Operation::Insert {
            table: table.into(),
            row,
            uuid_name: Some(uuid_name.into()),
            uuid: None,
        }
    }
    pub fn select(table: impl Into<String>, conditions: Vec<Condition>) -> Operation {
        Operation::Select {
            table: table.into(),
            conditions,
            columns: None,
        }
    }
    pub fn update(table: impl Into<String>, conditions: Vec<Condition>, row: Row) -> Self {
        Operation::Update {
            table: table.into(),
            conditions,
            row,
        }
    }
    pub fn mutate(
        table: impl Into<String>,
        conditions: Vec<Condition>,
        mutations: Vec<Mutation>,
    ) -> Self {
        Operation::Mutate {
            table: table.into(),
            conditions,
            mutations,
        }
    }
    pub fn delete(table: impl Into<String>, conditions: Vec<Condition>) -> Operation {
        Operation::Delete {
            table: table.into(),
            conditions,
        }
    }

    pub fn to_json(&self) -> Json {
        let conds = |c: &[Condition]| Json::Array(c.iter().map(Condition::to_json).collect());
        match self {
            Operation::Insert {
                table,
                row,
                uuid_name,
                uuid,
            } => {
                let mut o = json!({"op": "insert", "table": table, "row": row_to_json(row)});
                if let (Some(n), Some(m)) = (uuid_name, o.as_object_mut()) {
                    m.insert("uuid-name".into(), json!(n));
                }
                if let (Some(u), Some(m)) = (uuid, o.as_object_mut()) {
                    m.insert("uuid".into(), json!(u.to_string()));
                }
                o
            }
            Operation::Select {
                table,
                conditions,
                columns,
            } => {
                let mut o = json!({"op": "select", "table": table, "where": conds(conditions)});
                if let (Some(c), Some(m)) = (columns, o.as_object_mut()) {
                    m.insert("columns".into(), json!(c));
                }
                o
            }
            Operation::Update {
                table,
                conditions,
                row,
            } => json!({"op": "update", "table": table, "where": conds(conditions),
                        "row": row_to_json(row)}),
            Operation::Mutate {
                table,
                conditions,
                mutations,
            } => json!({"op": "mutate", "table": table, "where": conds(conditions),
                        "mutations": mutations.iter().map(Mutation::to_json).collect::<Vec<_>>()}),
            Operation::Delete { table, conditions } => {
                json!({"op": "delete", "table": table, "where": conds(conditions)})
            }
            Operation::Wait {
                table,
                conditions,
                columns,
                until,
                rows,
                timeout_ms,
            } => {
                let mut o = json!({"op": "wait", "table": table, "where": conds(conditions),
                    "columns": columns,
                    "until": match until { WaitUntil::Equal => "==", WaitUntil::NotEqual => "!=" },
                    "rows": rows.iter().map(row_to_json).collect::<Vec<_>>()});
                if let (Some(t), Some(m)) = (timeout_ms, o.as_object_mut()) {
                    m.insert("timeout".into(), json!(t));
                }
                o
            }
            Operation::Commit { durable } => json!({"op": "commit", "durable": durable}),
            Operation::Abort => json!({"op": "abort"}),
            Operation::Comment(c) => json!({"op": "comment", "comment": c}),
            Operation::Assert { lock } => json!({"op": "assert", "lock": lock}),
        }
    }
}

/// Direct serialisation, identical to `to_json` (checked by a test), used by
/// `Client::transact` so a 10,000-operation request is written without an intermediate
/// `serde_json::Value`.
impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.column, self.function.as_str(), &self.value).serialize(s)
    }
}

impl serde::Serialize for Mutation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.column, self.mutator.as_str(), &self.value).serialize(s)
    }
}

impl serde::Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            Operation::Insert {
                table,
                row,
                uuid_name,
                uuid,
            } => {
                m.serialize_entry("op", "insert")?;
                m.serialize_entry("table", table)?;
                m.serialize_entry("row", row)?;
                if let Some(n) = uuid_name {
                    m.serialize_entry("uuid-name", n)?;
                }
                if let Some(u) = uuid {
                    m.serialize_entry("uuid", &u.to_string())?;
                }
            }
            Operation::Select {
                table,
                conditions,
                columns,
            } => {
                m.serialize_entry("op", "select")?;
                m.serialize_entry("table", table)?;
                m.serialize_entry("where", conditions)?;
                if let Some(c) = columns {
                    m.serialize_entry("columns", c)?;
                }
            }
            Operation::Update {
                table,
                conditions,
                row,
            } => {
                m.serialize_entry("op", "update")?;
                m.serialize_entry("table", table)?;
                m.serialize_entry("where", conditions)?;
                m.serialize_entry("row", row)?;
            }
            Operation::Mutate {
                table,
                conditions,
                mutations,
            } => {
                m.serialize_entry("op", "mutate")?;
                m.serialize_entry("table", table)?;
                m.serialize_entry("where", conditions)?;
                m.serialize_entry("mutations", mutations)?;
            }
            Operation::Delete { table, conditions } => {
                m.serialize_entry("op", "delete")?;
                m.serialize_entry("table", table)?;
                m.serialize_entry("where", conditions)?;
            }
            // Rare and small: reuse the JSON form.
            other => {
                if let Json::Object(o) = other.to_json() {
                    for (k, v) in &o {
                        m.serialize_entry(k, v)?;
                    }
                }
            }
        }
        m.end()
    }
}

/// One operation's successful result.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// The inserted row's uuid.
    Insert(Uuid),
    /// Rows selected.
    Rows(Vec<Row>),
    /// Rows updated, mutated or deleted.
    Count(i64),
    /// wait, commit, comment, assert.
    Empty,
}

impl OpResult {
    pub fn uuid(&self) -> Option<Uuid> {
        match self {
            OpResult::Insert(u) => Some(*u),
            _ => None,
        }
    }
    pub fn rows(&self) -> &[Row] {
        match self {
            OpResult::Rows(r) => r,
            _ => &[],
        }
    }
    pub fn count(&self) -> Option<i64> {
        match self {
            OpResult::Count(c) => Some(*c),
            _ => None,
        }
    }
}

fn txn_error(obj: &Map<String, Json>, op_index: Option<usize>) -> TxnError {
    TxnError {
        kind: TxnErrorKind::from_wire(obj.get("error").and_then(Json::as_str).unwrap_or("")),
        details: obj.get("details").and_then(Json::as_str).map(str::to_owned),
        op_index,
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::BadReply {
        method: "transact".into(),
        reason: reason.into(),
    }
}

/// Check a transact result array against the operations sent (RFC 7047 section 4.1.3):
/// the first element that is an error object fails the whole transaction; an error
/// element after the last operation is a commit-time failure (`op_index: None`).
pub fn check_results(ops: &[Operation], result: &Json) -> Result<Vec<OpResult>, Error> {
    let arr = result
        .as_array()
        .ok_or_else(|| bad(format!("result is not an array: {result}")))?;
    for (i, r) in arr.iter().enumerate() {
        if let Some(obj) = r.as_object()
            && obj.contains_key("error")
        {
            let op_index = (i < ops.len()).then_some(i);
            return Err(txn_error(obj, op_index).into());
        }
    }
    if arr.len() < ops.len() {
        return Err(bad(format!(
            "{} results for {} operations and no error",
            arr.len(),
            ops.len()
        )));
    }
    ops.iter()
        .zip(arr)
        .map(|(op, r)| match op {
            Operation::Insert { .. } => {
                let u = r
                    .get("uuid")
                    .ok_or_else(|| bad(format!("insert result without uuid: {r}")))?;
                match Atom::from_json(u)? {
                    Atom::Uuid(u) => Ok(OpResult::Insert(u)),
                    other => Err(bad(format!("insert uuid is {other:?}"))),
                }
            }
            Operation::Select { .. } => {
                let rows = r
                    .get("rows")
                    .and_then(Json::as_array)
                    .ok_or_else(|| bad(format!("select result without rows: {r}")))?;
                Ok(OpResult::Rows(
                    rows.iter().map(row_from_json).collect::<Result<_, _>>()?,
                ))
            }
            Operation::Update { .. } | Operation::Mutate { .. } | Operation::Delete { .. } => r
                .get("count")
                .and_then(Json::as_i64)
                .map(OpResult::Count)
                .ok_or_else(|| bad(format!("result without count: {r}"))),
            _ => Ok(OpResult::Empty),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab";

    #[test]
    fn operations_have_the_rfc_shape() {
        let mut row = Row::new();
        row.insert("ip_prefix".into(), Value::from("10.0.0.0/8"));
        let op = Operation::insert_named("Logical_Router_Static_Route", row, "r0");
        assert_eq!(
            op.to_json(),
            json!({"op": "insert", "table": "Logical_Router_Static_Route",
                   "row": {"ip_prefix": "10.0.0.0/8"}, "uuid-name": "r0"})
        );
        // The client's own UUID for the row (ovsdb-server(7) 5.2.1, Open vSwitch 2.13+).
        let op = Operation::Insert {
            table: "ACL".into(),
            row: Row::new(),
            uuid_name: None,
            uuid: Some(U.parse().unwrap()),
        };
        assert_eq!(
            op.to_json(),
            json!({"op": "insert", "table": "ACL", "row": {}, "uuid": U})
        );
        let op = Operation::mutate(
            "Logical_Router",
            vec![Condition::eq("name", "lr0")],
            vec![Mutation::insert(
                "static_routes",
                Value::set([Atom::NamedUuid("r0".into())]),
            )],
        );
        assert_eq!(
            op.to_json(),
            json!({"op": "mutate", "table": "Logical_Router", "where": [["name", "==", "lr0"]],
                   "mutations": [["static_routes", "insert", ["set", [["named-uuid", "r0"]]]]]})
        );
        let op = Operation::Wait {
            table: "ACL".into(),
            conditions: vec![],
            columns: vec!["priority".into()],
            until: WaitUntil::Equal,
            rows: vec![],
            timeout_ms: Some(0),
        };
        assert_eq!(op.to_json()["until"], json!("=="));
        assert_eq!(op.to_json()["timeout"], json!(0));
    }

    #[test]
    fn serialisation_matches_to_json() {
        let u: Uuid = "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab".parse().unwrap();
        let mut row = Row::new();
        row.insert("name".into(), Value::from("x"));
        row.insert(
            "ids".into(),
            Value::set([Atom::Uuid(u), Atom::NamedUuid("n".into())]),
        );
        let conds = vec![
            Condition::uuid(u),
            Condition::includes("m", Value::map([("k", "v")])),
        ];
        for op in [
            Operation::insert("T", row.clone()),
            Operation::insert_named("T", row.clone(), "n"),
            Operation::Insert {
                table: "T".into(),
                row: row.clone(),
                uuid_name: Some("n".into()),
                uuid: Some(u),
            },
            Operation::select("T", conds.clone()),
            Operation::Select {
                table: "T".into(),
                conditions: vec![],
                columns: Some(vec!["a".into()]),
            },
            Operation::update("T", conds.clone(), row.clone()),
            Operation::mutate(
                "T",
                conds.clone(),
                vec![Mutation::delete("ids", Value::set([Atom::Uuid(u)]))],
            ),
            Operation::delete("T", conds),
            Operation::Commit { durable: false },
            Operation::Abort,
            Operation::Comment("c".into()),
            Operation::Assert { lock: "l".into() },
        ] {
            assert_eq!(serde_json::to_value(&op).unwrap(), op.to_json(), "{op:?}");
        }
    }

    #[test]
    fn results_are_checked() {
        let ops = vec![
            Operation::insert("ACL", Row::new()),
            Operation::select("ACL", vec![]),
            Operation::delete("ACL", vec![]),
            Operation::Comment("x".into()),
        ];
        let ok = json!([{"uuid": ["uuid", U]}, {"rows": [{"priority": 1}]}, {"count": 2}, {}]);
        let r = check_results(&ops, &ok).unwrap();
        assert_eq!(r[0].uuid(), Some(U.parse().unwrap()));
        assert_eq!(r[1].rows().len(), 1);
        assert_eq!(r[2].count(), Some(2));

        let failed = json!([{"uuid": ["uuid", U]},
            {"error": "constraint violation", "details": "dup"}, null, null]);
        match check_results(&ops, &failed) {
            Err(Error::Transaction(t)) => {
                assert_eq!(t.kind, TxnErrorKind::ConstraintViolation);
                assert_eq!(t.op_index, Some(1));
                assert_eq!(t.details.as_deref(), Some("dup"));
            }
            other => panic!("{other:?}"),
        }
        let commit = json!([{"uuid": ["uuid", U]}, {"rows": []}, {"count": 0}, {},
            {"error": "referential integrity violation", "details": "x"}]);
        match check_results(&ops, &commit) {
            Err(Error::Transaction(t)) => {
                assert_eq!(t.kind, TxnErrorKind::ReferentialIntegrityViolation);
                assert_eq!(t.op_index, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_results(&ops, &json!([{"uuid": ["uuid", U]}])),
            Err(Error::BadReply { .. })
        ));
        assert!(check_results(&ops, &json!({})).is_err());
        assert!(check_results(&ops[..1], &json!([{"uuid": 5}])).is_err());
    }
}
