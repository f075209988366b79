//! [`PodRouteReconciler`]: the async API the controller calls. It remembers each pod's
//! desired routes and netns, programs them through the [`NetnsPool`], and — once
//! [`PodRouteReconciler::start_watching`] was called — keeps them true from events
//! ([`super::events`]): a pod is re-dumped only when a netlink notification inside its netns
//! says something changed, when its netns appears, when its planned routes change, or when
//! the slow safety-net re-check reaches it.
//!
//! Calls for one pod are serialized (a per-pod lock), calls for different pods run in
//! parallel up to the pool's bound. Every result is per pod: one pod's failure never
//! reaches another.
//!
//! Must not: enter a netns itself (only through the pool); reprogram a pod after
//! [`PodRouteReconciler::remove`]; keep a watch socket (and with it the namespace) open
//! once the pod is removed or its netns file is gone.
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tracing::debug;

use super::discover::DiscoveryConfig;
use super::events::Watching;
use super::pool::NetnsPool;
use super::program::{PodReport, reconcile_pod};
use super::programmed::Programmed;
use super::state::StateDir;
use super::summary::{PassSummary, Stats, StatsSnapshot, Trigger, log_pod};
use super::watch::OwnPorts;
use super::{DEFAULT_RECHECK, NetlinkError, ROUTE_PROTOCOL};
use crate::plan::pod::{PodKey, PodRoutes};

/// Settings of the pod side.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// Routing protocol number stamped on our routes (default [`ROUTE_PROTOCOL`]).
    pub protocol: u8,
    /// Directory of default-route state files (default `/var/lib/ovnkube-route/pods`).
    pub state_dir: PathBuf,
    /// Netns worker threads: pods programmed or read at once (default 2).
    pub threads: usize,
    /// Safety-net re-check: every watched pod is re-dumped once per this period, one pod
    /// at a time spread over the period (default [`DEFAULT_RECHECK`]; zero turns it off).
    pub recheck: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            protocol: ROUTE_PROTOCOL,
            state_dir: PathBuf::from("/var/lib/ovnkube-route/pods"),
            threads: 2,
            recheck: DEFAULT_RECHECK,
        }
    }
}

/// A plan pass that programs at least this many pods gives the heap it freed back to the
/// kernel ([`crate::heap`]): a cold start, or an edit of a Route over many pods.
const GIVE_BACK_AFTER: usize = 64;

pub(super) struct Entry {
    /// None: the pod's netns is not known (yet, or any more).
    pub(super) netns: Option<PathBuf>,
    pub(super) desired: Arc<PodRoutes>,
    pub(super) removed: bool,
    /// The last pass succeeded; with the slot not dirty the table is known to match.
    pub(super) ok: bool,
    /// The netns the watch socket is open in.
    watched: Option<PathBuf>,
    /// The pod's last failure, so a repeat of the same failure is not logged again.
    last_error: Option<String>,
    /// Attempts to enter a netns that appeared but could not be entered yet.
    pub(super) enter_retries: u8,
    /// The table as our last clean pass in the watched netns left it (see
    /// [`super::programmed`]); None when not known.
    pub(super) known: Option<Programmed>,
}

/// One pod: its lock-free flags beside the entry behind its own lock.
pub(super) struct Slot {
    pub(super) key: PodKey,
    /// Watch id (unique for the reconciler's life).
    pub(super) id: u64,
    /// Set by events (possibly while a pass holds the entry); cleared when a pass starts.
    pub(super) dirty: AtomicBool,
    /// Mirrors of the entry for [`PodRouteReconciler::stats`] (readable without its lock):
    /// a watch socket is open; routes are planned but the netns is unknown.
    watched: AtomicBool,
    pending: AtomicBool,
    own: Arc<OwnPorts>,
    pub(super) entry: tokio::sync::Mutex<Entry>,
}

pub(super) struct Inner {
    pool: NetnsPool,
    state: StateDir,
    protocol: u8,
    pub(super) recheck: Duration,
    /// Pod uid -> slot.
    pods: Mutex<HashMap<String, Arc<Slot>>>,
    /// Watch id -> pod uid.
    ids: Mutex<HashMap<u64, String>>,
    next_id: AtomicU64,
    pub(super) watching: OnceLock<Watching>,
    pub(super) stats: Stats,
}

/// Keeps the kernel routes of this node's pods equal to the planner's [`PodRoutes`].
#[derive(Clone)]
pub struct PodRouteReconciler {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for PodRouteReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodRouteReconciler")
            .field("protocol", &self.inner.protocol)
            .field("state_dir", &self.inner.state.path())
            .field("pool", &self.inner.pool)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned map only means a panic elsewhere while holding it; the map is still
    // consistent (every mutation is a single insert/remove).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slot {
    /// Updates the lock-free mirrors from the entry; call after changing it.
    pub(super) fn publish(&self, e: &Entry) {
        self.watched.store(e.watched.is_some(), Ordering::Release);
        let pending = !e.removed && e.netns.is_none() && !e.desired.is_empty();
        self.pending.store(pending, Ordering::Release);
    }
}

