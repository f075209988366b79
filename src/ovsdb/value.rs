//! OVSDB values as RFC 7047 section 5.1 defines their JSON notation: atoms, sets and maps.
//!
//! Decoding here is schema-less: a bare atom may stand for a one-element set (the RFC allows
//! that encoding), so layers that know the column type (the replica, typed rows) normalise
//! with [`Value::into_set`] / [`Value::set_iter`]. Encoding always writes sets and maps in
//! their explicit `["set", ...]` / `["map", ...]` form, which is valid for every column.
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::{Value as Json, json};

/// A row's UUID (`["uuid", "..."]` on the wire).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub uuid::Uuid);

impl Uuid {
    /// The all-zero UUID, which `monitor_cond_since` uses for "no transaction seen yet".
    pub const ZERO: Uuid = Uuid(uuid::Uuid::nil());
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Uuid {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        uuid::Uuid::parse_str(s)
            .map(Uuid)
            .map_err(|e| ValueError::new(format!("bad uuid {s:?}: {e}")))
    }
}

/// A value that did not have the shape RFC 7047 section 5.1 requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl ValueError {
    pub fn new(msg: impl Into<String>) -> Self {
        ValueError(msg.into())
    }
}

/// One atom: integer, real, boolean, string or uuid (RFC 7047 section 5.1 `<atom>`).
/// `NamedUuid` only appears in transactions, naming a row inserted earlier in the same one.
#[derive(Clone, Debug)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
    NamedUuid(String),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
            Atom::NamedUuid(_) => 5,
        }
    }

    pub fn string(s: impl Into<String>) -> Atom {
        Atom::String(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Atom::Integer(i) => json!(i),
            // Non-finite reals cannot be written in JSON; OVSDB never produces them.
            Atom::Real(r) => serde_json::Number::from_f64(*r).map_or(Json::Null, Json::Number),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
            Atom::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }

    pub fn from_json(j: &Json) -> Result<Atom, ValueError> {
        match j {
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Atom::Integer(i))
                } else if n.is_u64() {
                    Err(ValueError::new(format!(
                        "integer {n} out of the 64-bit signed range"
                    )))
                } else {
                    n.as_f64()
                        .map(Atom::Real)
                        .ok_or_else(|| ValueError::new(format!("bad number {n}")))
                }
            }
            Json::Bool(b) => Ok(Atom::Boolean(*b)),
            Json::String(s) => Ok(Atom::String(s.clone())),
            Json::Array(a) => match (a.first().and_then(Json::as_str), a.get(1), a.len()) {
                (Some("uuid"), Some(Json::String(s)), 2) => Ok(Atom::Uuid(s.parse()?)),
                (Some("named-uuid"), Some(Json::String(s)), 2) => Ok(Atom::NamedUuid(s.clone())),
                _ => Err(ValueError::new(format!("not an atom: {j}"))),
            },
            _ => Err(ValueError::new(format!("not an atom: {j}"))),
        }
    }
}

impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Atom {}

impl From<&str> for Atom {
    fn from(s: &str) -> Atom {
        Atom::String(s.to_owned())
    }
}
impl From<String> for Atom {
    fn from(s: String) -> Atom {
        Atom::String(s)
    }
}
impl From<i64> for Atom {
    fn from(i: i64) -> Atom {
        Atom::Integer(i)
    }
}
impl From<bool> for Atom {
    fn from(b: bool) -> Atom {
        Atom::Boolean(b)
    }
}
impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Atom {
        Atom::Uuid(u)
    }
}

/// A column value: an atom, a set or a map (RFC 7047 section 5.1 `<value>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Atom(Atom),
    Set(BTreeSet<Atom>),
    Map(BTreeMap<Atom, Atom>),
}

impl Value {
    pub fn empty_set() -> Value {
        Value::Set(BTreeSet::new())
    }

    pub fn set<I: IntoIterator<Item = Atom>>(items: I) -> Value {
        Value::Set(items.into_iter().collect())
    }

