//! A small ordered set kept as a sorted vector: a pod's Routes (a handful each, held for
//! every pod), where a `BTreeSet` would cost a node of eleven slots per pod. It grows one
//! element at a time (a `Vec` would keep room for four from the first insert: at 50,000
//! pods with one or two Routes each, that spare room was 11 MB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SortedVec<T>(Vec<T>);

impl<T> Default for SortedVec<T> {
    fn default() -> Self {
        SortedVec(Vec::new())
    }
}

impl<T: Ord> SortedVec<T> {
    /// Adds `x`; false when it was there.
    pub(super) fn insert(&mut self, x: T) -> bool {
        match self.0.binary_search(&x) {
            Ok(_) => false,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, x);
                true
            }
        }
    }

    /// Removes the element equal to `x`; false when there was none.
    pub(super) fn remove<Q>(&mut self, x: &Q) -> bool
    where
        T: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.0.binary_search_by(|e| e.borrow().cmp(x)) {
            Ok(i) => {
                self.0.remove(i);
                self.0.shrink_to_fit();
                true
            }
            Err(_) => false,
        }
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::SortedVec;

    #[test]
    fn behaves_as_an_ordered_set() {
        let mut s: SortedVec<String> = SortedVec::default();
        assert!(s.insert("b".to_owned()));
        assert!(s.insert("a".to_owned()));
        assert!(s.insert("c".to_owned()));
        assert!(!s.insert("b".to_owned()));
        assert_eq!(s.0.capacity(), 3, "no spare room");
        let got: Vec<&str> = s.iter().map(String::as_str).collect();
        assert_eq!(got, ["a", "b", "c"]);
        assert!(s.remove("b"));
        assert_eq!(s.0.capacity(), 2, "room given back");
        assert!(!s.remove("b"));
        assert!(s.remove("a") && s.remove("c"));
        assert!(s.is_empty());
    }
}
