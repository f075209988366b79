//! Process metrics (Prometheus text format 0.0.4) and the health endpoint the DaemonSet
//! probes: `GET /metrics`, `GET /healthz`, `GET /readyz`.
//!
//! Counters are plain atomics updated by the reconcilers; the HTTP side is a deliberately tiny
//! HTTP/1.1 responder (one request per connection, bounded request size and read time) so the
//! endpoint cannot be used to exhaust the controller.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counters and gauges exported on `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub nb_transactions_ok: AtomicU64,
    pub nb_transactions_failed: AtomicU64,
    pub nb_changes: AtomicU64,
    pub nb_passes: AtomicU64,
    pub nb_pass_micros_sum: AtomicU64,
    pub pod_passes: AtomicU64,
    pub pod_routes_added: AtomicU64,
    pub pod_routes_deleted: AtomicU64,
    pub pod_failures: AtomicU64,
    pub routes: AtomicU64,
    pub routes_invalid: AtomicU64,
    pub problems: AtomicU64,
    pub pods_programmed: AtomicU64,
    pub nb_connected: AtomicBool,
    /// Set once the first full pass (NB and pods) has completed.
    pub ready: AtomicBool,
}

fn counter(out: &mut String, name: &str, help: &str, kind: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP ovnkube_route_{name} {help}\n# TYPE ovnkube_route_{name} {kind}\novnkube_route_{name} {v}"
    );
}

impl Metrics {
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP ovnkube_route_nb_transactions_total NB transactions by result.\n\
             # TYPE ovnkube_route_nb_transactions_total counter\n\
             ovnkube_route_nb_transactions_total{{result=\"ok\"}} {}\n\
             ovnkube_route_nb_transactions_total{{result=\"error\"}} {}",
            g(&self.nb_transactions_ok),
            g(&self.nb_transactions_failed)
        );
        counter(
            &mut s,
            "nb_changes_total",
            "Row changes written to the NB database.",
            "counter",
            g(&self.nb_changes),
        );
        counter(
            &mut s,
            "nb_passes_total",
            "NB reconcile passes.",
            "counter",
            g(&self.nb_passes),
        );
        let secs = g(&self.nb_pass_micros_sum) as f64 / 1e6;
        let _ = writeln!(
            s,
            "# HELP ovnkube_route_nb_pass_seconds_sum Time spent in NB passes.\n\
             # TYPE ovnkube_route_nb_pass_seconds_sum counter\n\
             ovnkube_route_nb_pass_seconds_sum {secs}"
        );
        counter(
            &mut s,
            "pod_passes_total",
            "Pod route reconcile passes.",
            "counter",
            g(&self.pod_passes),
        );
        counter(
            &mut s,
            "pod_routes_added_total",
            "Kernel routes added or replaced in pods.",
            "counter",
            g(&self.pod_routes_added),
        );
        counter(
            &mut s,
            "pod_routes_deleted_total",
            "Kernel routes deleted from pods.",
            "counter",
            g(&self.pod_routes_deleted),
        );
        counter(
            &mut s,
            "pod_failures_total",
            "Pods whose programming failed in a pass.",
            "counter",
            g(&self.pod_failures),
        );
        counter(
            &mut s,
            "routes",
            "Route objects known.",
            "gauge",
            g(&self.routes),
        );
        counter(
            &mut s,
            "routes_invalid",
            "Route objects with at least one invalid rule.",
            "gauge",
            g(&self.routes_invalid),
        );
        counter(
            &mut s,
            "problems",
            "Problems currently reported across all Routes.",
            "gauge",
            g(&self.problems),
        );
        counter(
            &mut s,
            "pods_programmed",
            "Pods on this node whose routes are programmed.",
            "gauge",
            g(&self.pods_programmed),
        );
        counter(
            &mut s,
            "nb_connected",
            "1 when the NB database connection is up.",
            "gauge",
            self.nb_connected.load(Ordering::Relaxed) as u64,
        );
        counter(
            &mut s,
            "ready",
            "1 once the first full pass has completed.",
            "gauge",
            self.ready.load(Ordering::Relaxed) as u64,
        );
        s
    }
}

/// Serves the endpoints until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    loop {
        let (mut sock, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
            let Ok(Ok(n)) = read else { return };
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics.render()),
                "/healthz" => ("200 OK", "ok\n".to_owned()),
                "/readyz" if metrics.ready.load(Ordering::Relaxed) => {
                    ("200 OK", "ready\n".to_owned())
                }
                "/readyz" => ("503 Service Unavailable", "not ready\n".to_owned()),
                _ => ("404 Not Found", "not found\n".to_owned()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.nb_transactions_ok.fetch_add(3, Ordering::Relaxed);
        m.nb_pass_micros_sum.fetch_add(1_500_000, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("ovnkube_route_nb_transactions_total{result=\"ok\"} 3"));
        assert!(text.contains("ovnkube_route_nb_pass_seconds_sum 1.5"));
        assert!(text.contains("# TYPE ovnkube_route_routes gauge"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let v = line.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }

    #[tokio::test]
    async fn serves_health_and_metrics() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let m = Arc::new(Metrics::default());
        let server = tokio::spawn(serve(addr, m.clone()));
        let get = |path: &'static str| async move {
            for _ in 0..50 {
                if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                    s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
                        .await
                        .unwrap();
                    let mut out = String::new();
                    s.read_to_string(&mut out).await.unwrap();
                    return out;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("metrics server did not come up");
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        m.ready.store(true, Ordering::Relaxed);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/metrics").await.contains("ovnkube_route_ready 1"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
