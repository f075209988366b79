//! Bytes of one file -> JSON values, one per YAML document (or the one JSON value).
//!
//! Owns syntax only: UTF-8, YAML / JSON parsing with line and column, YAML -> JSON data
//! model. Must not interpret kinds or fields (that is `config::shape`).
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use super::error::{ConfigError, Location};
use crate::api::quote::{bounded, quote};

/// One parsed document and where it starts.
#[derive(Debug)]
pub(crate) struct Doc {
    pub at: Location,
    pub value: Value,
}

/// `.json` files are parsed as exactly one JSON value (so trailing garbage is an error);
/// everything else as a YAML stream of documents.
pub(crate) fn is_json(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Splits and parses `bytes`; documents that fail are reported in `errors` and skipped,
/// the others are returned in order. Empty documents are skipped silently.
pub(crate) fn parse_file(path: &Path, bytes: &[u8], errors: &mut Vec<ConfigError>) -> Vec<Doc> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            errors.push(ConfigError::NotUtf8 {
                path: path.to_path_buf(),
                offset: e.valid_up_to(),
            });
            return Vec::new();
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if is_json(path) {
        parse_json(path, text, errors)
    } else {
        parse_yaml(path, text, errors)
    }
}

fn parse_json(path: &Path, text: &str, errors: &mut Vec<ConfigError>) -> Vec<Doc> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = UniqueKeys::deserialize(&mut de).and_then(|v| de.end().map(|()| v.0));
    match parsed {
        Ok(value) => vec![Doc {
            at: Location {
                file: path.to_path_buf(),
                document: Some(1),
                line: Some(1),
                ..Location::default()
            },
            value,
        }],
        Err(e) => {
            errors.push(ConfigError::Syntax {
                at: Location {
                    file: path.to_path_buf(),
                    line: Some(e.line()),
                    column: Some(e.column()),
                    ..Location::default()
                },
                format: "JSON",
                message: bounded(e.to_string()),
            });
            Vec::new()
        }
    }
}

/// A JSON value whose objects have no key twice. `serde_json::Value` keeps the last of
/// two equal keys silently (a second `dst` would win); RFC 8259 section 4 leaves it to the
/// reader, and the YAML reader already refuses them, so both formats mean the same.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(UniqueKeys)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} has no JSON form")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key {}",
                    quote(&key)
                )));
            }
            let UniqueKeys(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// A line that starts a new YAML document. YAML forbids `---` followed by a space or the
/// end of line at column 0 inside any content, so splitting there is exact (YAML 1.2
/// section 9.1.2, "c-forbidden"), and lets a broken document not hide the ones after it.
fn is_document_start(line: &str) -> bool {
    let line = line.trim_end_matches(['\r', '\n']);
    line == "---"
        || line
            .strip_prefix("---")
            .is_some_and(|rest| rest.starts_with([' ', '\t']))
}

/// A chunk with nothing but comments, blank lines and directives belongs to the next one.
fn is_preamble(chunk: &str) -> bool {
    chunk.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || l.starts_with('%')
    })
}

/// (first line number, text) of each document chunk.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut chunks: Vec<(usize, String)> = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if is_document_start(line) {
            if !is_preamble(&current) {
                chunks.push((start, std::mem::take(&mut current)));
            }
            // Leading comments and directives stay with this document, reported at `---`.
            start = i + 1;
        }
        current.push_str(line);
    }
    chunks.push((start, current));
    chunks
}

fn parse_yaml(path: &Path, text: &str, errors: &mut Vec<ConfigError>) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut number = 0;
    for (start, chunk) in split_documents(text) {
        if is_preamble(&chunk) {
            continue;
        }
        for de in serde_yaml_ng::Deserializer::from_str(&chunk) {
            number += 1;
            let mut at = Location {
                file: path.to_path_buf(),
                document: Some(number),
                line: Some(start),
                ..Location::default()
            };
            match serde_yaml_ng::Value::deserialize(de) {
                Ok(serde_yaml_ng::Value::Null) => {}
                Ok(v) => match yaml_to_json(v, "") {
                    Ok(value) => docs.push(Doc { at, value }),
                    Err(message) => errors.push(ConfigError::Shape { at, message }),
                },
                Err(e) => {
                    if let Some(loc) = e.location() {
                        at.line = Some(start + loc.line() - 1);
                        at.column = Some(loc.column());
                    }
                    let mut message = bounded(e.to_string());
                    // the YAML reader takes integers beyond 64 bits as u128, which its Value
                    // cannot hold; say so in the user's words.
                    if message.contains(" as u128") {
                        message = format!("integer too large (more than 64 bits): {message}");
                    }
                    errors.push(ConfigError::Syntax {
                        at,
                        format: "YAML",
                        message,
                    });
                    // The parser cannot resynchronize inside this chunk.
                    break;
                }
            }
        }
    }
    docs
}