impl PodRouteReconciler {
    /// Starts the worker pool and opens (creates) the state directory.
    pub fn new(config: ReconcilerConfig) -> Result<Self, NetlinkError> {
        let state = StateDir::open(&config.state_dir)?;
        let pool = NetnsPool::new(config.threads, 1)?;
        Ok(PodRouteReconciler {
            inner: Arc::new(Inner {
                pool,
                state,
                protocol: config.protocol,
                recheck: config.recheck,
                pods: Mutex::new(HashMap::new()),
                ids: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                watching: OnceLock::new(),
                stats: Stats::default(),
            }),
        })
    }

    /// Starts keeping routes true from events: a netlink watch socket in every programmed
    /// pod's netns, inotify on the CNI cache and netns directories (a pod whose netns
    /// appears gets its routes at once), and the spread safety-net re-check. Needs a tokio
    /// runtime; a second call does nothing.
    pub fn start_watching(&self, discovery: DiscoveryConfig) -> Result<(), NetlinkError> {
        if self.inner.watching.get().is_some() {
            return Ok(());
        }
        let (w, events) = Watching::start(discovery)?;
        self.inner.pool.echo_to(w.watcher().port());
        if self.inner.watching.set(w).is_ok() {
            tokio::spawn(super::events::dispatch(Arc::downgrade(&self.inner), events));
            super::events::spawn_recheck(self);
        }
        Ok(())
    }

    /// The protocol number on our routes.
    pub fn protocol(&self) -> u8 {
        self.inner.protocol
    }

    /// Counters since start, plus how many pods are watched / wait for their netns now.
    pub fn stats(&self) -> StatsSnapshot {
        let (mut watched, mut pending) = (0, 0);
        for slot in self.slots() {
            watched += usize::from(slot.watched.load(Ordering::Acquire));
            pending += usize::from(slot.pending.load(Ordering::Acquire));
        }
        self.inner.stats.snapshot(watched, pending)
    }

    pub(super) fn slots(&self) -> Vec<Arc<Slot>> {
        lock(&self.inner.pods).values().cloned().collect()
    }

    pub(super) fn slot_of_uid(&self, uid: &str) -> Option<Arc<Slot>> {
        lock(&self.inner.pods).get(uid).cloned()
    }

    /// The pod watched under `id`: its uid and slot.
    pub(super) fn slot_of_id(&self, id: u64) -> Option<(String, Arc<Slot>)> {
        let uid = lock(&self.inner.ids).get(&id).cloned()?;
        let slot = self.slot_of_uid(&uid)?;
        Some((uid, slot))
    }

    /// Uids of all known pods.
    pub(super) fn uids(&self) -> Vec<String> {
        lock(&self.inner.pods).keys().cloned().collect()
    }

