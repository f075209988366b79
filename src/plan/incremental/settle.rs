//! Bringing the cached plan up to date after a change, in dependency order: selection pairs
//! (Route x pod), then the pods whose member Routes changed, then the Routes whose rows may
//! have changed, then the reports. Each step compares with what was cached and marks dirty
//! only what really changed.
use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::{ObjectKey, PodInfo, SharedKey};
use crate::plan::merge::{Conflict, merge_pod};
use crate::plan::ovn::NbKept;
use crate::plan::select::{PairSel, namespace_labels, pair};
use crate::plan::{Precedence, report};

use super::pod_index::Candidates;
use super::{Engine, PodEntry};

/// What a change asks to look at again.
#[derive(Clone, Debug, Default)]
pub(super) struct Touched {
    /// Routes to evaluate against every pod.
    all: BTreeSet<String>,
    /// Routes to evaluate against some pods.
    pairs: BTreeMap<String, BTreeSet<SharedKey>>,
    /// Pods to merge again.
    pub merge: BTreeSet<SharedKey>,
    /// Routes whose rows to compute again.
    pub nb: BTreeSet<String>,
    /// Routes whose report to build again.
    pub report: BTreeSet<String>,
}

impl Touched {
    pub(super) fn all_pods(&mut self, route: &str) {
        self.all.insert(route.to_owned());
    }

    pub(super) fn pair(&mut self, route: &str, pod: &SharedKey) {
        self.pairs
            .entry(route.to_owned())
            .or_default()
            .insert(pod.clone());
    }

    pub(super) fn pairs(&mut self, route: &str, pods: impl IntoIterator<Item = SharedKey>) {
        self.pairs.entry(route.to_owned()).or_default().extend(pods);
    }

    /// Adds what `other` asks for (every step re-reads the world and compares with what is
    /// cached, so looking at something once for several changes is the same as once each).
    fn absorb(&mut self, other: Touched) {
        self.all.extend(other.all);
        for (r, pods) in other.pairs {
            self.pairs.entry(r).or_default().extend(pods);
        }
        self.merge.extend(other.merge);
        self.nb.extend(other.nb);
        self.report.extend(other.report);
    }
}

impl Engine {
    /// Brings the plan up to date for `t`, or records it when a batch is open.
    pub(super) fn settle(&mut self, t: Touched) {
        match &mut self.batch {
            Some(b) => b.absorb(t),
            None => self.settle_now(t),
        }
    }

    pub(super) fn settle_now(&mut self, mut t: Touched) {
        self.settle_pairs(&mut t);
        self.settle_merges(&mut t);
        self.settle_nb(&mut t);
        self.settle_reports(&t);
    }

    fn settle_pairs(&mut self, t: &mut Touched) {
        let mut ns_cache: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for r in std::mem::take(&mut t.all) {
            t.pairs.remove(&r);
            self.reselect(&r, &mut ns_cache, t);
        }
        for (r, pods) in std::mem::take(&mut t.pairs) {
            for key in pods {
                self.evaluate(&r, &key, &mut ns_cache, t);
            }
        }
    }

    /// One Route against the pods its selection can match (the pod index's candidates) and
    /// the pods it selected so far; against every pod only when nothing narrows it down.
    fn reselect(
        &mut self,
        route: &str,
        ns_cache: &mut BTreeMap<String, BTreeMap<String, String>>,
        t: &mut Touched,
    ) {
        let Some(entry) = self.routes.get(route) else {
            return;
        };
        match self.pod_index.candidates(&self.world, &entry.p.route) {
            Candidates::All => self.reselect_all(route, ns_cache, t),
            Candidates::Some(keys) => {
                let mut keys: BTreeSet<SharedKey> = keys.into_iter().collect();
                keys.extend(entry.pairs.keys().cloned());
                for key in keys {
                    self.evaluate(route, &key, ns_cache, t);
                }
            }
        }
    }

