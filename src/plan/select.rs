//! Which pods a Route applies to, and what the planner knows about a pod's interfaces.
//!
//! Selection (see `docs/semantics.md`): with no selection a Route is for every pod;
//! otherwise a pod must match the union of `targets` (when given) AND `podSelector` (when
//! given) AND `namespaceSelector` (when given). Exclusion always wins.
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::api::validate::{Exclusion, Selection, TargetKind, TargetRef, ValidatedRoute};
use crate::cluster::{LinkKind, PodInfo, PodPhase, World};

use super::PlanConfig;
use super::family::IpFamily;
use super::report::{NodeCounts, SkipReason};
use super::routes::Prepared;

/// The label Kubernetes puts on every namespace; added when a namespace is not (yet) known
/// so that selectors on it still work.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Labels of a pod's namespace (with the automatic name label).
pub(crate) fn namespace_labels(world: &World, ns: &str) -> BTreeMap<String, String> {
    let mut labels = world
        .namespace(ns)
        .map(|n| n.labels.clone())
        .unwrap_or_default();
    labels
        .entry(NAMESPACE_NAME_LABEL.to_owned())
        .or_insert_with(|| ns.to_owned());
    labels
}

/// True when the Route applies to the pod (before skip rules such as hostNetwork).
pub(crate) fn selects(
    world: &World,
    route: &ValidatedRoute,
    pod: &PodInfo,
    ns_labels: &BTreeMap<String, String>,
) -> bool {
    if excluded(&route.exclude, pod, ns_labels) {
        return false;
    }
    let sel: &Selection = &route.selection;
    if sel.broken {
        return false;
    }
    if let Some(targets) = &sel.targets
        && !targets.iter().any(|t| target_matches(world, t, pod))
    {
        return false;
    }
    sel.pod_selector
        .as_ref()
        .is_none_or(|s| s.matches(&pod.labels))
        && sel
            .namespace_selector
            .as_ref()
            .is_none_or(|s| s.matches(ns_labels))
}

fn excluded(ex: &Exclusion, pod: &PodInfo, ns_labels: &BTreeMap<String, String>) -> bool {
    ex.broken
        || ex.namespaces.contains(&pod.namespace)
        || (!ex.pods.is_empty() && ex.pods.contains(&(pod.namespace.clone(), pod.name.clone())))
        || ex
            .pod_selector
            .as_ref()
            .is_some_and(|s| s.matches(&pod.labels))
        || ex
            .namespace_selector
            .as_ref()
            .is_some_and(|s| s.matches(ns_labels))
}

/// `<prefix>-<suffix>` where suffix is a non-empty run of alphanumerics (the pod-template
/// hash of a ReplicaSet, or a Job's schedule number when `digits`).
fn generated_child_of(child: &str, parent: &str, digits: bool) -> bool {
    child
        .strip_prefix(parent)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|s| {
            !s.is_empty()
                && s.chars().all(|c| {
                    if digits {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphanumeric()
                    }
                })
        })
}

fn target_matches(world: &World, t: &TargetRef, pod: &PodInfo) -> bool {
    if t.kind == TargetKind::Namespace {
        return pod.namespace == t.name;
    }
    if pod.namespace != t.namespace {
        return false;
    }
    if t.kind == TargetKind::Pod {
        return pod.name == t.name;
    }
    let Some(owner) = &pod.owner else {
        return false;
    };
    match t.kind {
        TargetKind::ReplicaSet
        | TargetKind::DaemonSet
        | TargetKind::StatefulSet
        | TargetKind::Job => owner.kind == t.kind.as_str() && owner.name == t.name,
        TargetKind::Deployment => {
            owner.kind == "ReplicaSet"
                && owner_via_link(
                    world,
                    LinkKind::ReplicaSet,
                    &pod.namespace,
                    &owner.name,
                    "Deployment",
                    &t.name,
                    false,
                )
        }
        TargetKind::CronJob => {
            owner.kind == "Job"
                && owner_via_link(
                    world,
                    LinkKind::Job,
                    &pod.namespace,
                    &owner.name,
                    "CronJob",
                    &t.name,
                    true,
                )
        }
        TargetKind::Pod | TargetKind::Namespace => false,
    }
}

