//! One pod's reconcile over an rtnetlink handle whose socket lives in the pod's netns:
//! dump links and routes, [`plan_pod`], then apply in a safe order:
//! record originals (fsync) -> delete ours -> restore originals -> add / replace ->
//! remove other foreign defaults. Requests of one phase are sent together (netlink
//! pipelines them on the one socket), which is what makes bulk programming fast.
//!
//! Must not: fail the whole pod for one route (each route's error is reported); touch
//! the kernel's default route before its original is safely on disk.
use std::path::Path;

use futures::future::join_all;
use ipnet::IpNet;
use rtnetlink::Handle;
use tracing::{debug, warn};

use super::NetlinkError;
use super::diff::{PodPlan, Skip, plan_pod};
use nix::errno::Errno;

use super::kernel::{self, KernelRoute};
use super::state::StateDir;
use crate::plan::pod::{PodKey, PodRoutes};

/// What was being done to a route when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteOp {
    Add,
    Replace,
    Delete,
    /// Putting an original default route back.
    Restore,
    /// Leaving a foreign route alone because it holds the destination + metric we want.
    Conflict,
}

/// One route's failure.
#[derive(Debug)]
pub struct RouteError {
    pub op: RouteOp,
    pub dst: IpNet,
    pub error: NetlinkError,
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}: {}", self.op, self.dst, self.error)
    }
}

/// The outcome of one pod's reconcile.
#[derive(Debug, Default)]
pub struct PodReport {
    pub added: usize,
    pub replaced: usize,
    pub deleted: usize,
    /// Original default routes put back.
    pub restored: usize,
    /// Wanted routes already correct.
    pub unchanged: usize,
    /// Routes not installed because their dev is missing in the pod.
    pub skipped: usize,
    pub failed: usize,
    pub skips: Vec<Skip>,
    pub errors: Vec<RouteError>,
    /// Set when the pod could not be reconciled at all (netns gone, dump failed, ...).
    pub fatal: Option<NetlinkError>,
}

impl PodReport {
    /// A report for a pod that could not be reconciled at all.
    pub fn fatal(e: NetlinkError) -> Self {
        PodReport {
            fatal: Some(e),
            ..Default::default()
        }
    }

    /// Number of kernel changes made.
    pub fn changes(&self) -> usize {
        self.added + self.replaced + self.deleted + self.restored
    }

    /// True when nothing failed (skips are not failures).
    pub fn is_ok(&self) -> bool {
        self.fatal.is_none() && self.failed == 0
    }

    fn fail(&mut self, op: RouteOp, dst: IpNet, error: NetlinkError) {
        self.failed += 1;
        self.errors.push(RouteError { op, dst, error });
    }
}

fn kernel_err(e: &rtnetlink::Error) -> NetlinkError {
    NetlinkError::Kernel {
        errno: kernel::errno(e),
        message: match e {
            rtnetlink::Error::NetlinkError(m) => m.to_io().to_string(),
            other => other.to_string(),
        },
    }
}

/// Reconciles one pod. `netns` is only recorded in the state file.
pub async fn reconcile_pod(
    handle: Handle,
    pod: PodKey,
    netns: &Path,
    desired: &PodRoutes,
    state_dir: &StateDir,
    protocol: u8,
) -> PodReport {
    let mut state = match state_dir.load(&pod) {
        Ok(s) => s,
        Err(e) => return PodReport::fatal(e),
    };
    // Only the devs we need: the desired ones and those of recorded originals.
    let mut names: Vec<&str> = desired
        .routes
        .iter()
        .map(|r| &*r.dev)
        .chain(desired.default_routes.iter().map(|d| d.dev.as_str()))
        .chain(state.v4.iter().chain(&state.v6).map(|r| &*r.dev))
        .collect();
    names.sort_unstable();
    names.dedup();
    let (links, current) = futures::join!(
        kernel::lookup_links(&handle, &names),
        kernel::dump_routes(&handle)
    );
    let (mut links, current) = match (links, current) {
        (Ok(l), Ok(r)) => (l, r),
        (Err(e), _) | (_, Err(e)) => return PodReport::fatal(e),
    };
    let mut plan = plan_pod(desired, &links, &current, &state, protocol);
    if plan.record.iter().any(|r| r.dev.is_empty()) {
        // A default route to take over sits on a dev we did not look up: learn its name
        // (needed to restore it later) from a full link dump.
        links = match kernel::dump_links(&handle).await {
            Ok(l) => l,
            Err(e) => return PodReport::fatal(e),
        };
        plan = plan_pod(desired, &links, &current, &state, protocol);
    }
    let mut report = PodReport {
        unchanged: plan.unchanged,
        skipped: plan.skipped.len(),
        skips: plan.skipped.clone(),
        ..Default::default()
    };
    for c in &plan.conflicts {
        report.fail(
            RouteOp::Conflict,
            c.wanted.dst,
            NetlinkError::Conflict {
                dst: c.foreign.dst,
                protocol: c.foreign.protocol,
                metric: c.foreign.metric,
            },
        );
    }
    for bad in &plan.invalid {
        report.fail(
            RouteOp::Add,
            bad.dst,
            NetlinkError::InvalidRoute(bad.reason.clone()),
        );
    }
    if plan.is_noop() {
        return report;
    }
    debug!(pod = %pod, writes = plan.writes.len(), deletes = plan.deletes.len(),
        restores = plan.restores.len(), "reconciling pod routes");

    // 1. Record originals before touching any default route.
    if !plan.record.is_empty() {
        for rec in &plan.record {
            state.family_mut(kernel_is_v6(&rec.route)).push(rec.clone());
        }
        state.netns = Some(netns.to_path_buf());
        if let Err(e) = state_dir.store(&state) {
            return PodReport::fatal(e);
        }
    }

    apply(&handle, &plan, &links, &mut state, state_dir, &mut report).await;
    report
}

