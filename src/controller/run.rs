//! `run`: the long-running loop, the same for every source. Event-driven: each burst of
//! updates from the source goes into the planner (`plan::incremental`), and only what it
//! reports dirty is reconciled (the NB rows of those Routes, those pods; `driver`). Replica
//! changes (drift), a role change, the NB client connecting again and the inputs becoming
//! complete are events too. The one timer, the audit (`--audit-mins`), only checks and counts
//! what it had to repair (`audit`).
//!
//! The pod side keeps routes true on its own, from events inside the pods (netlink) and
//! netns appearing (inotify). Every timer: docs/timers.md.
//!
//! Nothing is deleted on incomplete knowledge: no pass runs before the source has delivered
//! a complete list of everything (`Update::Synced`), and in `central` mode the NB is written
//! only from a world that holds every pod of the cluster. Bad input never tears down what is
//! programmed (see `inputs` and `keep`).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::nb::reconcile::{NbError, NbReconciler};

use super::audit::{AuditOutcome, AuditRun, Compared};
use super::driver::{Loop, StatusOut};
use super::inputs::{Inputs, Update};
use super::metrics::Metrics;
use super::nb_side::NbSide;
use super::pod_side::PodSide;
use super::role::{Fence, Role};
use super::status::NodeStatus;
use super::{ControllerError, Options, pods};

/// Settings of the long-running loop.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub metrics_addr: SocketAddr,
    /// How often the audit runs (`None`: never). See [`super::audit`].
    pub audit: Option<Duration>,
    /// `/healthz` fails when the loop has not come round for this long.
    pub watchdog: Duration,
    /// Names this instance in the NB's transaction log.
    pub instance: String,
}

/// Requests to the running loop, answered once everything queued before them is handled.
#[derive(Debug)]
pub enum Control {
    /// Answered once every update sent before it has been planned and reconciled.
    Barrier(oneshot::Sender<()>),
    /// Runs an audit now (after every update sent before it) and answers with what it
    /// repaired.
    Audit(oneshot::Sender<AuditOutcome>),
}

/// What the loop is connected to besides the NB and the pods.
pub struct Wiring {
    pub updates: mpsc::Receiver<Update>,
    pub role: watch::Receiver<Role>,
    pub fence: Fence,
    /// Where this instance's view of Route status goes (Kubernetes mode); `None` logs it.
    pub status: Option<watch::Sender<Arc<NodeStatus>>>,
    pub metrics: Arc<Metrics>,
    /// Requests from the embedding process (tests, tools); `None`: none.
    pub control: Option<mpsc::Receiver<Control>>,
}

