//! Database schemas as RFC 7047 section 3.2 defines them (`<database-schema>`,
//! `<table-schema>`, `<column-schema>`, `<type>`, `<base-type>`).
//!
//! Owns parsing a schema and the questions other layers ask of a column: is it a scalar, an
//! optional value, a set or a map, what is its default, and is a received value shaped the way
//! the column requires ([`ColumnType::normalize`]). It does not talk to a server and does not
//! check constraints that only the server enforces (referential integrity, `maxRows`).
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::value::{Atom, Uuid, Value};

/// A schema that does not follow RFC 7047 section 3.2, or a value that does not fit a column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A member the RFC requires is absent or has the wrong JSON type.
    #[error("{at}: {what}")]
    Malformed { at: String, what: String },
    /// An atomic type name other than integer, real, boolean, string or uuid.
    #[error("{at}: unknown atomic type {name:?}")]
    UnknownType { at: String, name: String },
    /// An index names a column the table does not have.
    #[error("table {table}: index names unknown column {column:?}")]
    UnknownIndexColumn { table: String, column: String },
    /// A value received for a column does not have the column's type.
    #[error("column {column}: {what}")]
    BadValue { column: String, what: String },
}

fn malformed(at: &str, what: impl Into<String>) -> SchemaError {
    SchemaError::Malformed {
        at: at.to_owned(),
        what: what.into(),
    }
}

/// RFC 7047 `<atomic-type>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    fn parse(at: &str, name: &str) -> Result<AtomicType, SchemaError> {
        Ok(match name {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            other => {
                return Err(SchemaError::UnknownType {
                    at: at.to_owned(),
                    name: other.to_owned(),
                });
            }
        })
    }

    /// The type's default atom (RFC 7047 section 5.1 lists them: 0, 0.0, false, "", and the
    /// all-zero UUID).
    pub fn default_atom(self) -> Atom {
        match self {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::ZERO),
        }
    }

    /// Check an atom against this type. ovsdb-server prints reals with `%.17g`, so a real
    /// that happens to be integral arrives as a JSON integer: it is converted here.
    pub fn coerce(self, atom: Atom) -> Result<Atom, String> {
        match (self, atom) {
            (AtomicType::Integer, a @ Atom::Integer(_))
            | (AtomicType::Real, a @ Atom::Real(_))
            | (AtomicType::Boolean, a @ Atom::Boolean(_))
            | (AtomicType::String, a @ Atom::String(_))
            | (AtomicType::Uuid, a @ (Atom::Uuid(_) | Atom::NamedUuid(_))) => Ok(a),
            (AtomicType::Real, Atom::Integer(i)) => Ok(Atom::Real(i as f64)),
            (t, a) => Err(format!("expected {t:?}, got {a:?}")),
        }
    }
}

/// RFC 7047 `refType` of a uuid column that names `refTable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    Strong,
    Weak,
}

/// RFC 7047 `<base-type>`: the type of a set element, or of a map key or value.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseType {
    pub atomic: AtomicType,
    /// Allowed values, when the schema restricts them (`"enum"`).
    pub enum_values: Option<BTreeSet<Atom>>,
    pub min_integer: Option<i64>,
    pub max_integer: Option<i64>,
    pub min_real: Option<f64>,
    pub max_real: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    /// For uuid columns: the table the uuid points into, and how strongly.
    pub ref_table: Option<String>,
    pub ref_type: RefType,
}

impl BaseType {
    fn of(atomic: AtomicType) -> BaseType {
        BaseType {
            atomic,
            enum_values: None,
            min_integer: None,
            max_integer: None,
            min_real: None,
            max_real: None,
            min_length: None,
            max_length: None,
            ref_table: None,
            ref_type: RefType::Strong,
        }
    }

