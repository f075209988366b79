//! The Kubernetes source: one watch per resource, each event turned into an [`Update`] for
//! the loop, as it happens.
//!
//! Watched, and why (memory: objects are converted to the world's compact form at once; no
//! full object is kept):
//! - Routes: full objects, cluster-wide. Status and bookkeeping fields are dropped before the
//!   loop sees them, so a status write is not a change to plan.
//! - Pods: IPs, annotations, nodeName, phase and conditions, decoded as [`PodFields`] (the
//!   containers, volumes and container statuses are skipped while decoding); this node's
//!   only (field selector `spec.nodeName`), or every pod while this instance writes
//!   cluster-wide NB rows.
//! - Services: full (ClusterIPs). EndpointSlices: headless Services' only (label selector
//!   `service.kubernetes.io/headless`).
//! - Namespaces, ReplicaSets, Jobs: metadata only (labels and owner references suffice:
//!   Deployment, DaemonSet, StatefulSet and CronJob targets are resolved through the owner
//!   references of pods, ReplicaSets and Jobs, so those objects are never read).
//!
//! A relist (first list, watch expired with 410 Gone, API server restarted) replaces its kind
//! only once complete ([`Update::Relist`]): a relist never looks like "everything was
//! deleted". It is handed over in parts as it arrives ([`Update::RelistPart`]), of which the
//! loop keeps only the objects that changed, so a relist costs no second copy of the world.
//! While the API server is unreachable the watches retry with backoff and the loop keeps its
//! last world.
use crate::backoff::{Backoff as Schedule, Retry};
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::Route;
use crate::cluster::pod::PodFields;
use crate::cluster::{LinkKind, NamespaceInfo, ObjectKind, WorkloadLink, WorldObject};
use crate::controller::inputs::{Undecodable, Update};
use crate::controller::metrics::{Metrics, ResourceLabel};

use super::status::{DirtyRoutes, SeenRoutes};

/// Label the EndpointSlice controller puts on slices of headless Services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The watches' retry schedule (the shared one, `crate::backoff`): 0.5 s doubling to 5 s,
/// jitter up to a quarter.
pub struct RetryBackoff(Retry);

impl RetryBackoff {
    pub const SCHEDULE: Schedule =
        Schedule::new(Duration::from_millis(500), Duration::from_secs(5), 0.25);
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff(Self::SCHEDULE.retries())
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.0.next()
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.0.reset();
    }
}

/// Which watches have delivered their first complete list.
#[derive(Debug)]
struct SyncState {
    waiting: BTreeSet<&'static str>,
    cluster_pods: bool,
    sent: bool,
}

/// Tells the loop once every watch has listed (and again when the pod scope changes).
#[derive(Clone, Debug)]
pub struct Sync {
    state: Arc<Mutex<SyncState>>,
    tx: mpsc::Sender<Update>,
}

