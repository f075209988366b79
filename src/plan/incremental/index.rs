//! Which Routes an event can concern, so that only those are looked at again:
//! - a pod: the Routes whose selection it may meet ([`Key::Namespace`], [`Key::Label`],
//!   [`Key::HasLabel`]: a condition every selected pod must meet, or [`Key::Wide`] when
//!   there is none cheaper than trying), plus the Routes selecting it now (the engine knows);
//! - a namespace's labels: Routes with a namespace selector (in selection or exclusion);
//! - a ReplicaSet / Job: Routes targeting a Deployment / CronJob in its namespace;
//! - a Service (or its EndpointSlices): Routes naming it;
//! - a router (its ports, its existence): Routes with OVN rows on it.
//!
//! Keys are necessary conditions, never sufficient ones: the engine still evaluates the
//! selection for every candidate.
use std::collections::{BTreeMap, BTreeSet};

use super::sorted::SortedVec;
use crate::api::validate::selector::Selector;
use crate::api::validate::{Requirement, TargetKind};
use crate::cluster::{ObjectKey, PodInfo};
use crate::plan::PlanConfig;
use crate::plan::routes::{Prepared, services};

/// One thing a Route is indexed under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key {
    /// Any pod may be selected.
    Wide,
    /// Only pods of this namespace.
    Namespace(String),
    /// Only pods carrying this label.
    Label(String, String),
    /// Only pods carrying this label key.
    HasLabel(String),
    /// Only pods whose namespace carries this label (a namespace selector with no pod
    /// selector narrowing it down).
    NamespaceLabel(String, String),
    /// Only pods whose namespace carries this label key.
    NamespaceHasLabel(String),
    /// Selection depends on the labels of the pod's namespace.
    NamespaceLabels,
    /// Selection follows ReplicaSet / Job owners in this namespace.
    Links(String),
    Service(ObjectKey),
    Router(String),
    /// The Route has gateway pods (`ovn.nextHopPods`): pod and namespace changes may
    /// change its next hops.
    Gateways,
    /// The Route writes src-ip routes on its members' gateway routers (`symmetricReply`).
    GatewayRouters,
    /// The Route asks for BFD timers.
    BfdTimers,
}

/// The keys of a prepared Route.
pub(super) fn keys(p: &Prepared, cfg: &PlanConfig) -> BTreeSet<Key> {
    let r = &p.route;
    let mut out = BTreeSet::new();
    let sel = &r.selection;
    if !sel.broken {
        if let Some(targets) = &sel.targets {
            for t in targets {
                let ns = match t.kind {
                    TargetKind::Namespace => t.name.clone(),
                    _ => t.namespace.clone(),
                };
                if matches!(t.kind, TargetKind::Deployment | TargetKind::CronJob) {
                    out.insert(Key::Links(ns.clone()));
                }
                out.insert(Key::Namespace(ns));
            }
        } else {
            let key = match (
                pod_selector_key(sel.pod_selector.as_ref()),
                &sel.namespace_selector,
            ) {
                (Key::Wide, Some(ns)) => namespace_selector_key(ns),
                (key, _) => key,
            };
            out.insert(key);
        }
    }
    if sel.namespace_selector.is_some() || r.exclude.namespace_selector.is_some() {
        out.insert(Key::NamespaceLabels);
    }
    for s in services(r) {
        out.insert(Key::Service(s));
    }
    if r.ovn.hop_pods.is_some() {
        out.insert(Key::Gateways);
    }
    if r.ovn.symmetric_reply {
        out.insert(Key::GatewayRouters);
    }
    if r.ovn.bfd && r.ovn.bfd_timers.is_some() {
        out.insert(Key::BfdTimers);
    }
    if r.ovn.has_hops() {
        let router = r.ovn.router.as_ref().unwrap_or(&cfg.default_router);
        out.insert(Key::Router(router.clone()));
    }
    out
}

/// The cheapest condition a pod selector imposes.
fn pod_selector_key(sel: Option<&Selector>) -> Key {
    match sel.and_then(cheapest) {
        Some((k, Some(v))) => Key::Label(k, v),
        Some((k, None)) => Key::HasLabel(k),
        None => Key::Wide,
    }
}

/// The cheapest condition a namespace selector imposes on a pod's namespace.
fn namespace_selector_key(sel: &Selector) -> Key {
    match cheapest(sel) {
        Some((k, Some(v))) => Key::NamespaceLabel(k, v),
        Some((k, None)) => Key::NamespaceHasLabel(k),
        None => Key::Wide,
    }
}

/// A label (key and value) or a label key every object the selector matches carries.
fn cheapest(s: &Selector) -> Option<(String, Option<String>)> {
    if let Some((k, v)) = s.match_labels.iter().next() {
        return Some((k.clone(), Some(v.clone())));
    }
    s.requirements.iter().find_map(|r| match r {
        Requirement::Exists(k) | Requirement::In(k, _) => Some((k.clone(), None)),
        _ => None,
    })
}

/// Routes by key, and each Route's keys (to unindex it). Most keys have one Route and a
/// Route has a few keys: sorted vectors, not sets (a set's node has eleven slots).
#[derive(Clone, Debug, Default)]
pub(super) struct Index {
    by_key: BTreeMap<Key, SortedVec<String>>,
    of_route: BTreeMap<String, Box<[Key]>>,
}

impl Index {
    pub(super) fn set(&mut self, route: &str, keys: BTreeSet<Key>) {
        self.remove(route);
        for k in &keys {
            self.by_key
                .entry(k.clone())
                .or_default()
                .insert(route.to_owned());
        }
        self.of_route
            .insert(route.to_owned(), keys.into_iter().collect());
    }