    fn from_json(at: &str, j: &Json) -> Result<BaseType, SchemaError> {
        let obj = match j {
            Json::String(name) => return Ok(BaseType::of(AtomicType::parse(at, name)?)),
            Json::Object(o) => o,
            _ => {
                return Err(malformed(
                    at,
                    format!("base type is neither string nor object: {j}"),
                ));
            }
        };
        let name = obj
            .get("type")
            .and_then(Json::as_str)
            .ok_or_else(|| malformed(at, "base type without \"type\""))?;
        let mut base = BaseType::of(AtomicType::parse(at, name)?);
        if let Some(e) = obj.get("enum") {
            let v = Value::from_json(e).map_err(|err| malformed(at, format!("enum: {err}")))?;
            let set = v
                .into_set()
                .into_iter()
                .map(|a| base.atomic.coerce(a))
                .collect::<Result<_, _>>()
                .map_err(|err| malformed(at, format!("enum: {err}")))?;
            base.enum_values = Some(set);
        }
        let int = |k: &str| -> Result<Option<i64>, SchemaError> {
            obj.get(k)
                .map(|v| {
                    v.as_i64()
                        .ok_or_else(|| malformed(at, format!("{k} is not an integer")))
                })
                .transpose()
        };
        let uint = |k: &str| -> Result<Option<u64>, SchemaError> {
            obj.get(k)
                .map(|v| {
                    v.as_u64()
                        .ok_or_else(|| malformed(at, format!("{k} is not a count")))
                })
                .transpose()
        };
        let real = |k: &str| -> Result<Option<f64>, SchemaError> {
            obj.get(k)
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| malformed(at, format!("{k} is not a number")))
                })
                .transpose()
        };
        base.min_integer = int("minInteger")?;
        base.max_integer = int("maxInteger")?;
        base.min_real = real("minReal")?;
        base.max_real = real("maxReal")?;
        base.min_length = uint("minLength")?;
        base.max_length = uint("maxLength")?;
        if let Some(t) = obj.get("refTable") {
            let t = t
                .as_str()
                .ok_or_else(|| malformed(at, "refTable is not a string"))?;
            base.ref_table = Some(t.to_owned());
        }
        base.ref_type = match obj.get("refType").map(|v| v.as_str()) {
            None | Some(Some("strong")) => RefType::Strong,
            Some(Some("weak")) => RefType::Weak,
            Some(_) => return Err(malformed(at, "refType is neither \"strong\" nor \"weak\"")),
        };
        Ok(base)
    }
}

/// The shape of a column's value, derived from `min`, `max` and whether there is a `value`
/// type (RFC 7047 section 3.2 `<type>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `min` = `max` = 1, no value type: exactly one atom.
    Scalar,
    /// `min` = 0, `max` = 1, no value type: zero or one atom, encoded as a set.
    Optional,
    /// Any other `min`/`max` without a value type.
    Set,
    /// A value type is present.
    Map,
}

/// RFC 7047 `<type>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    pub key: BaseType,
    pub value: Option<BaseType>,
    pub min: u64,
    /// `None` means `"unlimited"`.
    pub max: Option<u64>,
}

