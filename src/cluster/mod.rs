//! cluster: the world as the controller sees it — compact pods, Services, EndpointSlices,
//! namespaces and workload ownership links, indexed by key.
//!
//! Owns: the in-memory index and its `apply` / `delete` per object. Must not: talk to
//! Kubernetes, read files or know about Routes. Sources (the Kubernetes watcher, file
//! mode) convert their objects with the `From` impls and feed them in; the planner only
//! reads. Objects are stored compactly (no full Kubernetes objects) because thousands of
//! pods are held for the process lifetime.
pub mod labels;
pub mod objects;
pub mod pod;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

pub use labels::Labels;
pub use objects::{EndpointSliceInfo, LinkKind, NamespaceInfo, ServiceInfo, WorkloadLink};
pub use pod::{OvnInfo, OwnerRef, PodInfo, PodInterface, PodPhase};

/// `(namespace, name)`.
pub type ObjectKey = (String, String);

/// A pod's key, allocated once when the World first sees the pod and shared by every
/// index that names the pod (the planner holds a pod's key in several maps and once per
/// Route selecting it; a clone costs a reference count, not two strings). Compares, hashes
/// and borrows as the [`ObjectKey`] it holds.
pub type SharedKey = std::sync::Arc<ObjectKey>;

/// One object a source can hand to [`World::apply`].
#[derive(Clone, Debug, PartialEq)]
pub enum WorldObject {
    /// Boxed: the World keeps it as it comes (a list of 50,000 pods is then a list of
    /// pointers, and no pod is copied on the way in).
    Pod(Box<PodInfo>),
    Service(ServiceInfo),
    EndpointSlice(EndpointSliceInfo),
    Namespace(NamespaceInfo),
    /// A ReplicaSet or a Job and its owner.
    Link(LinkKind, WorkloadLink),
}

/// Which object [`World::delete`] removes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WorldRef {
    Pod(ObjectKey),
    Service(ObjectKey),
    EndpointSlice(ObjectKey),
    /// A namespace by name.
    Namespace(String),
    Link(LinkKind, ObjectKey),
}

/// A relist of one kind on its way in, part by part: every object it names, and only those
/// objects that differ from the world's. A relist of 50,000 unchanged pods holds 50,000
/// keys, not a second copy of 50,000 pods; it replaces the kind only once complete.
#[derive(Debug, Default)]
pub struct Relisted {
    pub listed: HashSet<WorldRef>,
    pub changed: Vec<WorldObject>,
}

impl Relisted {
    /// Takes the objects of `kind` in one part of the list.
    pub fn add(&mut self, world: &World, kind: ObjectKind, objects: Vec<WorldObject>) {
        for o in objects.into_iter().filter(|o| o.kind() == kind) {
            self.listed.insert(o.to_ref());
            if !world.holds(&o) {
                self.changed.push(o);
            }
        }
    }
}

/// A kind of world object: what one watch delivers, and what a relist replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Pod,
    Service,
    EndpointSlice,
    Namespace,
    Link(LinkKind),
}

impl ObjectKind {
    /// Every kind, in the order a whole world is best applied (what pods refer to first).
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::Namespace,
        ObjectKind::Link(LinkKind::ReplicaSet),
        ObjectKind::Link(LinkKind::Job),
        ObjectKind::Service,
        ObjectKind::EndpointSlice,
        ObjectKind::Pod,
    ];
}

impl WorldObject {
    pub fn kind(&self) -> ObjectKind {
        match self {
            WorldObject::Pod(_) => ObjectKind::Pod,
            WorldObject::Service(_) => ObjectKind::Service,
            WorldObject::EndpointSlice(_) => ObjectKind::EndpointSlice,
            WorldObject::Namespace(_) => ObjectKind::Namespace,
            WorldObject::Link(k, _) => ObjectKind::Link(*k),
        }
    }

    /// The reference that deletes this object.
    pub fn to_ref(&self) -> WorldRef {
        match self {
            WorldObject::Pod(p) => WorldRef::Pod((p.namespace.clone(), p.name.clone())),
            WorldObject::Service(s) => WorldRef::Service((s.namespace.clone(), s.name.clone())),
            WorldObject::EndpointSlice(s) => {
                WorldRef::EndpointSlice((s.namespace.clone(), s.name.clone()))
            }
            WorldObject::Namespace(n) => WorldRef::Namespace(n.name.clone()),
            WorldObject::Link(k, l) => WorldRef::Link(*k, (l.namespace.clone(), l.name.clone())),
        }
    }
}

