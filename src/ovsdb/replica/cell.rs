//! Compact storage of one column value inside the replica, and [`ColumnRef`], the borrowed
//! view readers get of it.
//!
//! A `Value` holds sets and maps in B-trees, whose smallest node has room for eleven
//! entries: for a 20,000-row replica of mostly small sets and maps that is most of the
//! memory. Stored rows keep maps as sorted slices behind an `Arc` (one exact-size
//! allocation, shared between a row and its modified copy when the column did not change),
//! sets as [`ChunkedSet`]s (cheap to change by a few elements however large), and scalars
//! as a bare [`Atom`].
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::set::ChunkedSet;
use crate::ovsdb::value::{Atom, Value};

/// One stored column value, already in the column's canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Atom(Atom),
    Set(ChunkedSet),
    /// Sorted by key, keys unique.
    Map(Arc<[(Atom, Atom)]>),
}

impl Cell {
    /// From a value normalised by `ColumnType::normalize` (so already the right shape).
    pub(crate) fn from_value(v: Value) -> Cell {
        match v {
            Value::Atom(a) => Cell::Atom(a),
            Value::Set(s) => Cell::Set(ChunkedSet::from_sorted(s.into_iter().collect())),
            Value::Map(m) => Cell::Map(m.into_iter().collect()),
        }
    }

    pub(crate) fn view(&self) -> ColumnRef<'_> {
        ColumnRef(match self {
            Cell::Atom(a) => Inner::Atom(a),
            Cell::Set(s) => Inner::Set(s),
            Cell::Map(m) => Inner::Map(m),
        })
    }

    /// How many elements (sets) or pairs (maps); 1 for a scalar.
    pub(crate) fn len(&self) -> usize {
        match self {
            Cell::Atom(_) => 1,
            Cell::Set(s) => s.len(),
            Cell::Map(m) => m.len(),
        }
    }

    /// Apply an update2 map diff: absent key -> insert; same key and value -> remove; same
    /// key, other value -> replace. One merge of two sorted sequences.
    pub(crate) fn merge_map(cur: &[(Atom, Atom)], diff: &BTreeMap<Atom, Atom>) -> Cell {
        let mut out: Vec<(Atom, Atom)> = Vec::with_capacity(cur.len() + diff.len());
        let (mut a, mut b) = (cur.iter().peekable(), diff.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                    Ordering::Less => out.extend(a.next().cloned()),
                    Ordering::Greater => {
                        out.extend(b.next().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    Ordering::Equal => {
                        let (Some((k, va)), Some((_, vb))) = (a.next(), b.next()) else {
                            break;
                        };
                        if va != vb {
                            out.push((k.clone(), vb.clone()));
                        }
                    }
                },
                (Some(_), None) => out.extend(a.next().cloned()),
                (None, Some(_)) => out.extend(b.next().map(|(k, v)| (k.clone(), v.clone()))),
                (None, None) => break,
            }
        }
        Cell::Map(out.into())
    }
}

