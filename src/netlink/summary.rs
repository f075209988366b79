//! What pod passes did, for logs and metrics: one [`PassSummary`] per pass (one INFO line
//! when it changed or failed something, DEBUG otherwise), per-pod detail at DEBUG, and a
//! pod's errors at WARN once per distinct error (a pod failing the same way on every retry
//! is not re-logged). [`Stats`] are cumulative counters any exporter can read.
//!
//! Must not: decide anything; log a line per route at INFO or above.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::NetlinkError;
use super::program::PodReport;
use crate::plan::pod::PodKey;

/// Why a pass ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The plan changed (or the controller asked for pods whose routes changed).
    Plan,
    /// A netlink notification inside a pod's netns (route, link or address change).
    Event,
    /// A pod's network namespace appeared (CNI cache or netns dir).
    Appeared,
    /// The slow safety-net re-check.
    Recheck,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Plan => "plan",
            Trigger::Event => "event",
            Trigger::Appeared => "netns_appeared",
            Trigger::Recheck => "recheck",
        }
    }
}

/// One pass over some pods.
#[derive(Debug)]
pub struct PassSummary {
    pub trigger: Trigger,
    /// Pods whose table was dumped and diffed.
    pub pods: usize,
    /// Pods where something was written.
    pub changed: usize,
    pub added: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub restored: usize,
    /// Routes not installed because their dev is missing in the pod.
    pub skipped_routes: usize,
    /// Pods where a route failed, or that could not be reconciled: (pod, why).
    pub failed: Vec<(PodKey, String)>,
    /// The same failures by [`NetlinkError::label`] of their (first) error, for metrics.
    pub failed_by_label: std::collections::BTreeMap<&'static str, u64>,
    /// Pods with routes planned whose network namespace is not known yet.
    pub pending: Vec<PodKey>,
    /// Pods whose routes and table were already known to match (no dump).
    pub untouched: usize,
    pub elapsed: Duration,
}

impl PassSummary {
    pub fn new(trigger: Trigger) -> Self {
        PassSummary {
            trigger,
            pods: 0,
            changed: 0,
            added: 0,
            replaced: 0,
            deleted: 0,
            restored: 0,
            skipped_routes: 0,
            failed: Vec::new(),
            failed_by_label: std::collections::BTreeMap::new(),
            pending: Vec::new(),
            untouched: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// Adds one pod's report.
    pub fn add(&mut self, pod: &PodKey, r: &PodReport) {
        if matches!(r.fatal, Some(NetlinkError::NetnsGone(_))) {
            // Not a failure: the pod is going away (or its sandbox is being recreated).
            self.pending.push(pod.clone());
            return;
        }
        self.pods += 1;
        self.changed += usize::from(r.changes() > 0);
        self.added += r.added;
        self.replaced += r.replaced;
        self.deleted += r.deleted;
        self.restored += r.restored;
        self.skipped_routes += r.skipped;
        if let Some(why) = failure(r) {
            self.failed.push((pod.clone(), why));
            *self.failed_by_label.entry(failure_label(r)).or_default() += 1;
        }
    }

    /// Routes written (added, replaced, restored) and deleted.
    pub fn changes(&self) -> usize {
        self.added + self.replaced + self.deleted + self.restored
    }

    /// The pass's one summary line: INFO when it wrote or failed something (or, for a plan
    /// pass, when pods wait for their netns), DEBUG otherwise.
    pub fn log(&self) {
        let notable = self.changes() > 0
            || !self.failed.is_empty()
            || (self.trigger == Trigger::Plan && !self.pending.is_empty());
        let ms = self.elapsed.as_secs_f64() * 1e3;
        if notable {
            info!(
                trigger = self.trigger.as_str(),
                pods = self.pods,
                changed = self.changed,
                added = self.added + self.replaced + self.restored,
                deleted = self.deleted,
                failed = self.failed.len(),
                pending = self.pending.len(),
                skipped_routes = self.skipped_routes,
                elapsed_ms = ms,
                "pod pass"
            );
        } else {
            debug!(
                trigger = self.trigger.as_str(),
                pods = self.pods,
                untouched = self.untouched,
                pending = self.pending.len(),
                elapsed_ms = ms,
                "pod pass"
            );
        }
    }
}

/// A pod's failure as one line (its first errors), or None when it did not fail.
/// The label of a failed pod's error: the fatal one, else its first failed route's.
pub fn failure_label(r: &PodReport) -> &'static str {
    r.fatal
        .as_ref()
        .or_else(|| r.errors.first().map(|e| &e.error))
        .map_or("unknown", NetlinkError::label)
}

pub fn failure(r: &PodReport) -> Option<String> {
    if let Some(e) = &r.fatal {
        return Some(e.to_string());
    }
    if r.failed == 0 {
        return None;
    }
    const SHOWN: usize = 3;
    let mut why: Vec<String> = r.errors.iter().take(SHOWN).map(|e| e.to_string()).collect();
    if r.errors.len() > SHOWN {
        why.push(format!("and {} more", r.errors.len() - SHOWN));
    }
    Some(why.join("; "))
}

/// Per-pod detail: DEBUG always; WARN for a failure that differs from the pod's previous
/// one (`last` holds it across passes).
pub fn log_pod(pod: &PodKey, r: &PodReport, trigger: Trigger, last: &mut Option<String>) {
    debug!(pod = %pod, trigger = trigger.as_str(), added = r.added, replaced = r.replaced,
        deleted = r.deleted, restored = r.restored, unchanged = r.unchanged,
        skipped = r.skipped, failed = r.failed, "pod routes");
    let now = match &r.fatal {
        Some(NetlinkError::NetnsGone(_)) => None,
        _ => failure(r),
    };
    if let Some(why) = &now
        && last.as_ref() != Some(why)
    {
        warn!(pod = %pod, uid = %pod.uid, failed = r.failed.max(usize::from(r.fatal.is_some())),
            "pod routes failed: {why}");
    }
    *last = now;
}

/// Cumulative counters of the pod side since start.
#[derive(Debug, Default)]
pub struct Stats {
    pub passes_plan: AtomicU64,
    pub passes_event: AtomicU64,
    pub passes_appeared: AtomicU64,
    pub passes_recheck: AtomicU64,
    /// Pods dumped and diffed.
    pub pods_reconciled: AtomicU64,
    pub routes_added: AtomicU64,
    pub routes_deleted: AtomicU64,
    /// Pod passes that failed (a route or the whole pod).
    pub pod_failures: AtomicU64,
    /// Netlink notification batches that marked a pod for a re-dump.
    pub netlink_events: AtomicU64,
    /// Routes put back by the re-check that no event had announced.
    pub recheck_repairs: AtomicU64,
}

impl Stats {
    pub fn record(&self, s: &PassSummary) {
        let c = match s.trigger {
            Trigger::Plan => &self.passes_plan,
            Trigger::Event => &self.passes_event,
            Trigger::Appeared => &self.passes_appeared,
            Trigger::Recheck => &self.passes_recheck,
        };
        c.fetch_add(1, Ordering::Relaxed);
        let add = |c: &AtomicU64, n: usize| c.fetch_add(n as u64, Ordering::Relaxed);
        add(&self.pods_reconciled, s.pods);
        add(&self.routes_added, s.added + s.replaced + s.restored);
        add(&self.routes_deleted, s.deleted);
        add(&self.pod_failures, s.failed.len());
        if s.trigger == Trigger::Recheck {
            add(&self.recheck_repairs, s.changes());
        }
    }
}

/// A copy of [`Stats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub passes_plan: u64,
    pub passes_event: u64,
    pub passes_appeared: u64,
    pub passes_recheck: u64,
    pub pods_reconciled: u64,
    pub routes_added: u64,
    pub routes_deleted: u64,
    pub pod_failures: u64,
    pub netlink_events: u64,
    pub recheck_repairs: u64,
    /// Pods with a watch socket open now.
    pub watched_pods: u64,
    /// Pods with routes planned that wait for their netns now.
    pub pending_pods: u64,
}