/// Connects, waiting as long as it takes (one log line per failed window), keeping the
/// health endpoint alive meanwhile: an unreachable NB is an outage, not a stuck process.
async fn connect(opts: &Options, metrics: &Arc<Metrics>) -> Result<NbReconciler, ControllerError> {
    let remotes = opts.nb.clone().unwrap_or_default();
    let tls_hook = super::tls::reporter(metrics.clone());
    loop {
        metrics.health.beat();
        let mut config = opts.client_config(&remotes)?;
        config.on_tls_failure = Some(tls_hook.clone());
        match NbReconciler::connect(config, Duration::from_secs(10)).await {
            Ok(nb) => return Ok(nb),
            Err(NbError::Unreachable { .. }) => {
                tracing::warn!(%remotes, "NB database not reachable yet; still trying");
            }
            // Reported by the hook; the next client reads the TLS files again, so a fixed
            // certificate is picked up.
            Err(NbError::Ovsdb(crate::ovsdb::Error::TlsHandshake { .. })) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// Everything already queued on the source channel.
fn drain(updates: &mut mpsc::Receiver<Update>, first: Option<Update>) -> Vec<Update> {
    let mut batch: Vec<Update> = first.into_iter().collect();
    while let Ok(more) = updates.try_recv() {
        batch.push(more);
    }
    batch
}

/// Everything already queued on the replica feed.
fn drain_replica(
    subs: &mut crate::ovsdb::Subscription,
    first: Option<crate::ovsdb::ReplicaEvent>,
) -> Vec<crate::ovsdb::ReplicaEvent> {
    let mut events: Vec<_> = first.into_iter().collect();
    while let Some(more) = subs.try_recv() {
        events.push(more);
    }
    events
}

/// Connects to the NB and starts the pod side; the loop's state before any input.
async fn start(
    opts: &Options,
    run: &RunOptions,
    wiring: &mut Wiring,
) -> Result<Option<Loop>, ControllerError> {
    let metrics = wiring.metrics.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ControllerError::Signal)?;
    let mut nb = tokio::select! {
        nb = connect(opts, &metrics) => nb?,
        _ = tokio::signal::ctrl_c() => return Ok(None),
        _ = term.recv() => return Ok(None),
    };
    nb.set_writer(run.instance.clone());
    metrics.nb_connected.set(1);
    metrics.health.nb_synced.store(true, Ordering::Relaxed);
    let rec = if opts.pods.skip {
        None
    } else {
        Some(pods::watching_reconciler(&opts.pods)?)
    };
    let role = *wiring.role.borrow_and_update();
    let status = match wiring.status.take() {
        Some(tx) => StatusOut::Kube(tx),
        None => StatusOut::Log(BTreeMap::new()),
    };
    Ok(Some(Loop::new(
        Inputs::new(opts.plan.clone()),
        NbSide::new(nb, role, wiring.fence.clone(), metrics.clone()),
        PodSide::new(rec, opts.plan.node.clone(), metrics.clone()),
        status,
        metrics,
    )))
}

/// Runs until SIGINT / SIGTERM, or until the NB replica's feed ends.
pub async fn run_loop(
    opts: Options,
    run: RunOptions,
    mut wiring: Wiring,
) -> Result<(), ControllerError> {
    wiring.metrics.health.set_bound(run.watchdog);
    let Some(mut lp) = start(&opts, &run, &mut wiring).await? else {
        return Ok(());
    };
    let Wiring {
        mut updates,
        role: mut roles,
        mut control,
        ..
    } = wiring;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ControllerError::Signal)?;
    let mut subs = lp.nb.reconciler().subscribe();
    let client = lp.nb.reconciler().client().clone();
    // Off: a period that never comes (the branch is disabled anyway).
    let period = run.audit.unwrap_or(YEAR).min(YEAR);
    let mut audit = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    audit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut roles_open, mut control_open) = (true, control.is_some());
    let mut check: Option<(AuditRun, JoinHandle<Compared>)> = None;
    loop {
        lp.metrics.health.beat();
        let retry = lp.nb.retry_after();
        tokio::select! {
            r = client.wait_reconnected(retry.unwrap_or(u64::MAX)), if retry.is_some() => {
                if r.is_ok() {
                    lp.on_reconnected().await;
                } else {
                    // The client is shut down; the replica feed ending stops the loop.
                    lp.nb.forget_retry();
                }
            }
            u = updates.recv() => {
                let Some(u) = u else {
                    return Err(ControllerError::SourceEnded);
                };
                lp.on_updates(drain(&mut updates, Some(u))).await;
            }
            ev = subs.recv() => {
                // The replica's feed only ends when the client is shut down: without it there
                // is no drift repair, so stop loudly rather than carry on half blind.
                let Some(ev) = ev else {
                    return Err(ControllerError::Nb(NbError::Ovsdb(crate::ovsdb::Error::Closed)));
                };
                lp.on_replica(drain_replica(&mut subs, Some(ev))).await;
            }
            changed = roles.changed(), if roles_open => {
                if changed.is_err() {
                    // The elector is gone (shutting down): keep the last role, fenced.
                    roles_open = false;
                    continue;
                }
                let new = *roles.borrow_and_update();
                lp.on_role(new).await;
            }
            c = recv_control(&mut control), if control_open => match c {
                Some(c) => on_control(&mut lp, c, &mut updates, &mut subs).await,
                None => control_open = false,
            },
            // The timer's audit goes step by step: the planner comparison on a blocking
            // thread, then its NB sweep between events (see `audit`).
            _ = audit.tick(), if run.audit.is_some() && check.is_none() && lp.audit_run.is_none() => {
                lp.on_updates(drain(&mut updates, None)).await;
                lp.on_replica(drain_replica(&mut subs, None)).await;
                quiet(&mut lp, &mut subs).await;
                check = lp.begin_audit();
            }
            c = async { check.as_mut().map(|c| &mut c.1).expect("guarded").await }, if check.is_some() => {
                let compared = c.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "audit: the comparison failed; nothing compared");
                    Default::default()
                });
                if let Some((run, _)) = check.take() {
                    lp.audit_run = lp.audit_nb(run, compared).await;
                }
            }
            // The next batch of a full NB pass under way: one between events, so no event
            // waits behind more than one batch (select picks at random among the ready
            // branches, so neither side starves).
            () = std::future::ready(()), if lp.nb.sweeping() => lp.sweep_step().await,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("shutting down; programmed routes and rows stay in place");
    Ok(())
}

