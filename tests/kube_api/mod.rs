//! A Kubernetes API test server, written from the Kubernetes API conventions (no
//! kube-apiserver can be installed on these machines). It is the only stand-in the test
//! suite uses; `tests/kube_api_server.rs` checks it with `kubectl` 1.32 as an independent
//! client.
//!
//! What it implements (each in its own file):
//! - storage with one global resourceVersion, per-object resourceVersion, uid, generation
//!   bumped only on spec changes, finalizers (`store.rs`);
//! - list (label and field selectors, `limit`/`continue` pagination over a consistent
//!   snapshot, `resourceVersion` + `resourceVersionMatch`), get, create, update with
//!   optimistic concurrency (409 on a stale resourceVersion), delete (`handlers.rs`);
//! - watch from a resourceVersion, bookmarks, 410 Gone for a compacted one, streaming lists
//!   (`watch.rs`);
//! - the status subresource (status ignored on the main resource and vice versa);
//! - JSON merge patch, JSON patch, strategic merge patch (built-ins), server-side apply with
//!   managed fields and conflicts (`patch.rs`, `fields.rs`);
//! - CustomResourceDefinitions created at runtime: pruning, defaulting, `fieldValidation=
//!   Strict`, printer columns in Tables (`schema.rs`, `table.rs`), and validation as the API
//!   server does it: types, required fields, enums, bounds, patterns and the CRD's CEL rules
//!   (`x-kubernetes-validations`, run with tests/cel), refused with 422 Invalid and one cause
//!   per failure; `dryRun=All` on every write;
//! - discovery (`discovery.rs`);
//! - fault injection: dropped watches, compaction (410), failing requests, latency, the
//!   whole server down for a while; and a log of every request.
#![allow(dead_code)]

#[path = "../cel/mod.rs"]
pub mod cel;
mod discovery;
mod errors;
mod fields;
mod handlers;
mod http;
mod patch;
mod schema;
mod select;
mod store;
mod table;
mod types;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

pub use errors::ApiError;
pub use http::Format;
#[allow(unused_imports)] // used by some of the including crates
pub use select::LabelSelector;
use store::Db;

/// One request, as the server saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_type: String,
    pub user_agent: String,
    /// get, list, watch, create, update, patch, delete (empty for discovery).
    pub verb: String,
    /// When the request arrived.
    pub at: std::time::Instant,
    pub group: String,
    /// Plural, with `/subresource`.
    pub resource: String,
    pub code: u16,
}

