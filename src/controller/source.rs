//! File mode's source: the world and the Routes described by files, re-read when they change.
//! The Kubernetes source (`crate::k8s`) feeds the same [`Update`]s from watches.
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::api::Route;
use crate::cluster::World;
use crate::config::{ConfigError, Documents, Limits, load_paths_with};

use super::files::FileSource;
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

/// Reads every input: the whole world and the Routes, with what could not be loaded.
pub fn read(paths: &[PathBuf], limits: &Limits) -> Update {
    let (docs, errors): (Documents, Vec<ConfigError>) = match load_paths_with(paths, limits) {
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

/// Reads the inputs now and again whenever they change (`files::FileSource`: inotify,
/// regular files only, bounded, only the files that changed), sending the whole input once
/// and then each change as one update. Reads run on the blocking pool so the loop never
/// waits on a file.
pub fn spawn_files(
    paths: Vec<PathBuf>,
    limits: Limits,
    tx: mpsc::Sender<Update>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut source = FileSource::watch(paths, limits);
        let mut first = true;
        loop {
            if !first {
                source.changed().await;
            }
            let Ok(update) = source.load().await else {
                return;
            };
            let Some(update) = update else { continue };
            if !first {
                tracing::info!("input files changed; replanning");
            }
            // Files describe the whole world: the first read is complete.
            let closed = tx.send(update).await.is_err()
                || (first
                    && tx
                        .send(Update::Synced { cluster_pods: true })
                        .await
                        .is_err());
            if closed {
                return;
            }
            first = false;
        }
    })
}
