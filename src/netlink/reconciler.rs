//! [`PodRouteReconciler`]: the async API the controller calls. It remembers each pod's
//! desired routes and netns, programs them through the [`NetnsPool`], and re-checks
//! every known pod periodically ([`PodRouteReconciler::spawn_resync`]) so routes removed
//! by someone else, or flushed by a link going down and up, come back within one
//! resync period (see the module doc of [`super`] for why a periodic resync).
//!
//! Calls for one pod are serialized (a per-pod lock), calls for different pods run in
//! parallel up to the pool's bound. Every result is per pod: one pod's failure never
//! reaches another.
//!
//! Must not: enter a netns itself (only through the pool); reprogram a pod after
//! [`PodRouteReconciler::remove`].
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::pool::NetnsPool;
use super::program::{PodReport, reconcile_pod};
use super::state::StateDir;
use super::{DEFAULT_RESYNC, NetlinkError, ROUTE_PROTOCOL};
use crate::plan::pod::{PodKey, PodRoutes};

/// Settings of the pod side.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// Routing protocol number stamped on our routes (default [`ROUTE_PROTOCOL`]).
    pub protocol: u8,
    /// Directory of default-route state files (default `/var/lib/ovnkube-route/pods`).
    pub state_dir: PathBuf,
    /// Netns worker threads (default 4).
    pub threads: usize,
    /// Pods in flight per worker thread (default 32).
    pub inflight_per_thread: usize,
    /// Resync period (default [`DEFAULT_RESYNC`], keep it under 10 s).
    pub resync: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            protocol: ROUTE_PROTOCOL,
            state_dir: PathBuf::from("/var/lib/ovnkube-route/pods"),
            threads: 4,
            inflight_per_thread: 32,
            resync: DEFAULT_RESYNC,
        }
    }
}

struct Entry {
    pod: PodKey,
    netns: PathBuf,
    desired: PodRoutes,
    removed: bool,
}

/// Pod uid -> (key, the pod's entry behind its own lock).
type PodMap = HashMap<String, (PodKey, Arc<tokio::sync::Mutex<Entry>>)>;

struct Inner {
    pool: NetnsPool,
    state: StateDir,
    protocol: u8,
    resync: Duration,
    pods: Mutex<PodMap>,
}