impl ColumnType {
    fn from_json(at: &str, j: &Json) -> Result<ColumnType, SchemaError> {
        let obj = match j {
            Json::String(_) => {
                return Ok(ColumnType {
                    key: BaseType::from_json(at, j)?,
                    value: None,
                    min: 1,
                    max: Some(1),
                });
            }
            Json::Object(o) => o,
            _ => {
                return Err(malformed(
                    at,
                    format!("type is neither string nor object: {j}"),
                ));
            }
        };
        let key = BaseType::from_json(
            at,
            obj.get("key")
                .ok_or_else(|| malformed(at, "type without \"key\""))?,
        )?;
        let value = obj
            .get("value")
            .map(|v| BaseType::from_json(at, v))
            .transpose()?;
        let min = match obj.get("min") {
            None => 1,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| malformed(at, "min is not 0 or 1"))?,
        };
        let max = match obj.get("max") {
            None => Some(1),
            Some(Json::String(s)) if s == "unlimited" => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| malformed(at, "max is neither a count nor \"unlimited\""))?,
            ),
        };
        if min > 1 || max == Some(0) || max.is_some_and(|m| m < min) {
            return Err(malformed(at, format!("bad bounds min={min} max={max:?}")));
        }
        Ok(ColumnType {
            key,
            value,
            min,
            max,
        })
    }

    pub fn kind(&self) -> ColumnKind {
        match (&self.value, self.min, self.max) {
            (Some(_), _, _) => ColumnKind::Map,
            (None, 1, Some(1)) => ColumnKind::Scalar,
            (None, 0, Some(1)) => ColumnKind::Optional,
            (None, _, _) => ColumnKind::Set,
        }
    }

    /// Optional columns count as sets: that is how the wire encodes them and how update2
    /// diffs treat them.
    pub fn is_set(&self) -> bool {
        matches!(self.kind(), ColumnKind::Optional | ColumnKind::Set)
    }

    pub fn is_map(&self) -> bool {
        self.kind() == ColumnKind::Map
    }

    /// The value a column takes when an insert does not mention it (RFC 7047 section 5.2.1):
    /// the key type's default atom for scalars, otherwise the empty set or map.
    pub fn default_value(&self) -> Value {
        match self.kind() {
            ColumnKind::Scalar => Value::Atom(self.key.atomic.default_atom()),
            ColumnKind::Optional | ColumnKind::Set => Value::Set(BTreeSet::new()),
            ColumnKind::Map => Value::Map(BTreeMap::new()),
        }
    }

    /// Bring a received value into the column's canonical form: scalars as `Value::Atom`,
    /// sets (a bare atom is a one-element set) as `Value::Set`, maps as `Value::Map` (an empty
    /// set stands for an empty map). Atom types are checked; reals accept integers.
    /// `diff` relaxes the bounds check for update2 diffs, whose element count is unrelated to
    /// the column's `min`/`max`.
    pub fn normalize(&self, column: &str, v: Value, diff: bool) -> Result<Value, SchemaError> {
        let bad = |what: String| SchemaError::BadValue {
            column: column.to_owned(),
            what,
        };
        match self.kind() {
            ColumnKind::Scalar if !diff => match v {
                Value::Atom(a) => Ok(Value::Atom(self.key.atomic.coerce(a).map_err(bad)?)),
                Value::Set(s) if s.len() == 1 => {
                    let a = s.into_iter().next().expect("length checked above");
                    Ok(Value::Atom(self.key.atomic.coerce(a).map_err(bad)?))
                }
                other => Err(bad(format!("expected one atom, got {}", other.to_json()))),
            },
            ColumnKind::Scalar | ColumnKind::Optional | ColumnKind::Set => {
                if matches!(v, Value::Map(ref m) if !m.is_empty()) {
                    return Err(bad("expected a set, got a map".into()));
                }
                let set: BTreeSet<Atom> = v
                    .into_set()
                    .into_iter()
                    .map(|a| self.key.atomic.coerce(a))
                    .collect::<Result<_, _>>()
                    .map_err(bad)?;
                if !diff {
                    let n = set.len() as u64;
                    if n < self.min || self.max.is_some_and(|m| n > m) {
                        return Err(bad(format!(
                            "{n} elements outside min={} max={:?}",
                            self.min, self.max
                        )));
                    }
                }
                if self.kind() == ColumnKind::Scalar {
                    // A scalar in a diff is its new value, one atom.
                    let mut it = set.into_iter();
                    return match (it.next(), it.next()) {
                        (Some(a), None) => Ok(Value::Atom(a)),
                        _ => Err(bad("expected one atom".into())),
                    };
                }
                Ok(Value::Set(set))
            }
            ColumnKind::Map => {
                let vt = self
                    .value
                    .as_ref()
                    .expect("kind Map has a value type")
                    .atomic;
                match v {
                    Value::Map(m) => m
                        .into_iter()
                        .map(|(k, v)| Ok((self.key.atomic.coerce(k)?, vt.coerce(v)?)))
                        .collect::<Result<BTreeMap<_, _>, String>>()
                        .map(Value::Map)
                        .map_err(bad),
                    Value::Set(s) if s.is_empty() => Ok(Value::Map(BTreeMap::new())),
                    other => Err(bad(format!("expected a map, got {}", other.to_json()))),
                }
            }
        }
    }
}