/// The indexed world. Maps are ordered so that everything read from it is in a stable order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct World {
    /// Boxed: a map node has eleven slots, about half of them empty, and a pod is 300 bytes.
    pods: BTreeMap<SharedKey, Box<PodInfo>>,
    services: BTreeMap<ObjectKey, ServiceInfo>,
    slices: BTreeMap<ObjectKey, EndpointSliceInfo>,
    /// (namespace, service) -> slice names, so headless lookups do not scan every slice.
    slices_by_service: BTreeMap<ObjectKey, BTreeSet<String>>,
    namespaces: BTreeMap<String, NamespaceInfo>,
    links: BTreeMap<(LinkKind, String, String), WorkloadLink>,
}

impl World {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces an object. Returns true when the world changed.
    pub fn apply(&mut self, obj: impl Into<WorldObject>) -> bool {
        match obj.into() {
            WorldObject::Pod(p) => {
                // Looked up by borrowed key: a known pod keeps its shared key.
                let key = (p.namespace.clone(), p.name.clone());
                match self.pods.get_mut(&key) {
                    Some(old) if **old == *p => false,
                    Some(old) => {
                        *old = p;
                        true
                    }
                    None => {
                        self.pods.insert(SharedKey::new(key), p);
                        true
                    }
                }
            }
            WorldObject::Service(s) => {
                replace(&mut self.services, (s.namespace.clone(), s.name.clone()), s)
            }
            WorldObject::EndpointSlice(s) => {
                let key = (s.namespace.clone(), s.name.clone());
                if self.slices.get(&key) == Some(&s) {
                    return false;
                }
                self.unindex_slice(&key);
                if let Some(svc) = &s.service {
                    self.slices_by_service
                        .entry((s.namespace.clone(), svc.clone()))
                        .or_default()
                        .insert(s.name.clone());
                }
                self.slices.insert(key, s);
                true
            }
            WorldObject::Namespace(n) => replace(&mut self.namespaces, n.name.clone(), n),
            WorldObject::Link(kind, l) => replace(
                &mut self.links,
                (kind, l.namespace.clone(), l.name.clone()),
                l,
            ),
        }
    }

    /// Removes an object. Returns true when it was known.
    pub fn delete(&mut self, r: &WorldRef) -> bool {
        match r {
            WorldRef::Pod(k) => self.pods.remove(k).is_some(),
            WorldRef::Service(k) => self.services.remove(k).is_some(),
            WorldRef::EndpointSlice(k) => {
                self.unindex_slice(k);
                self.slices.remove(k).is_some()
            }
            WorldRef::Namespace(n) => self.namespaces.remove(n).is_some(),
            WorldRef::Link(kind, (ns, name)) => self
                .links
                .remove(&(*kind, ns.clone(), name.clone()))
                .is_some(),
        }
    }

    /// The objects of `kind` a complete list lacks (`listed`: every object it names): they
    /// are deleted when the list replaces the kind. Only a complete list may be given; a
    /// partial one would name objects that still exist.
    pub fn stale(&self, kind: ObjectKind, listed: &HashSet<WorldRef>) -> Vec<WorldRef> {
        self.refs(kind)
            .into_iter()
            .filter(|r| !listed.contains(r))
            .collect()
    }

    /// An equal object is in the world.
    pub fn holds(&self, o: &WorldObject) -> bool {
        match o {
            WorldObject::Pod(p) => self
                .pods
                .get(&(p.namespace.clone(), p.name.clone()))
                .is_some_and(|old| **old == **p),
            WorldObject::Service(s) => {
                self.services.get(&(s.namespace.clone(), s.name.clone())) == Some(s)
            }
            WorldObject::EndpointSlice(s) => {
                self.slices.get(&(s.namespace.clone(), s.name.clone())) == Some(s)
            }
            WorldObject::Namespace(n) => self.namespaces.get(&n.name) == Some(n),
            WorldObject::Link(k, l) => {
                self.links.get(&(*k, l.namespace.clone(), l.name.clone())) == Some(l)
            }
        }
    }

