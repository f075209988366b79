//! The replica's storage: per-table row maps and index maps, split into shards of `Arc`'d
//! hash maps so that a writer copies only the shards it touches while readers keep the old
//! ones (copy-on-write). A snapshot is therefore one `Arc` clone, and an update costs the
//! size of the shards it changes, not of the table.
//!
//! Rows are stored as a slice of compact cells (see `cell.rs`) in the table's
//! monitored-column order; the column names live once per table in [`TableMeta`], never
//! per row.
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use super::cell::Cell;
use crate::ovsdb::schema::ColumnType;
use crate::ovsdb::value::{Atom, Uuid};

/// Shard count of every map. Small enough that an empty table costs little, large enough
/// that copying one shard of a 20,000-row table is a few hundred entries.
const SHARDS: usize = 32;

/// A hash map split into [`SHARDS`] copy-on-write shards.
#[derive(Clone)]
pub(crate) struct ShardedMap<K, V> {
    shards: Vec<Arc<HashMap<K, V>>>,
    len: usize,
}

fn shard_of<K: Hash>(k: &K) -> usize {
    // A fixed-key hasher: shard choice only has to be stable within the process.
    let fixed =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    (fixed.hash_one(k) as usize) % SHARDS
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    pub(crate) fn new() -> Self {
        ShardedMap {
            shards: (0..SHARDS).map(|_| Arc::new(HashMap::new())).collect(),
            len: 0,
        }
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        self.shards[shard_of(k)].get(k)
    }

    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        let old = Arc::make_mut(&mut self.shards[shard_of(&k)]).insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let shard = &mut self.shards[shard_of(k)];
        // Avoid copying a shard that does not hold the key.
        if !shard.contains_key(k) {
            return None;
        }
        let old = Arc::make_mut(shard).remove(k);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Mutable access to one entry (created empty if absent), copying its shard if a
    /// snapshot shares it.
    pub(crate) fn entry_mut(&mut self, k: K) -> &mut V
    where
        V: Default,
    {
        let shard = Arc::make_mut(&mut self.shards[shard_of(&k)]);
        if !shard.contains_key(&k) {
            self.len += 1;
        }
        shard.entry(k).or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

/// Feed a stored value into a hasher. Atoms have no `Hash` (reals), so index keys hash
/// through this; equal cells hash equally because cells are canonical per column type.
pub(crate) fn hash_cell<H: Hasher>(c: &Cell, h: &mut H) {
    match c {
        Cell::Atom(a) => {
            0u8.hash(h);
            hash_atom(a, h);
        }
        Cell::Set(s) => {
            1u8.hash(h);
            s.len().hash(h);
            s.iter().for_each(|a| hash_atom(a, h));
        }
        Cell::Map(m) => {
            2u8.hash(h);
            m.len().hash(h);
            for (k, v) in m.iter() {
                hash_atom(k, h);
                hash_atom(v, h);
            }
        }
    }
}

fn hash_atom<H: Hasher>(a: &Atom, h: &mut H) {
    match a {
        Atom::Integer(i) => (0u8, i).hash(h),
        Atom::Real(r) => (1u8, r.to_bits()).hash(h),
        Atom::Boolean(b) => (2u8, b).hash(h),
        Atom::String(s) => (3u8, s).hash(h),
        Atom::Uuid(u) => (4u8, u).hash(h),
        Atom::NamedUuid(n) => (5u8, n).hash(h),
    }
}

/// One monitored column: its name and schema type.
#[derive(Debug)]
pub(crate) struct ColumnMeta {
    pub(crate) name: String,
    pub(crate) ty: ColumnType,
}

/// What the replica knows about one monitored table; shared, never changed after creation.
#[derive(Debug)]
pub(crate) struct TableMeta {
    pub(crate) name: String,
    pub(crate) columns: Vec<ColumnMeta>,
    pub(crate) positions: HashMap<String, usize>,
    /// Schema indexes whose columns are all monitored, as column positions.
    pub(crate) indexes: Vec<Vec<usize>>,
    /// Position of `external_ids` (a string->string map) when monitored and indexed.
    pub(crate) external_ids: Option<usize>,
    /// The `external_ids` keys that get an index.
    pub(crate) external_id_keys: Vec<String>,
    /// Each column's default value; empty sets and maps are shared by every row using them.
    pub(crate) defaults: Vec<Cell>,
}

impl TableMeta {
    pub(crate) fn position(&self, column: &str) -> Option<usize> {
        self.positions.get(column).copied()
    }

    /// The cell for a normalised value of column `pos`, sharing the column's empty default.
    pub(crate) fn cell(&self, pos: usize, cell: Cell) -> Cell {
        match (&cell, &self.defaults[pos]) {
            (Cell::Set(s), d @ Cell::Set(_)) if s.is_empty() => d.clone(),
            (Cell::Map(m), d @ Cell::Map(_)) if m.is_empty() => d.clone(),
            _ => cell,
        }
    }
}

/// A stored row: values in [`TableMeta::columns`] order.
pub(crate) type RowValues = Arc<[Cell]>;

/// Index entries map a key hash to the rows whose key has that hash. Lookups compare the
/// row's actual values, so hash collisions cost a comparison, never a wrong answer. A key
/// may briefly belong to two rows while one update renames both.
pub(crate) type IndexMap = ShardedMap<u64, Holders>;

/// The rows holding one index key: almost always one, stored without an allocation.
#[derive(Clone, Debug, Default)]
pub(crate) enum Holders {
    #[default]
    Empty,
    One(Uuid),
    Many(Vec<Uuid>),
}

impl Holders {
    pub(crate) fn as_slice(&self) -> &[Uuid] {
        match self {
            Holders::Empty => &[],
            Holders::One(u) => std::slice::from_ref(u),
            Holders::Many(v) => v,
        }
    }

    fn push(&mut self, uuid: Uuid) {
        *self = match std::mem::take(self) {
            Holders::Empty => Holders::One(uuid),
            Holders::One(u) => Holders::Many(vec![u, uuid]),
            Holders::Many(mut v) => {
                v.push(uuid);
                Holders::Many(v)
            }
        };
    }

    /// Remove `uuid`; true when no holder is left.
    fn remove(&mut self, uuid: Uuid) -> bool {
        *self = match std::mem::take(self) {
            Holders::One(u) if u != uuid => Holders::One(u),
            Holders::Many(mut v) => {
                v.retain(|u| *u != uuid);
                match v.as_slice() {
                    [] => Holders::Empty,
                    [one] => Holders::One(*one),
                    _ => Holders::Many(v),
                }
            }
            _ => Holders::Empty,
        };
        matches!(self, Holders::Empty)
    }
}

/// The content of one table at one generation.
#[derive(Clone)]
pub(crate) struct TableState {
    pub(crate) rows: ShardedMap<Uuid, RowValues>,
    /// One map per [`TableMeta::indexes`] entry.
    pub(crate) indexes: Vec<IndexMap>,
    /// One map per [`TableMeta::external_id_keys`] entry.
    pub(crate) external_ids: Vec<IndexMap>,
}

pub(crate) fn index_hash<'a, I: IntoIterator<Item = &'a Cell>>(
    hasher: &std::hash::RandomState,
    values: I,
) -> u64 {
    let mut h = hasher.build_hasher();
    for v in values {
        hash_cell(v, &mut h);
    }
    h.finish()
}

pub(crate) fn external_id_hash(hasher: &std::hash::RandomState, value: &str) -> u64 {
    hasher.hash_one(value)
}

/// The value of `key` in a row's `external_ids` column, if any.
pub(crate) fn external_id<'a>(meta: &TableMeta, row: &'a [Cell], key: &str) -> Option<&'a str> {
    let Cell::Map(m) = row.get(meta.external_ids?)? else {
        return None;
    };
    let i = m
        .binary_search_by(|(k, _)| k.as_str().unwrap_or_default().cmp(key))
        .ok()?;
    m[i].1.as_str()
}

