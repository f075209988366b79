//! The input files of `run --source file:` as last decoded, one file at a time.
//!
//! Owns: which files make the input (in load order), what each held when it was last read,
//! the merge of every file into one input (duplicates across files are found as a whole
//! load finds them: the first world object stays, a Route defined twice is used nowhere),
//! and turning a re-read into the updates that change the loop's inputs. A file is read
//! again only when it changed (size, times, inode) or an event named it; the others stay
//! decoded, in their compact form (world objects, Routes), never as YAML or JSON.
//!
//! Unreadable input keeps what it held (DESIGN.md, 4c): a file that cannot be read at all
//! (gone from a path given by name, over its limit, not UTF-8, not parseable) keeps the
//! objects of its last read; a file read with errors keeps, beside what it holds now, the
//! objects of its last read that it no longer shows (they may be in the document that
//! failed) until it reads without errors. Must not: watch (`files`), plan, or decide what
//! bad input means for NB rows (`keep`).
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::api::Route;
use crate::cluster::{LinkKind, World, WorldObject, WorldRef};
use crate::config::{ConfigError, Documents, FileLoad, Limits, Location};

use super::inputs::Update;

/// What identifies an object across files.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    World(WorldRef),
    Route(String),
    /// Kinds the world does not hold (Deployments, ...): only their duplicates matter.
    Other(String, String, String),
}

impl Key {
    fn of(kind: &str, ns: &str, name: &str) -> Key {
        let k = (ns.to_owned(), name.to_owned());
        match kind {
            "Pod" => Key::World(WorldRef::Pod(k)),
            "Service" => Key::World(WorldRef::Service(k)),
            "EndpointSlice" => Key::World(WorldRef::EndpointSlice(k)),
            "Namespace" => Key::World(WorldRef::Namespace(name.to_owned())),
            "ReplicaSet" => Key::World(WorldRef::Link(LinkKind::ReplicaSet, k)),
            "Job" => Key::World(WorldRef::Link(LinkKind::Job, k)),
            "Route" => Key::Route(name.to_owned()),
            other => Key::Other(other.to_owned(), ns.to_owned(), name.to_owned()),
        }
    }

