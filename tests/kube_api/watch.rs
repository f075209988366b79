//! Watches: a stream of `{"type": ..., "object": ...}` lines from a resourceVersion.
//!
//! - No resourceVersion (or "0"): synthetic ADDED events for what exists, then changes.
//! - resourceVersion N: every change after N (replayed from the history), then live ones; an
//!   N older than the kept history gets an ERROR event with a 410 Expired Status.
//! - `sendInitialEvents=true`: the current objects, then a BOOKMARK annotated
//!   `k8s.io/initial-events-end`, then changes (streaming lists).
//! - Selectors: an object that stops matching is sent as DELETED, one that starts matching
//!   as ADDED, as the API server's filtered watches do.
//! - `allowWatchBookmarks`: BOOKMARK events with the current resourceVersion, periodically.
//! - `timeoutSeconds`: the server ends the watch.
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Shared;
use super::errors::ApiError;
use super::handlers::select;
use super::http::{Format, Query, Target, error_response, q};
use super::select::{FieldSelector, LabelSelector};
use super::store::{Change, EventKind, Obj};
use super::table::partial_object;

struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
    namespace: Option<String>,
    namespaced: bool,
    name: Option<String>,
}

impl Filter {
    fn matches(&self, o: &Obj) -> bool {
        let ns = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = o
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        (!self.namespaced || self.namespace.as_deref().is_none_or(|n| n == ns))
            && self.name.as_deref().is_none_or(|n| n == name)
            && self.labels.matches(o)
            && self.fields.matches(o)
    }

    /// What a filtered watcher sees of a change.
    fn event(&self, c: &Change) -> Option<(&'static str, Arc<Obj>)> {
        let now = self.matches(&c.new);
        let before = c.old.as_ref().is_some_and(|o| self.matches(o));
        match c.kind {
            EventKind::Added if now => Some(("ADDED", c.new.clone())),
            EventKind::Modified if now && before => Some(("MODIFIED", c.new.clone())),
            EventKind::Modified if now => Some(("ADDED", c.new.clone())),
            EventKind::Modified if before => Some(("DELETED", c.new.clone())),
            EventKind::Deleted if before || now => Some(("DELETED", c.new.clone())),
            _ => None,
        }
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn render(o: &Obj, fmt: Format) -> Value {
    match fmt {
        Format::Metadata => partial_object(o),
        _ => o.clone(),
    }
}

pub fn watch(shared: &Arc<Shared>, t: &Target, query: &Query, fmt: Format) -> Response<Body> {
    let filter = match (
        LabelSelector::parse(q(query, "labelSelector").unwrap_or_default()),
        FieldSelector::parse(q(query, "fieldSelector").unwrap_or_default(), &t.ty),
    ) {
        (Ok(labels), Ok(fields)) => Filter {
            labels,
            fields,
            namespace: t.namespace.clone(),
            namespaced: t.ty.namespaced,
            name: t.name.clone(),
        },
        (Err(e), _) | (_, Err(e)) => return error_response(&e),
    };
    let rv_param = q(query, "resourceVersion")
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let initial_events = q(query, "sendInitialEvents") == Some("true");
    let bookmarks = q(query, "allowWatchBookmarks").is_some_and(|b| b == "true" || b == "1");
    let timeout = q(query, "timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    // The start: what to send first and the live feed, taken under one lock so that no
    // change falls between them.
    let (first, sub, start_rv): (Vec<Bytes>, broadcast::Receiver<Arc<Change>>, u64) = {
        let db = shared.db.lock().expect("db lock");
        let sub = db.tx.subscribe();
        let ty = t.ty.key();
        match rv_param.as_deref() {
            Some(r) if r != "0" && !initial_events => {
                let rv: u64 = match r.parse() {
                    Ok(v) => v,
                    Err(_) => {
                        return error_response(&ApiError::bad_request("invalid resourceVersion"));
                    }
                };
                if rv < db.compacted {
                    // 200 with an ERROR event, as the API server answers a watch from a
                    // compacted resourceVersion.
                    let st = ApiError::gone(rv, db.compacted).status();
                    let body = Body::from(line("ERROR", &st));
                    return Response::builder()
                        .header("Content-Type", "application/json")
                        .body(body)
                        .expect("static response parts are valid");
                }
                let replay = db
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && c.ty == ty)
                    .filter_map(|c| filter.event(c))
                    .map(|(k, o)| line(k, &render(&o, fmt)))
                    .collect();
                (replay, sub, db.rv)
            }
            _ => {
                // The current objects: the selection without paging or a resourceVersion.
                let current_query: Query = query
                    .iter()
                    .filter(|(k, _)| k == "labelSelector" || k == "fieldSelector")
                    .cloned()
                    .collect();
                let current = match select(&db, t, &current_query) {
                    Ok((items, _, _)) => items,
                    Err(e) => return error_response(&e),
                };
                let mut first: Vec<Bytes> = current
                    .iter()
                    .filter(|o| filter.matches(o))
                    .map(|o| line("ADDED", &render(o, fmt)))
                    .collect();
                if initial_events {
                    first.push(line(
                        "BOOKMARK",
                        &json!({"kind": t.ty.kind, "apiVersion": t.ty.api_version(), "metadata": {"resourceVersion": db.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}}),
                    ));
                }
                (first, sub, db.rv)
            }
        }
    };
    let shared2 = shared.clone();
    let ty = t.ty.clone();
    let mut kill = shared.kill_watches.subscribe();
    tokio::spawn(async move {
        let mut sub = sub;
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let mut last_rv = start_rv;
        let every = *shared2.bookmark_every.lock().expect("lock");
        let mut bookmark = tokio::time::interval(every);
        bookmark.tick().await;
        let deadline = async {
            match timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let mut deadline = std::pin::pin!(deadline);
        loop {
            tokio::select! {
                c = sub.recv() => match c {
                    Ok(c) => {
                        last_rv = c.rv;
                        if c.ty != ty.key() {
                            continue;
                        }
                        if let Some((k, o)) = filter.event(&c)
                            && tx.send(line(k, &render(&o, fmt))).await.is_err()
                        {
                            return;
                        }
                    }
                    // A watcher too slow to keep up is dropped; it re-watches from its last
                    // resourceVersion (or relists on 410), as with the real server.
                    Err(_) => return,
                },
                _ = bookmark.tick(), if bookmarks => {
                    let b = line("BOOKMARK", &json!({"kind": ty.kind, "apiVersion": ty.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}}));
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = kill.changed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Response::builder()
        .header("Content-Type", "application/json")
        .body(Body::from_stream(stream))
        .expect("static response parts are valid")
}
