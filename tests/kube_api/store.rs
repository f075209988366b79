//! Object storage with the API server's bookkeeping: one global resourceVersion counter, a
//! bounded history of watch events (older ones are compacted, as etcd compacts), uid,
//! creationTimestamp, generation, finalizers and deletionTimestamp.
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::errors::ApiError;
use super::types::ResourceType;

pub type Obj = Value;
/// `(group, plural)`.
pub type TypeKey = (String, String);
/// `(namespace, name)`; namespace is empty for cluster-scoped objects.
pub type ObjKey = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub ty: TypeKey,
    pub kind: EventKind,
    /// The object before (for MODIFIED and DELETED), to tell filtered watchers that an object
    /// left or entered their selection.
    pub old: Option<Arc<Obj>>,
    /// The object after (for DELETED: the last state, with the deletion's resourceVersion).
    pub new: Arc<Obj>,
}

pub struct Db {
    pub rv: u64,
    pub types: BTreeMap<TypeKey, ResourceType>,
    pub objects: BTreeMap<TypeKey, BTreeMap<ObjKey, Arc<Obj>>>,
    pub history: VecDeque<Arc<Change>>,
    /// Events with `rv <= compacted` are gone: a watch or list from before it gets 410 Gone.
    pub compacted: u64,
    pub history_limit: usize,
    pub tx: broadcast::Sender<Arc<Change>>,
    /// Custom resources are validated against their CRD (off: objects stored as they come,
    /// like those written before a CRD had its rules).
    pub validation: bool,
}

impl Db {
    /// A copy to run a `dryRun=All` request on: the same objects and types, its own (empty)
    /// history and event channel, so nothing it does is stored or seen by a watch.
    pub fn scratch(&self) -> Db {
        let (tx, _) = broadcast::channel(16);
        Db {
            rv: self.rv,
            types: self.types.clone(),
            objects: self.objects.clone(),
            history: VecDeque::new(),
            compacted: self.rv,
            history_limit: self.history_limit,
            tx,
            validation: self.validation,
        }
    }
}

pub fn now_rfc3339() -> String {
    // Seconds precision, as metav1.Time serializes.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn meta(o: &Obj) -> &Value {
    o.get("metadata").unwrap_or(&Value::Null)
}

pub fn meta_str<'a>(o: &'a Obj, field: &str) -> Option<&'a str> {
    meta(o).get(field).and_then(Value::as_str)
}