    /// The pod's slot, created (with nothing desired, not programmed) if new.
    fn slot(&self, pod: &PodKey) -> Arc<Slot> {
        let mut pods = lock(&self.inner.pods);
        if let Some(s) = pods.get(&pod.uid) {
            return s.clone();
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            key: pod.clone(),
            id,
            dirty: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            own: Arc::new(OwnPorts::default()),
            entry: tokio::sync::Mutex::new(Entry {
                netns: None,
                desired: Arc::new(PodRoutes::default()),
                removed: false,
                ok: false,
                watched: None,
                last_error: None,
                enter_retries: 0,
                known: None,
            }),
        });
        pods.insert(pod.uid.clone(), slot.clone());
        lock(&self.inner.ids).insert(id, pod.uid.clone());
        slot
    }

    /// Pods currently known (set and not removed).
    pub fn known_pods(&self) -> Vec<PodKey> {
        let mut out: Vec<PodKey> = self.slots().iter().map(|s| s.key.clone()).collect();
        out.sort();
        out
    }

    /// The pod's netns as the watched index knows it (None when not watching).
    pub(super) fn lookup(&self, uid: &str) -> Option<PathBuf> {
        let w = self.inner.watching.get()?;
        w.index().get(uid).map(Path::to_path_buf)
    }

    /// Remembers and programs one pod's desired routes now, in `netns`.
    pub async fn set_desired(
        &self,
        pod: PodKey,
        netns: PathBuf,
        routes: impl Into<Arc<PodRoutes>>,
    ) -> PodReport {
        let slot = self.slot(&pod);
        {
            let mut e = slot.entry.lock().await;
            if e.netns.as_ref() != Some(&netns) {
                e.known = None;
            }
            e.netns = Some(netns);
            e.desired = routes.into();
            e.removed = false;
            slot.publish(&e);
        }
        self.pass(&slot, Trigger::Plan)
            .await
            .map(|(_, r)| r)
            .unwrap_or_default()
    }

    /// [`Self::set_desired`] for many pods at once, in parallel (bounded by the pool).
    pub async fn set_desired_many<R: Into<Arc<PodRoutes>>>(
        &self,
        pods: Vec<(PodKey, PathBuf, R)>,
    ) -> Vec<(PodKey, PodReport)> {
        let start = Instant::now();
        let out = join_all(pods.into_iter().map(|(pod, netns, routes)| async move {
            let key = pod.clone();
            (key, self.set_desired(pod, netns, routes).await)
        }))
        .await;
        let mut s = PassSummary::new(Trigger::Plan);
        for (k, r) in &out {
            s.add(k, r);
        }
        s.elapsed = start.elapsed();
        self.inner.stats.record(&s);
        s.log();
        out
    }

    /// The plan pass: sets every listed pod's desired routes and programs only the pods
    /// whose routes changed, whose last pass failed, or that an event marked since. The
    /// netns comes from the watched index ([`Self::start_watching`]); pods whose netns is
    /// not known yet wait for it and are programmed when it appears.
    pub async fn sync(&self, pods: Vec<(PodKey, Arc<PodRoutes>)>) -> PassSummary {
        let start = Instant::now();
        let mut s = PassSummary::new(Trigger::Plan);
        let mut todo = Vec::new();
        for (key, routes) in pods {
            let slot = self.slot(&key);
            let mut e = slot.entry.lock().await;
            let same = Arc::ptr_eq(&e.desired, &routes) || *e.desired == *routes;
            // Adopt the caller's copy even when equal: one copy of each pod's routes.
            e.desired = routes;
            e.removed = false;
            if e.netns.is_none() {
                e.netns = self.lookup(&key.uid);
            }
            slot.publish(&e);
            if e.netns.is_none() {
                if !e.desired.is_empty() {
                    s.pending.push(key);
                }
                continue;
            }
            if same && e.ok && !slot.dirty.load(Ordering::Acquire) {
                s.untouched += 1;
                continue;
            }
            drop(e);
            todo.push(slot);
        }
        for (pod, r) in join_all(todo.iter().map(|slot| self.pass(slot, Trigger::Plan)))
            .await
            .into_iter()
            .flatten()
        {
            s.add(&pod, &r);
        }
        s.elapsed = start.elapsed();
        self.inner.stats.record(&s);
        s.log();
        if todo.len() >= GIVE_BACK_AFTER {
            crate::heap::give_back_free();
        }
        s
    }

    /// One pass over one pod (nothing for a removed pod or one without a netns): opens
    /// the watch socket first (so no change between the dump and the watch is missed),
    /// then dumps, diffs and writes.
    pub(super) async fn pass(&self, slot: &Slot, trigger: Trigger) -> Option<(PodKey, PodReport)> {
        let mut e = slot.entry.lock().await;
        if e.removed {
            return None;
        }
        let netns = e.netns.clone()?;
        // An event since the last pass: what we knew of the table may be wrong.
        let marked = slot.dirty.swap(false, Ordering::AcqRel);
        self.ensure_watch(slot, &mut e).await;
        let watched = e.watched.as_ref() == Some(&netns);
        let known = e.known.take().filter(|_| watched && !marked);
        let (report, known) = self
            .program(&slot.key, &netns, &e.desired, Some(slot.own.clone()), known)
            .await;
        // Kept only while every change in the pod reaches us.
        e.known = known.filter(|_| watched);
        if let Some(NetlinkError::NetnsGone(_)) = &report.fatal {
            debug!(pod = %slot.key, netns = %netns.display(), "pod netns gone; waiting for a new one");
            self.unwatch(slot, &mut e);
            e.netns = None;
        }
        e.ok = report.is_ok();
        slot.publish(&e);
        log_pod(&slot.key, &report, trigger, &mut e.last_error);
        Some((slot.key.clone(), report))
    }

    /// Opens (or moves, or closes) the pod's watch socket to match its netns and routes:
    /// only pods with routes planned are watched.
    async fn ensure_watch(&self, slot: &Slot, e: &mut Entry) {
        let Some(w) = self.inner.watching.get() else {
            return;
        };
        let want = e.netns.clone().filter(|_| !e.desired.is_empty());
        if e.watched == want {
            return;
        }
        e.known = None;
        if e.watched.take().is_some() {
            w.watcher().unwatch(slot.id);
        }
        if let Some(netns) = want {
            match w
                .watcher()
                .watch(slot.id, netns.clone(), slot.own.clone())
                .await
            {
                Ok(()) => e.watched = Some(netns),
                // Gone already: the pass reports it. Anything else (out of descriptors)
                // leaves the pod to the re-check, which is worth a warning.
                Err(err @ NetlinkError::NetnsGone(_)) => {
                    debug!(pod = %slot.key, error = %err, "cannot watch pod netns")
                }
                Err(err) => {
                    tracing::warn!(pod = %slot.key, error = %err, "cannot watch pod netns; only the re-check keeps its routes true")
                }
            }
        }
    }

    pub(super) fn unwatch(&self, slot: &Slot, e: &mut Entry) {
        e.known = None;
        if e.watched.take().is_some()
            && let Some(w) = self.inner.watching.get()
        {
            w.watcher().unwatch(slot.id);
        }
    }

    /// Forgets a pod: deletes exactly our routes and restores recorded default routes.
    /// If the pod's netns is already gone there is nothing to restore and its state file
    /// is removed.
    pub async fn remove(&self, pod: &PodKey) -> PodReport {
        let slot = lock(&self.inner.pods).remove(&pod.uid);
        let netns = match &slot {
            Some(slot) => {
                lock(&self.inner.ids).remove(&slot.id);
                let mut e = slot.entry.lock().await;
                e.removed = true;
                self.unwatch(slot, &mut e);
                slot.publish(&e);
                e.netns.clone()
            }
            None => None,
        };
        let netns = match netns {
            Some(n) => Some(n),
            None => match self.inner.state.load_uid(&pod.uid) {
                Ok(s) => s.and_then(|s| s.netns),
                Err(e) => return PodReport::fatal(e),
            },
        };
        let Some(netns) = netns else {
            return match self.inner.state.remove(&pod.uid) {
                Ok(()) => PodReport::default(),
                Err(e) => PodReport::fatal(e),
            };
        };
        let (report, _) = self
            .program(pod, &netns, &Arc::new(PodRoutes::default()), None, None)
            .await;
        log_pod(pod, &report, Trigger::Plan, &mut None);
        match report.fatal {
            Some(NetlinkError::NetnsGone(_)) => match self.inner.state.remove(&pod.uid) {
                Ok(()) => PodReport::default(),
                Err(e) => PodReport::fatal(e),
            },
            _ => report,
        }
    }

    /// Removes the state of pods not in `live_uids` (pods that vanished while we were
    /// not watching, e.g. across a restart). Pods whose netns still exists get their
    /// default routes restored first. Returns how many were cleaned.
    pub async fn prune_state(&self, live_uids: &HashSet<String>) -> Result<usize, NetlinkError> {
        let mut cleaned = 0;
        for uid in self.inner.state.uids()? {
            if live_uids.contains(&uid) || self.slot_of_uid(&uid).is_some() {
                continue;
            }
            let pod = match self.inner.state.load_uid(&uid) {
                Ok(Some(s)) => PodKey {
                    namespace: s.namespace,
                    name: s.name,
                    uid: uid.clone(),
                },
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(uid, error = %e, "unreadable pod state file kept");
                    continue;
                }
            };
            if self.remove(&pod).await.is_ok() {
                cleaned += 1;
            }
        }
        Ok(cleaned)
    }

    /// Re-checks every known pod once, now; returns the reports of pods where something
    /// was changed or failed.
    pub async fn resync_all(&self) -> Vec<(PodKey, PodReport)> {
        let start = Instant::now();
        let slots = self.slots();
        let reports = join_all(slots.iter().map(|s| self.pass(s, Trigger::Recheck))).await;
        let mut s = PassSummary::new(Trigger::Recheck);
        let mut out = Vec::new();
        for (pod, r) in reports.into_iter().flatten() {
            s.add(&pod, &r);
            if r.changes() > 0 || !r.is_ok() {
                out.push((pod, r));
            }
        }
        s.elapsed = start.elapsed();
        self.inner.stats.record(&s);
        s.log();
        out
    }

    async fn program(
        &self,
        pod: &PodKey,
        netns: &Path,
        desired: &Arc<PodRoutes>,
        own: Option<Arc<OwnPorts>>,
        known: Option<Programmed>,
    ) -> (PodReport, Option<Programmed>) {
        let (pod, desired, state) = (pod.clone(), desired.clone(), self.inner.state.clone());
        let (protocol, ns) = (self.inner.protocol, netns.to_path_buf());
        let run = self.inner.pool.run_blocking(netns, move |sock| {
            if let Some(own) = own {
                own.record(sock.port());
            }
            reconcile_pod(sock, &pod, &ns, &desired, &state, protocol, known)
        });
        run.await.unwrap_or_else(|e| (PodReport::fatal(e), None))
    }
}