impl Sync {
    fn new(tx: mpsc::Sender<Update>, resources: &[&'static str]) -> Self {
        Sync {
            state: Arc::new(Mutex::new(SyncState {
                waiting: resources.iter().copied().collect(),
                cluster_pods: false,
                sent: false,
            })),
            tx,
        }
    }

    /// `resource` has delivered a complete list.
    async fn listed(&self, resource: &'static str, cluster_pods: Option<bool>) {
        let send = {
            let Ok(mut s) = self.state.lock() else { return };
            s.waiting.remove(resource);
            let mut changed = false;
            if let Some(c) = cluster_pods {
                changed = s.cluster_pods != c;
                s.cluster_pods = c;
            }
            let send = s.waiting.is_empty() && (!s.sent || changed);
            if send {
                s.sent = true;
            }
            send.then_some(s.cluster_pods)
        };
        if let Some(cluster_pods) = send {
            let _ = self.tx.send(Update::Synced { cluster_pods }).await;
        }
    }
}

/// Objects of a relist handed to the loop at a time: the loop keeps only those that differ
/// from its world, so a relist of 50,000 pods never holds a second copy of them all.
const RELIST_PART: usize = 1024;

/// How one resource's objects enter the world.
struct WorldFeed<K> {
    resource: &'static str,
    kind: ObjectKind,
    object: fn(&K) -> WorldObject,
    /// Set on the pod feed: whether it lists every pod of the cluster.
    cluster_pods: Option<bool>,
}

async fn pump_world<K, S>(
    stream: S,
    feed: WorldFeed<K>,
    tx: mpsc::Sender<Update>,
    sync: Sync,
    metrics: Arc<Metrics>,
) where
    K: Resource + Clone + Debug + Send + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream);
    let mut buffer: Option<Vec<WorldObject>> = None;
    let mut listed_once = false;
    let label = ResourceLabel {
        resource: feed.resource,
    };
    while let Some(ev) = stream.next().await {
        let update = match ev {
            Ok(Event::Init) => {
                if listed_once {
                    metrics.watch_restarts.get_or_create(&label).inc();
                    tracing::info!(resource = feed.resource, "relisting");
                }
                buffer = Some(Vec::new());
                // The first list of every pod: nothing is written from pods until it is
                // complete, so its parts may enter the world as they arrive.
                let start = if !listed_once && feed.cluster_pods == Some(true) {
                    Update::FirstListStart(feed.kind)
                } else {
                    Update::RelistStart(feed.kind)
                };
                if tx.send(start).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Event::InitApply(o)) => {
                if let Some(b) = buffer.as_mut() {
                    b.push((feed.object)(&o));
                    if b.len() >= RELIST_PART {
                        let part = std::mem::take(b);
                        if tx.send(Update::RelistPart(feed.kind, part)).await.is_err() {
                            return;
                        }
                    }
                }
                continue;
            }
            Ok(Event::InitDone) => {
                let objects = buffer.take().unwrap_or_default();
                tracing::debug!(resource = feed.resource, objects = objects.len(), "listed");
                if tx.send(Update::Relist(feed.kind, objects)).await.is_err() {
                    return;
                }
                listed_once = true;
                sync.listed(feed.resource, feed.cluster_pods).await;
                continue;
            }
            Ok(Event::Apply(o)) => Update::Apply((feed.object)(&o)),
            Ok(Event::Delete(o)) => Update::Delete((feed.object)(&o).to_ref()),
            Err(e) => {
                metrics.watch_errors.get_or_create(&label).inc();
                tracing::warn!(resource = feed.resource, error = %e, "watch failed; retrying with backoff");
                continue;
            }
        };
        if tx.send(update).await.is_err() {
            return;
        }
    }
}

/// The Route type, as the API server knows it (Routes are watched untyped, so that one
/// object that does not decode cannot stop the list of all others).
pub fn route_resource() -> ApiResource {
    ApiResource::erase::<Route>(&())
}

/// Longest error text kept from a failed decode.
const MAX_ERROR: usize = 300;

/// What the loop plans from: the spec and identity, not status or bookkeeping. An object
/// that does not decode (a value the API server let through, such as a priority beyond
/// int32) is reported as such, never dropped silently.
pub(crate) fn decode(o: &DynamicObject) -> Result<Route, Undecodable> {
    let name = o.metadata.name.clone().unwrap_or_default();
    let generation = o.metadata.generation;
    let typed = serde_json::to_value(o)
        .and_then(serde_json::from_value::<Route>)
        .map_err(|e| {
            let mut error = e.to_string();
            if error.len() > MAX_ERROR {
                let mut cut = MAX_ERROR;
                while !error.is_char_boundary(cut) {
                    cut -= 1;
                }
                error.truncate(cut);
                error.push_str("...");
            }
            Undecodable {
                name,
                generation,
                error,
            }
        })?;
    let mut r = typed;
    r.status = None;
    r.metadata.managed_fields = None;
    r.metadata.resource_version = None;
    r.metadata.annotations = None;
    Ok(r)
}

/// The update for one Route event.
fn route_update(o: &DynamicObject) -> Update {
    match decode(o) {
        Ok(r) => Update::RouteApplied(Box::new(r)),
        Err(u) => {
            tracing::error!(route = %u.name, error = %u.error, "Route object does not decode; its last readable version stays");
            Update::RouteUndecodable(u)
        }
    }
}

/// Where the Route watch's events go: the loop, the sync barrier, the status writer's marks
/// and its view of each Route.
struct RouteFeed {
    tx: mpsc::Sender<Update>,
    sync: Sync,
    metrics: Arc<Metrics>,
    dirty: DirtyRoutes,
    seen: SeenRoutes,
}