fn meta_mut(o: &mut Obj) -> &mut serde_json::Map<String, Value> {
    if !o.get("metadata").is_some_and(Value::is_object) {
        o["metadata"] = json!({});
    }
    o["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// Everything but `metadata` and `status`: what bumps `generation` when it changes.
fn spec_part(o: &Obj) -> Value {
    let mut v = o.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

impl Db {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Db {
            rv: 1,
            types: BTreeMap::new(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 0,
            history_limit: 20_000,
            tx,
            validation: true,
        }
    }

    pub fn ty(&self, key: &TypeKey) -> Option<&ResourceType> {
        self.types.get(key)
    }

    pub fn get(&self, ty: &TypeKey, key: &ObjKey) -> Option<Arc<Obj>> {
        self.objects.get(ty).and_then(|m| m.get(key)).cloned()
    }

    /// Records a change: new resourceVersion, history, watchers.
    fn commit(
        &mut self,
        ty: &TypeKey,
        key: ObjKey,
        kind: EventKind,
        old: Option<Arc<Obj>>,
        mut new: Obj,
    ) -> Arc<Obj> {
        self.rv += 1;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let new = Arc::new(new);
        let objects = self.objects.entry(ty.clone()).or_default();
        if kind == EventKind::Deleted {
            objects.remove(&key);
        } else {
            objects.insert(key, new.clone());
        }
        let change = Arc::new(Change {
            rv: self.rv,
            ty: ty.clone(),
            kind,
            old,
            new: new.clone(),
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
        let _ = self.tx.send(change);
        new
    }

    /// Forgets every event so far (as an etcd compaction would).
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    pub fn create(
        &mut self,
        t: &ResourceType,
        ns: &str,
        mut obj: Obj,
    ) -> Result<Arc<Obj>, ApiError> {
        let ty = t.key();
        let name = match meta_str(&obj, "name").filter(|n| !n.is_empty()) {
            Some(n) => n.to_owned(),
            None => match meta_str(&obj, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => format!(
                    "{prefix}{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..5]
                ),
                None => {
                    return Err(ApiError::invalid(
                        &t.kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        if let Some(e) = super::types::check_name(&t.kind, &name) {
            return Err(e);
        }
        let key = (
            if t.namespaced {
                ns.to_owned()
            } else {
                String::new()
            },
            name.clone(),
        );
        if self.get(&ty, &key).is_some() {
            return Err(ApiError::already_exists(t, &name));
        }
        if t.namespaced {
            let ns_key: TypeKey = (String::new(), "namespaces".into());
            if !ns.is_empty()
                && self.types.contains_key(&ns_key)
                && self.get(&ns_key, &(String::new(), ns.to_owned())).is_none()
                && t.plural != "events"
            {
                return Err(ApiError::not_found_ns(ns));
            }
        }
        obj["apiVersion"] = json!(t.api_version());
        obj["kind"] = json!(t.kind);
        let m = meta_mut(&mut obj);
        m.insert("name".into(), json!(name));
        if t.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.insert("generation".into(), json!(1));
        m.remove("deletionTimestamp");
        m.remove("resourceVersion");
        if t.status_subresource
            && let Some(o) = obj.as_object_mut()
        {
            // Status is the status subresource's: ignored on create.
            o.remove("status");
        }
        Ok(self.commit(&ty, key, EventKind::Added, None, obj))
    }

    /// Replaces an object. `new` has been through the type's update rules already
    /// (subresource handling); this bumps generation, keeps identity fields and handles
    /// finalizers of an object being deleted.
    pub fn replace(
        &mut self,
        t: &ResourceType,
        key: &ObjKey,
        mut new: Obj,
    ) -> Result<Arc<Obj>, ApiError> {
        let ty = t.key();
        let Some(old) = self.get(&ty, key) else {
            return Err(ApiError::not_found(t, &key.1));
        };
        new["apiVersion"] = json!(t.api_version());
        new["kind"] = json!(t.kind);
        let old_meta = meta(&old).clone();
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let bump = spec_part(&old) != spec_part(&new);
        let m = meta_mut(&mut new);
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
        ] {
            match old_meta.get(f) {
                Some(v) => m.insert(f.into(), v.clone()),
                None => m.remove(f),
            };
        }
        m.insert(
            "generation".into(),
            json!(if bump { generation + 1 } else { generation }),
        );
        if *old == new_with_rv(&new, &old) {
            // No-op updates do not bump the resourceVersion or notify watchers.
            return Ok(old);
        }
        let finished = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty());
        if finished {
            return Ok(self.commit(&ty, key.clone(), EventKind::Deleted, Some(old), new));
        }
        Ok(self.commit(&ty, key.clone(), EventKind::Modified, Some(old), new))
    }

    /// Deletes an object, or marks it for deletion while finalizers remain.
    pub fn delete(&mut self, t: &ResourceType, key: &ObjKey) -> Result<Arc<Obj>, ApiError> {
        let ty = t.key();
        let Some(old) = self.get(&ty, key) else {
            return Err(ApiError::not_found(t, &key.1));
        };
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let mut new = (*old).clone();
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(old);
            }
            meta_mut(&mut new).insert("deletionTimestamp".into(), json!(now_rfc3339()));
            return Ok(self.commit(&ty, key.clone(), EventKind::Modified, Some(old), new));
        }
        Ok(self.commit(&ty, key.clone(), EventKind::Deleted, Some(old), new))
    }

    /// The objects of one type as they were at resourceVersion `rv` (undoing later events),
    /// or 410 Gone when that is older than the kept history.
    pub fn snapshot_at(
        &self,
        ty: &TypeKey,
        rv: u64,
    ) -> Result<BTreeMap<ObjKey, Arc<Obj>>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::gone(rv, self.compacted));
        }
        if rv > self.rv {
            return Err(ApiError::too_large_rv(rv));
        }
        let mut m = self.objects.get(ty).cloned().unwrap_or_default();
        for c in self.history.iter().rev().take_while(|c| c.rv > rv) {
            if &c.ty != ty {
                continue;
            }
            let key = obj_key(&c.new);
            match (c.kind, &c.old) {
                (EventKind::Added, _) => {
                    m.remove(&key);
                }
                (_, Some(old)) => {
                    m.insert(key, old.clone());
                }
                (_, None) => {}
            }
        }
        Ok(m)
    }
}

/// `new` with `old`'s resourceVersion, to compare contents.
fn new_with_rv(new: &Obj, old: &Obj) -> Obj {
    let mut n = new.clone();
    if let Some(rv) = old.pointer("/metadata/resourceVersion") {
        meta_mut(&mut n).insert("resourceVersion".into(), rv.clone());
    } else {
        meta_mut(&mut n).remove("resourceVersion");
    }
    n
}

pub fn obj_key(o: &Obj) -> ObjKey {
    (
        meta_str(o, "namespace").unwrap_or_default().to_owned(),
        meta_str(o, "name").unwrap_or_default().to_owned(),
    )
}
