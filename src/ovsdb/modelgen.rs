//! Generates Rust source for typed row structs from a [`DatabaseSchema`], one struct per
//! table, implementing [`super::typed::TypedRow`]. The output is meant to be checked in
//! (`src/nb/model.rs`) and kept fresh by a test that regenerates it; this module only
//! writes text and does no I/O.
//!
//! Names: table `Logical_Router_Port` becomes `LogicalRouterPort`, `ACL` becomes `Acl`;
//! columns keep their names, Rust keywords raw (`r#match`, `r#type`) or, where a raw
//! identifier is not allowed (`self`, `super`, `crate`, `Self`), suffixed with `_`.
use std::fmt::Write;

use super::schema::{AtomicType, ColumnKind, ColumnType, DatabaseSchema, TableSchema};

/// What to generate.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// Only these tables (all when `None`).
    pub tables: Option<Vec<String>>,
    /// The schema file the output came from, for the header comment.
    pub source: String,
    /// How to regenerate, for the header comment.
    pub regenerate: String,
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "static", "struct", "trait", "true", "try", "type", "unsafe", "use", "where",
    "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof",
    "unsized", "virtual", "yield",
];
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// The Rust field name for a column.
pub fn field_name(column: &str) -> String {
    let mut s: String = column
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if NOT_RAW.contains(&s.as_str()) {
        s.push('_');
    } else if KEYWORDS.contains(&s.as_str()) {
        s.insert_str(0, "r#");
    }
    s
}

/// The associated constant naming a column's handle: `external_ids` -> `EXTERNAL_IDS`.
/// Names the `TypedRow` trait uses for its own constants get a `_COLUMN` suffix.
pub fn const_name(column: &str) -> String {
    let mut s: String = column
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if s == "TABLE" || s == "COLUMNS" {
        s.push_str("_COLUMN");
    }
    s
}

/// The Rust type name for a table: `Logical_Router` -> `LogicalRouter`, `NB_Global` ->
/// `NbGlobal`.
pub fn type_name(table: &str) -> String {
    let mut out = String::new();
    for part in table
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars.map(|c| c.to_ascii_lowercase()));
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'T');
    }
    out
}

fn atom_type(t: AtomicType) -> &'static str {
    match t {
        AtomicType::Integer => "i64",
        AtomicType::Real => "f64",
        AtomicType::Boolean => "bool",
        AtomicType::String => "String",
        AtomicType::Uuid => "Uuid",
    }
}

/// How a column is represented: its Rust type and the `typed` functions that read and
/// write it.
struct Mapping {
    rust: String,
    read: &'static str,
    write: &'static str,
    default: String,
}

fn mapping(ty: &ColumnType) -> Mapping {
    let key = atom_type(ty.key.atomic);
    // f64 is not `Ord`, so sets of reals and maps keyed by reals stay untyped.
    let ordered_key = ty.key.atomic != AtomicType::Real;
    match ty.kind() {
        ColumnKind::Scalar => Mapping {
            rust: key.to_owned(),
            read: "scalar",
            write: "scalar_value",
            default: match ty.key.atomic {
                AtomicType::Integer => "0".into(),
                AtomicType::Real => "0.0".into(),
                AtomicType::Boolean => "false".into(),
                AtomicType::String => "String::new()".into(),
                AtomicType::Uuid => "Uuid::ZERO".into(),
            },
        },
        ColumnKind::Optional => Mapping {
            rust: format!("Option<{key}>"),
            read: "optional",
            write: "optional_value",
            default: "None".into(),
        },
        ColumnKind::Set if ordered_key => Mapping {
            rust: format!("BTreeSet<{key}>"),
            read: "set",
            write: "set_value",
            default: "BTreeSet::new()".into(),
        },
        ColumnKind::Map if ordered_key => {
            let v = atom_type(ty.value.as_ref().map_or(AtomicType::String, |v| v.atomic));
            Mapping {
                rust: format!("BTreeMap<{key}, {v}>"),
                read: "map",
                write: "map_value",
                default: "BTreeMap::new()".into(),
            }
        }
        ColumnKind::Set | ColumnKind::Map => Mapping {
            rust: "Value".into(),
            read: "raw",
            write: "clone",
            default: format!(
                "Value::{}",
                if ty.is_map() {
                    "Map(BTreeMap::new())"
                } else {
                    "Set(BTreeSet::new())"
                }
            ),
        },
    }
}