impl TableState {
    pub(crate) fn new(meta: &TableMeta) -> Self {
        TableState {
            rows: ShardedMap::new(),
            indexes: meta.indexes.iter().map(|_| ShardedMap::new()).collect(),
            external_ids: meta
                .external_id_keys
                .iter()
                .map(|_| ShardedMap::new())
                .collect(),
        }
    }

    fn index_keys(
        meta: &TableMeta,
        hasher: &std::hash::RandomState,
        row: &[Cell],
    ) -> (Vec<u64>, Vec<Option<u64>>) {
        let ix = meta
            .indexes
            .iter()
            .map(|cols| index_hash(hasher, cols.iter().map(|&c| &row[c])))
            .collect();
        let ext = meta
            .external_id_keys
            .iter()
            .map(|k| external_id(meta, row, k).map(|v| external_id_hash(hasher, v)))
            .collect();
        (ix, ext)
    }

    /// Put a row in (replacing any row with that uuid), keeping every index right.
    pub(crate) fn put(
        &mut self,
        meta: &TableMeta,
        hasher: &std::hash::RandomState,
        uuid: Uuid,
        row: RowValues,
    ) {
        self.take(meta, hasher, uuid);
        let (ix, ext) = Self::index_keys(meta, hasher, &row);
        for (map, key) in self.indexes.iter_mut().zip(ix) {
            map.entry_mut(key).push(uuid);
        }
        for (map, key) in self.external_ids.iter_mut().zip(ext) {
            if let Some(key) = key {
                map.entry_mut(key).push(uuid);
            }
        }
        self.rows.insert(uuid, row);
    }

    /// Take a row out, keeping every index right.
    pub(crate) fn take(
        &mut self,
        meta: &TableMeta,
        hasher: &std::hash::RandomState,
        uuid: Uuid,
    ) -> Option<RowValues> {
        let row = self.rows.remove(&uuid)?;
        let (ix, ext) = Self::index_keys(meta, hasher, &row);
        let keys = ix.into_iter().map(Some).zip(self.indexes.iter_mut());
        let ext_keys = ext.into_iter().zip(self.external_ids.iter_mut());
        for (key, map) in keys.chain(ext_keys) {
            let Some(key) = key else { continue };
            if !map.get(&key).is_some_and(|h| h.as_slice().contains(&uuid)) {
                continue;
            }
            if map.entry_mut(key).remove(uuid) {
                map.remove(&key);
            }
        }
        Some(row)
    }
}
