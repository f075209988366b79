//! How per-node results become one status per Route, without write storms.
//!
//! 1. Every instance writes its node's share into `RouteNodeReport/<node>` (server-side
//!    apply, field manager `ovnkube-route`): only Routes that select pods on the node or have
//!    problems only the node sees. A write happens only when the content changed, at most
//!    once per interval, and not at all at start-up when the stored report is already right.
//!    The report is owned by the instance's Pod, so it is garbage-collected with it.
//! 2. The elected status writer (the Lease holder) alone watches the reports, and for each
//!    Route whose inputs changed computes the status (`aggregate::route_status`) and applies
//!    it to `routes/<name>/status` when it differs from what the API server holds: an
//!    unchanged cluster makes no writes; 1,000 pods changing make at most one write per Route
//!    per interval.
//! 3. Failures become Kubernetes Events on the Route (kube's recorder), at most one per
//!    Route and reason per [`EVENT_EVERY`].
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::Client;
use kube::api::DynamicObject;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde::Deserialize;

use super::watch::route_resource;
use tokio::sync::{Notify, watch};

use crate::api::{NodeRouteReport, RouteNodeReport, RouteNodeReportSpec, RouteStatus};
use crate::controller::metrics::{Metrics, ResultLabel, WriteLabel};
use crate::controller::status::{NodeStatus, RouteLocal};
use crate::plan::Summary;

use super::aggregate::route_status;
use crate::backoff::Backoff;

/// Longest wait between retries of a failing write (API server down, CRD missing).
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// The wait after `failures` consecutive failed writes: doubling from `interval` up to
/// [`MAX_RETRY`] (the shared schedule, `crate::backoff`; no jitter: one writer per node).
fn retry_delay(failures: u32, interval: Duration) -> Duration {
    Backoff::new(interval, MAX_RETRY, 0.0).delay(failures)
}

/// Field manager of every status and report write.
pub const FIELD_MANAGER: &str = "ovnkube-route";
/// At most one Event per Route and reason this often.
pub const EVENT_EVERY: Duration = Duration::from_secs(600);

/// What the status writer needs of each Route as the API server last showed it: not the
/// object (its spec is the loop's business), only what decides whether to write.
#[derive(Clone, Debug, Default)]
pub struct SeenRoutes(Arc<Mutex<Seen>>);

#[derive(Debug, Default)]
struct Seen {
    /// A complete list arrived.
    ready: bool,
    routes: BTreeMap<String, SeenRoute>,
    /// A relist in progress: the routes it has delivered so far.
    relist: Option<BTreeMap<String, SeenRoute>>,
}

/// One Route's identity and status as last seen.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenRoute {
    pub generation: Option<i64>,
    pub uid: Option<String>,
    /// `None` when it has none or it does not decode (it is then rewritten). Kept as
    /// compact JSON, decoded when a write is considered: it is held for every Route, and
    /// the decoded form was three times larger (10 MB at 5,000 Routes).
    status: Option<Box<str>>,
}

impl SeenRoute {
    fn of(o: &DynamicObject) -> SeenRoute {
        SeenRoute {
            generation: o.metadata.generation,
            uid: o.metadata.uid.clone(),
            status: o
                .data
                .get("status")
                .and_then(|s| RouteStatus::deserialize(s).ok())
                .and_then(|s| serde_json::to_string(&s).ok())
                .map(String::into_boxed_str),
        }
    }

    /// The status as last seen (`None`: none, or it did not decode).
    pub fn status(&self) -> Option<RouteStatus> {
        serde_json::from_str(self.status.as_deref()?).ok()
    }
}

impl SeenRoutes {
    fn with<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> Option<T> {
        self.0.lock().ok().map(|mut s| f(&mut s))
    }

    /// A Route was created or changed.
    pub fn apply(&self, o: &DynamicObject) {
        let name = o.metadata.name.clone().unwrap_or_default();
        let seen = SeenRoute::of(o);
        self.with(|s| s.routes.insert(name, seen));
    }

    pub fn delete(&self, name: &str) {
        self.with(|s| s.routes.remove(name));
    }

    /// A (re)list starts; until it completes, what was seen before stays.
    pub fn relist_start(&self) {
        self.with(|s| s.relist = Some(BTreeMap::new()));
    }

    pub fn relist_apply(&self, o: &DynamicObject) {
        let name = o.metadata.name.clone().unwrap_or_default();
        let seen = SeenRoute::of(o);
        self.with(|s| s.relist.get_or_insert_default().insert(name, seen));
    }