    /// Every object, handed out (namespaces and workload links first, pods last).
    pub fn into_objects(self) -> Vec<WorldObject> {
        let mut out: Vec<WorldObject> = Vec::new();
        out.extend(self.namespaces.into_values().map(WorldObject::Namespace));
        out.extend(
            self.links
                .into_iter()
                .map(|((k, _, _), l)| WorldObject::Link(k, l)),
        );
        out.extend(self.services.into_values().map(WorldObject::Service));
        out.extend(self.slices.into_values().map(WorldObject::EndpointSlice));
        out.extend(self.pods.into_values().map(WorldObject::Pod));
        out
    }

    /// Every object of one kind, as references.
    pub fn refs(&self, kind: ObjectKind) -> Vec<WorldRef> {
        match kind {
            ObjectKind::Pod => self
                .pods
                .keys()
                .map(|k| WorldRef::Pod(ObjectKey::clone(k)))
                .collect(),
            ObjectKind::Service => self
                .services
                .keys()
                .cloned()
                .map(WorldRef::Service)
                .collect(),
            ObjectKind::EndpointSlice => self
                .slices
                .keys()
                .cloned()
                .map(WorldRef::EndpointSlice)
                .collect(),
            ObjectKind::Namespace => self
                .namespaces
                .keys()
                .cloned()
                .map(WorldRef::Namespace)
                .collect(),
            ObjectKind::Link(k) => self
                .links
                .keys()
                .filter(|(lk, _, _)| *lk == k)
                .map(|(lk, ns, name)| WorldRef::Link(*lk, (ns.clone(), name.clone())))
                .collect(),
        }
    }

    fn unindex_slice(&mut self, key: &ObjectKey) {
        let Some(old) = self.slices.get(key) else {
            return;
        };
        if let Some(svc) = &old.service {
            let idx = (key.0.clone(), svc.clone());
            if let Some(set) = self.slices_by_service.get_mut(&idx) {
                set.remove(&key.1);
                if set.is_empty() {
                    self.slices_by_service.remove(&idx);
                }
            }
        }
    }

    /// Every pod, ordered by namespace then name.
    pub fn pods(&self) -> impl Iterator<Item = &PodInfo> {
        self.pods.values().map(|p| &**p)
    }

    /// Every pod with its shared key, ordered by namespace then name.
    pub fn keyed_pods(&self) -> impl Iterator<Item = (&SharedKey, &PodInfo)> {
        self.pods.iter().map(|(k, p)| (k, &**p))
    }