/// Follows ReplicaSet -> Deployment or Job -> CronJob. When the intermediate object is
/// unknown (not watched yet, or a file-mode world without it), falls back to the naming
/// convention the controllers use (`<deployment>-<hash>`, `<cronjob>-<number>`).
fn owner_via_link(
    world: &World,
    kind: LinkKind,
    ns: &str,
    child: &str,
    parent_kind: &str,
    parent: &str,
    digits: bool,
) -> bool {
    if world.has_link(kind, ns, child) {
        world
            .link_owner(kind, ns, child)
            .is_some_and(|(k, n)| k == parent_kind && n == parent)
    } else {
        generated_child_of(child, parent, digits)
    }
}

/// Whether the pod has interface `dev`. With a `network-status` annotation, its interface
/// list is taken as the truth; without it, the default interface is assumed to exist and
/// the OVN interface exists iff OVN recorded the pod in `pod-networks`.
pub(crate) fn has_dev(pod: &PodInfo, dev: &str, cfg: &PlanConfig) -> bool {
    if !pod.interfaces.is_empty() {
        return pod.interfaces.iter().any(|i| i.name == dev);
    }
    dev == cfg.default_dev || (dev == cfg.ovn_dev && pod.ovn.is_some())
}

/// Addresses the pod is known to hold on `dev` (may be empty: unknown).
pub(crate) fn dev_addrs(pod: &PodInfo, dev: &str, cfg: &PlanConfig) -> Vec<IpAddr> {
    if let Some(i) = pod.interfaces.iter().find(|i| i.name == dev)
        && !i.ips.is_empty()
    {
        return i.ips.clone();
    }
    if dev == cfg.ovn_dev
        && let Some(o) = &pod.ovn
    {
        return o.ips.iter().map(|n| n.addr()).collect();
    }
    if dev == cfg.default_dev {
        return pod.pod_ips.clone();
    }
    Vec::new()
}

/// Whether a route of the given family can live on `dev`: the dev's known addresses decide;
/// with none known, any address of the pod; with nothing known at all, yes.
pub(crate) fn family_ok(pod: &PodInfo, dev: &str, family: IpFamily, cfg: &PlanConfig) -> bool {
    let addrs = dev_addrs(pod, dev, cfg);
    if !addrs.is_empty() {
        return addrs.iter().any(|a| IpFamily::of_addr(a) == family);
    }
    let all: Vec<IpAddr> = pod
        .pod_ips
        .iter()
        .copied()
        .chain(pod.ovn.iter().flat_map(|o| o.ips.iter().map(|n| n.addr())))
        .chain(pod.interfaces.iter().flat_map(|i| i.ips.iter().copied()))
        .collect();
    all.is_empty() || all.iter().any(|a| IpFamily::of_addr(a) == family)
}

/// The dev's gateway of the family, from `network-status` then (for the OVN interface)
/// `pod-networks`.
pub(crate) fn dev_gateway(
    pod: &PodInfo,
    dev: &str,
    family: IpFamily,
    cfg: &PlanConfig,
) -> Option<IpAddr> {
    let from_status = pod
        .interfaces
        .iter()
        .filter(|i| i.name == dev)
        .flat_map(|i| i.gateways.iter())
        .find(|g| IpFamily::of_addr(g) == family)
        .copied();
    from_status.or_else(|| {
        (dev == cfg.ovn_dev)
            .then_some(pod.ovn.as_ref())
            .flatten()
            .and_then(|o| {
                o.gateways
                    .iter()
                    .find(|g| IpFamily::of_addr(g) == family)
                    .copied()
            })
    })
}

/// Whether a rule over `dev` (of `family`, when the rule has one) can live in the pod, and
/// if not why: the one check behind the per-rule skip counts, the merge and `explain`.
pub(crate) fn rule_fits(
    pod: &PodInfo,
    dev: &str,
    family: Option<IpFamily>,
    cfg: &PlanConfig,
) -> Result<(), SkipReason> {
    if !has_dev(pod, dev, cfg) {
        return Err(SkipReason::MissingDev);
    }
    match family {
        Some(f) if !family_ok(pod, dev, f, cfg) => Err(SkipReason::NoAddressOfFamily),
        _ => Ok(()),
    }
}

/// What a Route makes of one pod it selects, and whether the pod is on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PairSel {
    pub how: How,
    pub here: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
    /// Selected but never programmed (hostNetwork, finished).
    Skipped(SkipReason),
    /// Selected and in the Route's Address_Set / Port_Group; `missing_dev` / `no_family`:
    /// how many of the Route's rules cannot live in this pod for lack of the rule's dev or
    /// an address of its family (skipped rule by rule); `none_usable`: none can (the pod
    /// counts as skipped).
    Member {
        pending: bool,
        missing_dev: usize,
        no_family: usize,
        none_usable: bool,
    },
}