    pub fn map<K: Into<Atom>, V: Into<Atom>, I: IntoIterator<Item = (K, V)>>(items: I) -> Value {
        Value::Map(
            items
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The value as a set: a bare atom is the one-element set RFC 7047 lets it stand for.
    /// A map yields nothing.
    pub fn into_set(self) -> BTreeSet<Atom> {
        match self {
            Value::Atom(a) => BTreeSet::from([a]),
            Value::Set(s) => s,
            Value::Map(_) => BTreeSet::new(),
        }
    }

    /// Iterate the value's elements as a set (see [`Value::into_set`]).
    pub fn set_iter(&self) -> Box<dyn Iterator<Item = &Atom> + '_> {
        match self {
            Value::Atom(a) => Box::new(std::iter::once(a)),
            Value::Set(s) => Box::new(s.iter()),
            Value::Map(_) => Box::new(std::iter::empty()),
        }
    }

    pub fn as_atom(&self) -> Option<&Atom> {
        match self {
            Value::Atom(a) => Some(a),
            Value::Set(s) if s.len() == 1 => s.iter().next(),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Value::Atom(a) => a.to_json(),
            Value::Set(s) => json!(["set", s.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Value::Map(m) => json!([
                "map",
                m.iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    pub fn from_json(j: &Json) -> Result<Value, ValueError> {
        if let Json::Array(a) = j {
            match (a.first().and_then(Json::as_str), a.get(1), a.len()) {
                (Some("set"), Some(Json::Array(items)), 2) => {
                    return items
                        .iter()
                        .map(Atom::from_json)
                        .collect::<Result<_, _>>()
                        .map(Value::Set);
                }
                (Some("map"), Some(Json::Array(pairs)), 2) => {
                    let mut m = BTreeMap::new();
                    for p in pairs {
                        match p {
                            Json::Array(kv) if kv.len() == 2 => {
                                m.insert(Atom::from_json(&kv[0])?, Atom::from_json(&kv[1])?);
                            }
                            _ => return Err(ValueError::new(format!("bad map pair: {p}"))),
                        }
                    }
                    return Ok(Value::Map(m));
                }
                _ => {}
            }
        }
        Atom::from_json(j).map(Value::Atom)
    }
}

impl From<Atom> for Value {
    fn from(a: Atom) -> Value {
        Value::Atom(a)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Atom(s.into())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Atom(s.into())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Atom(i.into())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Atom(b.into())
    }
}
impl From<Uuid> for Value {
    fn from(u: Uuid) -> Value {
        Value::Atom(u.into())
    }
}

/// A row as a column-name -> value map (RFC 7047 section 5.1 `<row>`). Rows in updates and
/// select results may hold only some columns.
pub type Row = BTreeMap<String, Value>;

pub fn row_from_json(j: &Json) -> Result<Row, ValueError> {
    let obj = j
        .as_object()
        .ok_or_else(|| ValueError::new(format!("row is not an object: {j}")))?;
    obj.iter()
        .map(|(k, v)| {
            Value::from_json(v)
                .map(|v| (k.clone(), v))
                .map_err(|e| ValueError::new(format!("column {k}: {}", e.0)))
        })
        .collect()
}

pub fn row_to_json(row: &Row) -> Json {
    Json::Object(row.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_round_trip() {
        let u: Uuid = "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab".parse().unwrap();
        for a in [
            Atom::Integer(i64::MIN),
            Atom::Integer(i64::MAX),
            Atom::Real(1.5),
            Atom::Boolean(true),
            Atom::string("a \"quoted\" \u{1F600} string"),
            Atom::Uuid(u),
            Atom::NamedUuid("row0".into()),
        ] {
            assert_eq!(Atom::from_json(&a.to_json()).unwrap(), a);
        }
    }

    #[test]
    fn values_round_trip_and_normalise() {
        let v = Value::set([Atom::Integer(3), Atom::Integer(1)]);
        assert_eq!(v.to_json(), json!(["set", [1, 3]]));
        assert_eq!(Value::from_json(&v.to_json()).unwrap(), v);
        let m = Value::map([("k", "v"), ("a", "b")]);
        assert_eq!(m.to_json(), json!(["map", [["a", "b"], ["k", "v"]]]));
        assert_eq!(Value::from_json(&m.to_json()).unwrap(), m);
        // A bare atom is a one-element set.
        let one = Value::from_json(&json!("x")).unwrap();
        assert_eq!(one.into_set(), BTreeSet::from([Atom::string("x")]));
    }

    #[test]
    fn rejects_malformed() {
        for j in [
            json!(null),
            json!({"a": 1}),
            json!(["uuid", "not-a-uuid"]),
            json!(["set", 1]),
            json!(["map", [[1]]]),
            json!(["frob", 1]),
            json!(18446744073709551615u64),
        ] {
            assert!(Value::from_json(&j).is_err(), "{j} should be rejected");
        }
    }
}

/// Direct serialisation in the RFC 7047 notation (the same text as `to_json`), so large
/// requests are written without building a `serde_json::Value` first.
mod wire {
    use super::{Atom, Value};
    use serde::ser::{Serialize, SerializeTuple, Serializer};

    struct Tagged<'a, T: Serialize + ?Sized>(&'static str, &'a T);

    impl<T: Serialize + ?Sized> Serialize for Tagged<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(self.0)?;
            t.serialize_element(self.1)?;
            t.end()
        }
    }

    struct SetElements<'a>(&'a std::collections::BTreeSet<Atom>);

    impl Serialize for SetElements<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0)
        }
    }

    /// Map pairs as `[key, value]` arrays.
    struct MapPairs<'a>(&'a std::collections::BTreeMap<Atom, Atom>);

    impl Serialize for MapPairs<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter())
        }
    }

    impl Serialize for Atom {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Atom::Integer(i) => s.serialize_i64(*i),
                Atom::Real(r) if r.is_finite() => s.serialize_f64(*r),
                Atom::Real(_) => s.serialize_unit(),
                Atom::Boolean(b) => s.serialize_bool(*b),
                Atom::String(v) => s.serialize_str(v),
                Atom::Uuid(u) => {
                    let mut buf = uuid::Uuid::encode_buffer();
                    let text: &str = u.0.hyphenated().encode_lower(&mut buf);
                    Tagged("uuid", text).serialize(s)
                }
                Atom::NamedUuid(n) => Tagged("named-uuid", n.as_str()).serialize(s),
            }
        }
    }

    impl Serialize for Value {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Value::Atom(a) => a.serialize(s),
                Value::Set(set) => Tagged("set", &SetElements(set)).serialize(s),
                Value::Map(m) => Tagged("map", &MapPairs(m)).serialize(s),
            }
        }
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn serialisation_matches_to_json() {
        let u: Uuid = "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab".parse().unwrap();
        for v in [
            Value::from(-5),
            Value::Atom(Atom::Real(2.5)),
            Value::from(true),
            Value::from("a \"q\" {"),
            Value::from(u),
            Value::Atom(Atom::NamedUuid("n".into())),
            Value::empty_set(),
            Value::set([Atom::Uuid(u), Atom::NamedUuid("x".into())]),
            Value::map([("k", "v"), ("a", "b")]),
            Value::Map(BTreeMap::from([(Atom::Integer(1), Atom::Uuid(u))])),
        ] {
            assert_eq!(serde_json::to_value(&v).unwrap(), v.to_json(), "{v:?}");
        }
    }
}

