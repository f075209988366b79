//! Label sets held once: the pods of one workload carry the same labels, so the world keeps
//! one copy of each distinct set, shared by every pod that has it.
//!
//! Owns the interner. A set is interned when it enters the world (conversion from a
//! Kubernetes object or a file); sets no pod uses any more are dropped from the interner
//! as it grows. Must not: know about pods or selectors; a [`Labels`] reads as the plain map
//! it wraps.
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// One label set, shared. Reads as a `BTreeMap<String, String>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<BTreeMap<String, String>>);

struct Interner {
    sets: HashSet<Arc<BTreeMap<String, String>>>,
    /// Size after the last sweep: the next sweep runs when the set has doubled.
    swept: usize,
}

fn interner() -> &'static Mutex<Interner> {
    static I: OnceLock<Mutex<Interner>> = OnceLock::new();
    I.get_or_init(|| {
        Mutex::new(Interner {
            sets: HashSet::new(),
            swept: 0,
        })
    })
}

impl Labels {
    /// The shared copy of `map` (the empty set is never stored).
    pub fn new(map: BTreeMap<String, String>) -> Labels {
        if map.is_empty() {
            return Labels::default();
        }
        let mut i = interner().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = i.sets.get(&map) {
            return Labels(shared.clone());
        }
        if i.sets.len() >= 1024 && i.sets.len() >= 2 * i.swept {
            // Sets only the interner holds belong to no object any more.
            i.sets.retain(|s| Arc::strong_count(s) > 1);
            i.swept = i.sets.len();
        }
        let shared = Arc::new(map);
        i.sets.insert(shared.clone());
        Labels(shared)
    }

    /// Distinct label sets held (for tests and figures).
    pub fn interned() -> usize {
        interner()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sets
            .len()
    }
}

impl Default for Labels {
    fn default() -> Self {
        static EMPTY: OnceLock<Arc<BTreeMap<String, String>>> = OnceLock::new();
        Labels(EMPTY.get_or_init(|| Arc::new(BTreeMap::new())).clone())
    }
}

impl Deref for Labels {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Labels::new(map)
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl PartialEq<BTreeMap<String, String>> for Labels {
    fn eq(&self, other: &BTreeMap<String, String>) -> bool {
        *self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn equal_sets_are_one_copy_and_read_as_maps() {
        let a = Labels::new(set(&[("app", "web"), ("tier", "a")]));
        let b = Labels::from(set(&[("tier", "a"), ("app", "web")]));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a.get("app").map(String::as_str), Some("web"));
        assert_eq!((&a).into_iter().count(), 2);
        let c = Labels::new(set(&[("app", "db")]));
        assert!(!Arc::ptr_eq(&a.0, &c.0));
        assert_ne!(a, c);
        assert_eq!(a, set(&[("app", "web"), ("tier", "a")]));
        assert!(Labels::new(BTreeMap::new()).is_empty());
    }

    #[test]
    fn sets_nobody_holds_are_swept_as_the_interner_grows() {
        let held = Labels::new(set(&[("held", "yes")]));
        for i in 0..5000 {
            let _dropped = Labels::new(set(&[("sweep-test", &i.to_string())]));
        }
        // At most about twice what is alive (other tests may hold a few sets).
        assert!(Labels::interned() < 2100, "{}", Labels::interned());
        let again = Labels::new(set(&[("held", "yes")]));
        assert!(
            Arc::ptr_eq(&held.0, &again.0),
            "a set in use stays interned"
        );
    }
}
