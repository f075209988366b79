//! One pod's reconcile over a socket in the pod's netns ([`Rtnl`]): look up its links, dump
//! its routes, [`plan_pod`], then apply in a safe order: record originals (fsync) -> delete
//! ours -> restore originals -> add / replace -> remove other foreign defaults. The
//! requests of one phase go to the kernel together, in as few system calls as fit. When
//! the pod's table is known from our last clean pass ([`Programmed`]), a change of its
//! planned routes is written without the lookups and the dump.
//!
//! Must not: fail the whole pod for one route (each route's error is reported); touch
//! the kernel's default route before its original is safely on disk.
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use nix::errno::Errno;
use tracing::{debug, warn};

use super::NetlinkError;
use super::diff::{PodPlan, Skip, dev_gateway, plan_pod};
use super::kernel::KernelRoute;
use super::programmed::{Change, Programmed};
use super::rtnl::{Rtnl, Write};
use super::state::{PodState, StateDir};
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

fn kernel_err(errno: Errno) -> NetlinkError {
    NetlinkError::Kernel {
        errno: Some(errno),
        message: std::io::Error::from(errno).to_string(),
    }
}

/// Reconciles one pod over a socket in its netns. `netns` is only recorded in the state
/// file. With `known` (the pod's table as our last clean pass left it, see
/// [`super::programmed`]), a change of its planned routes is written without reading the
/// table first; otherwise, or when that is not enough, the table is dumped and diffed.
/// Returns the report and what is known of the table now (None unless the pass was clean).
pub fn reconcile_pod(
    sock: &mut Rtnl,
    pod: &PodKey,
    netns: &Path,
    desired: &Arc<PodRoutes>,
    state_dir: &StateDir,
    protocol: u8,
    known: Option<Programmed>,
) -> (PodReport, Option<Programmed>) {
    let mut done = PodReport::default();
    if let Some(known) = known
        && let Some(change) = known.change_to(desired, protocol)
    {
        let (report, refused) = apply_change(sock, &change);
        if !refused {
            return (report, Some(known.advance(desired.clone(), change)));
        }
        // Refused (something in the way we have not heard of yet): the full pass finds out
        // what and reports it; what was written stays counted.
        done = report;
    }
    let (mut report, known) = full_pass(sock, pod, netns, desired, state_dir, protocol);
    report.added += done.added;
    report.replaced += done.replaced;
    report.deleted += done.deleted;
    (report, known)
}

/// Writes a change computed from what is known: the counts of what was written, and
/// whether the kernel refused anything.
fn apply_change(sock: &mut Rtnl, change: &Change) -> (PodReport, bool) {
    let mut report = PodReport {
        unchanged: change.unchanged,
        skipped: change.skips.len(),
        skips: change.skips.clone(),
        ..Default::default()
    };
    let writes: Vec<Write<'_>> = change
        .deletes
        .iter()
        .map(Write::Delete)
        .chain(
            change
                .writes
                .iter()
                .map(|(r, replace)| Write::Add(r, *replace)),
        )
        .collect();
    if writes.is_empty() {
        return (report, false);
    }
    let Ok(results) = sock.write(&writes) else {
        return (report, true);
    };
    let mut refused = false;
    for (w, res) in writes.iter().zip(results) {
        match (w, res) {
            (Write::Delete(_), Ok(())) => report.deleted += 1,
            // Gone already: what we wanted.
            (Write::Delete(_), Err(Errno::ESRCH)) => {}
            (Write::Add(_, true), Ok(())) => report.replaced += 1,
            (Write::Add(_, false), Ok(())) => report.added += 1,
            (_, Err(_)) => refused = true,
        }
    }
    (report, refused)
}

/// The devs a pass looks up: the planned ones and those of recorded originals.
fn dev_names(desired: &PodRoutes, state: &PodState) -> Vec<String> {
    let mut names: Vec<&str> = desired
        .routes
        .iter()
        .map(|r| &*r.dev)
        .chain(desired.default_routes.iter().map(|d| d.dev.as_str()))
        .chain(state.v4.iter().chain(&state.v6).map(|r| &*r.dev))
        .collect();
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(str::to_owned).collect()
}

