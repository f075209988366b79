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

/// A table to monitor: which columns (all by default), which `external_ids` keys to index,
/// and which column combinations to index beyond the schema's own indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub table: String,
    /// `None` monitors every column the schema lists.
    pub columns: Option<Vec<String>>,
    pub external_id_keys: Vec<String>,
    /// Extra lookup indexes (for example `name` of Logical_Router, which the schema does
    /// not index). Unlike schema indexes they need not be unique.
    pub extra_indexes: Vec<Vec<String>>,
}

impl TableSpec {
    /// Every column of `table`, no external_ids index.
    pub fn all(table: &str) -> TableSpec {
        TableSpec {
            table: table.to_owned(),
            columns: None,
            external_id_keys: Vec::new(),
            extra_indexes: Vec::new(),
        }
    }

    /// Monitor only these columns.
    pub fn with_columns(mut self, columns: &[&str]) -> TableSpec {
        self.columns = Some(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// Also index rows by these columns' combined value.
    pub fn with_index(mut self, columns: &[&str]) -> TableSpec {
        self.extra_indexes
            .push(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// Index rows by these `external_ids` keys (for example `k8s.ovn.org/id`).
    pub fn with_external_id_keys(mut self, keys: &[&str]) -> TableSpec {
        self.external_id_keys = keys.iter().map(|k| (*k).to_owned()).collect();
        self
    }
}

/// A [`TableSpec`] for a generated typed row's table: its columns and indexes are the
/// model's column handles, so a column the schema does not have does not compile.
pub struct TypedSpec<T> {
    spec: TableSpec,
    _row: std::marker::PhantomData<fn() -> T>,
}

impl<T: crate::ovsdb::TypedRow> TypedSpec<T> {
    /// Every column of `T`'s table.
    pub fn all() -> Self {
        TypedSpec {
            spec: TableSpec::all(T::TABLE),
            _row: std::marker::PhantomData,
        }
    }

    /// Monitor only these columns.
    pub fn columns(mut self, columns: &[crate::ovsdb::typed::Col<T>]) -> Self {
        self.spec.columns = Some(columns.iter().map(|c| c.name().to_owned()).collect());
        self
    }

    /// Also index rows by these columns' combined value.
    pub fn index(mut self, columns: &[crate::ovsdb::typed::Col<T>]) -> Self {
        self.spec
            .extra_indexes
            .push(columns.iter().map(|c| c.name().to_owned()).collect());
        self
    }

    /// Index rows by these `external_ids` keys.
    pub fn external_id_keys(mut self, keys: &[&str]) -> Self {
        self.spec = self.spec.with_external_id_keys(keys);
        self
    }

    pub fn spec(self) -> TableSpec {
        self.spec
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
        // Schema indexes whose columns are not all monitored cannot be kept; extra indexes
        // must name monitored columns.
        let mut indexes: Vec<Vec<usize>> = ts
            .indexes
            .iter()
            .filter_map(|ix| ix.iter().map(|c| pos.get(c).copied()).collect())
            .collect();
        for ix in &spec.extra_indexes {
            let cols = ix
                .iter()
                .map(|c| {
                    pos.get(c)
                        .copied()
                        .ok_or_else(|| ReplicaError::UnknownColumn {
                            table: spec.table.clone(),
                            column: c.clone(),
                        })
                })
                .collect::<Result<Vec<usize>, _>>()?;
            if !cols.is_empty() && !indexes.contains(&cols) {
                indexes.push(cols);
            }
        }
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
