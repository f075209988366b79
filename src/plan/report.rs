//! Status material per Route: counts, skip reasons, a bounded list of problems, the one-word
//! summary and the conditions. The controller turns this into `RouteStatus` (adding times
//! and observedGeneration); the planner only decides the content.
use std::collections::BTreeMap;

use crate::api::Problem;

/// Reasons the planner adds on top of validation's.
pub mod reason {
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    pub const SERVICE_HAS_NO_ADDRESS: &str = "ServiceHasNoAddress";
    pub const CONFLICT: &str = "Conflict";
    pub const FAMILY_MISMATCH: &str = "FamilyMismatch";
    pub const NO_NEXT_HOP_FOR_FAMILY: &str = "NoNextHopForFamily";
    pub const BFD_NOT_SUPPORTED: &str = "BfdNotSupported";
    /// `ovn.nextHopPods` gives no ready hop of the rule's family (rows removed).
    pub const NO_READY_NEXT_HOP: &str = "NoReadyNextHop";
    /// `ovn.symmetricReply` where OVN cannot give it (see docs/semantics.md).
    pub const SYMMETRIC_REPLY_NEEDS_GATEWAY_ROUTER: &str = "SymmetricReplyNeedsGatewayRouter";
}

/// Why a selected pod (or one rule for it) was not programmed. Not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum SkipReason {
    /// hostNetwork pods share the node's namespace: never touched.
    HostNetwork,
    /// Succeeded or Failed.
    Finished,
    /// The pod lacks a rule's `dev` (that rule is skipped for that pod).
    MissingDev,
    /// The pod has no address of the rule's IP family on that dev.
    NoAddressOfFamily,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::HostNetwork => "HostNetwork",
            SkipReason::Finished => "Finished",
            SkipReason::MissingDev => "MissingDev",
            SkipReason::NoAddressOfFamily => "NoAddressOfFamily",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one-word `status.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Summary {
    /// Everything the Route asks for is planned.
    Applied,
    /// Planned, but with problems (some rules invalid, conflicts lost, missing Services...).
    Degraded,
    /// Nothing usable: every rule is invalid, or the selection is.
    Invalid,
    /// Valid, selects pods, but none of them can be programmed yet (still starting).
    #[default]
    Pending,
}

impl Summary {
    pub fn as_str(self) -> &'static str {
        match self {
            Summary::Applied => "Applied",
            Summary::Degraded => "Degraded",
            Summary::Invalid => "Invalid",
            Summary::Pending => "Pending",
        }
    }
}

/// A Route's selected pods on this node (on every node when the planner has no node), for
/// the node's share of the status counts. The pod side adds which of the rest were
/// programmed, failed or are still waiting for a network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NodeCounts {
    /// Pods the Route selects (excluded ones are not selected).
    pub selected: usize,
    /// Selected pods the Route never touches: hostNetwork, finished, or lacking every
    /// interface (or address family) its rules need.
    pub skipped: usize,
    /// Selected pods still in phase Pending.
    pub waiting: usize,
    /// (pod, rule) pairs skipped on this node's pods because the pod lacks the rule's
    /// interface or address family (pods skipped entirely for another reason not counted).
    pub skipped_rules: usize,
}

/// A condition without its timestamps (metav1.Condition minus time and generation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionSummary {
    /// `Ready`, `Degraded` or `Invalid`.
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// Status material of one Route.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RouteReport {
    /// Pods matching the selection and not excluded (hostNetwork ones included), over the
    /// whole world the planner was given.
    pub selected: usize,
    /// Selected pods on this node for which the plan holds at least one route of this Route.
    pub programmable: usize,
    /// Selected pods skipped entirely: hostNetwork, finished, or lacking every interface
    /// (or address family) the Route's rules need. Over the whole world, like `selected`.
    pub skipped: usize,
    /// Pods per skip reason, for pods skipped entirely or for at least one rule (a pod may
    /// count under several reasons).
    pub skipped_by_reason: BTreeMap<SkipReason, usize>,
    /// (pod, rule) pairs not programmed because the pod lacks the rule's interface or
    /// address family (a Service rule counts once per address). A pod lacking only `eth1`
    /// skips only the Route's `eth1` rules.
    pub skipped_rules: usize,
    /// Those per reason (`MissingDev`, `NoAddressOfFamily`).
    pub skipped_rules_by_reason: BTreeMap<SkipReason, usize>,
    /// The selection counted over this node's pods.
    pub here: NodeCounts,
    /// At most `PlanConfig::max_problems`, validation problems first.
    pub problems: Vec<Problem>,
    /// Problems beyond the bound.
    pub problems_omitted: usize,
    /// The one-word `status.status`.
    pub summary: Summary,
    pub conditions: Vec<ConditionSummary>,
    /// Static next hops, then each gateway pod's, with whether it is used and why not.
    pub next_hops: Vec<crate::api::NextHopStatus>,
}

impl RouteReport {
    pub(crate) fn push_problem(&mut self, p: Problem, max: usize) {
        if self.problems.len() < max {
            self.problems.push(p);
        } else {
            self.problems_omitted += 1;
        }
    }

    /// Decides summary and conditions once counts and problems are in.
    pub(crate) fn finish(&mut self, invalid: bool, waiting: bool) {
        let n_problems = self.problems.len() + self.problems_omitted;
        let summary = Summary::decide(invalid, n_problems > 0, waiting);
        let ready = format!(
            "{} pod(s) selected, {} programmable here, {} skipped",
            self.selected, self.programmable, self.skipped
        );
        self.conditions = conditions(summary, ready, self.problems.first(), n_problems, None);
        self.summary = summary;
    }
}

impl Summary {
    /// The one word from what is known of a Route: invalid as a whole, has problems (or
    /// failed pods), nothing programmable yet. Used by the planner's report and by the
    /// Kubernetes status aggregated over nodes alike.
    pub fn decide(invalid: bool, problems: bool, waiting: bool) -> Summary {
        if invalid {
            Summary::Invalid
        } else if problems {
            Summary::Degraded
        } else if waiting {
            Summary::Pending
        } else {
            Summary::Applied
        }
    }
}

/// The `Ready`, `Degraded` and `Invalid` conditions of a summary: `ready` is the Ready
/// condition's message (the counts), `first` the first problem and `n_problems` how many
/// there are in all; `degraded_by` says why a Route with no problem listed is Degraded
/// (pods failed), as (reason, message).
pub fn conditions(
    summary: Summary,
    ready: String,
    first: Option<&Problem>,
    n_problems: usize,
    degraded_by: Option<(&str, String)>,
) -> Vec<ConditionSummary> {
    let text = first.map(|p| match &p.path {
        Some(path) => format!("{path}: {}", p.message),
        None => p.message.clone(),
    });
    let more = if n_problems > 1 {
        format!(" (and {} more problem(s))", n_problems - 1)
    } else {
        String::new()
    };
    let (reason, message) = match (first, text) {
        (Some(p), Some(t)) => (p.reason.clone(), format!("{t}{more}")),
        _ => degraded_by
            .map(|(r, m)| (r.to_owned(), m))
            .unwrap_or_default(),
    };
    let degraded = summary == Summary::Degraded;
    let invalid = summary == Summary::Invalid;
    let pick = |on: bool, yes: &str, no: &str| if on { yes.to_owned() } else { no.to_owned() };
    vec![
        ConditionSummary {
            type_: "Ready",
            status: matches!(summary, Summary::Applied | Summary::Degraded),
            reason: summary.as_str().to_owned(),
            message: ready,
        },
        ConditionSummary {
            type_: "Degraded",
            status: degraded,
            reason: pick(degraded, &reason, "NoProblems"),
            message: pick(degraded, &message, ""),
        },
        ConditionSummary {
            type_: "Invalid",
            status: invalid,
            reason: if invalid && reason.is_empty() {
                "Invalid".into()
            } else {
                pick(invalid, &reason, "Valid")
            },
            message: pick(invalid, &message, ""),
        },
    ]
}

/// The problem a Route gets for a destination it lost in `count` pod(s), the first of which
/// (in pod order) is `pod`.
pub(crate) fn conflict_problem(c: &super::merge::Conflict, count: usize, pod: &str) -> Problem {
    let whose = if c.loser == c.winner {
        format!("this Route's {}", c.wpath)
    } else {
        format!("Route {:?} ({})", c.winner, c.wpath)
    };
    Problem {
        path: Some(c.path.clone()),
        pod: Some(pod.to_owned()),
        node: None,
        reason: reason::CONFLICT.to_owned(),
        message: format!(
            "{} is routed differently by {whose}, which wins; {count} pod(s) affected",
            c.dst
        ),
    }
}

/// The problem a Route gets for a rule a guard rail refused (`why`) in `count` place(s),
/// first in pod `pod` (`message` is that pod's).
pub(crate) fn refused_problem(
    path: &str,
    why: &str,
    count: usize,
    pod: &str,
    message: &str,
) -> Problem {
    Problem {
        path: Some(format!("{path}.dst")),
        pod: Some(pod.to_owned()),
        node: None,
        reason: why.to_owned(),
        message: format!("{message}; {count} pod(s) affected"),
    }
}

/// The problem a Route gets for `routes` route(s) over the per-pod cap in `pods` pod(s), the
/// first of which is `pod`.
pub(crate) fn capped_problem(pods: usize, routes: usize, pod: &str, cap: usize) -> Problem {
    Problem {
        path: None,
        pod: Some(pod.to_owned()),
        node: None,
        reason: super::guard::reason::TOO_MANY_ROUTES.into(),
        message: format!(
            "{routes} route(s) over the limit of {cap} per pod not programmed, in {pods} pod(s) \
             (--max-routes-per-pod; Routes of higher precedence are served first)"
        ),
    }
}

/// A Route's report from its selection counts, how many pods it is programmable in, and its
/// problems in order (validation and Services, conflicts, OVN rows).
pub(crate) fn build(
    counts: &super::select::SelCounts,
    programmable: usize,
    problems: impl IntoIterator<Item = Problem>,
    invalid: bool,
    max_problems: usize,
) -> RouteReport {
    let mut report = RouteReport {
        selected: counts.selected,
        programmable,
        skipped: counts.skipped,
        skipped_by_reason: counts.by_reason.clone(),
        skipped_rules: counts.skipped_rules,
        skipped_rules_by_reason: counts.rules_by_reason.clone(),
        here: counts.here,
        ..RouteReport::default()
    };
    for p in problems {
        report.push_problem(p, max_problems);
    }
    let waiting = counts.selected > 0 && programmable == 0 && counts.waiting == counts.selected;
    report.finish(invalid, waiting);
    report
}
