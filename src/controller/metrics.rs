//! Process metrics (Prometheus text format, via `prometheus-client`) and the endpoints the
//! DaemonSet probes: `GET /metrics`, `GET /healthz`, `GET /readyz` (served by axum).
//!
//! Owns: the metric handles the loop, the sources and the status writer update, and the
//! meaning of health and readiness (see [`Health`]). Must not: decide anything about routes.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `result="ok"|"error"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// `error="<label of the error enum>"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: &'static str,
}

/// `side="nb"|"pods"|"status"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SideLabel {
    pub side: &'static str,
}

/// `resource="pods"|...`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    pub resource: &'static str,
}

/// `status="Applied"|"Degraded"|"Invalid"|"Pending"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

/// `cause="unknown_issuer"|...` ([`crate::ovsdb::TlsFailure::label`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub cause: &'static str,
}

/// `version`, `mode="central"|"ic"`, `source="file"|"kubernetes"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabel {
    pub version: &'static str,
    pub mode: &'static str,
    pub source: &'static str,
}

/// Resources the Kubernetes watches are labelled with (`k8s::watch`), exported at 0 from
/// the start so that `increase()` sees the first error.
const WATCHED: [&str; 7] = [
    "routes",
    "pods",
    "services",
    "namespaces",
    "endpointslices",
    "replicasets",
    "jobs",
];

/// `kind="route"|"node_report"`, `result="ok"|"error"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    pub kind: &'static str,
    pub result: &'static str,
}

/// Every metric the controller exports. Handles are cheap to clone and update concurrently.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub nb_transactions: Family<ResultLabel, Counter>,
    pub nb_changes: Counter,
    pub nb_pass_failures: Family<ErrorLabel, Counter>,
    pub pass_duration: Family<SideLabel, Histogram>,
    pub pod_routes_added: Counter,
    pub pod_routes_deleted: Counter,
    /// By the error's `NetlinkError::label()`.
    pub pod_failures: Family<ErrorLabel, Counter>,
    pub routes: Gauge,
    pub routes_invalid: Gauge,
    /// Routes by the planner's one-word summary; every word is always exported.
    pub routes_by_status: Family<StatusLabel, Gauge>,
    pub problems: Gauge,
    pub pods_programmed: Gauge,
    pub nb_connected: Gauge,
    pub ready: Gauge,
    pub watch_restarts: Family<ResourceLabel, Counter>,
    pub watch_errors: Family<ResourceLabel, Counter>,
    pub status_writes: Family<WriteLabel, Counter>,
    pub lease_transitions: Counter,
    pub leader: Gauge,
    pub events: Family<ResultLabel, Counter>,
    /// Differences the audit had to repair, by side: each one is a bug of the event-driven
    /// path (docs/incremental.md, "The audit").
    pub audit_repairs: Family<SideLabel, Counter>,
    /// Audits run, by result.
    pub audits: Family<ResultLabel, Counter>,
    /// Failed TLS handshakes with the NB, by cause (a certificate or protocol problem that
    /// retrying does not fix).
    pub nb_tls_failures: Family<CauseLabel, Counter>,
    /// 1 while `/healthz` says ok (the loop came round within the watchdog bound); set when
    /// `/metrics` is read, so a stuck loop shows as 0.
    pub healthy: Gauge,
    /// Always 1: version, mode and source of this instance.
    pub info: Family<InfoLabel, Gauge>,
    pub health: Health,
}

