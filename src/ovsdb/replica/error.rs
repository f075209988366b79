//! The replica's error type.
use crate::ovsdb::schema::SchemaError;
use crate::ovsdb::value::Uuid;

/// An update or table spec the replica cannot apply. The replica is unchanged after any of
/// them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplicaError {
    /// The update (or a table spec) names a table that is not monitored / not in the schema.
    #[error("table {table} is not monitored")]
    UnknownTable { table: String },
    /// The update (or a table spec) names a column that is not monitored / not in the schema.
    #[error("table {table}: column {column} is not monitored")]
    UnknownColumn { table: String, column: String },
    /// A column's value does not fit its schema type.
    #[error("table {table} row {uuid}: {source}")]
    BadValue {
        table: String,
        uuid: Uuid,
        source: SchemaError,
    },
    /// A modify or delete names a row the replica does not hold.
    #[error("table {table}: {op} of row {uuid}, which the replica does not hold")]
    MissingRow {
        table: String,
        uuid: Uuid,
        op: &'static str,
    },
    /// An insert names a row the replica already holds.
    #[error("table {table}: insert of row {uuid}, which the replica already holds")]
    DuplicateRow { table: String, uuid: Uuid },
    /// A row update of a kind that makes no sense where it appeared (an `update` with
    /// neither old nor new, a modify or delete inside a full snapshot).
    #[error("table {table} row {uuid}: {what}")]
    BadRowUpdate {
        table: String,
        uuid: Uuid,
        what: &'static str,
    },
    /// The external_ids index needs an `external_ids` string map column, monitored.
    #[error("table {table}: external_ids keys given but external_ids is not a monitored map")]
    NoExternalIds { table: String },
    /// A snapshot given as JSON text is not valid JSON or not shaped like
    /// `<table-updates>` / `<table-updates2>`.
    #[error("snapshot JSON: {what}")]
    Json { what: String },
}