/// Owned decoding: the same rules as `from_json`, moving strings out of the JSON instead of
/// copying them, so a large snapshot is converted without holding two full copies.
impl Atom {
    pub fn from_json_owned(j: Json) -> Result<Atom, ValueError> {
        match j {
            Json::String(s) => Ok(Atom::String(s)),
            Json::Array(mut a) if a.len() == 2 => match (a.pop(), a.pop()) {
                (Some(Json::String(v)), Some(Json::String(tag))) if tag == "uuid" => {
                    Ok(Atom::Uuid(v.parse()?))
                }
                (Some(Json::String(v)), Some(Json::String(tag))) if tag == "named-uuid" => {
                    Ok(Atom::NamedUuid(v))
                }
                (v, tag) => Err(ValueError::new(format!(
                    "not an atom: [{}, {}]",
                    tag.unwrap_or_default(),
                    v.unwrap_or_default()
                ))),
            },
            other => Atom::from_json(&other),
        }
    }
}

impl Value {
    pub fn from_json_owned(j: Json) -> Result<Value, ValueError> {
        let Json::Array(mut a) = j else {
            return Atom::from_json_owned(j).map(Value::Atom);
        };
        let tag = match (a.len(), a.first()) {
            (2, Some(Json::String(t))) if t == "set" || t == "map" => t.clone(),
            _ => return Atom::from_json_owned(Json::Array(a)).map(Value::Atom),
        };
        let body = a.pop().unwrap_or_default();
        let Json::Array(items) = body else {
            return Err(ValueError::new(format!("bad {tag}: {body}")));
        };
        if tag == "set" {
            return items
                .into_iter()
                .map(Atom::from_json_owned)
                .collect::<Result<_, _>>()
                .map(Value::Set);
        }
        let mut m = BTreeMap::new();
        for p in items {
            match p {
                Json::Array(mut kv) if kv.len() == 2 => {
                    let v = kv.pop().unwrap_or_default();
                    let k = kv.pop().unwrap_or_default();
                    m.insert(Atom::from_json_owned(k)?, Atom::from_json_owned(v)?);
                }
                other => return Err(ValueError::new(format!("bad map pair: {other}"))),
            }
        }
        Ok(Value::Map(m))
    }
}

/// Owned variant of [`row_from_json`].
pub fn row_from_json_owned(j: Json) -> Result<Row, ValueError> {
    let Json::Object(obj) = j else {
        return Err(ValueError::new(format!("row is not an object: {j}")));
    };
    obj.into_iter()
        .map(|(k, v)| match Value::from_json_owned(v) {
            Ok(v) => Ok((k, v)),
            Err(e) => Err(ValueError::new(format!("column {k}: {}", e.0))),
        })
        .collect()
}

#[cfg(test)]
mod owned_tests {
    use super::*;

    #[test]
    fn owned_decoding_matches_borrowed() {
        for j in [
            json!(1),
            json!(1.5),
            json!("s"),
            json!(["uuid", "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab"]),
            json!(["named-uuid", "n"]),
            json!(["set", []]),
            json!(["set", [1, 2]]),
            json!([
                "map",
                [
                    ["a", 1],
                    ["b", ["uuid", "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab"]]
                ]
            ]),
        ] {
            assert_eq!(
                Value::from_json_owned(j.clone()).unwrap(),
                Value::from_json(&j).unwrap()
            );
        }
        for j in [
            json!(null),
            json!({"a": 1}),
            json!(["uuid", "x"]),
            json!(["set", 1]),
            json!(["map", [[1]]]),
            json!(["frob", 1]),
            json!(["set", [1], 2]),
        ] {
            assert!(Value::from_json_owned(j.clone()).is_err(), "{j}");
        }
        let r = json!({"a": ["set", ["x"]], "b": 2});
        assert_eq!(
            row_from_json_owned(r.clone()).unwrap(),
            row_from_json(&r).unwrap()
        );
        assert!(row_from_json_owned(json!([1])).is_err());
    }
}