    /// (kind, `namespace/name` or name) as a duplicate error names them.
    fn describe(&self) -> (String, String) {
        let nn = |(ns, n): &(String, String)| format!("{ns}/{n}");
        match self {
            Key::World(WorldRef::Pod(k)) => ("Pod".into(), nn(k)),
            Key::World(WorldRef::Service(k)) => ("Service".into(), nn(k)),
            Key::World(WorldRef::EndpointSlice(k)) => ("EndpointSlice".into(), nn(k)),
            Key::World(WorldRef::Namespace(n)) => ("Namespace".into(), n.clone()),
            Key::World(WorldRef::Link(LinkKind::ReplicaSet, k)) => ("ReplicaSet".into(), nn(k)),
            Key::World(WorldRef::Link(LinkKind::Job, k)) => ("Job".into(), nn(k)),
            Key::Route(n) => ("Route".into(), n.clone()),
            Key::Other(kind, ns, n) if ns.is_empty() => (kind.clone(), n.clone()),
            Key::Other(kind, ns, n) => (kind.clone(), format!("{ns}/{n}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Payload {
    World(Box<WorldObject>),
    Route(Box<Route>),
    /// A Route defined twice in the same file: used nowhere.
    AmbiguousRoute,
    Other,
}

#[derive(Clone, Debug)]
struct Entry {
    /// Where in its file (the file itself is left out: it is the map's key).
    at: Location,
    payload: Payload,
}

/// What identifies a file's content without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

#[derive(Debug, Default)]
struct FileState {
    /// The content last read (None: never read, or the last attempt failed).
    read: Option<Stamp>,
    /// Bytes of the last good read (counted towards `--max-input-bytes`).
    bytes: u64,
    entries: HashMap<Key, Entry>,
    /// Errors of the last attempt.
    errors: Vec<ConfigError>,
    /// The file read once without an error that may hide world objects: every object it
    /// may hold has been seen, and what it held stays while it cannot be read.
    known: bool,
}

/// The input as last decoded. See the module documentation.
#[derive(Debug, Default)]
pub struct Decoded {
    limits: Limits,
    files: HashMap<PathBuf, FileState>,
    /// Files in load order.
    order: Vec<PathBuf>,
    /// Input paths that could not be listed.
    path_errors: Vec<ConfigError>,
    /// Input paths listed at least once (a path that never was may hold anything).
    listed: HashSet<PathBuf>,
    /// Which files define each key.
    definers: HashMap<Key, Vec<PathBuf>>,
    /// Errors as last handed over (by their text), to hand over only changes.
    last_errors: Vec<String>,
    /// `world_unknown` as last handed over.
    last_unknown: bool,
    started: bool,
    /// Files read so far (a file that did not change is not read again).
    reads: u64,
}

/// One file's content as entries (the compact form the world and the planner take).
fn entries_of(load: FileLoad) -> (HashMap<Key, Entry>, Vec<ConfigError>) {
    let FileLoad {
        documents,
        errors,
        defined,
    } = load;
    let mut payloads: HashMap<Key, Payload> = HashMap::new();
    let Documents {
        routes,
        pods,
        services,
        namespaces,
        endpoint_slices,
        replica_sets,
        jobs,
        ..
    } = documents;
    let mut put = |o: WorldObject| {
        payloads.insert(Key::World(o.to_ref()), Payload::World(Box::new(o)));
    };
    namespaces.iter().for_each(|n| put(n.into()));
    pods.iter().for_each(|p| put(p.into()));
    services.iter().for_each(|s| put(s.into()));
    endpoint_slices.iter().for_each(|s| put(s.into()));
    replica_sets.iter().for_each(|r| put(r.into()));
    jobs.iter().for_each(|j| put(j.into()));
    for r in routes {
        let name = r.metadata.name.clone().unwrap_or_default();
        payloads.insert(Key::Route(name), Payload::Route(Box::new(r)));
    }
    let mut out = HashMap::with_capacity(defined.len());
    for ((kind, ns, name), mut at) in defined {
        let key = Key::of(&kind, &ns, &name);
        let payload = match payloads.remove(&key) {
            Some(p) => p,
            None if kind == "Route" => Payload::AmbiguousRoute,
            None => Payload::Other,
        };
        at.file = PathBuf::new();
        out.insert(key, Entry { at, payload });
    }
    (out, errors)
}

/// `at` in `file`.
fn located(file: &Path, at: &Location) -> Location {
    Location {
        file: file.to_path_buf(),
        ..at.clone()
    }
}

impl Decoded {
    pub fn new(limits: Limits) -> Decoded {
        Decoded {
            limits,
            ..Decoded::default()
        }
    }

    /// The files of every input path, in load order; paths that cannot be listed keep the
    /// files they had.
    fn list(&mut self, paths: &[PathBuf]) -> Vec<PathBuf> {
        self.path_errors.clear();
        let mut order = Vec::new();
        for p in paths {
            match crate::config::input_files(std::slice::from_ref(p)) {
                Ok(files) => {
                    self.listed.insert(p.clone());
                    order.extend(files);
                }
                Err(e) => {
                    tracing::error!(error = %e, "input path unreadable; what its files held stays");
                    self.path_errors.push(e);
                    order.extend(self.order.iter().filter(|f| f.starts_with(p)).cloned());
                }
            }
        }
        let mut seen = HashSet::new();
        order.retain(|f| seen.insert(f.clone()));
        order
    }

    /// Reads what changed (files whose stamp changed, that an event named, or whose last
    /// read failed) and returns the update that brings the loop's inputs to the new
    /// content: the whole input the first time, a batch of changes afterwards, or None when
    /// nothing changed.
    pub fn reload(&mut self, paths: &[PathBuf], named: &BTreeSet<PathBuf>) -> Option<Update> {
        let order = self.list(paths);
        let mut changed: Vec<(PathBuf, Option<FileState>)> = Vec::new();
        let mut total = 0u64;
        for file in &order {
            let now = stamp(file);
            let state = self.files.get(file);
            let fresh =
                state.is_some_and(|s| s.read.is_some() && s.read == now) && !named.contains(file);
            if fresh {
                total += state.map_or(0, |s| s.bytes);
                continue;
            }
            let next = self.read_one(file, now, total);
            self.reads += 1;
            if next.read.is_some() {
                tracing::debug!(file = %file.display(), bytes = next.bytes, "input file read");
                total += next.bytes;
            }
            changed.push((file.clone(), Some(next)));
        }
        let listed: HashSet<&PathBuf> = order.iter().collect();
        for gone in self.files.keys().filter(|f| !listed.contains(f)) {
            changed.push((gone.clone(), None));
        }
        let updates = self.merge(changed, order);
        let unknown = self.world_unknown(paths);
        self.handover(updates, unknown)
    }

    /// One file read again: its new state, keeping what it held where it could not be read.
    fn read_one(&self, file: &Path, now: Option<Stamp>, total: u64) -> FileState {
        let old = self.files.get(file);
        match crate::config::read_within(file, &self.limits, total) {
            Ok(bytes) => {
                let (mut entries, errors) = entries_of(crate::config::load_file(file, &bytes));
                for e in &errors {
                    tracing::error!(error = %e, "input rejected");
                }
                if !errors.is_empty()
                    && let Some(old) = old
                {
                    let mut kept = 0;
                    for (k, e) in &old.entries {
                        if !entries.contains_key(k) {
                            entries.insert(k.clone(), e.clone());
                            kept += 1;
                        }
                    }
                    if kept > 0 {
                        tracing::warn!(file = %file.display(), objects = kept,
                            "file read with errors; objects it no longer shows stay as last read");
                    }
                }
                let known =
                    !errors.iter().any(ConfigError::may_hide_world) || old.is_some_and(|o| o.known);
                FileState {
                    read: now,
                    bytes: bytes.len() as u64,
                    entries,
                    errors,
                    known,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "input file unreadable; what it held stays");
                FileState {
                    read: None,
                    bytes: old.map_or(0, |o| o.bytes),
                    entries: old.map(|o| o.entries.clone()).unwrap_or_default(),
                    known: old.is_some_and(|o| o.known) || !e.may_hide_world(),
                    errors: vec![e],
                }
            }
        }
    }

    fn rank(&self) -> HashMap<&PathBuf, usize> {
        self.order.iter().enumerate().map(|(i, f)| (f, i)).collect()
    }

    /// What a key stands for over every file: the first definer's world object; a Route
    /// only when defined once.
    fn winner(&self, key: &Key, rank: &HashMap<&PathBuf, usize>) -> Option<Payload> {
        let files = self.definers.get(key)?;
        let first = files
            .iter()
            .min_by_key(|f| rank.get(f).copied().unwrap_or(usize::MAX))?;
        let entry = self.files.get(first)?.entries.get(key)?;
        match (&entry.payload, key) {
            (Payload::Route(_), _) if files.len() > 1 => None,
            (Payload::AmbiguousRoute | Payload::Other, _) => None,
            (p, _) => Some(p.clone()),
        }
    }

    /// Replaces the states of `changed` files and the load order, and returns the changes of
    /// the merged input.
    fn merge(
        &mut self,
        changed: Vec<(PathBuf, Option<FileState>)>,
        order: Vec<PathBuf>,
    ) -> Vec<Update> {
        let rank_before: HashMap<PathBuf, usize> = self
            .rank()
            .into_iter()
            .map(|(f, i)| (f.clone(), i))
            .collect();
        let mut keys: HashSet<Key> = HashSet::new();
        for (file, next) in &changed {
            if let Some(old) = self.files.get(file) {
                keys.extend(old.entries.keys().cloned());
            }
            if let Some(n) = next {
                keys.extend(n.entries.keys().cloned());
            }
        }
        // Keys whose definers keep their content may still change winner when files move
        // in the load order.
        if order != self.order {
            keys.extend(
                self.definers
                    .iter()
                    .filter(|(_, f)| f.len() > 1)
                    .map(|(k, _)| k.clone()),
            );
        }
        let before: HashMap<Key, Option<Payload>> = {
            let rank = rank_before.iter().map(|(f, i)| (f, *i)).collect();
            keys.iter()
                .map(|k| (k.clone(), self.winner(k, &rank)))
                .collect()
        };
        self.order = order;
        for (file, next) in changed {
            if let Some(old) = self.files.remove(&file) {
                for k in old.entries.keys() {
                    if let Some(v) = self.definers.get_mut(k) {
                        v.retain(|f| *f != file);
                        if v.is_empty() {
                            self.definers.remove(k);
                        }
                    }
                }
            }
            if let Some(n) = next {
                for k in n.entries.keys() {
                    self.definers
                        .entry(k.clone())
                        .or_default()
                        .push(file.clone());
                }
                self.files.insert(file, n);
            }
        }
        let rank = self.rank();
        let mut updates = Vec::new();
        for (key, old) in before {
            let new = self.winner(&key, &rank);
            if new != old {
                updates.extend(change(&key, new));
            }
        }
        // Deletions first: a Route or object that moved is deleted and applied in one batch.
        updates.sort_by_key(|u| !matches!(u, Update::Delete(_) | Update::RouteDeleted(_)));
        updates
    }

    /// Files read since the start.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Whether some input may hold world objects never seen since the start: a file that
    /// never read without such an error, a path that could never be listed. Then which pods
    /// a Route selects is unknown (see `keep::hold_selection`).
    pub fn world_unknown(&self, paths: &[PathBuf]) -> bool {
        paths.iter().any(|p| !self.listed.contains(p))
            || self
                .order
                .iter()
                .any(|f| self.files.get(f).is_some_and(|s| !s.known))
    }

    /// Every error of the input: paths, files (in load order), duplicates across files.
    pub fn errors(&self) -> Vec<ConfigError> {
        let mut out: Vec<ConfigError> = self.path_errors.iter().map(ConfigError::copy).collect();
        for f in &self.order {
            if let Some(s) = self.files.get(f) {
                out.extend(s.errors.iter().map(ConfigError::copy));
            }
        }
        let rank = self.rank();
        let mut dups: Vec<(usize, ConfigError)> = Vec::new();
        for (key, files) in self.definers.iter().filter(|(_, f)| f.len() > 1) {
            let mut files: Vec<&PathBuf> = files.iter().collect();
            files.sort_by_key(|f| rank.get(f).copied().unwrap_or(usize::MAX));
            let at = |f: &PathBuf| {
                self.files
                    .get(f)
                    .and_then(|s| s.entries.get(key))
                    .map(|e| located(f, &e.at))
                    .unwrap_or_else(|| Location::file(f.clone()))
            };
            let first = at(files[0]);
            let (kind, name) = key.describe();
            for f in &files[1..] {
                dups.push((
                    rank.get(f).copied().unwrap_or(usize::MAX),
                    ConfigError::Duplicate {
                        at: at(f),
                        kind: kind.clone(),
                        name: name.clone(),
                        first: first.clone(),
                    },
                ));
            }
        }
        dups.sort_by_key(|(r, e)| (*r, e.to_string()));
        out.extend(dups.into_iter().map(|(_, e)| e));
        out
    }

    /// The update for the loop: everything the first time, then only what changed.
    fn handover(&mut self, updates: Vec<Update>, world_unknown: bool) -> Option<Update> {
        let errors = self.errors();
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let errors_changed = texts != self.last_errors || world_unknown != self.last_unknown;
        self.last_errors = texts;
        self.last_unknown = world_unknown;
        if !self.started {
            self.started = true;
            let whole = self.whole(self.errors());
            return Some(Update::Batch(vec![
                whole,
                Update::Errors {
                    errors,
                    world_unknown,
                },
            ]));
        }
        let mut batch = updates;
        if errors_changed {
            batch.push(Update::Errors {
                errors,
                world_unknown,
            });
        }
        (!batch.is_empty()).then_some(Update::Batch(batch))
    }

    /// The whole merged input (first read).
    fn whole(&self, errors: Vec<ConfigError>) -> Update {
        let rank = self.rank();
        let mut world = World::new();
        let mut routes: BTreeMap<String, Route> = BTreeMap::new();
        for key in self.definers.keys() {
            match self.winner(key, &rank) {
                Some(Payload::World(o)) => {
                    world.apply(*o);
                }
                Some(Payload::Route(r)) => {
                    routes.insert(r.metadata.name.clone().unwrap_or_default(), *r);
                }
                _ => {}
            }
        }
        Update::Replace {
            world,
            routes: routes.into_values().collect(),
            errors,
        }
    }
}

/// The update that makes `key` stand for `new` (None: nothing); None for kinds the loop
/// does not take.
fn change(key: &Key, new: Option<Payload>) -> Option<Update> {
    Some(match (key, new) {
        (_, Some(Payload::World(o))) => Update::Apply(*o),
        (_, Some(Payload::Route(r))) => Update::RouteApplied(r),
        (Key::Route(name), _) => Update::RouteDeleted(name.clone()),
        (Key::World(r), _) => Update::Delete(r.clone()),
        (Key::Other(..), _) => return None,
    })
}

#[cfg(test)]
#[path = "decoded_tests.rs"]
mod tests;
