//! File mode's source: the world and the Routes described by files, re-read when they change.
//! The Kubernetes source (`crate::k8s`) feeds the same [`Update`]s from watches.
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::api::Route;
use crate::cluster::World;
use crate::config::{ConfigError, Documents, load_paths};

use super::inputs::Update;

/// The world the documents describe, and their Routes in file order.
pub fn world_from(docs: &Documents) -> (World, Vec<Route>) {
    let mut world = World::new();
    for ns in &docs.namespaces {
        world.apply(ns);
    }
    for pod in &docs.pods {
        world.apply(pod);
    }
    for svc in &docs.services {
        world.apply(svc);
    }
    for es in &docs.endpoint_slices {
        world.apply(es);
    }
    for rs in &docs.replica_sets {
        world.apply(rs);
    }
    for job in &docs.jobs {
        world.apply(job);
    }
    (world, docs.routes.clone())
}

/// Size and modification time of every input file: a cheap change detector.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut out = Vec::new();
    for p in paths {
        let entries: Vec<PathBuf> = if p.is_dir() {
            std::fs::read_dir(p)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default()
        } else {
            vec![p.clone()]
        };
        for e in entries {
            let meta = std::fs::metadata(&e).ok();
            out.push((
                e,
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            ));
        }
    }
    out.sort();
    out
}

/// Reads every input: the whole world and the Routes, with what could not be loaded.
pub fn read(paths: &[PathBuf]) -> Update {
    let (docs, errors): (Documents, Vec<ConfigError>) = match load_paths(paths) {
        Ok(l) => (l.documents, l.errors),
        Err(e) => (Documents::default(), vec![e]),
    };
    for e in &errors {
        tracing::error!(error = %e, "input rejected");
    }
    let (world, routes) = world_from(&docs);
    Update::Replace {
        world,
        routes,
        errors,
    }
}

/// Reads the inputs now and again whenever they change (checked every second by size and
/// modification time), sending each complete read as one [`Update::Replace`]. Reads run on
/// the blocking pool so the loop never waits on a file.
pub fn spawn_files(paths: Vec<PathBuf>, tx: mpsc::Sender<Update>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<Fingerprint> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let p = paths.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&p)).await else {
                return;
            };
            if last.as_ref() == Some(&now) {
                continue;
            }
            if last.is_some() {
                tracing::info!("input files changed; replanning");
            }
            last = Some(now);
            let p = paths.clone();
            let Ok(update) = tokio::task::spawn_blocking(move || read(&p)).await else {
                return;
            };
            // Files describe the whole world: every read is complete.
            let closed = tx.send(update).await.is_err()
                || tx
                    .send(Update::Synced { cluster_pods: true })
                    .await
                    .is_err();
            if closed {
                return;
            }
        }
    })
}