    /// The (re)list completed: it is every Route there is.
    pub fn relist_done(&self) {
        self.with(|s| {
            s.routes = s.relist.take().unwrap_or_default();
            s.ready = true;
        });
    }

    pub fn ready(&self) -> bool {
        self.with(|s| s.ready).unwrap_or(false)
    }

    pub fn names(&self) -> Vec<String> {
        self.with(|s| s.routes.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn get(&self, name: &str) -> Option<SeenRoute> {
        self.with(|s| s.routes.get(name).cloned()).flatten()
    }
}

/// Routes whose status may need rewriting, shared by the Route watch (which marks) and the
/// status writer (which drains).
#[derive(Clone, Debug, Default)]
pub struct DirtyRoutes(Arc<(Mutex<Dirty>, Notify)>);

#[derive(Debug, Default)]
struct Dirty {
    names: BTreeSet<String>,
    all: bool,
}

impl DirtyRoutes {
    pub fn mark(&self, name: String) {
        if let Ok(mut d) = self.0.0.lock() {
            d.names.insert(name);
        }
        self.0.1.notify_one();
    }

    pub fn mark_all(&self) {
        if let Ok(mut d) = self.0.0.lock() {
            d.all = true;
        }
        self.0.1.notify_one();
    }

    /// Takes the marks: `None` means every Route.
    fn take(&self) -> Option<BTreeSet<String>> {
        let Ok(mut d) = self.0.0.lock() else {
            return None;
        };
        let all = std::mem::take(&mut d.all);
        let names = std::mem::take(&mut d.names);
        (!all).then_some(names)
    }

    async fn wait(&self) {
        self.0.1.notified().await;
    }
}

/// This node's entry for one Route, when the Route concerns the node.
fn entry(name: &str, l: &RouteLocal) -> Option<NodeRouteReport> {
    // Pod-level planner problems (conflicts on this node's pods) only this node sees.
    let problems: Vec<_> = l
        .route_problems
        .iter()
        .filter(|p| p.pod.is_some())
        .chain(&l.node_problems)
        .cloned()
        .collect();
    (l.counts.selected > 0 || !problems.is_empty()).then(|| NodeRouteReport {
        route: name.to_owned(),
        generation: l.generation,
        selected: l.counts.selected as i64,
        programmed: l.counts.programmed as i64,
        skipped: l.counts.skipped as i64,
        failed: l.counts.failed as i64,
        pending: l.counts.pending as i64,
        skipped_rules: l.counts.skipped_rules as i64,
        problems,
    })
}

/// The report this node should publish.
pub fn node_report(node: &str, view: &NodeStatus) -> RouteNodeReportSpec {
    RouteNodeReportSpec {
        node: node.to_owned(),
        routes: view
            .routes
            .iter()
            .filter_map(|(name, l)| entry(name, l))
            .collect(),
    }
}

/// Identity of this instance's Pod, to own its report.
#[derive(Clone, Debug, Default)]
pub struct PodIdentity {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub uid: Option<String>,
}

/// Writes this node's report whenever the loop's view changes, at most once per `interval`.
pub async fn write_node_reports(
    client: Client,
    node: String,
    pod: PodIdentity,
    mut view: watch::Receiver<Arc<NodeStatus>>,
    interval: Duration,
    metrics: Arc<Metrics>,
) {
    let api: Api<RouteNodeReport> = Api::all(client);
    let mut failures: u32 = 0;
    // What the server holds, so a restart with nothing changed writes nothing.
    let mut last: Option<RouteNodeReportSpec> = match api.get_opt(&node).await {
        Ok(r) => r.map(|r| r.spec),
        Err(_) => None,
    };
    loop {
        if view.changed().await.is_err() {
            return;
        }
        let want = node_report(&node, &view.borrow_and_update());
        if last.as_ref() == Some(&want) {
            continue;
        }
        let mut obj = RouteNodeReport::new(&node, want.clone());
        if let (Some(name), Some(uid)) = (&pod.name, &pod.uid) {
            obj.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: name.clone(),
                uid: uid.clone(),
                ..OwnerReference::default()
            }]);
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let ok = match api.patch(&node, &params, &Patch::Apply(&obj)).await {
            Ok(_) => {
                last = Some(want);
                true
            }
            Err(e) => {
                failures += 1;
                let d = retry_delay(failures, interval);
                tracing::warn!(error = %e, retry_in_s = d.as_secs_f64(), "could not write this node's Route report");
                false
            }
        };
        if ok {
            failures = 0;
        }
        metrics
            .status_writes
            .get_or_create(&WriteLabel {
                kind: "node_report",
                result: if ok { "ok" } else { "error" },
            })
            .inc();
        // Coalesce: whatever changes meanwhile goes out in the next write.
        let wait = if failures > 0 {
            retry_delay(failures, interval)
        } else {
            interval
        };
        tokio::time::sleep(wait).await;
        if !ok {
            view.mark_changed();
        }
    }
}