fn kernel_is_v6(r: &KernelRoute) -> bool {
    super::is_v6(&r.dst)
}

async fn apply(
    handle: &Handle,
    plan: &PodPlan,
    links: &kernel::Links,
    state: &mut super::state::PodState,
    state_dir: &StateDir,
    report: &mut PodReport,
) {
    // 2. Delete our routes that are no longer wanted (gone already is fine).
    let results = join_all(plan.deletes.iter().map(|r| kernel::del_route(handle, r))).await;
    for (r, res) in plan.deletes.iter().zip(results) {
        match res {
            Ok(()) => report.deleted += 1,
            Err(e) if kernel::errno(&e) == Some(Errno::ESRCH) => {}
            Err(e) => report.fail(RouteOp::Delete, r.dst, kernel_err(&e)),
        }
    }

    // 3. Restore originals of families no longer under defaultRoute.
    let mut restore_failed = [false, false];
    for rec in &plan.restores {
        let v6 = kernel_is_v6(&rec.route);
        let Some(&oif) = links.get(&rec.dev) else {
            restore_failed[usize::from(v6)] = true;
            report.fail(
                RouteOp::Restore,
                rec.route.dst,
                NetlinkError::RestoreDevMissing {
                    dst: rec.route.dst,
                    dev: rec.dev.clone(),
                },
            );
            continue;
        };
        let mut route = rec.route.clone();
        route.oif = Some(oif);
        match kernel::add_route(handle, &route, false).await {
            Ok(()) => report.restored += 1,
            Err(e) if kernel::errno(&e) == Some(Errno::EEXIST) => {}
            Err(e) => {
                restore_failed[usize::from(v6)] = true;
                report.fail(RouteOp::Restore, route.dst, kernel_err(&e));
            }
        }
    }
    if !plan.restore_families.is_empty() {
        for &v6 in &plan.restore_families {
            if !restore_failed[usize::from(v6)] {
                state.family_mut(v6).clear();
            }
        }
        if let Err(e) = state_dir.store(state) {
            warn!(error = %e, "cannot update default-route state after restore");
            report.fail(RouteOp::Restore, plan.restores[0].route.dst, e);
        }
    }

    // 4. Add / replace wanted routes.
    let results = join_all(
        plan.writes
            .iter()
            .map(|(r, replace)| kernel::add_route(handle, r, *replace)),
    )
    .await;
    let mut default_written = [false, false];
    for ((r, replace), res) in plan.writes.iter().zip(results) {
        match res {
            Ok(()) => {
                if r.dst.prefix_len() == 0 {
                    default_written[usize::from(kernel_is_v6(r))] = true;
                }
                if *replace {
                    report.replaced += 1
                } else {
                    report.added += 1
                }
            }
            Err(e) => {
                let op = if *replace {
                    RouteOp::Replace
                } else {
                    RouteOp::Add
                };
                report.fail(op, r.dst, kernel_err(&e));
            }
        }
    }

    // 5. Other foreign defaults of a family we took over (only once ours is in place,
    //    so a failed write never leaves the pod without a default route).
    let deletes: Vec<&KernelRoute> = plan
        .foreign_default_deletes
        .iter()
        .filter(|r| {
            let v6 = kernel_is_v6(r);
            default_written[usize::from(v6)]
                || !plan
                    .writes
                    .iter()
                    .any(|(w, _)| w.dst.prefix_len() == 0 && kernel_is_v6(w) == v6)
        })
        .collect();
    let results = join_all(deletes.iter().map(|r| kernel::del_route(handle, r))).await;
    for (r, res) in deletes.iter().zip(results) {
        match res {
            Ok(()) => report.deleted += 1,
            Err(e) if kernel::errno(&e) == Some(Errno::ESRCH) => {}
            Err(e) => report.fail(RouteOp::Delete, r.dst, kernel_err(&e)),
        }
    }
}