/// One line describing a column's schema type, for the field's doc comment.
fn describe(ty: &ColumnType) -> String {
    let base = |b: &super::schema::BaseType| {
        let mut s = format!("{:?}", b.atomic).to_lowercase();
        if let Some(e) = &b.enum_values {
            let names: Vec<String> = e
                .iter()
                .map(|a| {
                    a.as_str()
                        .map_or_else(|| a.to_json().to_string(), str::to_owned)
                })
                .collect();
            let _ = write!(s, " (one of: {})", names.join(", "));
        }
        if let Some(t) = &b.ref_table {
            let _ = write!(s, " -> {t} ({:?})", b.ref_type);
        }
        match (b.min_integer, b.max_integer) {
            (Some(lo), Some(hi)) => {
                let _ = write!(s, " in {lo}..={hi}");
            }
            (Some(lo), None) => {
                let _ = write!(s, " >= {lo}");
            }
            (None, Some(hi)) => {
                let _ = write!(s, " <= {hi}");
            }
            (None, None) => {}
        }
        s
    };
    let bounds = match ty.max {
        Some(m) => format!("{}..={m}", ty.min),
        None => format!("{}..", ty.min),
    };
    match (&ty.value, ty.kind()) {
        (Some(v), _) => format!("map {} -> {}, {bounds} pairs", base(&ty.key), base(v)),
        (None, ColumnKind::Scalar) => base(&ty.key),
        (None, ColumnKind::Optional) => format!("optional {}", base(&ty.key)),
        (None, _) => format!("set of {}, {bounds} elements", base(&ty.key)),
    }
}

fn table_source(out: &mut String, db: &str, t: &TableSchema) {
    struct_source(out, db, t);
    default_source(out, t);
    columns_source(out, t);
    typed_row_source(out, t);
}

/// The struct, its doc comment saying what the schema says of the table and each column.
fn struct_source(out: &mut String, db: &str, t: &TableSchema) {
    let name = type_name(&t.name);
    let mut flags = Vec::new();
    if !t.is_root {
        flags.push("not a root table: rows nobody references are garbage-collected".to_owned());
    }
    if let Some(m) = t.max_rows {
        flags.push(format!("at most {m} row(s)"));
    }
    for ix in &t.indexes {
        flags.push(format!("unique index ({})", ix.join(", ")));
    }
    let _ = writeln!(out, "/// A row of table `{}` in `{db}`.", t.name);
    for f in &flags {
        let _ = writeln!(out, "/// - {f}");
    }
    let _ = writeln!(out, "#[derive(Debug, Clone, PartialEq)]");
    let _ = writeln!(out, "pub struct {name} {{");
    let _ = writeln!(out, "    /// `_uuid`; all-zero for a row not yet inserted.");
    let _ = writeln!(out, "    pub uuid: Uuid,");
    for c in &t.columns {
        let m = mapping(&c.ty);
        let mut note = describe(&c.ty);
        if c.ephemeral {
            note.push_str("; ephemeral");
        }
        if !c.mutable {
            note.push_str("; immutable");
        }
        let _ = writeln!(out, "    /// `{}`: {note}.", c.name);
        let _ = writeln!(out, "    pub {}: {},", field_name(&c.name), m.rust);
    }
    let _ = writeln!(out, "}}\n");
}

/// `Default`: every column's schema default.
fn default_source(out: &mut String, t: &TableSchema) {
    let name = type_name(&t.name);
    let _ = writeln!(out, "impl Default for {name} {{");
    let _ = writeln!(out, "    fn default() -> Self {{");
    let _ = writeln!(out, "        {name} {{");
    let _ = writeln!(out, "            uuid: Uuid::ZERO,");
    for c in &t.columns {
        let _ = writeln!(
            out,
            "            {}: {},",
            field_name(&c.name),
            mapping(&c.ty).default
        );
    }
    let _ = writeln!(out, "        }}\n    }}\n}}\n");
}

/// One typed handle per column.
fn columns_source(out: &mut String, t: &TableSchema) {
    let name = type_name(&t.name);
    let _ = writeln!(
        out,
        "/// Columns of `{}`: a column name the schema does not have does not compile.",
        t.name
    );
    let _ = writeln!(out, "impl {name} {{");
    for c in &t.columns {
        let m = mapping(&c.ty);
        let _ = writeln!(
            out,
            "    pub const {}: Column<{name}, {}> = Column::new({:?});",
            const_name(&c.name),
            m.rust,
            c.name
        );
    }
    let _ = writeln!(out, "}}\n");
}