impl PairSel {
    pub(crate) fn is_member(self) -> bool {
        matches!(self.how, How::Member { .. })
    }
}

/// Whether and how the Route (prepared as `p`) applies to the pod.
pub(crate) fn pair(
    world: &World,
    p: &Prepared,
    pod: &PodInfo,
    ns_labels: &BTreeMap<String, String>,
    cfg: &PlanConfig,
) -> Option<PairSel> {
    if !selects(world, &p.route, pod, ns_labels) {
        return None;
    }
    let here = cfg.is_local(pod);
    let skipped = |why| {
        Some(PairSel {
            how: How::Skipped(why),
            here,
        })
    };
    if pod.host_network {
        return skipped(SkipReason::HostNetwork);
    }
    if pod.phase == PodPhase::Finished {
        return skipped(SkipReason::Finished);
    }
    let mut missing_dev = 0;
    let mut no_family = 0;
    let mut usable = 0;
    for ((dev, family), rules) in &p.needs {
        match rule_fits(pod, dev, *family, cfg) {
            Err(SkipReason::MissingDev) => missing_dev += rules,
            Err(_) => no_family += rules,
            Ok(()) => usable += 1,
        }
    }
    Some(PairSel {
        how: How::Member {
            pending: pod.phase == PodPhase::Pending,
            missing_dev,
            no_family,
            none_usable: usable == 0 && !p.needs.is_empty(),
        },
        here,
    })
}

/// A Route's selection counts, summed over its pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SelCounts {
    pub selected: usize,
    /// Pods skipped entirely: hostNetwork, finished, or no rule usable.
    pub skipped: usize,
    pub waiting: usize,
    /// Pods per reason, skipped entirely or for some rules (a pod under each of its
    /// reasons).
    pub by_reason: BTreeMap<SkipReason, usize>,
    /// (pod, rule) pairs skipped for a missing dev or address family, over the pods not
    /// skipped entirely for another reason.
    pub skipped_rules: usize,
    /// Those per reason.
    pub rules_by_reason: BTreeMap<SkipReason, usize>,
    /// Selected, skipped entirely, waiting and skipped rules, over this node's pods.
    pub here: NodeCounts,
}

impl SelCounts {
    /// Adds (`add`) or takes away one pair's share.
    pub(crate) fn count(&mut self, p: PairSel, add: bool) {
        let by = |n: &mut usize, k: usize| {
            if add {
                *n += k;
            } else {
                *n = n.saturating_sub(k);
            }
        };
        let step = |n: &mut usize| by(n, 1);
        step(&mut self.selected);
        if p.here {
            step(&mut self.here.selected);
        }
        let reasons: Vec<SkipReason> = match p.how {
            How::Skipped(r) => {
                step(&mut self.skipped);
                if p.here {
                    step(&mut self.here.skipped);
                }
                vec![r]
            }
            How::Member {
                pending,
                missing_dev,
                no_family,
                none_usable,
            } => {
                if none_usable {
                    step(&mut self.skipped);
                    if p.here {
                        step(&mut self.here.skipped);
                    }
                }
                if pending {
                    step(&mut self.waiting);
                    if p.here {
                        step(&mut self.here.waiting);
                    }
                }
                let mut v = Vec::new();
                for (why, rules) in [
                    (SkipReason::MissingDev, missing_dev),
                    (SkipReason::NoAddressOfFamily, no_family),
                ] {
                    if rules == 0 {
                        continue;
                    }
                    v.push(why);
                    by(&mut self.skipped_rules, rules);
                    if p.here {
                        by(&mut self.here.skipped_rules, rules);
                    }
                    let n = self.rules_by_reason.entry(why).or_default();
                    by(n, rules);
                    if *n == 0 {
                        self.rules_by_reason.remove(&why);
                    }
                }
                v
            }
        };
        for r in reasons {
            let n = self.by_reason.entry(r).or_default();
            step(n);
            if *n == 0 {
                self.by_reason.remove(&r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names() {
        assert!(generated_child_of("web-5d9f8c", "web", false));
        assert!(!generated_child_of("web-api-5d9f8c", "web", false));
        assert!(!generated_child_of("web", "web", false));
        assert!(!generated_child_of("web-", "web", false));
        assert!(generated_child_of("backup-28910", "backup", true));
        assert!(!generated_child_of("backup-abc", "backup", true));
    }
}
