//! What turns events into pod passes, and the safety net for what events cannot say.
//!
//! - [`Watching::start`] owns the [`Watcher`] thread and the [`NetnsIndex`], and spawns the
//!   dispatcher: it takes the watcher's events, waits [`DEBOUNCE`] so a burst (a link flap
//!   flushes hundreds of routes, a CNI ADD writes several files) becomes one pass per pod,
//!   then re-dumps exactly the pods concerned.
//! - [`spawn_recheck`]: the slow re-check. Every pod with a known netns is re-dumped once
//!   per [`super::ReconcilerConfig::recheck`] period, one small slice at a time spread over
//!   the period (never all pods at once). It repairs what no event announced and finds
//!   namespaces whose file vanished outside the watched directories. While pods wait for
//!   a netns that no watched directory will announce (the `/proc` fallback), the sources
//!   are rescanned every [`PENDING_RESCAN`].
//!
//! Must not: hold the index lock across an await; run a pass for a pod that is removed.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::debug;

use super::NetlinkError;
use super::discover::DiscoveryConfig;
use super::index::NetnsIndex;
use super::reconciler::{Inner, PodRouteReconciler, Slot};
use super::summary::{PassSummary, Trigger};
use super::watch::{Event, Watcher};

/// How long events are gathered before a pass: long enough to fold a burst, short next to
/// the 1 s repair bound.
pub const DEBOUNCE: Duration = Duration::from_millis(10);
/// While pods wait for a netns no watched directory announces, rescan this often.
pub const PENDING_RESCAN: Duration = Duration::from_secs(30);
/// The re-check never runs more often than this, however many pods there are.
const MIN_STEP: Duration = Duration::from_millis(200);
/// Attempts at a netns that appeared but cannot be entered yet (`ip netns add` creates the
/// file before it bind-mounts the namespace on it).
const ENTER_RETRIES: u8 = 6;

/// The event machinery of one reconciler.
pub struct Watching {
    watcher: Watcher,
    index: Mutex<NetnsIndex>,
    /// Our own way into the dispatcher (retries of namespaces not ready yet).
    retry: UnboundedSender<Event>,
}

impl Watching {
    /// Starts the watcher and scans the sources; the caller spawns [`dispatch`] with the
    /// receiver once this is stored (so no event finds the reconciler without it).
    pub(super) fn start(
        discovery: DiscoveryConfig,
    ) -> Result<(Self, UnboundedReceiver<Event>), NetlinkError> {
        let (tx, rx) = unbounded_channel();
        let dirs = vec![discovery.cni_cache.clone(), discovery.netns_dir.clone()];
        // The watches first, then the scan: a file appearing in between is seen twice,
        // never missed.
        let watcher = Watcher::start(dirs, tx.clone())?;
        let index = NetnsIndex::scan(discovery);
        debug!(pods = index.len(), "pod network namespaces discovered");
        let w = Watching {
            watcher,
            index: Mutex::new(index),
            retry: tx,
        };
        Ok((w, rx))
    }

    pub(super) fn watcher(&self) -> &Watcher {
        &self.watcher
    }

    pub(super) fn index(&self) -> MutexGuard<'_, NetnsIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn upgrade(weak: &Weak<Inner>) -> Option<PodRouteReconciler> {
    weak.upgrade().map(|inner| PodRouteReconciler { inner })
}

pub(super) async fn dispatch(weak: Weak<Inner>, mut rx: UnboundedReceiver<Event>) {
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(DEBOUNCE).await;
        let mut batch = vec![first];
        while let Ok(ev) = rx.try_recv() {
            batch.push(ev);
        }
        let Some(rec) = upgrade(&weak) else {
            return;
        };
        rec.handle(batch).await;
    }
}

impl PodRouteReconciler {
    fn watching(&self) -> Option<&Watching> {
        self.inner.watching.get()
    }

    /// Applies one batch of events: index updates first, then one pass per pod concerned.
    async fn handle(&self, batch: Vec<Event>) {
        let Some(w) = self.watching() else {
            return;
        };
        let mut changed: BTreeSet<String> = BTreeSet::new();
        let mut appeared: BTreeSet<String> = BTreeSet::new();
        let mut gone_paths: Vec<PathBuf> = Vec::new();
        let mut netlink = 0u64;
        {
            let mut index = w.index();
            for ev in batch {
                match ev {
                    Event::Netns(id) => {
                        if let Some((uid, slot)) = self.slot_of_id(id) {
                            netlink += 1;
                            // Set even while a pass holds the entry: that pass has dumped
                            // already, so one more pass follows.
                            slot.dirty.store(true, std::sync::atomic::Ordering::Release);
                            changed.insert(uid);
                        }
                    }
                    Event::FileUp(path) => appeared.extend(index.file_up(&path)),
                    Event::FileGone(path) => {
                        index.file_gone(&path);
                        gone_paths.push(path);
                    }
                    Event::Rescan => appeared.extend(index.rescan()),
                    Event::Retry(uid) => {
                        appeared.insert(uid);
                    }
                    Event::Overflow => {
                        for slot in self.slots() {
                            slot.dirty.store(true, std::sync::atomic::Ordering::Release);
                            changed.insert(slot.key.uid.clone());
                        }
                    }
                }
            }
        }
        self.inner
            .stats
            .netlink_events
            .fetch_add(netlink, std::sync::atomic::Ordering::Relaxed);
        if !gone_paths.is_empty() {
            self.netns_gone(&gone_paths).await;
        }
        // Pods whose netns appeared or moved: adopt the index's path.
        let mut moved = Vec::new();
        for uid in appeared {
            let Some(slot) = self.slot_of_uid(&uid) else {
                continue;
            };
            let now = w.index().get(&uid).map(Path::to_path_buf);
            let mut e = slot.entry.lock().await;
            if e.removed || now.is_none() || (e.netns == now && e.ok) {
                continue;
            }
            e.netns = now;
            e.ok = false;
            e.known = None;
            slot.publish(&e);
            drop(e);
            changed.remove(&uid);
            moved.push(slot);
        }
        self.run(Trigger::Appeared, moved).await;
        let dirty: Vec<Arc<Slot>> = changed
            .iter()
            .filter_map(|uid| self.slot_of_uid(uid))
            .collect();
        self.run(Trigger::Event, dirty).await;
    }