fn duration_histogram() -> Histogram {
    // 100 us .. ~100 s
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("ovnkube_route");
        let m = Metrics {
            nb_transactions: Family::default(),
            nb_changes: Counter::default(),
            nb_pass_failures: Family::default(),
            pass_duration: Family::new_with_constructor(duration_histogram),
            pod_routes_added: Counter::default(),
            pod_routes_deleted: Counter::default(),
            pod_failures: Family::default(),
            routes: Gauge::default(),
            routes_invalid: Gauge::default(),
            routes_by_status: Family::default(),
            problems: Gauge::default(),
            pods_programmed: Gauge::default(),
            nb_connected: Gauge::default(),
            ready: Gauge::default(),
            watch_restarts: Family::default(),
            watch_errors: Family::default(),
            status_writes: Family::default(),
            lease_transitions: Counter::default(),
            leader: Gauge::default(),
            events: Family::default(),
            audit_repairs: Family::default(),
            audits: Family::default(),
            nb_tls_failures: Family::default(),
            healthy: Gauge::default(),
            info: Family::default(),
            health: Health::default(),
            registry: Registry::default(),
        };
        for register in [
            Self::register_nb,
            Self::register_pods,
            Self::register_routes,
            Self::register_kube,
            Self::register_audit,
            Self::register_status_and_tls,
        ] {
            register(&m, &mut r);
        }
        m.zero_series();
        Metrics { registry: r, ..m }
    }

    /// The NB side: transactions, changes, failures, pass durations, connection, readiness.
    fn register_nb(&self, r: &mut Registry) {
        r.register(
            "nb_transactions",
            "NB transactions sent, by result",
            self.nb_transactions.clone(),
        );
        r.register(
            "nb_changes",
            "Row changes written to the NB database",
            self.nb_changes.clone(),
        );
        r.register(
            "nb_pass_failures",
            "NB passes that failed, by error kind",
            self.nb_pass_failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes, by side (nb, pods)",
            self.pass_duration.clone(),
        );
        r.register(
            "nb_connected",
            "1 when the NB database connection is up",
            self.nb_connected.clone(),
        );
        r.register(
            "ready",
            "1 once the inputs and the NB replica are synced and a full pass has completed",
            self.ready.clone(),
        );
    }

    /// The pod side: routes added and deleted, failures, pods programmed.
    fn register_pods(&self, r: &mut Registry) {
        r.register(
            "pod_routes_added",
            "Kernel routes added or replaced in pods",
            self.pod_routes_added.clone(),
        );
        r.register(
            "pod_routes_deleted",
            "Kernel routes deleted from pods",
            self.pod_routes_deleted.clone(),
        );
        r.register(
            "pod_failures",
            "Pods whose programming failed in a pass, by error kind",
            self.pod_failures.clone(),
        );
        r.register(
            "pods_programmed",
            "Pods on this node whose routes are programmed",
            self.pods_programmed.clone(),
        );
    }

    /// The Routes: how many, invalid, problems.
    fn register_routes(&self, r: &mut Registry) {
        r.register("routes", "Route objects known", self.routes.clone());
        r.register(
            "routes_invalid",
            "Route objects that are Invalid as a whole",
            self.routes_invalid.clone(),
        );
        r.register(
            "problems",
            "Problems currently reported across all Routes",
            self.problems.clone(),
        );
    }

    /// The Kubernetes side: watches, status writes, the Lease, Events.
    fn register_kube(&self, r: &mut Registry) {
        r.register(
            "watch_restarts",
            "Kubernetes watches restarted with a full relist, by resource",
            self.watch_restarts.clone(),
        );
        r.register(
            "watch_errors",
            "Kubernetes watch errors (API unreachable, expired, refused), by resource",
            self.watch_errors.clone(),
        );
        r.register(
            "status_writes",
            "Writes of Route status and of this node's report, by kind and result",
            self.status_writes.clone(),
        );
        r.register(
            "lease_transitions",
            "Times this instance became or stopped being the leader",
            self.lease_transitions.clone(),
        );
        r.register(
            "leader",
            "1 while this instance is the writer: it holds the leader Lease (always 1 with --source file, which writes everything)",
            self.leader.clone(),
        );
        r.register(
            "events",
            "Kubernetes Events published on Routes, by result",
            self.events.clone(),
        );
    }

    /// The audit: what it repaired, how often it ran.
    fn register_audit(&self, r: &mut Registry) {
        r.register(
            "audit_repairs",
            "Differences the periodic audit found between the event-driven state and a fresh \
             recomputation and repaired, by side (nb, pods, status); anything above 0 is a bug",
            self.audit_repairs.clone(),
        );
        r.register(
            "audits",
            "Audits run (fresh recomputation compared with the NB and the pods), by result",
            self.audits.clone(),
        );
    }

    /// Routes by status, TLS failures, health and identity: what the alerts and the
    /// dashboard of deploy/monitoring/ need beyond the loop's counters.
    fn register_status_and_tls(&self, r: &mut Registry) {
        r.register(
            "routes_by_status",
            "Route objects by their one-word status as planned (Applied, Degraded, Invalid, Pending)",
            self.routes_by_status.clone(),
        );
        r.register(
            "nb_tls_failures",
            "TLS handshakes with the NB database that failed, by cause (unknown_issuer, bad_certificate, not_tls, certificate_refused)",
            self.nb_tls_failures.clone(),
        );
        r.register(
            "healthy",
            "1 while the loop comes round within --watchdog-secs (what /healthz answers)",
            self.healthy.clone(),
        );
        r.register(
            "info",
            "Always 1: this instance's version, mode (central, ic) and source (file, kubernetes)",
            self.info.clone(),
        );
    }

    /// Exports the series alerts and dashboards name at 0 from the start: a counter that
    /// appears at 1 is an increase Prometheus never sees, and a query over a missing
    /// series is empty rather than 0.
    fn zero_series(&self) {
        for side in ["nb", "pods", "status"] {
            let _ = self.audit_repairs.get_or_create(&SideLabel { side });
        }
        for result in ["ok", "error"] {
            let _ = self.nb_transactions.get_or_create(&ResultLabel { result });
            let _ = self.events.get_or_create(&ResultLabel { result });
            for kind in ["route", "node_report"] {
                let _ = self
                    .status_writes
                    .get_or_create(&WriteLabel { kind, result });
            }
        }
        for resource in WATCHED {
            let _ = self.watch_errors.get_or_create(&ResourceLabel { resource });
            let _ = self
                .watch_restarts
                .get_or_create(&ResourceLabel { resource });
        }
        for error in crate::netlink::NetlinkError::LABELS {
            let _ = self.pod_failures.get_or_create(&ErrorLabel { error });
        }
        for cause in crate::ovsdb::TlsFailure::LABELS {
            let _ = self.nb_tls_failures.get_or_create(&CauseLabel { cause });
        }
        self.count_routes(std::iter::empty());
    }

    /// Sets `routes`, `routes_invalid` and `routes_by_status` from the planner's summaries.
    pub fn count_routes(&self, summaries: impl Iterator<Item = crate::plan::Summary>) {
        use crate::plan::Summary;
        let mut by = [0i64; 4];
        let words = [
            Summary::Applied,
            Summary::Degraded,
            Summary::Invalid,
            Summary::Pending,
        ];
        for s in summaries {
            if let Some(i) = words.iter().position(|w| *w == s) {
                by[i] += 1;
            }
        }
        self.routes.set(by.iter().sum());
        self.routes_invalid.set(by[2]);
        for (w, n) in words.iter().zip(by) {
            self.routes_by_status
                .get_or_create(&StatusLabel { status: w.as_str() })
                .set(n);
        }
    }

    /// Records what this instance is (`ovnkube_route_info`).
    pub fn set_info(&self, mode: crate::plan::NbScope, source: &'static str) {
        let mode = match mode {
            crate::plan::NbScope::Cluster => "central",
            crate::plan::NbScope::Node => "ic",
        };
        self.info
            .get_or_create(&InfoLabel {
                version: env!("CARGO_PKG_VERSION"),
                mode,
                source,
            })
            .set(1);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records a pass of one side.
    pub fn observe_pass(&self, side: &'static str, elapsed: Duration) {
        self.pass_duration
            .get_or_create(&SideLabel { side })
            .observe(elapsed.as_secs_f64());
    }
}

