//! Runtime support for typed rows: the [`TypedRow`] trait that generated row structs
//! (see [`super::modelgen`] and `crate::nb::model`) implement, and the column conversions
//! they call. Owns the mapping between schema column kinds and Rust types:
//! scalar -> `T`, optional (min 0, max 1) -> `Option<T>`, set -> `BTreeSet<T>`,
//! map -> `BTreeMap<K, V>`, with `T` one of `i64`, `f64`, `bool`, `String`, [`Uuid`].
//!
//! Untyped access stays available for every table through [`Row`] and [`ReplicaRow`].
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

use super::replica::{ColumnRef, ReplicaRow, Snapshot};
use super::value::{Atom, Row, Uuid, Value};

/// A row could not be read as a typed row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The row lacks a column the typed row needs (a column not monitored, or a partial
    /// select result).
    #[error("{table}.{column}: column missing from the row")]
    MissingColumn {
        table: &'static str,
        column: &'static str,
    },
    /// A column's value does not have the type the schema gives it.
    #[error("{table}.{column}: {what}")]
    BadColumn {
        table: &'static str,
        column: &'static str,
        what: String,
    },
    /// The row belongs to another table.
    #[error("expected a row of {expected}, got one of {got}")]
    WrongTable { expected: &'static str, got: String },
}

/// Anything that yields column values by name: an untyped [`Row`] or a [`ReplicaRow`].
pub trait ColumnSource {
    fn column_ref(&self, name: &str) -> Option<ColumnRef<'_>>;
}

impl ColumnSource for Row {
    fn column_ref(&self, name: &str) -> Option<ColumnRef<'_>> {
        self.get(name).map(ColumnRef::from_value)
    }
}

impl ColumnSource for ReplicaRow {
    fn column_ref(&self, name: &str) -> Option<ColumnRef<'_>> {
        self.column(name)
    }
}

/// A generated row struct of one table.
pub trait TypedRow: Sized {
    /// The table's name in the schema.
    const TABLE: &'static str;
    /// The table's columns, in the struct's field order.
    const COLUMNS: &'static [&'static str];

    /// The row's uuid (`_uuid`); the all-zero uuid for a row not yet inserted.
    fn uuid(&self) -> Uuid;

    /// Read every column from `src`; a missing or ill-typed column is an error.
    fn from_source<S: ColumnSource + ?Sized>(uuid: Uuid, src: &S) -> Result<Self, ModelError>;

    /// Every column as an untyped row, as an insert or update operation wants it.
    fn to_row(&self) -> Row;

    /// Read a replica row, checking it belongs to this table.
    fn from_replica(row: &ReplicaRow) -> Result<Self, ModelError> {
        if row.table() != Self::TABLE {
            return Err(ModelError::WrongTable {
                expected: Self::TABLE,
                got: row.table().to_owned(),
            });
        }
        Self::from_source(row.uuid(), row)
    }
}

impl Snapshot {
    /// The row of `column`'s table whose `column` equals `value` (see
    /// [`Snapshot::find_by_index`]).
    pub fn find_by<T: TypedRow, V>(
        &self,
        column: Column<T, V>,
        value: &Value,
    ) -> Option<ReplicaRow> {
        self.find_by_index(T::TABLE, column.name(), value)
    }

    /// The row with this uuid as a typed row.
    pub fn get_typed<T: TypedRow>(&self, uuid: Uuid) -> Option<Result<T, ModelError>> {
        self.get(T::TABLE, uuid).map(|r| T::from_replica(&r))
    }

    /// The rows of `T`'s table whose `external_ids` has `key` = `value`, as typed rows.
    pub fn find_typed_by_external_id<T: TypedRow>(
        &self,
        key: &str,
        value: &str,
    ) -> Vec<Result<T, ModelError>> {
        self.find_by_external_id(T::TABLE, key, value)
            .iter()
            .map(T::from_replica)
            .collect()
    }

    /// Every row of `T`'s table as typed rows.
    pub fn iter_typed<'a, T: TypedRow + 'a>(
        &'a self,
    ) -> impl Iterator<Item = Result<T, ModelError>> + 'a {
        self.iter(T::TABLE).map(|r| T::from_replica(&r))
    }
}