impl Stats {
    pub fn snapshot(&self, watched: usize, pending: usize) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            passes_plan: g(&self.passes_plan),
            passes_event: g(&self.passes_event),
            passes_appeared: g(&self.passes_appeared),
            passes_recheck: g(&self.passes_recheck),
            pods_reconciled: g(&self.pods_reconciled),
            routes_added: g(&self.routes_added),
            routes_deleted: g(&self.routes_deleted),
            pod_failures: g(&self.pod_failures),
            netlink_events: g(&self.netlink_events),
            recheck_repairs: g(&self.recheck_repairs),
            watched_pods: watched as u64,
            pending_pods: pending as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::program::{RouteError, RouteOp};

    fn key() -> PodKey {
        PodKey {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u1".into(),
        }
    }

    #[test]
    fn failures_are_counted_by_their_error_label() {
        let mut s = PassSummary::new(Trigger::Plan);
        s.add(
            &key(),
            &PodReport::fatal(NetlinkError::EnterNetns {
                path: "/x".into(),
                source: std::io::Error::from_raw_os_error(1),
            }),
        );
        let route_failed = PodReport {
            failed: 1,
            errors: vec![RouteError {
                op: RouteOp::Add,
                dst: "10.0.0.0/8"
                    .parse()
                    .unwrap_or_else(|_| ipnet::IpNet::default()),
                error: NetlinkError::Kernel {
                    errno: None,
                    message: "refused".into(),
                },
            }],
            ..PodReport::default()
        };
        s.add(&key(), &route_failed);
        s.add(&key(), &route_failed);
        // A netns going away is not a failure.
        s.add(
            &key(),
            &PodReport::fatal(NetlinkError::NetnsGone("/gone".into())),
        );
        assert_eq!(s.failed.len(), 3);
        assert_eq!(
            s.failed_by_label
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect::<Vec<_>>(),
            vec![("enter_netns", 1), ("kernel", 2)]
        );
    }
}
