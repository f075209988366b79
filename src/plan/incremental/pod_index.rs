//! Pods by label, by label key and by namespace, so that a Route looks only at the pods its
//! selection can match (the cheapest condition it imposes), never at every pod: planning
//! costs O(pods + Routes + matches), not O(Routes x pods).
//!
//! The counterpart of [`super::index`] (a pod -> the Routes it may concern). Pods are held
//! by a dense id, so an index entry costs a few bytes, not a copy of the pod's name.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::api::validate::{Requirement, TargetKind, ValidatedRoute};
use crate::cluster::{ObjectKey, PodInfo, SharedKey, World};

/// Ids of the pods the index knows.
type Ids = BTreeSet<u32>;

#[derive(Clone, Debug, Default)]
pub(super) struct PodIndex {
    ids: HashMap<SharedKey, u32>,
    keys: Vec<Option<SharedKey>>,
    free: Vec<u32>,
    by_label: HashMap<(String, String), Ids>,
    by_key: HashMap<String, Ids>,
    /// Namespace -> how many pods it holds.
    namespaces: BTreeMap<String, usize>,
}

/// Pods a Route may select, as the index can tell.
pub(super) enum Candidates {
    /// Every pod (no condition cheaper than trying them all).
    All,
    /// Only these.
    Some(Vec<SharedKey>),
}

impl PodIndex {
    /// The pod `key` changed from `old` to `new` (either absent: added or deleted).
    pub(super) fn update(&mut self, key: &SharedKey, old: Option<&PodInfo>, new: Option<&PodInfo>) {
        if let (Some(o), Some(n)) = (old, new)
            && o.labels == n.labels
        {
            return;
        }
        if let Some(o) = old {
            let id = self.id(key);
            for (k, v) in &o.labels {
                remove(&mut self.by_label, &(k.to_owned(), v.to_owned()), id);
                remove(&mut self.by_key, k, id);
            }
        }
        match new {
            Some(n) => {
                if old.is_none() {
                    *self.namespaces.entry(key.0.clone()).or_default() += 1;
                }
                let id = self.id(key);
                for (k, v) in &n.labels {
                    self.by_label
                        .entry((k.to_owned(), v.to_owned()))
                        .or_default()
                        .insert(id);
                    self.by_key.entry(k.to_owned()).or_default().insert(id);
                }
            }
            None => {
                if let Some(n) = self.namespaces.get_mut(&key.0) {
                    *n -= 1;
                    if *n == 0 {
                        self.namespaces.remove(&key.0);
                    }
                }
                if let Some(id) = self.ids.remove::<ObjectKey>(key) {
                    self.keys[id as usize] = None;
                    self.free.push(id);
                }
            }
        }
    }

    fn id(&mut self, key: &SharedKey) -> u32 {
        if let Some(id) = self.ids.get::<ObjectKey>(key) {
            return *id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.keys[id as usize] = Some(key.clone());
                id
            }
            None => {
                self.keys.push(Some(key.clone()));
                u32::try_from(self.keys.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.ids.insert(key.clone(), id);
        id
    }

    fn keys_of<'a>(&'a self, ids: impl IntoIterator<Item = &'a u32>) -> Vec<SharedKey> {
        ids.into_iter()
            .filter_map(|id| self.keys.get(*id as usize).cloned().flatten())
            .collect()
    }

    /// The pods `route` may select: a superset of its members (the selection is still
    /// evaluated for each), as small as the index allows.
    pub(super) fn candidates(&self, world: &World, route: &ValidatedRoute) -> Candidates {
        let sel = &route.selection;
        if sel.broken {
            return Candidates::Some(Vec::new());
        }
        if let Some(targets) = &sel.targets {
            return Candidates::Some(targets_pods(world, targets));
        }
        let empty = Ids::new();
        // Each condition a selected pod must meet, as the sets of pods meeting it.
        let mut options: Vec<Vec<&Ids>> = Vec::new();
        if let Some(s) = &sel.pod_selector {
            for (k, v) in &s.match_labels {
                options.push(vec![
                    self.by_label.get(&(k.clone(), v.clone())).unwrap_or(&empty),
                ]);
            }
            for r in &s.requirements {
                match r {
                    Requirement::Exists(k) => {
                        options.push(vec![self.by_key.get(k).unwrap_or(&empty)])
                    }
                    Requirement::In(k, values) => options.push(
                        values
                            .iter()
                            .map(|v| self.by_label.get(&(k.clone(), v.clone())).unwrap_or(&empty))
                            .collect(),
                    ),
                    _ => {}
                }
            }
        }
        let size = |sets: &Vec<&Ids>| sets.iter().map(|s| s.len()).sum::<usize>();
        let best = options.into_iter().min_by_key(size);
        if let Some(sets) = best {
            let ids: BTreeSet<&u32> = sets.into_iter().flatten().collect();
            return Candidates::Some(self.keys_of(ids));
        }
        if let Some(ns_sel) = &sel.namespace_selector {
            // The namespaces first (far fewer than pods), then their pods.
            let pods = self
                .namespaces
                .keys()
                .filter(|ns| ns_sel.matches(&super::super::select::namespace_labels(world, ns)))
                .flat_map(|ns| world.keyed_pods_in(ns))
                .map(|(k, _)| k.clone())
                .collect();
            return Candidates::Some(pods);
        }
        Candidates::All
    }
}

/// The pods of the targets' namespaces (a Pod target: that pod only).
fn targets_pods(world: &World, targets: &[crate::api::validate::TargetRef]) -> Vec<SharedKey> {
    let mut out = BTreeSet::new();
    for t in targets {
        match t.kind {
            TargetKind::Pod => {
                out.extend(
                    world
                        .pod_key(&(t.namespace.clone(), t.name.clone()))
                        .cloned(),
                );
            }
            TargetKind::Namespace => {
                out.extend(world.keyed_pods_in(&t.name).map(|(k, _)| k.clone()));
            }
            _ => {
                out.extend(world.keyed_pods_in(&t.namespace).map(|(k, _)| k.clone()));
            }
        }
    }
    out.into_iter().collect()
}

fn remove<K, Q>(m: &mut HashMap<K, Ids>, k: &Q, id: u32)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(s) = m.get_mut(k) {
        s.remove(&id);
        if s.is_empty() {
            m.remove(k);
        }
    }
}