/// One column of table `T` whose values read as `V`: the generated model has one per
/// column (`model::LogicalRouter::NAME`), so a column name that is not in the schema does
/// not compile, and a read cannot ask for the wrong type.
pub struct Column<T, V> {
    name: &'static str,
    _row: PhantomData<fn() -> (T, V)>,
}

impl<T, V> Column<T, V> {
    pub const fn new(name: &'static str) -> Self {
        Column {
            name,
            _row: PhantomData,
        }
    }

    /// The column's name in the schema.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The same column, its value type forgotten (for lists of columns).
    pub const fn erased(&self) -> Col<T> {
        Col {
            name: self.name,
            _row: PhantomData,
        }
    }
}

impl<T: TypedRow, V: ColumnValue> Column<T, V> {
    /// The column's value in `src`; a missing or ill-typed column is an error.
    pub fn read<S: ColumnSource + ?Sized>(&self, src: &S) -> Result<V, ModelError> {
        V::read(src, T::TABLE, self.name)
    }
}

/// A column of table `T`, whatever its value type.
pub struct Col<T> {
    name: &'static str,
    _row: PhantomData<fn() -> T>,
}

impl<T> Col<T> {
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for Col<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Col<T> {}

impl<T> std::fmt::Debug for Col<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl<T> PartialEq for Col<T> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl<T> Eq for Col<T> {}

/// How a column's Rust type reads from a row: the shapes of [`scalar`], [`optional`],
/// [`set`], [`map`] and [`raw`].
pub trait ColumnValue: Sized {
    fn read<S: ColumnSource + ?Sized>(
        src: &S,
        table: &'static str,
        column: &'static str,
    ) -> Result<Self, ModelError>;
}

macro_rules! scalar_column {
    ($($t:ty),*) => {$(
        impl ColumnValue for $t {
            fn read<S: ColumnSource + ?Sized>(src: &S, table: &'static str, column: &'static str) -> Result<Self, ModelError> {
                scalar(src, table, column)
            }
        }
    )*};
}

scalar_column!(i64, f64, bool, String, Uuid);

impl<T: AtomType> ColumnValue for Option<T> {
    fn read<S: ColumnSource + ?Sized>(
        src: &S,
        table: &'static str,
        column: &'static str,
    ) -> Result<Self, ModelError> {
        optional(src, table, column)
    }
}

impl<T: AtomType + Ord> ColumnValue for BTreeSet<T> {
    fn read<S: ColumnSource + ?Sized>(
        src: &S,
        table: &'static str,
        column: &'static str,
    ) -> Result<Self, ModelError> {
        set(src, table, column)
    }
}

impl<K: AtomType + Ord, V: AtomType> ColumnValue for BTreeMap<K, V> {
    fn read<S: ColumnSource + ?Sized>(
        src: &S,
        table: &'static str,
        column: &'static str,
    ) -> Result<Self, ModelError> {
        map(src, table, column)
    }
}

impl ColumnValue for Value {
    fn read<S: ColumnSource + ?Sized>(
        src: &S,
        table: &'static str,
        column: &'static str,
    ) -> Result<Self, ModelError> {
        raw(src, table, column)
    }
}

/// A Rust type that holds one OVSDB atom.
pub trait AtomType: Sized {
    const NAME: &'static str;
    fn from_atom(a: &Atom) -> Option<Self>;
    fn to_atom(&self) -> Atom;
}

impl AtomType for i64 {
    const NAME: &'static str = "integer";
    fn from_atom(a: &Atom) -> Option<Self> {
        a.as_i64()
    }
    fn to_atom(&self) -> Atom {
        Atom::Integer(*self)
    }
}

impl AtomType for f64 {
    const NAME: &'static str = "real";
    fn from_atom(a: &Atom) -> Option<Self> {
        match a {
            Atom::Real(r) => Some(*r),
            // ovsdb-server prints integral reals without a fraction.
            Atom::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
    fn to_atom(&self) -> Atom {
        Atom::Real(*self)
    }
}

impl AtomType for bool {
    const NAME: &'static str = "boolean";
    fn from_atom(a: &Atom) -> Option<Self> {
        a.as_bool()
    }
    fn to_atom(&self) -> Atom {
        Atom::Boolean(*self)
    }
}

impl AtomType for String {
    const NAME: &'static str = "string";
    fn from_atom(a: &Atom) -> Option<Self> {
        a.as_str().map(str::to_owned)
    }
    fn to_atom(&self) -> Atom {
        Atom::String(self.clone())
    }
}

impl AtomType for Uuid {
    const NAME: &'static str = "uuid";
    fn from_atom(a: &Atom) -> Option<Self> {
        a.as_uuid()
    }
    fn to_atom(&self) -> Atom {
        Atom::Uuid(*self)
    }
}

fn value<'a, S: ColumnSource + ?Sized>(
    src: &'a S,
    table: &'static str,
    column: &'static str,
) -> Result<ColumnRef<'a>, ModelError> {
    src.column_ref(column)
        .ok_or(ModelError::MissingColumn { table, column })
}

fn atom<T: AtomType>(a: &Atom, table: &'static str, column: &'static str) -> Result<T, ModelError> {
    T::from_atom(a).ok_or_else(|| ModelError::BadColumn {
        table,
        column,
        what: format!("expected {}, got {}", T::NAME, a.to_json()),
    })
}

fn bad(table: &'static str, column: &'static str, what: String) -> ModelError {
    ModelError::BadColumn {
        table,
        column,
        what,
    }
}

/// A scalar column (min 1, max 1).
pub fn scalar<T: AtomType, S: ColumnSource + ?Sized>(
    src: &S,
    table: &'static str,
    column: &'static str,
) -> Result<T, ModelError> {
    let v = value(src, table, column)?;
    let a = v.as_atom().ok_or_else(|| {
        let got = v.to_value().to_json();
        bad(
            table,
            column,
            format!("expected one {}, got {got}", T::NAME),
        )
    })?;
    atom(a, table, column)
}

/// An optional column (min 0, max 1).
pub fn optional<T: AtomType, S: ColumnSource + ?Sized>(
    src: &S,
    table: &'static str,
    column: &'static str,
) -> Result<Option<T>, ModelError> {
    let v = value(src, table, column)?;
    if v.is_map() && v.map_iter().is_some_and(|mut m| m.next().is_some()) {
        return Err(bad(
            table,
            column,
            "expected an optional value, got a map".into(),
        ));
    }
    let mut it = v.set_iter();
    match (it.next(), it.next()) {
        (None, _) => Ok(None),
        (Some(a), None) => atom(a, table, column).map(Some),
        _ => {
            let got = v.to_value().to_json();
            Err(bad(
                table,
                column,
                format!("expected at most one {}, got {got}", T::NAME),
            ))
        }
    }
}

/// A set column.
pub fn set<T: AtomType + Ord, S: ColumnSource + ?Sized>(
    src: &S,
    table: &'static str,
    column: &'static str,
) -> Result<BTreeSet<T>, ModelError> {
    let v = value(src, table, column)?;
    if v.is_map() && v.map_iter().is_some_and(|mut m| m.next().is_some()) {
        return Err(bad(table, column, "expected a set, got a map".into()));
    }
    v.set_iter().map(|a| atom(a, table, column)).collect()
}

/// A map column.
pub fn map<K: AtomType + Ord, V: AtomType, S: ColumnSource + ?Sized>(
    src: &S,
    table: &'static str,
    column: &'static str,
) -> Result<BTreeMap<K, V>, ModelError> {
    let v = value(src, table, column)?;
    let pairs = v.map_iter().ok_or_else(|| {
        let got = v.to_value().to_json();
        bad(table, column, format!("expected a map, got {got}"))
    })?;
    pairs
        .map(|(k, v)| Ok((atom(k, table, column)?, atom(v, table, column)?)))
        .collect()
}

/// A column of a type the generator has no Rust mapping for, kept untyped.
pub fn raw<S: ColumnSource + ?Sized>(
    src: &S,
    table: &'static str,
    column: &'static str,
) -> Result<Value, ModelError> {
    value(src, table, column).map(|v| v.to_value())
}

pub fn scalar_value<T: AtomType>(v: &T) -> Value {
    Value::Atom(v.to_atom())
}

pub fn optional_value<T: AtomType>(v: &Option<T>) -> Value {
    Value::Set(v.iter().map(AtomType::to_atom).collect())
}

pub fn set_value<T: AtomType>(v: &BTreeSet<T>) -> Value {
    Value::Set(v.iter().map(AtomType::to_atom).collect())
}

pub fn map_value<K: AtomType, V: AtomType>(v: &BTreeMap<K, V>) -> Value {
    Value::Map(v.iter().map(|(k, v)| (k.to_atom(), v.to_atom())).collect())
}