/// `TypedRow`: reading from and writing to untyped rows.
fn typed_row_source(out: &mut String, t: &TableSchema) {
    let name = type_name(&t.name);
    let _ = writeln!(out, "impl TypedRow for {name} {{");
    let _ = writeln!(out, "    const TABLE: &'static str = {:?};", t.name);
    let cols: Vec<String> = t.columns.iter().map(|c| format!("{:?}", c.name)).collect();
    let _ = writeln!(
        out,
        "    const COLUMNS: &'static [&'static str] = &[{}];",
        cols.join(", ")
    );
    let _ = writeln!(
        out,
        "\n    fn uuid(&self) -> Uuid {{\n        self.uuid\n    }}\n"
    );
    let _ = writeln!(
        out,
        "    fn from_source<S: ColumnSource + ?Sized>(uuid: Uuid, src: &S) -> Result<Self, ModelError> {{"
    );
    let _ = writeln!(out, "        Ok({name} {{");
    let _ = writeln!(out, "            uuid,");
    for c in &t.columns {
        let m = mapping(&c.ty);
        let _ = writeln!(
            out,
            "            {}: typed::{}(src, Self::TABLE, {:?})?,",
            field_name(&c.name),
            m.read,
            c.name
        );
    }
    let _ = writeln!(out, "        }})\n    }}\n");
    let _ = writeln!(out, "    fn to_row(&self) -> Row {{");
    let _ = writeln!(out, "        let mut row = Row::new();");
    for c in &t.columns {
        let m = mapping(&c.ty);
        let f = field_name(&c.name);
        let expr = if m.write == "clone" {
            format!("self.{f}.clone()")
        } else {
            format!("typed::{}(&self.{f})", m.write)
        };
        let _ = writeln!(out, "        row.insert({:?}.to_owned(), {expr});", c.name);
    }
    let _ = writeln!(out, "        row\n    }}\n}}\n");
}

/// Rust source for the schema's typed rows.
pub fn generate(schema: &DatabaseSchema, opts: &ModelOptions) -> String {
    let tables: Vec<&TableSchema> = schema
        .tables
        .values()
        .filter(|t| {
            opts.tables
                .as_ref()
                .is_none_or(|want| want.contains(&t.name))
        })
        .collect();
    let uses_value = tables
        .iter()
        .any(|t| t.columns.iter().any(|c| mapping(&c.ty).rust == "Value"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "//! Typed rows of the {} database, schema version {}, generated by\n\
         //! `ovsdb::modelgen` from `{}`. Do not edit by hand:\n\
         //! {}.\n\
         //!\n\
         //! Each struct implements [`TypedRow`]: read it from a replica row or an untyped\n\
         //! [`Row`], write it back with [`TypedRow::to_row`]. Each column has a typed handle\n\
         //! (`LogicalRouter::NAME`) to read one column of a partly monitored row.",
        schema.name, schema.version, opts.source, opts.regenerate
    );
    out.push('\n');
    let _ = writeln!(out, "use std::collections::{{BTreeMap, BTreeSet}};\n");
    let _ = writeln!(
        out,
        "use crate::ovsdb::typed::{{self, Column, ColumnSource, ModelError, TypedRow}};"
    );
    let _ = writeln!(
        out,
        "use crate::ovsdb::value::{{Row, Uuid{}}};\n",
        if uses_value { ", Value" } else { "" }
    );
    let _ = writeln!(out, "/// The schema's name.");
    let _ = writeln!(out, "pub const SCHEMA_NAME: &str = {:?};", schema.name);
    let _ = writeln!(
        out,
        "/// The schema version these rows were generated from."
    );
    let _ = writeln!(
        out,
        "pub const SCHEMA_VERSION: &str = {:?};",
        schema.version
    );
    let names: Vec<String> = tables.iter().map(|t| format!("{:?}", t.name)).collect();
    let _ = writeln!(out, "/// Every table with a typed row here.");
    let _ = writeln!(
        out,
        "pub const TABLES: &[&str] = &[{}];\n",
        names.join(", ")
    );
    for t in tables {
        table_source(&mut out, &schema.name, t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            type_name("Logical_Router_Static_Route"),
            "LogicalRouterStaticRoute"
        );
        assert_eq!(type_name("ACL"), "Acl");
        assert_eq!(type_name("NB_Global"), "NbGlobal");
        assert_eq!(field_name("match"), "r#match");
        assert_eq!(field_name("type"), "r#type");
        assert_eq!(field_name("self"), "self_");
        assert_eq!(field_name("external_ids"), "external_ids");
        assert_eq!(field_name("a-b"), "a_b");
        assert_eq!(field_name("9x"), "_9x");
    }
}
