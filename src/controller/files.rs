//! The file source of `run --source file:PATH[,PATH...]`: when the input changed, which
//! files an event named, and what the input says now.
//!
//! Owns watching (inotify through `notify`) and loading off the async workers.
//! `source::spawn_files` only awaits [`FileSource::changed`] and calls [`FileSource::load`],
//! and the run loop only receives the resulting updates, so no input can stall it:
//! - the loader reads regular files only, bounded (`config::Limits`): a FIFO, a symlink to
//!   `/dev/zero`, a huge file are skipped and reported by name;
//! - loading runs on a blocking thread, and reads only the files that changed
//!   (`decoded::Decoded` keeps the others decoded);
//! - each input path's parent directory is watched besides the path, so an editor's
//!   rename-replace, a file or a directory that appears, disappears or comes back are all
//!   seen (watches are re-added whenever a watched path reappears);
//! - a write that is complete (a file closed after writing, renamed into place, removed) is
//!   loaded at once ([`QUICK`]); a write still going on is waited for, at most [`SETTLE`]
//!   after its last event; a slow check of sizes and times ([`FALLBACK_POLL`]) covers
//!   filesystems without inotify (NFS, some FUSE mounts).
//!
//! Must not plan or reconcile, nor decide what bad input means (that is `decoded`,
//! `inputs::LastGood` and `keep`).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::Notify;

use crate::config::Limits;

use super::decoded::Decoded;
use super::inputs::Update;

/// A write still going on (no close or rename seen yet) is loaded at most this long after
/// its last event (an editor writing in place makes several events).
pub const SETTLE: Duration = Duration::from_millis(50);
/// Events of one complete write (a rename's two sides, a file and its directory) arrive
/// within this.
pub const QUICK: Duration = Duration::from_millis(2);
/// The safety net for filesystems whose changes inotify does not report.
pub const FALLBACK_POLL: Duration = Duration::from_secs(30);

/// Paths named by events since the last load, each with whether its last event ended a
/// write (closed after writing, renamed, removed).
type Named = Arc<Mutex<BTreeMap<PathBuf, bool>>>;

/// Watches and loads the input paths of `run`.
pub struct FileSource {
    paths: Vec<PathBuf>,
    changed: Arc<Notify>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: Arc<Mutex<BTreeSet<PathBuf>>>,
    named: Named,
    fingerprint: Vec<(PathBuf, u64, Option<SystemTime>)>,
    poll: tokio::time::Interval,
    /// A change was seen and not yet reported.
    pending: bool,
    /// What the files held when last read (moved to the loading thread and back).
    decoded: Option<Decoded>,
    limits: Limits,
}

/// The paths an input path needs watched: itself and its parent directory.
fn watch_targets(paths: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for p in paths {
        out.insert(p.clone());
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => out.insert(parent.to_path_buf()),
            _ => out.insert(PathBuf::from(".")),
        };
    }
    out
}

/// Whether an event about `changed` may concern the input: an input path itself, a direct
/// child of one (a file in an input directory), or an ancestor (a directory renamed away).
fn concerns(paths: &[PathBuf], changed: &Path) -> bool {
    paths
        .iter()
        .any(|p| p == changed || changed.parent() == Some(p.as_path()) || p.starts_with(changed))
}

/// Adds a watch for each target that exists and is not watched yet; returns how many
/// are watched. A target that cannot be watched now (missing) is retried on the next event.
fn rewatch(
    watcher: &mut notify::RecommendedWatcher,
    targets: &BTreeSet<PathBuf>,
    watched: &Mutex<BTreeSet<PathBuf>>,
) -> usize {
    let mut w = watched
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A path that is gone lost its watch with it (inotify IN_IGNORED).
    w.retain(|p| std::fs::symlink_metadata(p).is_ok());
    for t in targets {
        if w.contains(t) {
            continue;
        }
        // Only directories get a watch of their own: a watch on a file follows the inode,
        // which an editor's rename-replace leaves behind (the parent's watch sees it).
        if std::fs::metadata(t).is_ok_and(|m| m.is_dir())
            && watcher.watch(t, RecursiveMode::NonRecursive).is_ok()
        {
            w.insert(t.clone());
        }
    }
    w.len()
}