/// Keeps the kernel routes of this node's pods equal to the planner's [`PodRoutes`].
#[derive(Clone)]
pub struct PodRouteReconciler {
    inner: Arc<Inner>,
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

impl PodRouteReconciler {
    /// Starts the worker pool and opens (creates) the state directory.
    pub fn new(config: ReconcilerConfig) -> Result<Self, NetlinkError> {
        let state = StateDir::open(&config.state_dir)?;
        let pool = NetnsPool::new(config.threads, config.inflight_per_thread)?;
        Ok(PodRouteReconciler {
            inner: Arc::new(Inner {
                pool,
                state,
                protocol: config.protocol,
                resync: config.resync,
                pods: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The protocol number on our routes.
    pub fn protocol(&self) -> u8 {
        self.inner.protocol
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, PodMap> {
        // A poisoned map only means a panic elsewhere while holding it; the map is still
        // consistent (every mutation is a single insert/remove).
        self.inner.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pods currently known (set and not removed).
    pub fn known_pods(&self) -> Vec<PodKey> {
        let mut out: Vec<PodKey> = self.pods().values().map(|(k, _)| k.clone()).collect();
        out.sort();
        out
    }

    /// Remembers and programs one pod's desired routes now.
    pub async fn set_desired(&self, pod: PodKey, netns: PathBuf, routes: PodRoutes) -> PodReport {
        let entry = {
            let mut pods = self.pods();
            let slot = pods.entry(pod.uid.clone()).or_insert_with(|| {
                let entry = Entry {
                    pod: pod.clone(),
                    netns: netns.clone(),
                    desired: PodRoutes::default(),
                    removed: false,
                };
                (pod.clone(), Arc::new(tokio::sync::Mutex::new(entry)))
            });
            slot.0 = pod.clone();
            slot.1.clone()
        };
        let mut e = entry.lock().await;
        e.pod = pod;
        e.netns = netns;
        e.desired = routes;
        e.removed = false;
        let report = self.program(&e.pod, &e.netns, &e.desired).await;
        log_report(&e.pod, &report, "set");
        report
    }

    /// [`Self::set_desired`] for many pods at once, in parallel (bounded by the pool).
    pub async fn set_desired_many(
        &self,
        pods: Vec<(PodKey, PathBuf, PodRoutes)>,
    ) -> Vec<(PodKey, PodReport)> {
        let n = pods.len();
        let out = join_all(pods.into_iter().map(|(pod, netns, routes)| async move {
            let key = pod.clone();
            (key, self.set_desired(pod, netns, routes).await)
        }))
        .await;
        let failed = out.iter().filter(|(_, r)| !r.is_ok()).count();
        let changes: usize = out.iter().map(|(_, r)| r.changes()).sum();
        info!(pods = n, failed, changes, "programmed pod routes");
        out
    }

    /// Forgets a pod: deletes exactly our routes and restores recorded default routes.
    /// If the pod's netns is already gone there is nothing to restore and its state file
    /// is removed.
    pub async fn remove(&self, pod: &PodKey) -> PodReport {
        let entry = self.pods().remove(&pod.uid).map(|(_, e)| e);
        let netns = match &entry {
            Some(entry) => {
                let mut e = entry.lock().await;
                e.removed = true;
                Some(e.netns.clone())
            }
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
        let report = self.program(pod, &netns, &PodRoutes::default()).await;
        log_report(pod, &report, "remove");
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
            if live_uids.contains(&uid) || self.pods().contains_key(&uid) {
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
                    warn!(uid, error = %e, "unreadable pod state file kept");
                    continue;
                }
            };
            if self.remove(&pod).await.is_ok() {
                cleaned += 1;
            }
        }
        Ok(cleaned)
    }

    /// Re-checks every known pod once; returns the reports of pods where something was
    /// changed or failed.
    pub async fn resync_all(&self) -> Vec<(PodKey, PodReport)> {
        let entries: Vec<_> = self.pods().values().map(|(_, e)| e.clone()).collect();
        let reports = join_all(entries.into_iter().map(|entry| async move {
            let e = entry.lock().await;
            if e.removed {
                return None;
            }
            let report = self.program(&e.pod, &e.netns, &e.desired).await;
            (report.changes() > 0 || !report.is_ok()).then(|| (e.pod.clone(), report))
        }))
        .await;
        let out: Vec<_> = reports.into_iter().flatten().collect();
        for (pod, report) in &out {
            log_report(pod, report, "resync");
        }
        out
    }

    /// Runs [`Self::resync_all`] every resync period until the handle is aborted.
    pub fn spawn_resync(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.inner.resync);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let fixed = this.resync_all().await;
                debug!(pods_changed = fixed.len(), "pod route resync done");
            }
        })
    }

    async fn program(&self, pod: &PodKey, netns: &Path, desired: &PodRoutes) -> PodReport {
        let (pod, desired, state) = (pod.clone(), desired.clone(), self.inner.state.clone());
        let (protocol, ns) = (self.inner.protocol, netns.to_path_buf());
        let run = self.inner.pool.run(netns, move |handle| async move {
            reconcile_pod(handle, pod, &ns, &desired, &state, protocol).await
        });
        run.await.unwrap_or_else(PodReport::fatal)
    }
}

fn log_report(pod: &PodKey, r: &PodReport, what: &str) {
    if let Some(e @ NetlinkError::NetnsGone(_)) = &r.fatal {
        // Normal while a pod is being deleted; the controller's remove() follows.
        debug!(pod = %pod, uid = %pod.uid, what, error = %e, "pod netns gone");
        return;
    }
    if let Some(e) = &r.fatal {
        warn!(pod = %pod, uid = %pod.uid, what, error = %e, "pod routes not reconciled");
        return;
    }
    for e in &r.errors {
        warn!(pod = %pod, what, error = %e, "pod route failed");
    }
    if r.changes() > 0 {
        info!(pod = %pod, what, added = r.added, replaced = r.replaced, deleted = r.deleted,
            restored = r.restored, skipped = r.skipped, failed = r.failed, "pod routes changed");
    } else {
        debug!(pod = %pod, what, unchanged = r.unchanged, skipped = r.skipped, "pod routes in sync");
    }
}