    pub(super) fn remove(&mut self, route: &str) {
        for k in self.of_route.remove(route).unwrap_or_default() {
            let k = &k;
            if let Some(set) = self.by_key.get_mut(k) {
                set.remove(route);
                if set.is_empty() {
                    self.by_key.remove(k);
                }
            }
        }
    }

    pub(super) fn routes(&self, key: &Key) -> impl Iterator<Item = &String> {
        self.by_key.get(key).into_iter().flat_map(SortedVec::iter)
    }

    /// Routes whose selection `pod` may meet; `ns_labels` are its namespace's labels.
    pub(super) fn candidates(
        &self,
        pod: &PodInfo,
        ns_labels: &BTreeMap<String, String>,
        out: &mut BTreeSet<String>,
    ) {
        out.extend(self.routes(&Key::Wide).cloned());
        for (k, v) in ns_labels {
            out.extend(
                self.routes(&Key::NamespaceLabel(k.clone(), v.clone()))
                    .cloned(),
            );
            out.extend(self.routes(&Key::NamespaceHasLabel(k.clone())).cloned());
        }
        out.extend(self.routes(&Key::Namespace(pod.namespace.clone())).cloned());
        for (k, v) in &pod.labels {
            out.extend(
                self.routes(&Key::Label(k.to_owned(), v.to_owned()))
                    .cloned(),
            );
            out.extend(self.routes(&Key::HasLabel(k.to_owned())).cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validate::validate;
    use crate::plan::routes::prepare;
    use crate::plan::testkit::*;

    fn keys_of(r: crate::api::Route) -> BTreeSet<Key> {
        keys(&prepare(&world([]), validate(&r), &cfg()), &cfg())
    }

    #[test]
    fn keys_follow_the_cheapest_condition() {
        let mut r = mk_route("r", vec![rr("10.0.0.0/8", "eth1")], vec![]);
        assert!(keys_of(r.clone()).contains(&Key::Wide));
        r.spec.pod_selector = Some(sel(&[("app", "web")]));
        assert_eq!(
            keys_of(r.clone()),
            BTreeSet::from([Key::Label("app".into(), "web".into())])
        );
        r.spec.pod_selector = Some(sel_expr("tier", "In", &["a", "b"]));
        assert_eq!(
            keys_of(r.clone()),
            BTreeSet::from([Key::HasLabel("tier".into())])
        );
        r.spec.pod_selector = Some(sel_expr("tier", "NotIn", &["a"]));
        r.spec.namespace_selector = Some(sel(&[("team", "x")]));
        // Nothing to narrow down pods by: the namespace selector's cheapest condition.
        assert_eq!(
            keys_of(r.clone()),
            BTreeSet::from([
                Key::NamespaceLabel("team".into(), "x".into()),
                Key::NamespaceLabels
            ])
        );
        r.spec.pod_selector = None;
        assert_eq!(
            keys_of(r.clone()),
            BTreeSet::from([
                Key::NamespaceLabel("team".into(), "x".into()),
                Key::NamespaceLabels
            ])
        );
        r.spec.namespace_selector = Some(sel_expr("team", "In", &["x", "y"]));
        assert_eq!(
            keys_of(r.clone()),
            BTreeSet::from([Key::NamespaceHasLabel("team".into()), Key::NamespaceLabels])
        );
        r.spec.namespace_selector = Some(sel_expr("team", "NotIn", &["x"]));
        assert_eq!(
            keys_of(r.clone()),
            BTreeSet::from([Key::Wide, Key::NamespaceLabels])
        );
        r.spec.targets = vec![target("Deployment", Some("shop"), "web")];
        r.spec.svc = vec![sr("default", "db", "eth1")];
        assert_eq!(
            keys_of(r),
            BTreeSet::from([
                Key::Namespace("shop".into()),
                Key::NamespaceLabels,
                Key::Links("shop".into()),
                Key::Service(("default".into(), "db".into())),
            ])
        );
    }

    #[test]
    fn candidates_and_removal() {
        let mut ix = Index::default();
        ix.set(
            "a",
            BTreeSet::from([Key::Label("app".into(), "web".into())]),
        );
        ix.set("b", BTreeSet::from([Key::Namespace("shop".into())]));
        ix.set("c", BTreeSet::from([Key::Wide]));
        let pod = with_labels(mk_pod("shop", "p"), &[("app", "web")]);
        let mut out = BTreeSet::new();
        ix.candidates(&pod, &BTreeMap::new(), &mut out);
        assert_eq!(out, BTreeSet::from(["a".into(), "b".into(), "c".into()]));
        ix.remove("a");
        ix.set("c", BTreeSet::new());
        let mut out = BTreeSet::new();
        ix.candidates(&pod, &BTreeMap::new(), &mut out);
        assert_eq!(out, BTreeSet::from(["b".to_string()]));
        assert!(!ix.by_key.contains_key(&Key::Wide));
    }

    #[test]
    fn namespace_label_keys_match_the_pods_namespace() {
        let mut ix = Index::default();
        ix.set(
            "team-x",
            BTreeSet::from([Key::NamespaceLabel("team".into(), "x".into())]),
        );
        ix.set(
            "any-team",
            BTreeSet::from([Key::NamespaceHasLabel("team".into())]),
        );
        let pod = mk_pod("shop", "p");
        let labels = |team: &str| BTreeMap::from([("team".to_string(), team.to_string())]);
        let of = |ns: &BTreeMap<String, String>| {
            let mut out = BTreeSet::new();
            ix.candidates(&pod, ns, &mut out);
            out
        };
        assert_eq!(
            of(&labels("x")),
            BTreeSet::from(["team-x".into(), "any-team".into()])
        );
        assert_eq!(of(&labels("y")), BTreeSet::from(["any-team".to_string()]));
        assert!(of(&BTreeMap::new()).is_empty());
    }
}