/// Size and modification time of every input file, without opening any.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let files = crate::config::input_files(paths).unwrap_or_else(|_| paths.to_vec());
    let mut out: Vec<_> = files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = meta.and_then(|m| m.modified().ok());
            (f, len, modified)
        })
        .collect();
    out.sort();
    out
}

/// Whether an event can mean new content, and whether it ends a write. Reads (ours
/// included) and opens are not changes.
fn event_meaning(kind: &EventKind) -> Option<bool> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(true),
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => Some(true),
        _ => Some(false),
    }
}

impl FileSource {
    /// Starts watching `paths`. A path that does not exist yet is fine: it is picked up
    /// when it appears. Without inotify (watch limit reached, unsupported filesystem) the
    /// source falls back to [`FALLBACK_POLL`] and says so.
    pub fn watch(paths: Vec<PathBuf>, limits: Limits) -> FileSource {
        let changed = Arc::new(Notify::new());
        let watched = Arc::new(Mutex::new(BTreeSet::new()));
        let named: Named = Arc::default();
        let targets = watch_targets(&paths);
        let notify_changed = changed.clone();
        let event_paths = paths.clone();
        let event_named = named.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let relevant = match &res {
                Ok(ev) => match event_meaning(&ev.kind) {
                    None => false,
                    Some(done) => {
                        let mine: Vec<&PathBuf> = ev
                            .paths
                            .iter()
                            .filter(|p| concerns(&event_paths, p))
                            .collect();
                        let mut n = event_named.lock().unwrap_or_else(PoisonError::into_inner);
                        for p in &mine {
                            n.insert((*p).clone(), done);
                        }
                        ev.paths.is_empty() || !mine.is_empty()
                    }
                },
                // Overflow or a watch error: something may have changed; reload.
                Err(_) => true,
            };
            if relevant {
                notify_changed.notify_one();
            }
        });
        let watcher = match watcher {
            Ok(mut w) => {
                let n = rewatch(&mut w, &targets, &watched);
                tracing::info!(watches = n, "watching input files (inotify)");
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, every_secs = FALLBACK_POLL.as_secs(),
                    "inotify unavailable; checking input files periodically");
                None
            }
        };
        let mut poll = tokio::time::interval(FALLBACK_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        FileSource {
            fingerprint: fingerprint(&paths),
            paths,
            changed,
            watcher,
            watched,
            named,
            poll,
            pending: false,
            decoded: Some(Decoded::new(limits)),
            limits,
        }
    }

    /// Whether every path named since the last load ended its write.
    fn writes_done(&self) -> bool {
        self.named
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .all(|done| *done)
    }

    /// Waits until the input may have changed: at once for a complete write, else until the
    /// write ends or [`SETTLE`] passes without events.
    ///
    /// Cancel-safe (it is one branch of the run loop's `select!`): a change seen before the
    /// future is dropped is kept in `pending` and reported by the next call.
    pub async fn changed(&mut self) {
        while !self.pending {
            let notify = self.changed.clone();
            let woke = tokio::select! {
                () = notify.notified() => true,
                _ = self.poll.tick() => {
                    let now = fingerprint(&self.paths);
                    let differs = now != self.fingerprint;
                    self.fingerprint = now;
                    differs
                }
            };
            self.pending = woke;
        }
        tokio::time::sleep(QUICK).await;
        while !self.writes_done() {
            // More events within SETTLE extend the wait; a close or rename ends it.
            if tokio::time::timeout(SETTLE, self.changed.notified())
                .await
                .is_err()
            {
                break;
            }
        }
        if let Some(w) = self.watcher.as_mut() {
            rewatch(w, &watch_targets(&self.paths), &self.watched);
        }
        self.fingerprint = fingerprint(&self.paths);
        self.pending = false;
    }

    /// Reads what changed, on a blocking thread: the whole input the first time, then the
    /// changes (None when nothing changed). `Err` when the runtime is shutting down.
    pub async fn load(&mut self) -> Result<Option<Update>, tokio::task::JoinError> {
        let paths = self.paths.clone();
        let named: BTreeSet<PathBuf> =
            std::mem::take(&mut *self.named.lock().unwrap_or_else(PoisonError::into_inner))
                .into_keys()
                .collect();
        // Only a load that panicked loses it: start again from nothing (a whole read).
        let limits = self.limits;
        let mut decoded = self.decoded.take().unwrap_or_else(|| Decoded::new(limits));
        let (decoded, update) = tokio::task::spawn_blocking(move || {
            let u = decoded.reload(&paths, &named);
            (decoded, u)
        })
        .await?;
        self.decoded = Some(decoded);
        Ok(update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::inputs::Inputs;

    #[test]
    fn events_concern_input_paths_their_children_and_ancestors() {
        let paths = vec![PathBuf::from("/in/routes"), PathBuf::from("/in/world.yaml")];
        assert!(concerns(&paths, Path::new("/in/routes/a.yaml")));
        assert!(concerns(&paths, Path::new("/in/world.yaml")));
        assert!(concerns(&paths, Path::new("/in/routes")));
        assert!(concerns(&paths, Path::new("/in")));
        assert!(!concerns(&paths, Path::new("/in/other.yaml")));
        assert!(!concerns(&paths, Path::new("/in/routes/sub/a.yaml")));
        let t = watch_targets(&paths);
        assert!(t.contains(Path::new("/in")) && t.contains(Path::new("/in/routes")));
    }

    /// (Routes, errors) of the input after a load, as the loop sees them.
    async fn counts(src: &mut FileSource, inputs: &mut Inputs) -> (usize, usize) {
        let u = src.load().await.expect("not shutting down");
        inputs.apply_all(u);
        (inputs.routes().len(), inputs.errors.len())
    }

    async fn wait(src: &mut FileSource) {
        tokio::time::timeout(Duration::from_secs(5), src.changed())
            .await
            .expect("a change was seen");
    }

    #[tokio::test]
    async fn rename_replace_fifo_and_a_directory_coming_back_are_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let routes = dir.path().join("routes");
        let mut src = FileSource::watch(vec![routes.clone()], Limits::default());
        let mut inputs = Inputs::default();
        // The directory appears (only its parent is watched so far).
        std::fs::create_dir(&routes).expect("mkdir");
        wait(&mut src).await;
        // An editor's rename-replace.
        let tmp = dir.path().join(".a.yaml.swp");
        std::fs::write(&tmp, "[{route: 172.16.0.0/16, dev: eth1}]").expect("write");
        std::fs::rename(&tmp, routes.join("a.yaml")).expect("rename");
        wait(&mut src).await;
        assert_eq!(counts(&mut src, &mut inputs).await, (1, 0));
        // A FIFO: seen, skipped by name, never opened for a blocking read.
        nix::unistd::mkfifo(&routes.join("p.yaml"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        wait(&mut src).await;
        let input = tokio::time::timeout(Duration::from_secs(5), counts(&mut src, &mut inputs))
            .await
            .expect("loading with a FIFO returns");
        assert_eq!(input, (1, 1));
        // The directory goes away and comes back: watched again.
        std::fs::remove_dir_all(&routes).expect("rm");
        wait(&mut src).await;
        std::fs::create_dir(&routes).expect("mkdir");
        wait(&mut src).await;
        std::fs::write(routes.join("b.yaml"), "[{route: 172.17.0.0/16, dev: eth1}]")
            .expect("write");
        wait(&mut src).await;
        assert_eq!(counts(&mut src, &mut inputs).await, (1, 0));
    }
}