    /// Pods whose netns file is gone: close the watch (it would keep the namespace alive)
    /// and wait for a new netns.
    async fn netns_gone(&self, paths: &[PathBuf]) {
        for slot in self.slots() {
            let mut e = slot.entry.lock().await;
            let Some(netns) = e.netns.clone() else {
                continue;
            };
            if paths.contains(&netns) && !netns.exists() {
                debug!(pod = %slot.key, netns = %netns.display(), "pod netns removed");
                self.unwatch(&slot, &mut e);
                e.netns = None;
                e.ok = false;
                slot.publish(&e);
            }
        }
    }

    /// Passes for `slots` in parallel, summarized as one pass.
    pub(super) async fn run(&self, trigger: Trigger, slots: Vec<Arc<Slot>>) {
        if slots.is_empty() {
            return;
        }
        let start = Instant::now();
        let mut s = PassSummary::new(trigger);
        let results = join_all(slots.iter().map(|slot| self.pass(slot, trigger))).await;
        for (slot, res) in slots.iter().zip(results) {
            let Some((pod, r)) = res else {
                continue;
            };
            if trigger == Trigger::Appeared
                && let Some(NetlinkError::EnterNetns { .. }) = &r.fatal
            {
                self.retry_enter(slot, &pod.uid).await;
            }
            s.add(&pod, &r);
        }
        s.elapsed = start.elapsed();
        self.inner.stats.record(&s);
        s.log();
    }

    /// A netns that appeared but cannot be entered yet: try again a little later.
    async fn retry_enter(&self, slot: &Slot, uid: &str) {
        let Some(w) = self.watching() else {
            return;
        };
        let mut e = slot.entry.lock().await;
        if e.enter_retries >= ENTER_RETRIES {
            return;
        }
        e.enter_retries += 1;
        let delay = Duration::from_millis(20 << e.enter_retries);
        let (tx, uid) = (w.retry.clone(), uid.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Event::Retry(uid));
        });
    }
}

/// Spawns the safety-net re-check (see the module doc).
pub(super) fn spawn_recheck(rec: &PodRouteReconciler) {
    let weak = Arc::downgrade(&rec.inner);
    tokio::spawn(async move {
        let mut last_rescan = Instant::now();
        loop {
            let Some(rec) = upgrade(&weak) else {
                return;
            };
            let period = rec.inner.recheck;
            let mut uids: Vec<String> = rec.uids();
            uids.sort();
            drop(rec);
            let n = uids.len();
            let (step, per_step) = if period.is_zero() || n == 0 {
                (PENDING_RESCAN, 0)
            } else {
                let step = (period / n as u32).max(MIN_STEP);
                let per = (n as f64 * step.as_secs_f64() / period.as_secs_f64()).ceil() as usize;
                (step, per.max(1))
            };
            let mut done = 0;
            loop {
                tokio::time::sleep(step).await;
                let Some(rec) = upgrade(&weak) else {
                    return;
                };
                if last_rescan.elapsed() >= PENDING_RESCAN && rec.stats().pending_pods > 0 {
                    last_rescan = Instant::now();
                    rec.rescan_for_pending().await;
                }
                if per_step == 0 || done >= n {
                    break;
                }
                let slice: Vec<Arc<Slot>> = uids[done..(done + per_step).min(n)]
                    .iter()
                    .filter_map(|u| rec.slot_of_uid(u))
                    .collect();
                done += per_step;
                rec.run(Trigger::Recheck, slice).await;
            }
            if let Some(rec) = upgrade(&weak)
                && let Some(w) = rec.watching()
            {
                // Directories missing at start (no pod yet) are watched once they exist.
                let cfg = w.index().config().clone();
                w.watcher().watch_dir(cfg.cni_cache);
                w.watcher().watch_dir(cfg.netns_dir);
            }
        }
    });
}

impl PodRouteReconciler {
    /// A full rescan of the netns sources, for pods still waiting for theirs.
    async fn rescan_for_pending(&self) {
        let Some(w) = self.watching() else {
            return;
        };
        let changed = w.index().rescan();
        for uid in changed {
            let _ = w.retry.send(Event::Retry(uid));
        }
    }
}