/// YAML data model -> JSON, as Kubernetes' YAML reader does: scalar keys become strings;
/// tags, collection keys and non-finite floats have no JSON form and are refused.
fn yaml_to_json(v: serde_yaml_ng::Value, path: &str) -> Result<Value, String> {
    let at = |p: &str| {
        if p.is_empty() {
            "<document>".to_string()
        } else {
            p.to_string()
        }
    };
    Ok(match v {
        serde_yaml_ng::Value::Null => Value::Null,
        serde_yaml_ng::Value::Bool(b) => Value::Bool(b),
        serde_yaml_ng::Value::String(s) => Value::String(s),
        serde_yaml_ng::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(
                    Number::from_f64(f)
                        .ok_or_else(|| format!("{}: {n} has no JSON form", at(path)))?,
                )
            }
        }
        serde_yaml_ng::Value::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &format!("{}[{i}]", at(path))))
                .collect::<Result<_, _>>()?,
        ),
        serde_yaml_ng::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml_ng::Value::String(s) => s,
                    serde_yaml_ng::Value::Bool(b) => b.to_string(),
                    serde_yaml_ng::Value::Number(n) => n.to_string(),
                    serde_yaml_ng::Value::Null => "null".to_string(),
                    other => {
                        return Err(format!(
                            "{}: a mapping key must be a scalar, found {}",
                            at(path),
                            kind_of(&other)
                        ));
                    }
                };
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let value = yaml_to_json(v, &child)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        serde_yaml_ng::Value::Tagged(t) => {
            return Err(format!("{}: YAML tag {} is not supported", at(path), t.tag));
        }
    })
}

fn kind_of(v: &serde_yaml_ng::Value) -> &'static str {
    match v {
        serde_yaml_ng::Value::Sequence(_) => "a sequence",
        serde_yaml_ng::Value::Mapping(_) => "a mapping",
        serde_yaml_ng::Value::Tagged(_) => "a tagged value",
        _ => "a scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> (Vec<Doc>, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let d = parse_file(Path::new("t.yaml"), text.as_bytes(), &mut errors);
        (d, errors)
    }

    #[test]
    fn splits_documents_and_numbers_lines() {
        let (d, e) = docs("# c\n---\na: 1\n---\n\n---\nb: 2\n...\n");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].at.line, Some(2));
        assert_eq!(d[1].at.line, Some(6));
        assert_eq!(d[1].value["b"], 2);
    }

    #[test]
    fn a_broken_document_does_not_hide_the_next() {
        let (d, e) = docs("a: 1\n---\nb: [1, 2\n---\nc: 3\n");
        assert_eq!(d.len(), 2);
        assert_eq!(e.len(), 1);
        let msg = e[0].to_string();
        assert!(msg.starts_with("t.yaml:"), "{msg}");
        assert!(msg.contains("(document 2)"), "{msg}");
    }

    #[test]
    fn duplicate_keys_are_refused_in_json_naming_key_and_line() {
        let mut errors = Vec::new();
        let text = "{\"route\": [],\n \"spec\": {\"dst\": \"a\",\n  \"dst\": \"b\"}}";
        let d = parse_file(Path::new("t.json"), text.as_bytes(), &mut errors);
        assert!(d.is_empty());
        let msg = errors[0].to_string();
        assert!(msg.starts_with("t.json:3:"), "{msg}");
        assert!(msg.contains("duplicate key \"dst\""), "{msg}");
        // Equal keys in different objects are fine.
        let mut errors = Vec::new();
        let d = parse_file(Path::new("t.json"), br#"[{"a":1},{"a":2}]"#, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(d[0].value[1]["a"], 2);
    }

    #[test]
    fn a_huge_value_is_not_echoed_whole() {
        let text = format!("{{\"a\": \"{}\" x}}", "v".repeat(1 << 20));
        let mut errors = Vec::new();
        parse_file(Path::new("t.json"), text.as_bytes(), &mut errors);
        assert!(
            errors[0].to_string().len() < 2048,
            "{}",
            errors[0].to_string().len()
        );
    }

    #[test]
    fn directives_stay_with_their_document() {
        let (d, e) = docs("%YAML 1.1\n---\na: 1\n");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn scalar_keys_become_strings_and_tags_are_refused() {
        let (d, _) = docs("1: a\ntrue: b\n");
        assert_eq!(d[0].value["1"], "a");
        assert_eq!(d[0].value["true"], "b");
        let (_, e) = docs("a: !custom x\n");
        assert!(
            e[0].to_string()
                .contains("a: YAML tag !custom is not supported"),
            "{e:?}"
        );
    }
}
