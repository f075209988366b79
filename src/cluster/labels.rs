//! A pod's labels, held compactly: every key and value in one string, sorted by key.
//!
//! A `BTreeMap<String, String>` of three labels costs ~730 bytes (a 536-byte node and six
//! string allocations); this costs two allocations of a few dozen bytes. Tens of thousands
//! of pods are held for the process lifetime, and their labels are only ever looked up by
//! key or walked in order, never edited in place.
use std::collections::BTreeMap;
use std::fmt;

use crate::api::validate::LabelLookup;

/// Sorted, unique keys with their values (see the module comment).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    /// Key 0, value 0, key 1, value 1, ... concatenated.
    text: Box<str>,
    /// Where each key and value ends in `text` (two entries per label).
    ends: Box<[u32]>,
}

impl Labels {
    pub fn new() -> Labels {
        Labels::default()
    }

    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Piece `i` of `text` (key `i / 2` or its value).
    fn piece(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    fn key(&self, i: usize) -> &str {
        self.piece(2 * i)
    }

    fn value(&self, i: usize) -> &str {
        self.piece(2 * i + 1)
    }

    fn find(&self, key: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.key(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.find(key).map(|i| self.value(i))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// The labels in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            labels: self,
            next: 0,
        }
    }

    /// Sets one label (rebuilds the whole set: labels change far less often than they are
    /// read).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let mut m = self.to_map();
        m.insert(key.into(), value.into());
        *self = Labels::from(&m);
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// From labels already sorted by key and unique.
    fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Labels {
        let len: usize = pairs.clone().map(|(k, v)| k.len() + v.len()).sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(2 * pairs.clone().count());
        for (k, v) in pairs {
            text.push_str(k);
            ends.push(offset(&text));
            text.push_str(v);
            ends.push(offset(&text));
        }
        Labels {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }
}

/// Offsets are u32: the labels of one object are bounded by the API server's 256 KiB
/// annotation-and-label limit, and a file's by `--max-file-bytes`, far below 4 GiB.
fn offset(text: &str) -> u32 {
    u32::try_from(text.len()).unwrap_or(u32::MAX)
}

impl From<&BTreeMap<String, String>> for Labels {
    fn from(m: &BTreeMap<String, String>) -> Labels {
        Labels::from_sorted(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Labels {
        Labels::from(&m)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    /// Later pairs win over earlier ones with the same key (as in a map).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Labels {
        let m: BTreeMap<String, String> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Labels::from(&m)
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(pairs: [(K, V); N]) -> Labels {
        pairs.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The labels of a [`Labels`] in key order.
pub struct Iter<'a> {
    labels: &'a Labels,
    next: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let i = self.next;
        (i < self.labels.len()).then(|| {
            self.next += 1;
            (self.labels.key(i), self.labels.value(i))
        })
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl LabelLookup for Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree_with_a_map() {
        let m: BTreeMap<String, String> = [
            ("tier", "t1"),
            ("app", "a12"),
            ("pod-template-hash", "5d9f7c"),
            ("", "empty key"),
            ("k", ""),
            ("app.kubernetes.io/name", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let l = Labels::from(&m);
        assert_eq!(l.len(), m.len());
        assert_eq!(l.to_map(), m);
        for (k, v) in &m {
            assert_eq!(l.get(k), Some(v.as_str()), "{k}");
            assert!(l.contains_key(k));
        }
        for missing in ["ap", "apps", "tie", "zzz", "a"] {
            assert_eq!(l.get(missing), None, "{missing}");
        }
        let order: Vec<&str> = l.iter().map(|(k, _)| k).collect();
        let want: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(order, want);
    }

    #[test]
    fn empty_and_duplicates() {
        let e = Labels::new();
        assert!(e.is_empty());
        assert_eq!(e.get(""), None);
        assert_eq!(e.iter().count(), 0);
        let l: Labels = [("a", "1"), ("a", "2"), ("b", "3")].into();
        assert_eq!(l.len(), 2);
        assert_eq!(l.get("a"), Some("2"));
        assert_eq!(format!("{l:?}"), r#"{"a": "2", "b": "3"}"#);
        assert_eq!(l, Labels::from([("b", "3"), ("a", "2")]));
        assert_ne!(l, Labels::from([("b", "3"), ("a", "1")]));
        // Same text, other boundaries: not equal.
        assert_ne!(Labels::from([("ab", "c")]), Labels::from([("a", "bc")]));
        let mut m = l.clone();
        m.insert("0", "x");
        m.insert("b", "4");
        assert_eq!(
            m.to_map(),
            Labels::from([("0", "x"), ("a", "2"), ("b", "4")]).to_map()
        );
    }
}
