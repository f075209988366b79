//! One copy of each distinct set of pod routes: pods that the same Routes select the same
//! way (the replicas of a workload) get equal [`PodRoutes`], and the engine hands them all
//! one shared `Arc` instead of a copy each. The plan, the pod side and the next plan then
//! hold that one copy, so the memory of the planned routes grows with the distinct sets,
//! not with the pods (at 2,000 pods x 250 routes, 36 MiB of copies; see
//! docs/benchmarks.md).
//!
//! Must not: change what any pod is given (a lookup returns an equal value or the value
//! itself), or keep a set alive that nothing else holds past the next [`RouteSets::prune`].
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::plan::pod::PodRoutes;

/// An `Arc<PodRoutes>` compared and hashed by content.
#[derive(Clone, Debug)]
struct ByContent(Arc<PodRoutes>);

impl PartialEq for ByContent {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl Eq for ByContent {}

/// Hashes the destinations only (equal sets have equal destinations): cheaper than the
/// shared strings, and a set's destinations are distinct, so they tell sets apart well.
impl Hash for ByContent {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.routes.len());
        for r in &self.0.routes {
            r.dst.hash(state);
        }
        state.write_usize(self.0.default_routes.len());
    }
}

/// The distinct route sets in use (see the module doc).
#[derive(Clone, Debug, Default)]
pub(super) struct RouteSets {
    sets: HashSet<ByContent>,
}

impl RouteSets {
    /// The shared copy of `routes`' content: the one already held when equal, else `routes`
    /// itself, kept from now on. Empty sets are not kept (the pod side has its own).
    pub(super) fn share(&mut self, routes: Arc<PodRoutes>) -> Arc<PodRoutes> {
        if routes.is_empty() {
            return routes;
        }
        let key = ByContent(routes);
        if let Some(held) = self.sets.get(&key) {
            return held.0.clone();
        }
        let out = key.0.clone();
        self.sets.insert(key);
        out
    }

    /// Forgets the sets no one but this index holds any more.
    pub(super) fn prune(&mut self) {
        self.sets.retain(|s| Arc::strong_count(&s.0) > 1);
    }

    /// Number of distinct sets held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.sets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::pod::{NextHop, PodRoute};

    fn set(dst: &str) -> Arc<PodRoutes> {
        Arc::new(PodRoutes {
            routes: vec![PodRoute {
                dst: dst.parse().unwrap(),
                dev: Arc::from("eth1"),
                next_hop: NextHop::DevGateway,
                owner: Arc::from("r"),
            }],
            default_routes: Vec::new(),
        })
    }

    #[test]
    fn equal_sets_share_one_copy_and_unused_ones_are_forgotten() {
        let mut sets = RouteSets::default();
        let a = sets.share(set("10.0.0.0/24"));
        let b = sets.share(set("10.0.0.0/24"));
        let c = sets.share(set("10.0.1.0/24"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(*c, *set("10.0.1.0/24"));
        assert_eq!(sets.len(), 2);
        drop((a, b));
        sets.prune();
        assert_eq!(sets.len(), 1);
        let empty = Arc::new(PodRoutes::default());
        let e = sets.share(empty.clone());
        assert!(Arc::ptr_eq(&e, &empty));
        assert_eq!(sets.len(), 1);
    }
}