    /// The pods of one namespace, ordered by name.
    pub fn pods_in<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a PodInfo> + 'a {
        self.keyed_pods_in(namespace).map(|(_, p)| p)
    }

    /// [`World::pods_in`] with each pod's shared key.
    pub fn keyed_pods_in<'a>(
        &'a self,
        namespace: &str,
    ) -> impl Iterator<Item = (&'a SharedKey, &'a PodInfo)> + 'a {
        let ns = namespace.to_owned();
        self.pods
            .range::<ObjectKey, _>((ns.clone(), String::new())..)
            .take_while(move |(k, _)| k.0 == ns)
            .map(|(k, p)| (k, &**p))
    }

    /// A known pod with its shared key.
    pub fn keyed_pod(&self, key: &ObjectKey) -> Option<(&SharedKey, &PodInfo)> {
        self.pods.get_key_value(key).map(|(k, p)| (k, &**p))
    }

    /// The shared key of a known pod.
    pub fn pod_key(&self, key: &ObjectKey) -> Option<&SharedKey> {
        self.pods.get_key_value(key).map(|(k, _)| k)
    }

    /// The namespaces that have pods, in order: one lookup per namespace, not per pod.
    pub fn pod_namespaces(&self) -> impl Iterator<Item = &str> {
        let mut next: Option<&str> = self.pods.keys().next().map(|k| k.0.as_str());
        std::iter::from_fn(move || {
            let ns = next?;
            // The first key after every `(ns, _)`: the namespace with a NUL appended sorts
            // right after `ns` and before any longer name.
            let after = (format!("{ns}\0"), String::new());
            next = self
                .pods
                .range::<ObjectKey, _>(after..)
                .next()
                .map(|(k, _)| k.0.as_str());
            Some(ns)
        })
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodInfo> {
        self.pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|p| &**p)
    }

    /// The pod under `key` (no key built: the hot path of selection).
    pub fn pod_at(&self, key: &ObjectKey) -> Option<&PodInfo> {
        self.pods.get(key).map(|p| &**p)
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.services.get(&(namespace.to_owned(), name.to_owned()))
    }

    pub fn services(&self) -> impl Iterator<Item = &ServiceInfo> {
        self.services.values()
    }

    pub fn endpoint_slice(&self, namespace: &str, name: &str) -> Option<&EndpointSliceInfo> {
        self.slices.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Ready endpoint addresses of a Service, over all its slices, sorted.
    pub fn ready_endpoints(&self, namespace: &str, service: &str) -> BTreeSet<IpAddr> {
        let Some(names) = self
            .slices_by_service
            .get(&(namespace.to_owned(), service.to_owned()))
        else {
            return BTreeSet::new();
        };
        names
            .iter()
            .filter_map(|n| self.slices.get(&(namespace.to_owned(), n.clone())))
            .flat_map(|s| s.ready.iter().copied())
            .collect()
    }

    pub fn namespace(&self, name: &str) -> Option<&NamespaceInfo> {
        self.namespaces.get(name)
    }

    pub fn namespaces(&self) -> impl Iterator<Item = &NamespaceInfo> {
        self.namespaces.values()
    }

    /// The owner (kind, name) of a ReplicaSet or Job, when that object is known.
    pub fn link_owner(
        &self,
        kind: LinkKind,
        namespace: &str,
        name: &str,
    ) -> Option<&(String, String)> {
        self.links
            .get(&(kind, namespace.to_owned(), name.to_owned()))
            .and_then(|l| l.owner.as_ref())
    }

    /// Whether a ReplicaSet / Job is known at all (its owner may still be none).
    pub fn has_link(&self, kind: LinkKind, namespace: &str, name: &str) -> bool {
        self.links
            .contains_key(&(kind, namespace.to_owned(), name.to_owned()))
    }
}

fn replace<K: Ord, V: PartialEq>(map: &mut BTreeMap<K, V>, key: K, v: V) -> bool {
    match map.get(&key) {
        Some(old) if *old == v => false,
        _ => {
            map.insert(key, v);
            true
        }
    }
}

impl From<PodInfo> for WorldObject {
    fn from(p: PodInfo) -> Self {
        WorldObject::Pod(Box::new(p))
    }
}
impl From<ServiceInfo> for WorldObject {
    fn from(s: ServiceInfo) -> Self {
        WorldObject::Service(s)
    }
}
impl From<EndpointSliceInfo> for WorldObject {
    fn from(s: EndpointSliceInfo) -> Self {
        WorldObject::EndpointSlice(s)
    }
}
impl From<NamespaceInfo> for WorldObject {
    fn from(n: NamespaceInfo) -> Self {
        WorldObject::Namespace(n)
    }
}