async fn pump_routes<S>(stream: S, feed: RouteFeed)
where
    S: Stream<Item = Result<Event<DynamicObject>, watcher::Error>> + Send,
{
    let RouteFeed {
        tx,
        sync,
        metrics,
        dirty,
        seen,
    } = feed;
    let mut stream = std::pin::pin!(stream);
    let mut buffer: Option<(Vec<Route>, Vec<Undecodable>)> = None;
    let mut listed_once = false;
    let label = ResourceLabel { resource: "routes" };
    while let Some(ev) = stream.next().await {
        let update = match ev {
            Ok(Event::Init) => {
                if listed_once {
                    metrics.watch_restarts.get_or_create(&label).inc();
                    tracing::info!(resource = "routes", "relisting");
                }
                buffer = Some((Vec::new(), Vec::new()));
                seen.relist_start();
                continue;
            }
            Ok(Event::InitApply(r)) => {
                dirty.mark(r.metadata.name.clone().unwrap_or_default());
                seen.relist_apply(&r);
                if let Some((ok, bad)) = buffer.as_mut() {
                    match decode(&r) {
                        Ok(r) => ok.push(r),
                        Err(u) => bad.push(u),
                    }
                }
                continue;
            }
            Ok(Event::InitDone) => {
                let (routes, bad) = buffer.take().unwrap_or_default();
                for u in &bad {
                    tracing::error!(route = %u.name, error = %u.error, "Route object does not decode; its last readable version stays");
                }
                seen.relist_done();
                if tx.send(Update::RoutesRelisted(routes, bad)).await.is_err() {
                    return;
                }
                dirty.mark_all();
                listed_once = true;
                sync.listed("routes", None).await;
                continue;
            }
            Ok(Event::Apply(r)) => {
                seen.apply(&r);
                dirty.mark(r.metadata.name.clone().unwrap_or_default());
                route_update(&r)
            }
            Ok(Event::Delete(r)) => {
                let name = r.metadata.name.clone().unwrap_or_default();
                seen.delete(&name);
                dirty.mark(name.clone());
                Update::RouteDeleted(name)
            }
            Err(e) => {
                metrics.watch_errors.get_or_create(&label).inc();
                tracing::warn!(resource = "routes", error = %e, "watch failed; retrying with backoff");
                continue;
            }
        };
        if tx.send(update).await.is_err() {
            return;
        }
    }
}

fn pod_object(p: &PodFields) -> WorldObject {
    WorldObject::Pod(Box::new(p.into()))
}

/// Pods are listed and watched as [`PodFields`]: the same objects at the same URLs, with
/// only the fields the world reads decoded.
impl Resource for PodFields {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}
fn service_object(s: &Service) -> WorldObject {
    WorldObject::Service(s.into())
}
fn slice_object(s: &EndpointSlice) -> WorldObject {
    WorldObject::EndpointSlice(s.into())
}
fn namespace_object(n: &PartialObjectMeta<Namespace>) -> WorldObject {
    WorldObject::Namespace(NamespaceInfo::from_meta(&n.metadata))
}
fn replica_set_object(r: &PartialObjectMeta<ReplicaSet>) -> WorldObject {
    WorldObject::Link(LinkKind::ReplicaSet, WorkloadLink::from_meta(&r.metadata))
}
fn job_object(j: &PartialObjectMeta<Job>) -> WorldObject {
    WorldObject::Link(LinkKind::Job, WorkloadLink::from_meta(&j.metadata))
}

/// The pods this instance needs: this node's, or every pod of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodScope {
    Node,
    Cluster,
}

/// The running watches. Dropping it stops them.
pub struct Watches {
    client: Client,
    node: String,
    tx: mpsc::Sender<Update>,
    sync: Sync,
    metrics: Arc<Metrics>,
    /// Objects per list page (`--kube-page-size`).
    page_size: u32,
    pods: Option<(PodScope, JoinHandle<()>)>,
    others: Vec<JoinHandle<()>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for h in &self.others {
            h.abort();
        }
        if let Some((_, h)) = &self.pods {
            h.abort();
        }
    }
}

/// The resources whose first list [`Update::Synced`] waits for.
const RESOURCES: &[&str] = &[
    "routes",
    "pods",
    "services",
    "endpointslices",
    "namespaces",
    "replicasets",
    "jobs",
];

/// What every world watch's pump is given.
struct Feeds<'a> {
    tx: &'a mpsc::Sender<Update>,
    sync: &'a Sync,
    metrics: &'a Arc<Metrics>,
}

impl Feeds<'_> {
    /// Starts one world resource's watch (with the shared retry backoff) and its pump.
    fn spawn<K>(&self, api: Api<K>, cfg: watcher::Config, feed: WorldFeed<K>) -> JoinHandle<()>
    where
        K: Resource
            + Clone
            + Debug
            + serde::de::DeserializeOwned
            + Send
            + std::marker::Sync
            + 'static,
    {
        tokio::spawn(pump_world(
            watcher::watcher(api, cfg).backoff(RetryBackoff::default()),
            feed,
            self.tx.clone(),
            self.sync.clone(),
            self.metrics.clone(),
        ))
    }
}