/// Writes Route status while this instance is the status writer (`active` is true).
pub struct StatusWriter {
    client: Client,
    /// This instance's node: its share comes from the loop's view directly, fresher than
    /// its own report.
    node: String,
    metrics: Arc<Metrics>,
    interval: Duration,
    recorder: Recorder,
    events: HashMap<(String, String), Instant>,
    /// Node -> Routes in its report, to know which Routes a report change touches.
    report_routes: BTreeMap<String, BTreeSet<String>>,
    /// After a failed write: no writes before this, and the current retry delay.
    /// Failing writes: retry not before this, after this many consecutive failures.
    backoff: Option<(Instant, u32)>,
}

impl StatusWriter {
    pub fn new(
        client: Client,
        instance: &str,
        node: &str,
        metrics: Arc<Metrics>,
        interval: Duration,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(instance.to_owned()),
        };
        StatusWriter {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            node: node.to_owned(),
            metrics,
            interval,
            events: HashMap::new(),
            report_routes: BTreeMap::new(),
            backoff: None,
        }
    }

    /// Runs until `active` turns false (or its sender goes away); call again when it turns
    /// true. `routes` is the Route watch's store, `dirty` its marks, `local` the loop's view.
    pub async fn run(
        &mut self,
        routes: &SeenRoutes,
        dirty: &DirtyRoutes,
        local: &mut watch::Receiver<Arc<NodeStatus>>,
        active: &mut watch::Receiver<bool>,
    ) {
        let api: Api<RouteNodeReport> = Api::all(self.client.clone());
        let (reports, writer) = reflector::store::<RouteNodeReport>();
        let stream =
            reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
                .backoff(super::watch::RetryBackoff::default())
                .touched_objects();
        let mut stream = std::pin::pin!(stream);
        self.report_routes.clear();
        dirty.mark_all();
        let mut last_local: Arc<NodeStatus> = local.borrow_and_update().clone();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = active.changed() => {
                    if r.is_err() || !*active.borrow() {
                        return;
                    }
                }
                ev = stream.next() => match ev {
                    Some(Ok(report)) => self.report_changed(&report, dirty),
                    Some(Err(e)) => tracing::warn!(error = %e, "watch of node reports failed; retrying"),
                    None => return,
                },
                r = local.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let now = local.borrow_and_update().clone();
                    for (name, l) in &now.routes {
                        if !last_local.routes.get(name).is_some_and(|o| Arc::ptr_eq(o, l) || o == l) {
                            dirty.mark(name.clone());
                        }
                    }
                    for name in last_local.routes.keys().filter(|n| !now.routes.contains_key(*n)) {
                        dirty.mark(name.clone());
                    }
                    last_local = now;
                }
                _ = tick.tick() => {
                    // Not awaited: the report stream is only driven by this loop.
                    // Not before the loop's first view: every Route would be written
                    // Pending, and again when the view comes (5,000 writes twice at 50k).
                    let ready = last_local.published
                        && routes.ready()
                        && reports.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok());
                    if ready {
                        self.flush(routes, &reports, dirty, &last_local).await;
                    }
                }
                _ = dirty.wait() => {}
            }
        }
    }

    fn report_changed(&mut self, report: &RouteNodeReport, dirty: &DirtyRoutes) {
        let node = report.metadata.name.clone().unwrap_or_default();
        let now: BTreeSet<String> = report.spec.routes.iter().map(|r| r.route.clone()).collect();
        let before = self
            .report_routes
            .insert(node, now.clone())
            .unwrap_or_default();
        for name in before.union(&now) {
            dirty.mark(name.clone());
        }
    }

    /// Writes the status of every dirty Route that differs from what the server holds.
    async fn flush(
        &mut self,
        routes: &SeenRoutes,
        reports: &Store<RouteNodeReport>,
        dirty: &DirtyRoutes,
        local: &NodeStatus,
    ) {
        if self
            .backoff
            .is_some_and(|(until, _)| Instant::now() < until)
        {
            return;
        }
        let names: Vec<String> = match dirty.take() {
            Some(n) => n.into_iter().collect(),
            None => routes.names(),
        };
        if names.is_empty() {
            return;
        }
        let all_reports = reports.state();
        // Other nodes' entries by Route, once per flush: a Route's status then costs its
        // own entries, not a walk over every node's report.
        let mut by_route: HashMap<&str, Vec<(&str, &NodeRouteReport)>> = HashMap::new();
        for rep in all_reports
            .iter()
            .filter(|rep| rep.metadata.name.as_deref() != Some(self.node.as_str()))
        {
            let node = rep.metadata.name.as_deref().unwrap_or_default();
            for e in &rep.spec.routes {
                by_route
                    .entry(e.route.as_str())
                    .or_default()
                    .push((node, e));
            }
        }
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &route_resource());
        for name in names {
            let Some(route) = routes.get(&name) else {
                continue; // deleted: nothing to write
            };
            // A status that does not decode is rewritten.
            let observed = route.status();
            let own = local.routes.get(&name).and_then(|l| entry(&name, l));
            let entries: Vec<(&str, &NodeRouteReport)> = by_route
                .get(name.as_str())
                .into_iter()
                .flatten()
                .copied()
                .chain(own.as_ref().map(|e| (self.node.as_str(), e)))
                .collect();
            let l: Option<&RouteLocal> = local
                .routes
                .get(&name)
                .map(|l| &**l)
                // Only a view of this generation speaks for it.
                .filter(|l| l.generation == route.generation);
            let want = route_status(l, &entries, observed.as_ref(), &now);
            if observed.as_ref() == Some(&want) {
                continue;
            }
            let ok = self.write(&api, &name, &want).await;
            if !ok {
                // Retry later, all of what is left (the API server or the CRD is likely the
                // problem, not this Route).
                let failures = self.backoff.map_or(0, |(_, n)| n) + 1;
                let d = retry_delay(failures, self.interval);
                self.backoff = Some((Instant::now() + d, failures));
                dirty.mark_all();
                return;
            }
            self.backoff = None;
            self.maybe_event(&name, &route, observed.as_ref(), &want)
                .await;
        }
    }

    async fn write(&self, api: &Api<DynamicObject>, name: &str, status: &RouteStatus) -> bool {
        let patch = serde_json::json!({
            "apiVersion": "k8s.ovn.org/v1",
            "kind": "Route",
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = api.patch_status(name, &params, &Patch::Apply(&patch)).await;
        let ok = result.is_ok();
        if let Err(e) = result {
            tracing::warn!(route = %name, error = %e, "could not write Route status; retrying");
        } else {
            tracing::debug!(route = %name, status = ?status.status, "Route status written");
        }
        self.metrics
            .status_writes
            .get_or_create(&WriteLabel {
                kind: "route",
                result: if ok { "ok" } else { "error" },
            })
            .inc();
        ok
    }

    /// A Warning Event when the Route turns Degraded or Invalid, or a new node fails.
    async fn maybe_event(
        &mut self,
        name: &str,
        route: &SeenRoute,
        old: Option<&RouteStatus>,
        new: &RouteStatus,
    ) {
        let bad = |s: Option<&RouteStatus>| {
            s.and_then(|s| s.status.as_deref())
                .is_some_and(|w| w == Summary::Degraded.as_str() || w == Summary::Invalid.as_str())
        };
        let new_nodes = new
            .failing_nodes
            .iter()
            .any(|n| !old.is_some_and(|o| o.failing_nodes.contains(n)));
        if !bad(Some(new)) || (bad(old) && !new_nodes) {
            return;
        }
        let Some(first) = new.problems.first() else {
            return;
        };
        let key = (name.to_owned(), first.reason.clone());
        if self
            .events
            .get(&key)
            .is_some_and(|t| t.elapsed() < EVENT_EVERY)
        {
            return;
        }
        self.events.insert(key, Instant::now());
        let mut note = match &first.path {
            Some(p) => format!("{p}: {}", first.message),
            None => first.message.clone(),
        };
        if !new.failing_nodes.is_empty() {
            note.push_str(&format!(
                " (failing nodes: {})",
                new.failing_nodes.join(", ")
            ));
        }
        note.truncate(1024);
        let ev = KubeEvent {
            type_: EventType::Warning,
            reason: first.reason.clone(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        let ar = route_resource();
        let reference = ObjectReference {
            api_version: Some(ar.api_version),
            kind: Some(ar.kind),
            name: Some(name.to_owned()),
            uid: route.uid.clone(),
            ..ObjectReference::default()
        };
        let result = self.recorder.publish(&ev, &reference).await;
        let label = ResultLabel {
            result: if result.is_ok() { "ok" } else { "error" },
        };
        self.metrics.events.get_or_create(&label).inc();
        if let Err(e) = result {
            tracing::debug!(route = %name, error = %e, "could not publish an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Problem;
    use crate::controller::status::PodCounts;

    fn route_obj(name: &str, generation: i64, status: serde_json::Value) -> DynamicObject {
        let mut o = DynamicObject::new(name, &route_resource());
        o.metadata.generation = Some(generation);
        o.metadata.uid = Some(format!("uid-{name}"));
        o.data = serde_json::json!({"spec": {"route": []}, "status": status});
        o
    }

    #[test]
    fn seen_routes_keep_identity_and_status_and_relists_replace_only_when_complete() {
        let seen = SeenRoutes::default();
        assert!(!seen.ready());
        seen.relist_start();
        seen.relist_apply(&route_obj("a", 1, serde_json::json!({"status": "Applied"})));
        // Not complete yet: nothing seen, not ready.
        assert!(seen.get("a").is_none() && !seen.ready());
        seen.relist_done();
        assert!(seen.ready());
        let a = seen.get("a").unwrap();
        assert_eq!(a.generation, Some(1));
        assert_eq!(a.uid.as_deref(), Some("uid-a"));
        assert_eq!(a.status().unwrap().status.as_deref(), Some("Applied"));
        // A status that does not decode is seen as none (and so rewritten).
        seen.apply(&route_obj("b", 3, serde_json::json!({"status": 7})));
        assert_eq!(seen.get("b").unwrap().status(), None);
        // A full status comes back as it was seen (it is kept as compact JSON).
        let full = serde_json::json!({
            "status": "Degraded", "observedGeneration": 2, "selectedPods": 10,
            "conditions": [{"type": "Ready", "status": "False", "reason": "Conflict",
                "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "problems": [{"path": "spec.route[0]", "reason": "Conflict", "message": "x"}],
            "failingNodes": ["n1"],
        });
        seen.apply(&route_obj("c", 2, full.clone()));
        let back = seen.get("c").unwrap().status().unwrap();
        assert_eq!(back, RouteStatus::deserialize(&full).unwrap());
        assert_eq!(back.failing_nodes, ["n1"]);
        assert_eq!(back.conditions[0].reason, "Conflict");
        seen.delete("c");
        assert_eq!(seen.names(), ["a", "b"]);
        // A relist that no longer has `a`: `a` stays until the relist completes.
        seen.relist_start();
        seen.relist_apply(&route_obj("b", 4, serde_json::json!({})));
        assert!(seen.get("a").is_some());
        seen.relist_done();
        assert!(seen.get("a").is_none());
        assert_eq!(seen.get("b").unwrap().generation, Some(4));
        seen.delete("b");
        assert!(seen.names().is_empty());
    }

    #[test]
    fn a_node_report_lists_only_routes_that_concern_the_node() {
        let mut view = NodeStatus::default();
        view.routes.insert(
            "idle".into(),
            Arc::new(RouteLocal {
                route_problems: vec![Problem {
                    path: Some("spec.route[0].dst".into()),
                    reason: "InvalidCIDR".into(),
                    message: "x".into(),
                    ..Problem::default()
                }],
                ..RouteLocal::default()
            }),
        );
        view.routes.insert(
            "busy".into(),
            Arc::new(RouteLocal {
                generation: Some(2),
                counts: PodCounts {
                    selected: 3,
                    programmed: 2,
                    pending: 1,
                    ..PodCounts::default()
                },
                ..RouteLocal::default()
            }),
        );
        view.routes.insert(
            "conflicted".into(),
            Arc::new(RouteLocal {
                route_problems: vec![Problem {
                    pod: Some("default/a".into()),
                    reason: "Conflict".into(),
                    message: "lost".into(),
                    ..Problem::default()
                }],
                ..RouteLocal::default()
            }),
        );
        let r = node_report("n1", &view);
        assert_eq!(r.node, "n1");
        let names: Vec<&str> = r.routes.iter().map(|e| e.route.as_str()).collect();
        // The Route-level validation problem is the status writer's own to report.
        assert_eq!(names, ["busy", "conflicted"]);
        assert_eq!(r.routes[0].selected, 3);
        assert_eq!(r.routes[0].generation, Some(2));
        assert_eq!(r.routes[1].problems[0].reason, "Conflict");
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        let i = Duration::from_secs(1);
        let seen: Vec<u64> = (1..=8).map(|n| retry_delay(n, i).as_secs()).collect();
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn dirty_marks_are_taken_once() {
        let d = DirtyRoutes::default();
        d.mark("a".into());
        d.mark("b".into());
        assert_eq!(d.take().unwrap().len(), 2);
        assert!(d.take().unwrap().is_empty());
        d.mark_all();
        assert!(d.take().is_none());
        assert!(d.take().unwrap().is_empty());
    }
}