/// Kubernetes objects convert straight into what [`World::apply`] takes.
impl From<&k8s_openapi::api::core::v1::Pod> for WorldObject {
    fn from(p: &k8s_openapi::api::core::v1::Pod) -> Self {
        WorldObject::Pod(Box::new(p.into()))
    }
}
impl From<&k8s_openapi::api::core::v1::Service> for WorldObject {
    fn from(s: &k8s_openapi::api::core::v1::Service) -> Self {
        WorldObject::Service(s.into())
    }
}
impl From<&k8s_openapi::api::discovery::v1::EndpointSlice> for WorldObject {
    fn from(s: &k8s_openapi::api::discovery::v1::EndpointSlice) -> Self {
        WorldObject::EndpointSlice(s.into())
    }
}
impl From<&k8s_openapi::api::core::v1::Namespace> for WorldObject {
    fn from(n: &k8s_openapi::api::core::v1::Namespace) -> Self {
        WorldObject::Namespace(n.into())
    }
}
impl From<&k8s_openapi::api::apps::v1::ReplicaSet> for WorldObject {
    fn from(rs: &k8s_openapi::api::apps::v1::ReplicaSet) -> Self {
        WorldObject::Link(LinkKind::ReplicaSet, rs.into())
    }
}
impl From<&k8s_openapi::api::batch::v1::Job> for WorldObject {
    fn from(j: &k8s_openapi::api::batch::v1::Job) -> Self {
        WorldObject::Link(LinkKind::Job, j.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(name: &str, svc: &str, ips: &[&str]) -> EndpointSliceInfo {
        EndpointSliceInfo {
            namespace: "default".into(),
            name: name.into(),
            service: Some(svc.into()),
            ready: ips.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn apply_reports_changes_and_delete_forgets() {
        let mut w = World::new();
        let ns = NamespaceInfo {
            name: "a".into(),
            labels: BTreeMap::new(),
        };
        assert!(w.apply(ns.clone()));
        assert!(!w.apply(ns));
        assert!(w.delete(&WorldRef::Namespace("a".into())));
        assert!(!w.delete(&WorldRef::Namespace("a".into())));
    }

    #[test]
    fn kubernetes_objects_apply_directly() {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": "p", "uid": "u"}
        }))
        .unwrap();
        let mut w = World::new();
        assert!(w.apply(&pod));
        assert!(w.pod("default", "p").is_some());
        let rs = k8s_openapi::api::apps::v1::ReplicaSet::default();
        assert!(w.apply(&rs));
        assert!(w.has_link(LinkKind::ReplicaSet, "", ""));
        assert!(w.delete(&WorldRef::Pod(("default".into(), "p".into()))));
        assert_eq!(w.pod_count(), 0);
    }

    fn ns(name: &str) -> WorldObject {
        WorldObject::Namespace(NamespaceInfo {
            name: name.into(),
            labels: BTreeMap::new(),
        })
    }

    /// A relist of `kind` applied as the engine applies it.
    fn replace_kind(w: &mut World, kind: ObjectKind, objects: Vec<WorldObject>) -> bool {
        let mut r = Relisted::default();
        r.add(w, kind, objects);
        let mut changed = false;
        for stale in w.stale(kind, &r.listed) {
            changed |= w.delete(&stale);
        }
        for o in r.changed {
            changed |= w.apply(o);
        }
        changed
    }

    #[test]
    fn replace_kind_deletes_what_the_relist_lacks_and_nothing_else() {
        let mut w = World::new();
        w.apply(ns("a"));
        w.apply(ns("b"));
        w.apply(slice("db-1", "db", &["10.0.0.1"]));
        // The relist of namespaces holds b and c: a goes, c comes, slices are untouched.
        assert!(replace_kind(
            &mut w,
            ObjectKind::Namespace,
            vec![ns("b"), ns("c")]
        ));
        let names: Vec<&str> = w.namespaces().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(w.ready_endpoints("default", "db").len(), 1);
        // The same list again changes nothing; objects of another kind in it are ignored.
        assert!(!replace_kind(
            &mut w,
            ObjectKind::Namespace,
            vec![ns("b"), ns("c")]
        ));
        assert!(!replace_kind(&mut w, ObjectKind::Service, vec![ns("zzz")]));
        assert_eq!(w.namespaces().count(), 2);
        // An empty complete list empties that kind only.
        assert!(replace_kind(&mut w, ObjectKind::EndpointSlice, vec![]));
        assert!(w.ready_endpoints("default", "db").is_empty());
        assert_eq!(w.namespaces().count(), 2);
    }

    #[test]
    fn endpoint_index_follows_slice_updates_and_moves() {
        let mut w = World::new();
        w.apply(slice("db-1", "db", &["10.0.0.1"]));
        w.apply(slice("db-2", "db", &["10.0.0.2"]));
        assert_eq!(w.ready_endpoints("default", "db").len(), 2);
        // the slice changes service: the old service loses its addresses
        w.apply(slice("db-2", "other", &["10.0.0.2"]));
        assert_eq!(w.ready_endpoints("default", "db").len(), 1);
        assert_eq!(w.ready_endpoints("default", "other").len(), 1);
        w.delete(&WorldRef::EndpointSlice(("default".into(), "db-1".into())));
        assert!(w.ready_endpoints("default", "db").is_empty());
        assert!(w.ready_endpoints("elsewhere", "db").is_empty());
    }
}