    /// One Route against every pod: the pods and the Route's pairs are both in key order,
    /// so they are walked side by side (no lookup, no key copied unless something changed).
    fn reselect_all(
        &mut self,
        route: &str,
        ns_cache: &mut BTreeMap<String, BTreeMap<String, String>>,
        t: &mut Touched,
    ) {
        let Engine {
            cfg, world, routes, ..
        } = self;
        let Some(entry) = routes.get_mut(route) else {
            return;
        };
        let mut old = std::mem::take(&mut entry.pairs).into_iter().peekable();
        let mut kept: Vec<(SharedKey, PairSel)> = Vec::new();
        let mut changes: Vec<(SharedKey, Option<PairSel>, Option<PairSel>)> = Vec::new();
        for (pod_key, pod) in world.keyed_pods() {
            let here = (pod.namespace.as_str(), pod.name.as_str());
            while old
                .peek()
                .is_some_and(|(k, _)| (k.0.as_str(), k.1.as_str()) < here)
            {
                if let Some((k, s)) = old.next() {
                    changes.push((k, Some(s), None));
                }
            }
            let prev = match old.peek() {
                Some((k, _)) if (k.0.as_str(), k.1.as_str()) == here => old.next(),
                _ => None,
            };
            if !ns_cache.contains_key(pod.namespace.as_str()) {
                ns_cache.insert(
                    pod.namespace.clone(),
                    namespace_labels(world, &pod.namespace),
                );
            }
            let labels = ns_cache.get(pod.namespace.as_str());
            let new = labels.and_then(|l| pair(world, &entry.p, pod, l, cfg));
            match (prev, new) {
                (Some((k, p)), Some(n)) => {
                    if p != n {
                        changes.push((k.clone(), Some(p), Some(n)));
                    }
                    kept.push((k, n));
                }
                (Some((k, p)), None) => changes.push((k, Some(p), None)),
                (None, Some(n)) => {
                    changes.push((pod_key.clone(), None, Some(n)));
                    kept.push((pod_key.clone(), n));
                }
                (None, None) => {}
            }
        }
        changes.extend(old.map(|(k, s)| (k, Some(s), None)));
        entry.pairs = kept.into_iter().collect();
        for (key, old, new) in changes {
            self.account(route, &key, old, new, t);
        }
    }

    /// One Route x pod pair again.
    fn evaluate(
        &mut self,
        route: &str,
        key: &SharedKey,
        ns_cache: &mut BTreeMap<String, BTreeMap<String, String>>,
        t: &mut Touched,
    ) {
        let Engine {
            cfg, world, routes, ..
        } = self;
        let Some(entry) = routes.get_mut(route) else {
            return;
        };
        let new = world.pod_at(key).and_then(|pod: &PodInfo| {
            let labels = ns_cache
                .entry(pod.namespace.clone())
                .or_insert_with(|| namespace_labels(world, &pod.namespace));
            pair(world, &entry.p, pod, labels, cfg)
        });
        let old = entry.pairs.get(key).copied();
        if old == new {
            return;
        }
        match new {
            Some(n) => {
                entry.pairs.insert(key.clone(), n);
            }
            None => {
                entry.pairs.remove(key);
            }
        }
        self.account(route, key, old, new, t);
    }

    /// Bookkeeping of one pair that changed from `old` to `new` (the Route's pairs already
    /// hold `new`): counts, the pod's Routes, what to look at next.
    fn account(
        &mut self,
        route: &str,
        key: &SharedKey,
        old: Option<PairSel>,
        new: Option<PairSel>,
        t: &mut Touched,
    ) {
        let Some(entry) = self.routes.get_mut(route) else {
            return;
        };
        if let Some(o) = old {
            entry.counts.count(o, false);
        }
        if let Some(n) = new {
            entry.counts.count(n, true);
        }
        let pe = self.pods.entry(key.clone()).or_default();
        if new.is_some() {
            pe.selected_by.insert(entry.prec.name.clone());
        } else {
            pe.selected_by.remove(route);
        }
        let (was, is) = (
            old.is_some_and(|s| s.is_member()),
            new.is_some_and(|s| s.is_member()),
        );
        if was != is {
            if is {
                pe.members.insert(entry.prec.clone());
            } else {
                pe.members.remove(&entry.prec);
            }
            t.merge.insert(key.clone());
            t.nb.insert(route.to_owned());
        }
        t.report.insert(route.to_owned());
    }

    fn settle_merges(&mut self, t: &mut Touched) {
        let Engine {
            cfg,
            world,
            routes,
            pods,
            shared,
            dirty,
            ..
        } = self;
        for key in &t.merge {
            let Some(pe) = pods.get_mut(key) else {
                continue;
            };
            let new = match world.pod_at(key) {
                Some(pod) if cfg.is_local(pod) && !pe.members.is_empty() => {
                    let members = pe.members.iter().filter_map(|p| routes.get(&*p.name));
                    Some((pod.uid.clone(), merge_pod(pod, members.map(|e| &e.p), cfg)))
                }
                _ => None,
            };
            let old = pe.merge.take().map(|b| *b);
            // Unchanged routes keep their shared copy (the pod side compares by pointer
            // first).
            let new = match (new, &old) {
                (Some((uid, mut m)), Some((_, o))) if m.routes == o.routes => {
                    m.routes = o.routes.clone();
                    Some((uid, m))
                }
                (Some((uid, mut m)), _) => {
                    m.routes = shared.share(m.routes);
                    Some((uid, m))
                }
                (None, _) => None,
            };
            if old != new {
                let routes_of = |m: &Option<(String, crate::plan::merge::PodMerge)>| {
                    m.as_ref()
                        .filter(|(_, m)| !m.routes.is_empty())
                        .map(|(u, m)| (u.clone(), m.routes.clone()))
                };
                if routes_of(&old) != routes_of(&new) {
                    dirty.pods.insert(ObjectKey::clone(key));
                }
                if let Some((_, m)) = &old {
                    share(routes, key, m, false, &mut t.report);
                }
                if let Some((_, m)) = &new {
                    share(routes, key, m, true, &mut t.report);
                }
            }
            pe.merge = new.map(Box::new);
            if is_empty(pe) {
                pods.remove(key);
            }
        }
        if !t.merge.is_empty() {
            shared.prune();
        }
    }