/// Liveness and readiness.
///
/// - healthy (`/healthz`): the loop has come round within the watchdog bound. It does not
///   depend on the NB or the API server being reachable, so an outage does not get every
///   instance restarted; a loop stuck on one step (a blocked read, a hung pass) does.
/// - ready (`/readyz`): the inputs are synced (files read, or every Kubernetes watch listed
///   once), the NB replica holds its initial snapshot, and a first pass has completed.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    /// Milliseconds since `started` of the loop's last heartbeat.
    last_beat_ms: AtomicU64,
    /// Longest the loop may go without a heartbeat.
    bound: Mutex<Duration>,
    pub inputs_synced: AtomicBool,
    pub nb_synced: AtomicBool,
    pub first_pass_done: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            bound: Mutex::new(Duration::from_secs(60)),
            inputs_synced: AtomicBool::new(false),
            nb_synced: AtomicBool::new(false),
            first_pass_done: AtomicBool::new(false),
        }
    }
}

impl Health {
    /// The loop is alive now.
    pub fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    pub fn set_bound(&self, bound: Duration) {
        if let Ok(mut b) = self.bound.lock() {
            *b = bound;
        }
    }

    /// Time since the last heartbeat.
    pub fn since_beat(&self) -> Duration {
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    pub fn healthy(&self) -> bool {
        let bound = self.bound.lock().map(|b| *b).unwrap_or(Duration::MAX);
        self.since_beat() <= bound
    }

    pub fn ready(&self) -> bool {
        self.inputs_synced.load(Ordering::Relaxed)
            && self.nb_synced.load(Ordering::Relaxed)
            && self.first_pass_done.load(Ordering::Relaxed)
    }

    /// Why `/readyz` says no, for the response body.
    fn not_ready_reason(&self) -> &'static str {
        if !self.inputs_synced.load(Ordering::Relaxed) {
            "inputs not synced\n"
        } else if !self.nb_synced.load(Ordering::Relaxed) {
            "NB replica not synced\n"
        } else {
            "first pass not done\n"
        }
    }
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    m.healthy.set(i64::from(m.health.healthy()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.health.healthy() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "loop stalled: no pass for {:.0} s\n",
                m.health.since_beat().as_secs_f64()
            ),
        )
    }
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.health.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, m.health.not_ready_reason())
    }
}

