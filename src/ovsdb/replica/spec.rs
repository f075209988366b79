//! What the replica monitors: [`TableSpec`] (chosen by the caller) and the table layouts
//! derived from it and the schema (column order, indexes, defaults). Fixed for the
//! replica's life.
use std::collections::HashMap;
use std::sync::Arc;

use super::cell::Cell;
use super::error::ReplicaError;
use super::snapshot::ReplicaMeta;
use super::store::{ColumnMeta, TableMeta};
use crate::ovsdb::schema::{AtomicType, ColumnKind, DatabaseSchema};

/// A table to monitor: which columns (all by default) and which `external_ids` keys to
/// index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub table: String,
    /// `None` monitors every column the schema lists.
    pub columns: Option<Vec<String>>,
    pub external_id_keys: Vec<String>,
}

impl TableSpec {
    /// Every column of `table`, no external_ids index.
    pub fn all(table: &str) -> TableSpec {
        TableSpec {
            table: table.to_owned(),
            columns: None,
            external_id_keys: Vec::new(),
        }
    }

    /// Monitor only these columns.
    pub fn with_columns(mut self, columns: &[&str]) -> TableSpec {
        self.columns = Some(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// Index rows by these `external_ids` keys (for example `k8s.ovn.org/id`).
    pub fn with_external_id_keys(mut self, keys: &[&str]) -> TableSpec {
        self.external_id_keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self
    }
}

/// Each monitored table's layout, and a name -> position map.
pub(crate) fn replica_meta(
    schema: &DatabaseSchema,
    tables: &[TableSpec],
) -> Result<ReplicaMeta, ReplicaError> {
    let mut metas = Vec::with_capacity(tables.len());
    let mut positions = HashMap::new();
    for spec in tables {
        let ts = schema
            .table(&spec.table)
            .ok_or_else(|| ReplicaError::UnknownTable {
                table: spec.table.clone(),
            })?;
        let names: Vec<String> = match &spec.columns {
            Some(c) => c.clone(),
            None => ts.columns.iter().map(|c| c.name.clone()).collect(),
        };
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let c = ts
                .column(&name)
                .ok_or_else(|| ReplicaError::UnknownColumn {
                    table: spec.table.clone(),
                    column: name.clone(),
                })?;
            columns.push(ColumnMeta {
                name,
                ty: c.ty.clone(),
            });
        }
        let pos: HashMap<String, usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let indexes = ts
            .indexes
            .iter()
            .filter_map(|ix| ix.iter().map(|c| pos.get(c).copied()).collect())
            .collect();
        // The index looks keys up by binary search on string order.
        let external_ids = pos.get("external_ids").copied().filter(|&i| {
            let ty = &columns[i].ty;
            ty.kind() == ColumnKind::Map && ty.key.atomic == AtomicType::String
        });
        if !spec.external_id_keys.is_empty() && external_ids.is_none() {
            return Err(ReplicaError::NoExternalIds {
                table: spec.table.clone(),
            });
        }
        positions.insert(spec.table.clone(), metas.len());
        metas.push(Arc::new(TableMeta {
            name: spec.table.clone(),
            positions: pos,
            indexes,
            external_ids,
            external_id_keys: spec.external_id_keys.clone(),
            defaults: columns
                .iter()
                .map(|c| Cell::from_value(c.ty.default_value()))
                .collect(),
            columns,
        }));
    }
    Ok(ReplicaMeta {
        tables: metas,
        positions,
        hasher: std::hash::RandomState::new(),
    })
}
