//! One copy of each distinct set of pod routes: pods that the same Routes select the same
//! way (the replicas of a workload) get equal [`PodRoutes`], and the engine hands them all
//! one shared `Arc` instead of a copy each. The plan, the pod side and the next plan then
//! hold that one copy, so the memory of the planned routes grows with the distinct sets,
//! not with the pods (at 2,000 pods x 246 routes, 4 MiB instead of 36 MiB of copies; see
//! docs/benchmarks.md).
//!
//! The index holds the sets weakly: a set is freed as soon as the last pod holding it
//! (in the plan or on the pod side) lets it go, not one plan change later.
//!
//! Must not: change what any pod is given (a lookup returns an equal value or the value
//! itself), or keep a set alive.
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Weak};

use crate::plan::pod::PodRoutes;

/// The distinct route sets in use, by a hash of their content (see the module doc).
#[derive(Clone, Debug, Default)]
pub(super) struct RouteSets {
    sets: HashMap<u64, Vec<Weak<PodRoutes>>>,
}

/// Hashes the destinations only (equal sets have equal destinations): cheaper than the
/// shared strings, and a set's destinations are distinct, so they tell sets apart well.
fn content_hash(r: &PodRoutes) -> u64 {
    let mut h = DefaultHasher::new();
    r.routes.len().hash(&mut h);
    for x in &r.routes {
        x.dst.hash(&mut h);
    }
    r.default_routes.len().hash(&mut h);
    h.finish()
}

impl RouteSets {
    /// The shared copy of `routes`' content: the one already in use when equal, else
    /// `routes` itself, shared from now on. Empty sets are not kept (the pod side has its
    /// own).
    pub(super) fn share(&mut self, routes: Arc<PodRoutes>) -> Arc<PodRoutes> {
        if routes.is_empty() {
            return routes;
        }
        let same = self.sets.entry(content_hash(&routes)).or_default();
        if let Some(held) = same
            .iter()
            .filter_map(Weak::upgrade)
            .find(|h| Arc::ptr_eq(h, &routes) || **h == *routes)
        {
            return held;
        }
        same.retain(|w| w.strong_count() > 0);
        same.push(Arc::downgrade(&routes));
        routes
    }

    /// Forgets the entries of sets that were freed.
    pub(super) fn prune(&mut self) {
        self.sets.retain(|_, same| {
            same.retain(|w| w.strong_count() > 0);
            !same.is_empty()
        });
    }

    /// Number of distinct sets in use.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.sets
            .values()
            .flatten()
            .filter(|w| w.strong_count() > 0)
            .count()
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
    fn equal_sets_share_one_copy_and_freed_ones_are_forgotten() {
        let mut sets = RouteSets::default();
        let a = sets.share(set("10.0.0.0/24"));
        let b = sets.share(set("10.0.0.0/24"));
        let c = sets.share(set("10.0.1.0/24"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(*c, *set("10.0.1.0/24"));
        assert_eq!(sets.len(), 2);
        // The index does not keep a set alive.
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        sets.prune();
        assert_eq!(sets.len(), 1);
        assert_eq!(sets.sets.len(), 1);
        // A set equal to a freed one is shared again from its first new holder.
        let d = sets.share(set("10.0.0.0/24"));
        let e = sets.share(set("10.0.0.0/24"));
        assert!(Arc::ptr_eq(&d, &e));
        let empty = Arc::new(PodRoutes::default());
        let f = sets.share(empty.clone());
        assert!(Arc::ptr_eq(&f, &empty));
        assert_eq!(sets.len(), 2);
    }
}