/// A request of the control channel, answered once everything queued before it is handled.
async fn on_control(
    lp: &mut Loop,
    c: Control,
    updates: &mut mpsc::Receiver<Update>,
    subs: &mut crate::ovsdb::Subscription,
) {
    lp.on_updates(drain(updates, None)).await;
    lp.on_replica(drain_replica(subs, None)).await;
    lp.finish_sweep().await;
    match c {
        Control::Barrier(tx) => {
            let _ = tx.send(());
        }
        Control::Audit(tx) => {
            quiet(lp, subs).await;
            let _ = tx.send(lp.audit().await);
        }
    }
}

/// How long the NB replica must be quiet before an audit: a change someone made just
/// before (a row deleted by hand) reaches the replica a moment after it commits, and is
/// repaired from its own event, not counted as an audit repair.
const AUDIT_QUIET: Duration = Duration::from_millis(100);

/// Handles replica events until none has come for [`AUDIT_QUIET`] (bounded: a busy NB
/// does not hold the audit off for more than a few seconds).
async fn quiet(lp: &mut Loop, subs: &mut crate::ovsdb::Subscription) {
    let until = tokio::time::Instant::now() + AUDIT_QUIET * 30;
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout(AUDIT_QUIET, subs.recv()).await {
            Ok(Some(ev)) => lp.on_replica(drain_replica(subs, Some(ev))).await,
            _ => return,
        }
    }
}

async fn recv_control(c: &mut Option<mpsc::Receiver<Control>>) -> Option<Control> {
    match c {
        Some(rx) => rx.recv().await,
        None => None,
    }
}

/// `run --source file:...`: the file source feeding the loop; this instance writes everything.
pub async fn run_files(
    paths: Vec<std::path::PathBuf>,
    opts: Options,
    run: RunOptions,
) -> Result<(), ControllerError> {
    let metrics = Arc::new(Metrics::new());
    metrics.set_info(opts.plan.nb_scope, "file");
    // No Lease with files: this instance is the one writer of everything.
    metrics.leader.set(1);
    let server = super::metrics::serve(run.metrics_addr, metrics.clone())
        .await
        .map_err(ControllerError::Metrics)?;
    let (tx, rx) = mpsc::channel(64);
    let source = super::source::spawn_files(paths, opts.input, tx);
    let (_role_tx, role_rx) = watch::channel(Role::ALL);
    let wiring = Wiring {
        updates: rx,
        role: role_rx,
        fence: Fence::always(),
        status: None,
        metrics,
        control: None,
    };
    let result = run_loop(opts, run, wiring).await;
    source.abort();
    server.abort();
    result
}
