//! [`ChunkedSet`]: how the replica stores a set column. The elements stay sorted, split into
//! `Arc`'d chunks of at most [`CHUNK_MAX`] atoms. Toggling a few elements (what an update2
//! diff does, for example when a policy is added to a router that references 10,000) copies
//! only the chunks it touches and the short list of chunk pointers, so an update costs
//! microseconds instead of a copy of the whole set, and every older version still held by a
//! snapshot or a buffered change set shares all untouched chunks with the new one.
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::ovsdb::value::Atom;

/// Chunk size when a set is built whole.
const CHUNK_TARGET: usize = 128;
/// A chunk that grows past this is split into chunks of [`CHUNK_TARGET`].
pub(crate) const CHUNK_MAX: usize = 2 * CHUNK_TARGET;

/// A sorted set of atoms without duplicates, in shared chunks (see the module comment).
#[derive(Clone, Debug)]
pub(crate) struct ChunkedSet {
    /// Non-empty chunks, each sorted; all of a chunk's atoms sort before the next chunk's.
    chunks: Arc<[Arc<[Atom]>]>,
    len: usize,
}

impl ChunkedSet {
    /// From atoms already sorted and unique.
    pub(crate) fn from_sorted(atoms: Vec<Atom>) -> ChunkedSet {
        let len = atoms.len();
        let chunks = if len <= CHUNK_MAX {
            if len == 0 {
                Vec::new()
            } else {
                vec![Arc::from(atoms)]
            }
        } else {
            atoms.chunks(CHUNK_TARGET).map(Arc::from).collect()
        };
        ChunkedSet {
            chunks: chunks.into(),
            len,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Atom> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Whether `a` is an element: two binary searches (the chunk, then within it).
    pub(crate) fn contains(&self, a: &Atom) -> bool {
        let i = self
            .chunks
            .partition_point(|c| c.first().is_some_and(|f| f <= a));
        i > 0 && self.chunks[i - 1].binary_search(a).is_ok()
    }

    /// The only element of a one-element set.
    pub(crate) fn single(&self) -> Option<&Atom> {
        match &*self.chunks {
            [only] if only.len() == 1 => only.first(),
            _ => None,
        }
    }

    /// The set with every element of `diff` toggled (added if absent, removed if present):
    /// how an update2 diff changes a set column (ovsdb-server(7)).
    pub(crate) fn toggle(&self, diff: &BTreeSet<Atom>) -> ChunkedSet {
        if self.chunks.is_empty() {
            return ChunkedSet::from_sorted(diff.iter().cloned().collect());
        }
        // The chunk an element belongs to: the last one whose first atom is <= it.
        let chunk_of = |a: &Atom| {
            let after = self
                .chunks
                .partition_point(|c| c.first().is_some_and(|f| f <= a));
            after.saturating_sub(1)
        };
        let mut out: Vec<Arc<[Atom]>> = Vec::with_capacity(self.chunks.len() + 1);
        let mut len = 0;
        let mut next = 0; // first chunk not yet copied to `out`
        let mut pending = diff.iter().peekable();
        while let Some(first) = pending.peek() {
            let ci = chunk_of(first);
            for c in &self.chunks[next..ci] {
                len += c.len();
                out.push(Arc::clone(c));
            }
            // The diff elements that fall into chunk `ci`.
            let upper = self.chunks.get(ci + 1).and_then(|c| c.first());
            let mut here = Vec::new();
            while let Some(a) = pending.next_if(|a| upper.is_none_or(|u| *a < u)) {
                here.push(a);
            }
            let merged = toggle_sorted(&self.chunks[ci], &here);
            len += merged.len();
            if merged.len() > CHUNK_MAX {
                out.extend(merged.chunks(CHUNK_TARGET).map(Arc::from));
            } else if !merged.is_empty() {
                out.push(Arc::from(merged));
            }
            next = ci + 1;
        }
        for c in &self.chunks[next..] {
            len += c.len();
            out.push(Arc::clone(c));
        }
        ChunkedSet {
            chunks: out.into(),
            len,
        }
    }
}

/// Symmetric difference of two sorted, duplicate-free sequences.
fn toggle_sorted(cur: &[Atom], diff: &[&Atom]) -> Vec<Atom> {
    let mut out = Vec::with_capacity(cur.len() + diff.len());
    let (mut i, mut j) = (0, 0);
    while i < cur.len() && j < diff.len() {
        match cur[i].cmp(diff[j]) {
            std::cmp::Ordering::Less => {
                out.push(cur[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(diff[j].clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    out.extend(cur[i..].iter().cloned());
    out.extend(diff[j..].iter().map(|a| (*a).clone()));
    out
}

impl PartialEq for ChunkedSet {
    fn eq(&self, other: &Self) -> bool {
        // Equal sets may be chunked differently.
        self.len == other.len
            && (Arc::ptr_eq(&self.chunks, &other.chunks) || self.iter().eq(other.iter()))
    }
}

impl Eq for ChunkedSet {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ints(v: impl IntoIterator<Item = u16>) -> Vec<Atom> {
        v.into_iter().map(|i| Atom::Integer(i64::from(i))).collect()
    }

    #[test]
    fn big_sets_are_chunked_and_toggles_share_untouched_chunks() {
        let s = ChunkedSet::from_sorted(ints(0..10_000));
        assert_eq!(s.chunks.len(), 10_000usize.div_ceil(CHUNK_TARGET));
        let t = s.toggle(&ints([5000, 20_000]).into_iter().collect());
        assert_eq!(t.len(), 10_000);
        assert!(!t.iter().any(|a| *a == Atom::Integer(5000)));
        assert_eq!(t.iter().last(), Some(&Atom::Integer(20_000)));
        let shared = t
            .chunks
            .iter()
            .filter(|c| s.chunks.iter().any(|o| Arc::ptr_eq(c, o)));
        assert_eq!(shared.count(), s.chunks.len() - 2);
        // Growing one chunk past the maximum splits it.
        let many: BTreeSet<Atom> = (0..300).map(|i| Atom::Real(0.5 + f64::from(i))).collect();
        let small = ChunkedSet::from_sorted(ints([0, 1000]));
        let grown = small.toggle(&many);
        assert_eq!(grown.len(), 302);
        assert!(grown.chunks.iter().all(|c| c.len() <= CHUNK_MAX));
        assert!(grown.iter().zip(grown.iter().skip(1)).all(|(a, b)| a < b));
    }

    proptest! {
        #[test]
        fn toggle_is_symmetric_difference(
            old in proptest::collection::btree_set(any::<u16>(), 0..1500),
            diff in proptest::collection::btree_set(any::<u16>(), 0..400),
        ) {
            let set = ChunkedSet::from_sorted(ints(old.iter().copied()));
            let got = set.toggle(&ints(diff.iter().copied()).into_iter().collect());
            let want: Vec<Atom> = ints(old.symmetric_difference(&diff).copied());
            prop_assert_eq!(got.len(), want.len());
            prop_assert!(got.iter().eq(want.iter()));
            prop_assert!(got.chunks.iter().all(|c| !c.is_empty() && c.len() <= CHUNK_MAX));
            prop_assert_eq!(&got, &ChunkedSet::from_sorted(want));
            for probe in diff.iter().chain(old.iter()).take(50) {
                let a = Atom::Integer(i64::from(*probe));
                prop_assert_eq!(got.contains(&a), old.contains(probe) != diff.contains(probe));
            }
        }
    }
}