/// Dump, diff, write.
fn full_pass(
    sock: &mut Rtnl,
    pod: &PodKey,
    netns: &Path,
    desired: &Arc<PodRoutes>,
    state_dir: &StateDir,
    protocol: u8,
) -> (PodReport, Option<Programmed>) {
    let fatal = |e| (PodReport::fatal(e), None);
    let mut state = match state_dir.load(pod) {
        Ok(s) => s,
        Err(e) => return fatal(e),
    };
    let owned = dev_names(desired, &state);
    let names: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut links = match sock.links(&names) {
        Ok(l) => l,
        Err(e) => return fatal(e),
    };
    let current = match sock.dump_routes() {
        Ok(r) => r,
        Err(e) => return fatal(e),
    };
    let mut plan = plan_pod(desired, &links, &current, &state, protocol);
    if plan.record.iter().any(|r| r.dev.is_empty()) {
        // A default route to take over sits on a dev we did not look up: learn its name
        // (needed to restore it later) from a full link dump.
        links = match sock.dump_links() {
            Ok(l) => l,
            Err(e) => return fatal(e),
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
    if !plan.is_noop() {
        debug!(pod = %pod, writes = plan.writes.len(), deletes = plan.deletes.len(),
            restores = plan.restores.len(), "reconciling pod routes");
        // 1. Record originals before touching any default route.
        if !plan.record.is_empty() {
            for rec in &plan.record {
                state.family_mut(kernel_is_v6(&rec.route)).push(rec.clone());
            }
            state.netns = Some(netns.to_path_buf());
            if let Err(e) = state_dir.store(&state) {
                return fatal(e);
            }
        }
        if let Err(e) = apply(sock, &plan, &links, &mut state, state_dir, &mut report) {
            report.fatal = Some(e);
        }
    }
    let known = (report.is_ok() && leaves_foreign_alone(&plan, &current, protocol)).then(|| {
        let skips = plan.skipped.clone();
        Programmed::new(
            desired.clone(),
            &names,
            &links,
            |dev, oif, v6| dev_gateway(&current, state.family(v6), dev, oif, v6, protocol),
            skips,
        )
    });
    (report, known)
}

/// True when the pass changed no route of anyone else (no default route taken over or
/// given back): then the foreign part of the table is what the dump showed, and what
/// [`Programmed`] derives from it holds.
fn leaves_foreign_alone(plan: &PodPlan, current: &[KernelRoute], protocol: u8) -> bool {
    plan.record.is_empty()
        && plan.restores.is_empty()
        && plan.foreign_default_deletes.is_empty()
        && !plan.writes.iter().any(|(w, _)| {
            w.dst.prefix_len() == 0
                && current
                    .iter()
                    .any(|c| c.protocol != protocol && c.dst == w.dst && c.metric == w.metric)
        })
}

fn kernel_is_v6(r: &KernelRoute) -> bool {
    super::is_v6(&r.dst)
}

/// Deletes (gone already is fine), counted in the report.
fn delete(
    sock: &mut Rtnl,
    routes: &[&KernelRoute],
    report: &mut PodReport,
) -> Result<(), NetlinkError> {
    let writes: Vec<Write<'_>> = routes.iter().map(|r| Write::Delete(r)).collect();
    for (r, res) in routes.iter().zip(sock.write(&writes)?) {
        match res {
            Ok(()) => report.deleted += 1,
            Err(Errno::ESRCH) => {}
            Err(e) => report.fail(RouteOp::Delete, r.dst, kernel_err(e)),
        }
    }
    Ok(())
}

fn apply(
    sock: &mut Rtnl,
    plan: &PodPlan,
    links: &super::kernel::Links,
    state: &mut super::state::PodState,
    state_dir: &StateDir,
    report: &mut PodReport,
) -> Result<(), NetlinkError> {
    // 2. Delete our routes that are no longer wanted.
    delete(sock, &plan.deletes.iter().collect::<Vec<_>>(), report)?;
    // 3. Restore originals of families no longer under defaultRoute.
    let restore_failed = restore(sock, plan, links, report)?;
    forget_restored(plan, restore_failed, state, state_dir, report);
    // 4. Add / replace wanted routes.
    let default_written = write_wanted(sock, plan, report)?;
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
    delete(sock, &deletes, report)
}

/// Puts back the recorded original default routes of the families given back; says, per
/// family (IPv4, IPv6), whether any restore failed.
fn restore(
    sock: &mut Rtnl,
    plan: &PodPlan,
    links: &super::kernel::Links,
    report: &mut PodReport,
) -> Result<[bool; 2], NetlinkError> {
    let mut restore_failed = [false, false];
    let mut restores = Vec::new();
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
        restores.push(route);
    }
    let writes: Vec<Write<'_>> = restores.iter().map(|r| Write::Add(r, false)).collect();
    for (route, res) in restores.iter().zip(sock.write(&writes)?) {
        match res {
            Ok(()) => report.restored += 1,
            Err(Errno::EEXIST) => {}
            Err(e) => {
                restore_failed[usize::from(kernel_is_v6(route))] = true;
                report.fail(RouteOp::Restore, route.dst, kernel_err(e));
            }
        }
    }
    Ok(restore_failed)
}

/// Drops the recorded originals of the families restored without failure (a failed family
/// keeps its record, so the next pass tries again).
fn forget_restored(
    plan: &PodPlan,
    restore_failed: [bool; 2],
    state: &mut super::state::PodState,
    state_dir: &StateDir,
    report: &mut PodReport,
) {
    if plan.restore_families.is_empty() {
        return;
    }
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

/// Adds / replaces the wanted routes; says, per family (IPv4, IPv6), whether our default
/// route was written.
fn write_wanted(
    sock: &mut Rtnl,
    plan: &PodPlan,
    report: &mut PodReport,
) -> Result<[bool; 2], NetlinkError> {
    let writes: Vec<Write<'_>> = plan
        .writes
        .iter()
        .map(|(r, replace)| Write::Add(r, *replace))
        .collect();
    let mut default_written = [false, false];
    for ((r, replace), res) in plan.writes.iter().zip(sock.write(&writes)?) {
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
                report.fail(op, r.dst, kernel_err(e));
            }
        }
    }
    Ok(default_written)
}