impl Watches {
    /// Starts every watch; pods in `scope`.
    pub fn start(
        client: Client,
        node: String,
        scope: PodScope,
        tx: mpsc::Sender<Update>,
        metrics: Arc<Metrics>,
        dirty: DirtyRoutes,
        page_size: u32,
    ) -> (Self, SeenRoutes) {
        let sync = Sync::new(tx.clone(), RESOURCES);
        // Every list, the first and each relist, comes in pages (`limit` / `continue`).
        let cfg = || watcher::Config::default().page_size(page_size.max(1));
        let mut others = Vec::new();
        // The status writer reads Routes' current status from what this watch saw.
        let ar = route_resource();
        let routes = SeenRoutes::default();
        let route_events =
            watcher::watcher(Api::<DynamicObject>::all_with(client.clone(), &ar), cfg())
                .backoff(RetryBackoff::default())
                .modify(|r| r.metadata.managed_fields = None);
        let feed = RouteFeed {
            tx: tx.clone(),
            sync: sync.clone(),
            metrics: metrics.clone(),
            dirty,
            seen: routes.clone(),
        };
        others.push(tokio::spawn(pump_routes(route_events, feed)));
        let feeds = Feeds {
            tx: &tx,
            sync: &sync,
            metrics: &metrics,
        };
        others.push(feeds.spawn(
            Api::<Service>::all(client.clone()),
            cfg(),
            WorldFeed {
                resource: "services",
                kind: ObjectKind::Service,
                object: service_object,
                cluster_pods: None,
            },
        ));
        others.push(feeds.spawn(
            Api::<EndpointSlice>::all(client.clone()),
            cfg().labels(HEADLESS_LABEL),
            WorldFeed {
                resource: "endpointslices",
                kind: ObjectKind::EndpointSlice,
                object: slice_object,
                cluster_pods: None,
            },
        ));
        others.push(feeds.spawn(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            cfg(),
            WorldFeed {
                resource: "namespaces",
                kind: ObjectKind::Namespace,
                object: namespace_object,
                cluster_pods: None,
            },
        ));
        others.push(feeds.spawn(
            Api::<PartialObjectMeta<ReplicaSet>>::all(client.clone()),
            cfg(),
            WorldFeed {
                resource: "replicasets",
                kind: ObjectKind::Link(LinkKind::ReplicaSet),
                object: replica_set_object,
                cluster_pods: None,
            },
        ));
        others.push(feeds.spawn(
            Api::<PartialObjectMeta<Job>>::all(client.clone()),
            cfg(),
            WorldFeed {
                resource: "jobs",
                kind: ObjectKind::Link(LinkKind::Job),
                object: job_object,
                cluster_pods: None,
            },
        ));
        let mut w = Watches {
            client,
            node,
            tx,
            sync,
            metrics,
            page_size,
            pods: None,
            others,
        };
        w.pods = Some((scope, w.spawn_pods(scope)));
        (w, routes)
    }

    fn spawn_pods(&self, scope: PodScope) -> JoinHandle<()> {
        let mut cfg = watcher::Config::default().page_size(self.page_size.max(1));
        if scope == PodScope::Node {
            cfg = cfg.fields(&format!("spec.nodeName={}", self.node));
        }
        tokio::spawn(pump_world(
            watcher::watcher(Api::<PodFields>::all(self.client.clone()), cfg)
                .backoff(RetryBackoff::default()),
            WorldFeed {
                resource: "pods",
                kind: ObjectKind::Pod,
                object: pod_object,
                cluster_pods: Some(scope == PodScope::Cluster),
            },
            self.tx.clone(),
            self.sync.clone(),
            self.metrics.clone(),
        ))
    }

    /// Switches the pod watch to `scope` (the NB writer of `central` mode needs every pod).
    /// The old watch is stopped before the new one starts, so none of its events can arrive
    /// after the new watch's first complete list replaces the pods.
    pub async fn set_pod_scope(&mut self, scope: PodScope) {
        if self.pods.as_ref().is_some_and(|(s, _)| *s == scope) {
            return;
        }
        if let Some((_, h)) = self.pods.take() {
            h.abort();
            let _ = h.await;
        }
        tracing::info!(?scope, "pod watch scope changed");
        self.pods = Some((scope, self.spawn_pods(scope)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_bound_and_reset() {
        let mut b = RetryBackoff::default();
        let d: Vec<Duration> = (0..8).filter_map(|_| b.next()).collect();
        assert!(
            d[0] <= RetryBackoff::SCHEDULE.min && d[0] >= RetryBackoff::SCHEDULE.min.mul_f64(0.75)
        );
        assert!(d.iter().all(|x| *x <= RetryBackoff::SCHEDULE.max));
        assert!(d[7] >= RetryBackoff::SCHEDULE.max.mul_f64(0.75), "{d:?}");
        b.reset();
        assert!(b.next().unwrap() <= RetryBackoff::SCHEDULE.min);
    }
}