#[derive(Clone, Copy)]
enum Inner<'a> {
    Value(&'a Value),
    Atom(&'a Atom),
    Set(&'a ChunkedSet),
    Map(&'a [(Atom, Atom)]),
}

/// A borrowed column value, from a replica row or an untyped [`crate::ovsdb::Row`].
#[derive(Clone, Copy)]
pub struct ColumnRef<'a>(Inner<'a>);

impl<'a> ColumnRef<'a> {
    pub fn from_value(v: &'a Value) -> ColumnRef<'a> {
        ColumnRef(Inner::Value(v))
    }

    /// The single atom of a scalar column, or of a set holding exactly one element.
    pub fn as_atom(&self) -> Option<&'a Atom> {
        match self.0 {
            Inner::Value(v) => v.as_atom(),
            Inner::Atom(a) => Some(a),
            Inner::Set(s) => s.single(),
            _ => None,
        }
    }

    /// The string of a scalar string column.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_atom().and_then(Atom::as_str)
    }

    /// Whether this is a map (an empty set also reads as an empty map).
    pub fn is_map(&self) -> bool {
        matches!(self.0, Inner::Map(_) | Inner::Value(Value::Map(_)))
    }

    /// Elements as a set: a scalar is a one-element set; a map yields nothing.
    pub fn set_iter(&self) -> Box<dyn Iterator<Item = &'a Atom> + 'a> {
        match self.0 {
            Inner::Value(v) => v.set_iter(),
            Inner::Atom(a) => Box::new(std::iter::once(a)),
            Inner::Set(s) => Box::new(s.iter()),
            Inner::Map(_) => Box::new(std::iter::empty()),
        }
    }

    /// Whether a set (or scalar) holds `a`; a binary search on stored sets.
    pub fn contains(&self, a: &Atom) -> bool {
        match self.0 {
            Inner::Value(v) => v.set_iter().any(|x| x == a),
            Inner::Atom(x) => x == a,
            Inner::Set(s) => s.contains(a),
            Inner::Map(_) => false,
        }
    }

    /// Pairs of a map; `None` when the value is not a map (nor an empty set).
    pub fn map_iter(&self) -> Option<Box<dyn Iterator<Item = (&'a Atom, &'a Atom)> + 'a>> {
        match self.0 {
            Inner::Value(Value::Map(m)) => Some(Box::new(m.iter())),
            Inner::Map(m) => Some(Box::new(m.iter().map(|(k, v)| (k, v)))),
            Inner::Value(Value::Set(s)) if s.is_empty() => Some(Box::new(std::iter::empty())),
            Inner::Set(s) if s.is_empty() => Some(Box::new(std::iter::empty())),
            _ => None,
        }
    }

    /// The value for `key` in a map.
    pub fn map_get(&self, key: &Atom) -> Option<&'a Atom> {
        match self.0 {
            Inner::Value(Value::Map(m)) => m.get(key),
            Inner::Map(m) => m
                .binary_search_by(|(k, _)| k.cmp(key))
                .ok()
                .map(|i| &m[i].1),
            _ => None,
        }
    }

    /// An owned copy.
    pub fn to_value(&self) -> Value {
        match self.0 {
            Inner::Value(v) => v.clone(),
            Inner::Atom(a) => Value::Atom(a.clone()),
            Inner::Set(s) => Value::Set(s.iter().cloned().collect()),
            Inner::Map(m) => Value::Map(m.iter().cloned().collect()),
        }
    }
}

impl std::fmt::Debug for ColumnRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_value().fmt(f)
    }
}

impl PartialEq<Value> for ColumnRef<'_> {
    fn eq(&self, other: &Value) -> bool {
        self.to_value() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_merge_rules() {
        let p = |k: &str, v: &str| (Atom::from(k), Atom::from(v));
        let cur = vec![p("a", "1"), p("b", "2"), p("c", "3")];
        let diff: BTreeMap<Atom, Atom> = [p("a", "1"), p("b", "9"), p("d", "4")]
            .into_iter()
            .collect();
        assert_eq!(
            Cell::merge_map(&cur, &diff),
            Cell::Map(vec![p("b", "9"), p("c", "3"), p("d", "4")].into())
        );
    }

    #[test]
    fn views_agree_with_values() {
        let m = Value::map([("k", "v")]);
        let cell = Cell::from_value(m.clone());
        assert_eq!(cell.view().map_get(&"k".into()), Some(&Atom::from("v")));
        assert_eq!(
            ColumnRef::from_value(&m).map_get(&"k".into()),
            Some(&Atom::from("v"))
        );
        assert_eq!(cell.view().to_value(), m);
        let s = Value::set([Atom::from("x")]);
        assert_eq!(Cell::from_value(s.clone()).view().as_str(), Some("x"));
        assert!(
            Cell::from_value(Value::empty_set())
                .view()
                .map_iter()
                .is_some()
        );
    }

    use proptest::prelude::*;

    fn int_map(m: &BTreeMap<u8, u8>) -> BTreeMap<Atom, Atom> {
        m.iter()
            .map(|(k, v)| (Atom::Integer(i64::from(*k)), Atom::Integer(i64::from(*v))))
            .collect()
    }

    proptest! {
        // For a map: keys only in new carry the new value, keys only in old the old value
        // (removed), keys in both with another value the new value.
        #[test]
        fn merging_a_map_diff_gives_new(
            old in proptest::collection::btree_map(any::<u8>(), 0..4u8, 0..30),
            new in proptest::collection::btree_map(any::<u8>(), 0..4u8, 0..30),
        ) {
            let mut diff = BTreeMap::new();
            for (k, v) in &old {
                match new.get(k) {
                    None => { diff.insert(*k, *v); }
                    Some(nv) if nv != v => { diff.insert(*k, *nv); }
                    Some(_) => {}
                }
            }
            for (k, v) in &new {
                if !old.contains_key(k) {
                    diff.insert(*k, *v);
                }
            }
            let cur: Vec<(Atom, Atom)> = int_map(&old).into_iter().collect();
            let want = Cell::Map(int_map(&new).into_iter().collect());
            prop_assert_eq!(Cell::merge_map(&cur, &int_map(&diff)), want);
        }
    }
}
