//! `run --source kubernetes`: the watches, the elector, the node report writer and the status
//! writer wired around the controller's loop.
//!
//! Modes (docs/operations.md):
//! - `ic`: every node has its own NB; every instance writes its own NB (no election for
//!   that) and plans its own node's pods. The Lease elects the one instance that writes
//!   Route status.
//! - `central`: one NB; the Lease holder writes the NB and Route status, and only it watches
//!   every pod of the cluster (needed for cluster-wide address sets); every instance programs
//!   its own node's pods. A new leader writes nothing to the NB until it has listed every
//!   pod (it starts from its already synced NB replica); a leader that cannot renew stops
//!   writing before its Lease can expire.
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::{mpsc, watch};

use crate::controller::metrics::Metrics;
use crate::controller::role::{Fence, Role};
use crate::controller::status::NodeStatus;
use crate::controller::{Options, RunOptions, Wiring, run_loop};

use super::KubeError;
use super::client::ApiLimits;
use super::lease::{Elector, Timing};
use super::status::{DirtyRoutes, PodIdentity, SeenRoutes, StatusWriter, write_node_reports};
use super::watch::{PodScope, Watches};

/// Where NB rows are written, and by whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// OVN interconnect: each node's own NB, written by that node's instance.
    Ic,
    /// One NB for the cluster, written by the elected leader.
    Central,
}

/// Settings of the Kubernetes source.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    pub mode: Mode,
    /// This node (`spec.nodeName` of the pods programmed here).
    pub node: String,
    /// Names this instance in the Lease and in Events (the Pod's name in a DaemonSet).
    pub identity: String,
    pub lease_namespace: String,
    pub lease_name: String,
    pub timing: Timing,
    /// Node reports and Route status are written at most once per this interval.
    pub status_interval: Duration,
    /// This instance's Pod, owner of its node report.
    pub pod: PodIdentity,
    /// Request rate and list page size (`--kube-api-qps`, `--kube-api-burst`,
    /// `--kube-page-size`).
    pub api: ApiLimits,
}

/// A client within the default request limits (`explain`, the kubectl plugin).
pub(crate) async fn client() -> Result<Client, KubeError> {
    super::client::client(ApiLimits::default()).await
}

/// Keeps the loop's role, the pod watch scope and the metrics in step with leadership.
async fn follow_leadership(
    mode: Mode,
    mut leader: watch::Receiver<bool>,
    role: watch::Sender<Role>,
    mut watches: Watches,
    metrics: Arc<Metrics>,
) {
    let mut was = false;
    loop {
        let is = *leader.borrow_and_update();
        if is != was {
            metrics.lease_transitions.inc();
            was = is;
        }
        metrics.leader.set(i64::from(is));
        if mode == Mode::Central {
            let scope = if is {
                PodScope::Cluster
            } else {
                PodScope::Node
            };
            watches.set_pod_scope(scope).await;
        }
        let _ = role.send(Role {
            write_nb: mode == Mode::Ic || is,
            write_status: is,
        });
        if leader.changed().await.is_err() {
            // The elector stopped (shutting down): no more writes of either kind.
            let _ = role.send(Role {
                write_nb: mode == Mode::Ic,
                write_status: false,
            });
            return;
        }
    }
}

/// Runs the status writer whenever this instance leads.
async fn write_status(
    mut writer: StatusWriter,
    routes: SeenRoutes,
    dirty: DirtyRoutes,
    mut local: watch::Receiver<Arc<NodeStatus>>,
    mut leader: watch::Receiver<bool>,
) {
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return;
        }
        tracing::info!("writing Route status");
        writer.run(&routes, &dirty, &mut local, &mut leader).await;
    }
}

/// Runs until SIGINT / SIGTERM; then releases the Lease. Programmed state stays in place.
pub async fn run_kubernetes(
    opts: Options,
    run: RunOptions,
    k: KubeOptions,
) -> Result<(), KubeError> {
    k.timing.check().map_err(KubeError::Timing)?;
    let client = super::client::client(k.api).await?;
    let metrics = Arc::new(Metrics::new());
    metrics.set_info(opts.plan.nb_scope, "kubernetes");
    let server = crate::controller::metrics::serve(run.metrics_addr, metrics.clone())
        .await
        .map_err(|e| KubeError::Controller(crate::controller::ControllerError::Metrics(e)))?;
    // In `central` mode NB writes are fenced by the Lease; in `ic` mode each node owns its NB.
    let election_fence = Fence::closed();
    let nb_fence = match k.mode {
        Mode::Central => election_fence.clone(),
        Mode::Ic => Fence::always(),
    };
    let (updates_tx, updates_rx) = mpsc::channel(1024);
    let dirty = DirtyRoutes::default();
    let (watches, routes) = Watches::start(
        client.clone(),
        k.node.clone(),
        PodScope::Node,
        updates_tx,
        metrics.clone(),
        dirty.clone(),
        k.api.page_size,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let (elector, leader) = Elector::new(
        client.clone(),
        &k.lease_namespace,
        &k.lease_name,
        &k.identity,
        k.timing,
        election_fence,
    );
    let elector = tokio::spawn(elector.run(stop_rx));
    let (role_tx, role_rx) = watch::channel(Role {
        write_nb: k.mode == Mode::Ic,
        write_status: false,
    });
    let follower = tokio::spawn(follow_leadership(
        k.mode,
        leader.clone(),
        role_tx,
        watches,
        metrics.clone(),
    ));
    let (status_tx, status_rx) = watch::channel(Arc::new(NodeStatus::default()));
    let reports = tokio::spawn(write_node_reports(
        client.clone(),
        k.node.clone(),
        k.pod.clone(),
        status_rx.clone(),
        k.status_interval,
        metrics.clone(),
    ));
    let status = tokio::spawn(write_status(
        StatusWriter::new(
            client,
            &k.identity,
            &k.node,
            metrics.clone(),
            k.status_interval,
        ),
        routes,
        dirty,
        status_rx,
        leader,
    ));
    let wiring = Wiring {
        updates: updates_rx,
        role: role_rx,
        fence: nb_fence,
        status: Some(status_tx),
        metrics,
        control: None,
    };
    let result = run_loop(opts, run, wiring).await;
    // Stop writing, then hand the Lease over so another instance takes over in seconds.
    status.abort();
    reports.abort();
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(5), elector)
        .await
        .is_err()
    {
        tracing::warn!("lease release timed out; it expires on its own");
    }
    follower.abort();
    server.abort();
    result.map_err(KubeError::from)
}