impl Logged {
    pub fn param(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Faults {
    latency: Duration,
    fail_remaining: u32,
    fail_code: u16,
}

pub struct Shared {
    db: Mutex<Db>,
    log: Mutex<Vec<Logged>>,
    faults: Mutex<Faults>,
    bookmark_every: Mutex<Duration>,
    kill_watches: tokio::sync::watch::Sender<u64>,
    addr: SocketAddr,
}

impl Shared {
    fn record(&self, l: Logged) {
        if let Ok(mut log) = self.log.lock() {
            log.push(l);
        }
    }

    /// Latency and injected failures, before a request is served.
    async fn fault_before(&self, path: &str) -> Option<ApiError> {
        let (latency, fail) = {
            let mut f = self.faults.lock().expect("faults lock");
            let fail = if f.fail_remaining > 0 && !path.starts_with("/healthz") {
                f.fail_remaining -= 1;
                Some(f.fail_code)
            } else {
                None
            };
            (f.latency, fail)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        fail.map(|code| match code {
            503 => ApiError::unavailable(),
            _ => ApiError::internal("injected failure"),
        })
    }
}

/// The running server.
pub struct ApiServer {
    shared: Arc<Shared>,
    accept: Mutex<Option<AbortHandle>>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop_serving();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        let h = tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(http::handle(shared, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
        if let Ok(mut c) = conns.lock() {
            c.retain(|h| !h.is_finished());
            c.push(h.abort_handle());
        }
    }
}

impl ApiServer {
    /// Starts on a free port of 127.0.0.1 with the built-in types and the namespaces every
    /// cluster has (`default`, `kube-system`).
    pub async fn start() -> Arc<ApiServer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let mut db = Db::new();
        for t in types::builtins() {
            db.types.insert(t.key(), t);
        }
        let (kill, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            db: Mutex::new(db),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            bookmark_every: Mutex::new(Duration::from_secs(60)),
            kill_watches: kill,
            addr,
        });
        let server = Arc::new(ApiServer {
            shared: shared.clone(),
            accept: Mutex::new(None),
            conns: Arc::new(Mutex::new(Vec::new())),
        });
        server.serve(listener);
        for ns in ["default", "kube-system"] {
            server
                .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .expect("namespace");
        }
        server
    }

    fn serve(&self, listener: TcpListener) {
        let h = tokio::spawn(accept_loop(
            listener,
            self.shared.clone(),
            self.conns.clone(),
        ));
        *self.accept.lock().expect("lock") = Some(h.abort_handle());
    }

    fn stop_serving(&self) {
        if let Some(h) = self.accept.lock().expect("lock").take() {
            h.abort();
        }
        for c in self.conns.lock().expect("lock").drain(..) {
            c.abort();
        }
        self.drop_watches();
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A kubeconfig for this server in `dir` (what `kubectl --kubeconfig` and the
    /// controller's `$KUBECONFIG` read).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\nusers:\n- name: test\n  user: {{}}\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// A kube-rs client for this server (for test set-up and assertions).
    pub fn client(&self) -> kube::Client {
        let url: hyper::Uri = self.url().parse().expect("valid url");
        kube::Client::try_from(kube::Config::new(url)).expect("kube client")
    }

    // ---- direct access for test set-up (same code paths as HTTP requests) ----

    fn target_for(&self, obj: &Value, sub: Option<&str>) -> Result<http::Target, ApiError> {
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let (group, version) = av.split_once('/').unwrap_or(("", av));
        let db = self.shared.db.lock().expect("db lock");
        let ty = db
            .types
            .values()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
            .ok_or_else(|| ApiError::bad_request(format!("no type {av} {kind}")))?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(http::Target {
            namespace: if ty.namespaced {
                Some(ns.unwrap_or_else(|| "default".into()))
            } else {
                None
            },
            ty,
            name: obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            subresource: sub.map(str::to_owned),
        })
    }

    /// Creates an object (as POST does).
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let mut t = self.target_for(&obj, None)?;
        t.name = None;
        handlers::resource(
            &self.shared,
            &t,
            "create",
            &vec![],
            Format::Json,
            obj,
            "application/json",
            "test",
        )
        .map(|(_, v)| v)
    }

    /// Replaces an object's status (as PUT .../status does), without a precondition.
    pub fn set_status(&self, obj: &Value, status: Value) -> Result<Value, ApiError> {
        let t = self.target_for(obj, Some("status"))?;
        let body = json!({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": t.name, "namespace": t.namespace}, "status": status});
        handlers::resource(
            &self.shared,
            &t,
            "patch",
            &vec![],
            Format::Json,
            body,
            "application/merge-patch+json",
            "test",
        )
        .map(|(_, v)| v)
    }

    /// Merge-patches an object (as PATCH with application/merge-patch+json does).
    pub fn merge(&self, obj: &Value, patch: Value) -> Result<Value, ApiError> {
        let t = self.target_for(obj, None)?;
        handlers::resource(
            &self.shared,
            &t,
            "patch",
            &vec![],
            Format::Json,
            patch,
            "application/merge-patch+json",
            "test",
        )
        .map(|(_, v)| v)
    }

    pub fn delete(&self, obj: &Value) -> Result<(), ApiError> {
        let t = self.target_for(obj, None)?;
        handlers::resource(
            &self.shared,
            &t,
            "delete",
            &vec![],
            Format::Json,
            Value::Null,
            "",
            "test",
        )
        .map(|_| ())
    }

    /// The stored object, if any.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}});
        let t = self.target_for(&obj, None).ok()?;
        handlers::resource(
            &self.shared,
            &t,
            "get",
            &vec![],
            Format::Json,
            Value::Null,
            "",
            "test",
        )
        .ok()
        .map(|(_, v)| v)
    }

    /// Creates every CRD in a YAML file (as `kubectl apply` would).
    pub fn create_crds(&self, file: &Path) {
        let text = std::fs::read_to_string(file).expect("read CRD file");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).expect("CRD YAML");
            if !v.is_null() {
                self.create(v).expect("create CRD");
            }
        }
    }

    /// Turns validation of custom resources against their CRD off (or back on): objects are
    /// then stored as they come, like those written before a CRD had its rules.
    pub fn set_validation(&self, on: bool) {
        self.shared.db.lock().expect("db lock").validation = on;
    }

    pub fn resource_version(&self) -> u64 {
        self.shared.db.lock().expect("db lock").rv
    }

    // ---- faults ----

    /// Ends every open watch (clients re-watch from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.shared.kill_watches.send_modify(|n| *n += 1);
    }

    /// Forgets the event history: watches and paginated lists from before now get 410.
    pub fn compact(&self) {
        self.shared.db.lock().expect("db lock").compact();
    }

    /// Keeps at most `n` events (older ones are compacted as they age out).
    pub fn set_history_limit(&self, n: usize) {
        self.shared.db.lock().expect("db lock").history_limit = n;
    }

    /// The next `n` requests fail with `code` (500 or 503).
    pub fn fail_next(&self, n: u32, code: u16) {
        let mut f = self.shared.faults.lock().expect("lock");
        f.fail_remaining = n;
        f.fail_code = code;
    }

    pub fn set_latency(&self, d: Duration) {
        self.shared.faults.lock().expect("lock").latency = d;
    }

    pub fn set_bookmark_interval(&self, d: Duration) {
        *self.shared.bookmark_every.lock().expect("lock") = d;
    }

    /// The server goes away (connections refused, open ones cut) for `d`, then comes back
    /// on the same port with the same data.
    pub async fn down_for(&self, d: Duration) {
        self.stop_serving();
        tokio::time::sleep(d).await;
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.shared.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot listen again on {}: {e}", self.shared.addr),
            }
        };
        self.serve(listener);
    }

    // ---- the request log ----

    pub fn requests(&self) -> Vec<Logged> {
        self.shared.log.lock().expect("lock").clone()
    }

    pub fn clear_requests(&self) {
        self.shared.log.lock().expect("lock").clear();
    }

    /// Requests with this verb on this resource (`routes/status`, ...).
    /// Lists of `resource` that asked for a page after the first (a `continue` token).
    pub fn lists_continued(&self, resource: &str) -> usize {
        self.shared
            .log
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.verb == "list" && l.resource == resource)
            .filter(|l| {
                l.query
                    .iter()
                    .any(|(k, v)| k == "continue" && !v.is_empty())
            })
            .count()
    }

    pub fn count(&self, verb: &str, resource: &str) -> usize {
        self.shared
            .log
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.verb == verb && l.resource == resource)
            .count()
    }
}

/// The server on a runtime of its own, for tests that are otherwise synchronous (the
/// fixture's polls block their thread).
pub struct Background {
    pub api: Arc<ApiServer>,
    pub rt: tokio::runtime::Runtime,
}

impl Background {
    pub fn start() -> Background {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let api = rt.block_on(ApiServer::start());
        Background { api, rt }
    }

    /// Takes the server down for `d` in the background; returns at once.
    pub fn down_for(&self, d: Duration) {
        let api = self.api.clone();
        self.rt.spawn(async move { api.down_for(d).await });
    }
}