/// The router for `/metrics`, `/healthz` and `/readyz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

/// Binds `addr` (so a taken port fails at start-up, not later) and returns the serving task.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "serving /metrics, /healthz, /readyz");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(metrics)).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.nb_transactions
            .get_or_create(&ResultLabel { result: "ok" })
            .inc_by(3);
        m.observe_pass("nb", Duration::from_millis(2));
        m.nb_pass_failures
            .get_or_create(&ErrorLabel { error: "timed_out" })
            .inc();
        m.pod_failures
            .get_or_create(&ErrorLabel { error: "kernel" })
            .inc_by(2);
        let text = m.render();
        assert!(text.contains("ovnkube_route_pod_failures_total{error=\"kernel\"} 2"));
        assert!(
            text.contains("ovnkube_route_nb_transactions_total{result=\"ok\"} 3"),
            "{text}"
        );
        assert!(text.contains("ovnkube_route_nb_pass_failures_total{error=\"timed_out\"} 1"));
        assert!(text.contains("ovnkube_route_reconcile_duration_seconds_count{side=\"nb\"} 1"));
        assert!(text.contains("# TYPE ovnkube_route_routes gauge"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn health_follows_the_heartbeat_and_readiness_needs_all_three() {
        let h = Health::default();
        h.set_bound(Duration::from_millis(50));
        h.beat();
        assert!(h.healthy());
        std::thread::sleep(Duration::from_millis(120));
        assert!(!h.healthy(), "a loop silent past the bound is not healthy");
        h.beat();
        assert!(h.healthy());
        assert!(!h.ready());
        h.inputs_synced.store(true, Ordering::Relaxed);
        h.nb_synced.store(true, Ordering::Relaxed);
        assert!(!h.ready(), "no pass yet");
        h.first_pass_done.store(true, Ordering::Relaxed);
        assert!(h.ready());
        h.nb_synced.store(false, Ordering::Relaxed);
        assert!(!h.ready());
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_health_and_metrics() {
        let m = Arc::new(Metrics::new());
        m.health.beat();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(axum::serve(listener, router(m.clone())).into_future());
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let r = get(addr, "/readyz").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("inputs not synced"));
        for flag in [
            &m.health.inputs_synced,
            &m.health.nb_synced,
            &m.health.first_pass_done,
        ] {
            flag.store(true, Ordering::Relaxed);
        }
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        m.ready.set(1);
        assert!(
            get(addr, "/metrics")
                .await
                .contains("ovnkube_route_ready 1")
        );
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        m.health.set_bound(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 503"));
        server.abort();
    }
}