    fn settle_nb(&mut self, t: &mut Touched) {
        let Engine {
            cfg,
            world,
            routes,
            slots,
            dirty,
            ..
        } = self;
        for name in &t.nb {
            let Some(e) = routes.get_mut(name) else {
                continue;
            };
            let new = NbKept::of(super::rows_of(e, world, slots, cfg));
            if new != e.nb {
                dirty.nb.insert(name.clone());
                e.nb = new;
            }
            t.report.insert(name.clone());
        }
    }

    fn settle_reports(&mut self, t: &Touched) {
        for name in &t.report {
            let Some(e) = self.routes.get(name) else {
                continue;
            };
            // Conflicts in the full plan's order: path, the winner's precedence, the
            // winner's path, destination.
            let mut lost: Vec<(&Conflict, Option<&Precedence>, usize, &SharedKey)> = e
                .lost
                .iter()
                .filter_map(|(c, pods)| {
                    let first = pods.keys().next()?;
                    let winner = self.routes.get(&c.winner).map(|w| &w.prec);
                    Some((c, winner, pods.values().sum(), first))
                })
                .collect();
            lost.sort_by(|a, b| {
                (&a.0.path, a.1, &a.0.wpath, &a.0.dst).cmp(&(&b.0.path, b.1, &b.0.wpath, &b.0.dst))
            });
            let conflicts = lost.into_iter().map(|(c, _, n, pod)| {
                report::conflict_problem(c, n, &format!("{}/{}", pod.0, pod.1))
            });
            let refusals = e.refused.iter().filter_map(|((path, why), pods)| {
                let (first, (_, message)) = pods.iter().next()?;
                let n = pods.values().map(|(n, _)| n).sum();
                let pod = format!("{}/{}", first.0, first.1);
                Some(report::refused_problem(path, why, n, &pod, message))
            });
            let cap = e.capped.iter().next().map(|(first, _)| {
                report::capped_problem(
                    e.capped.len(),
                    e.capped.values().sum(),
                    &format!("{}/{}", first.0, first.1),
                    self.cfg.max_routes_per_pod,
                )
            });
            let problems =
                e.p.problems
                    .iter()
                    .cloned()
                    .chain(refusals)
                    .chain(cap)
                    .chain(conflicts)
                    .chain(e.nb.problems.iter().cloned());
            let mut r = report::build(
                &e.counts,
                e.programmable,
                problems,
                e.p.route.is_invalid(),
                self.cfg.max_problems,
            );
            r.next_hops = crate::plan::gateways::statuses(&e.p.route.ovn.next_hops, &e.p.gateways);
            r.next_hops.truncate(self.cfg.max_problems.max(1) * 4);
            if r != *e.report {
                self.dirty.reports.insert(name.clone());
                if let Some(e) = self.routes.get_mut(name) {
                    e.report = std::sync::Arc::new(r);
                }
            }
        }
    }
}

fn is_empty(pe: &PodEntry) -> bool {
    pe.selected_by.is_empty() && pe.members.is_empty() && pe.merge.is_none()
}

/// Adds (`add`) or takes away one pod merge's share of its Routes' reports: where they are
/// programmable, and the claims they lost.
fn share(
    routes: &mut BTreeMap<String, Box<super::RouteEntry>>,
    pod: &SharedKey,
    m: &crate::plan::merge::PodMerge,
    add: bool,
    touched: &mut BTreeSet<String>,
) {
    for name in &m.contributed {
        if let Some(e) = routes.get_mut(name) {
            if add {
                e.programmable += 1;
            } else {
                e.programmable = e.programmable.saturating_sub(1);
            }
            touched.insert(name.clone());
        }
    }
    for (name, rules) in &m.refused {
        let Some(e) = routes.get_mut(name) else {
            continue;
        };
        touched.insert(name.clone());
        for (key, seen) in rules {
            if add {
                e.refused
                    .entry(key.clone())
                    .or_default()
                    .insert(pod.clone(), seen.clone());
            } else if let Some(pods) = e.refused.get_mut(key) {
                pods.remove(pod);
                if pods.is_empty() {
                    e.refused.remove(key);
                }
            }
        }
    }
    for (name, over) in &m.capped {
        let Some(e) = routes.get_mut(name) else {
            continue;
        };
        touched.insert(name.clone());
        if add {
            e.capped.insert(pod.clone(), *over);
        } else {
            e.capped.remove(pod);
        }
    }
    for c in &m.conflicts {
        let Some(e) = routes.get_mut(&c.loser) else {
            continue;
        };
        touched.insert(c.loser.clone());
        let pods = e.lost.entry(c.clone()).or_default();
        let n = pods.entry(pod.clone()).or_default();
        if add {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
        }
        if *n == 0 {
            pods.remove(pod);
        }
        if pods.is_empty() {
            e.lost.remove(c);
        }
    }
}