/// RFC 7047 `<column-schema>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    pub ty: ColumnType,
    pub ephemeral: bool,
    pub mutable: bool,
}

/// RFC 7047 `<table-schema>`. Columns keep the schema file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<ColumnSchema>,
    pub max_rows: Option<u64>,
    /// Rows of non-root tables that no other row references are garbage-collected.
    /// A schema that omits `isRoot` (pre-RFC style) makes every table a root.
    pub is_root: bool,
    /// Each index is a list of column names whose combined value is unique in the table.
    pub indexes: Vec<Vec<String>>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// RFC 7047 `<database-schema>`. Tables sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSchema {
    pub name: String,
    pub version: String,
    pub cksum: Option<String>,
    pub tables: BTreeMap<String, TableSchema>,
}

impl DatabaseSchema {
    pub fn from_json(j: &Json) -> Result<DatabaseSchema, SchemaError> {
        let obj = j
            .as_object()
            .ok_or_else(|| malformed("schema", "not an object"))?;
        let text = |k: &str| obj.get(k).and_then(Json::as_str).map(str::to_owned);
        let name = text("name").ok_or_else(|| malformed("schema", "no \"name\""))?;
        let version = text("version").ok_or_else(|| malformed("schema", "no \"version\""))?;
        let tables_json = obj
            .get("tables")
            .and_then(Json::as_object)
            .ok_or_else(|| malformed("schema", "no \"tables\" object"))?;
        let mut tables = BTreeMap::new();
        for (tname, tj) in tables_json {
            tables.insert(tname.clone(), parse_table(tname, tj)?);
        }
        Ok(DatabaseSchema {
            name,
            version,
            cksum: text("cksum"),
            tables,
        })
    }

    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }
}

fn parse_table(tname: &str, tj: &Json) -> Result<TableSchema, SchemaError> {
    let at = format!("table {tname}");
    let t = tj
        .as_object()
        .ok_or_else(|| malformed(&at, "not an object"))?;
    let cols = t
        .get("columns")
        .and_then(Json::as_object)
        .ok_or_else(|| malformed(&at, "no \"columns\" object"))?;
    let mut columns = Vec::with_capacity(cols.len());
    for (cname, cj) in cols {
        let at = format!("column {tname}.{cname}");
        let c = cj
            .as_object()
            .ok_or_else(|| malformed(&at, "not an object"))?;
        let ty = ColumnType::from_json(
            &at,
            c.get("type").ok_or_else(|| malformed(&at, "no \"type\""))?,
        )?;
        let flag = |k: &str, default: bool| -> Result<bool, SchemaError> {
            c.get(k).map_or(Ok(default), |v| {
                v.as_bool()
                    .ok_or_else(|| malformed(&at, format!("{k} is not a boolean")))
            })
        };
        columns.push(ColumnSchema {
            name: cname.clone(),
            ty,
            ephemeral: flag("ephemeral", false)?,
            mutable: flag("mutable", true)?,
        });
    }
    let max_rows = t
        .get("maxRows")
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| malformed(&at, "maxRows is not a count"))
        })
        .transpose()?;
    let is_root = match t.get("isRoot") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| malformed(&at, "isRoot is not a boolean"))?,
    };
    let mut indexes = Vec::new();
    if let Some(ix) = t.get("indexes") {
        for one in ix
            .as_array()
            .ok_or_else(|| malformed(&at, "indexes is not an array"))?
        {
            let names = one
                .as_array()
                .ok_or_else(|| malformed(&at, "an index is not an array"))?
                .iter()
                .map(|n| n.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| malformed(&at, "an index names a non-string column"))?;
            for n in &names {
                if !cols.contains_key(n) && n != "_uuid" {
                    return Err(SchemaError::UnknownIndexColumn {
                        table: tname.to_owned(),
                        column: n.clone(),
                    });
                }
            }
            indexes.push(names);
        }
    }
    Ok(TableSchema {
        name: tname.to_owned(),
        columns,
        max_rows,
        is_root,
        indexes,
    })
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
