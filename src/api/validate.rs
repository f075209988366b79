//! Validation of `Route` CRs: what the user wrote -> parsed rules the planner can use, plus
//! every problem found, each with a JSON path and a CamelCase reason.
//!
//! Owns: the meaning of each field's text (CIDRs, addresses, interface names, targets,
//! selectors). Must not: look at the world (whether a Service exists is the planner's
//! business) or fail as a whole because one rule is bad — the valid rest always comes back.
//!
//! Fail-safe choices: a selection that does not validate selects no pod (never "every pod"),
//! and an exclusion that does not validate excludes every pod; both are reported.
mod addr;
mod bfd;
mod selection;
pub mod selector;

use crate::api::quote::quote;
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::limits;
use super::types::{Problem, Route};
use addr::parse_via;
pub use addr::{parse_dst, parse_ip};
pub use selector::{LabelLookup, Requirement, Selector};

/// Reasons used in [`Problem::reason`] by validation.
pub mod reason {
    pub const INVALID_CIDR: &str = "InvalidCIDR";
    pub const INVALID_VIA: &str = "InvalidVia";
    pub const FAMILY_MISMATCH: &str = "FamilyMismatch";
    pub const INVALID_DEV: &str = "InvalidDev";
    pub const INVALID_SERVICE: &str = "InvalidService";
    pub const INVALID_TARGET_KIND: &str = "InvalidTargetKind";
    pub const MISSING_NAMESPACE: &str = "MissingNamespace";
    pub const INVALID_TARGET: &str = "InvalidTarget";
    pub const INVALID_EXCLUDE: &str = "InvalidExclude";
    pub const INVALID_SELECTOR: &str = "InvalidSelector";
    pub const INVALID_NEXT_HOP: &str = "InvalidNextHop";
    pub const INVALID_ROUTER: &str = "InvalidRouter";
    pub const DUPLICATE_RULE: &str = "DuplicateRule";
    /// More `route[]` or `svc[]` rules than the CRD allows: the rest are ignored.
    pub const TOO_MANY_RULES: &str = "TooManyRules";
    pub const INVALID_BFD: &str = "InvalidBfd";
    pub const INVALID_NEXT_HOP_PODS: &str = "InvalidNextHopPods";
}

/// What a rule sends over its `dev`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// A CIDR (a bare address was turned into a host route).
    Net(IpNet),
    /// A Service, resolved against the world by the planner.
    Service { namespace: String, name: String },
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Net(n) => write!(f, "{n}"),
            Destination::Service { namespace, name } => write!(f, "svc {namespace}/{name}"),
        }
    }
}

/// One valid `route[]` or `svc[]` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `spec.route[i]` or `spec.svc[i]`, for problems.
    pub path: String,
    pub dst: Destination,
    pub dev: String,
    /// `None` when absent or `""` (the seed's "no via").
    pub via: Option<IpAddr>,
}

/// A valid `defaultRoute`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultRouteSpec {
    pub dev: String,
    pub via: Option<IpAddr>,
}

/// Allowed `targets[].kind` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    Pod,
    Deployment,
    DaemonSet,
    StatefulSet,
    ReplicaSet,
    Job,
    CronJob,
    Namespace,
}

impl TargetKind {
    pub const ALL: [TargetKind; 8] = [
        TargetKind::Pod,
        TargetKind::Deployment,
        TargetKind::DaemonSet,
        TargetKind::StatefulSet,
        TargetKind::ReplicaSet,
        TargetKind::Job,
        TargetKind::CronJob,
        TargetKind::Namespace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Pod => "Pod",
            TargetKind::Deployment => "Deployment",
            TargetKind::DaemonSet => "DaemonSet",
            TargetKind::StatefulSet => "StatefulSet",
            TargetKind::ReplicaSet => "ReplicaSet",
            TargetKind::Job => "Job",
            TargetKind::CronJob => "CronJob",
            TargetKind::Namespace => "Namespace",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A valid target. For `Namespace`, `namespace` is the namespace's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TargetRef {
    pub kind: TargetKind,
    pub namespace: String,
    pub name: String,
}

/// Which pods a Route is for (see `docs/semantics.md` for how the parts combine).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selection {
    pub pod_selector: Option<Selector>,
    pub namespace_selector: Option<Selector>,
    /// `None`: no targets given. `Some(empty)`: targets given but none valid.
    pub targets: Option<Vec<TargetRef>>,
    /// A selector did not validate: the Route selects no pod.
    pub broken: bool,
}

impl Selection {
    /// True when the Route applies to every pod (the seed's default).
    pub fn is_everything(&self) -> bool {
        !self.broken
            && self.pod_selector.is_none()
            && self.namespace_selector.is_none()
            && self.targets.is_none()
    }
}

/// Pods a Route never applies to.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Exclusion {
    /// `(namespace, name)`.
    pub pods: BTreeSet<(String, String)>,
    pub namespaces: BTreeSet<String>,
    pub pod_selector: Option<Selector>,
    pub namespace_selector: Option<Selector>,
    /// A selector did not validate: every pod counts as excluded (fail safe).
    pub broken: bool,
}

impl Exclusion {
    pub fn is_empty(&self) -> bool {
        !self.broken
            && self.pods.is_empty()
            && self.namespaces.is_empty()
            && self.pod_selector.is_none()
            && self.namespace_selector.is_none()
    }
}

/// Valid `ovn` settings.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OvnRules {
    pub router: Option<String>,
    pub next_hops: Vec<IpAddr>,
    /// `nextHopPods`, when it validates.
    pub hop_pods: Option<HopPods>,
    pub bfd: bool,
    /// `bfd: {minTx, minRx, detectMult}`: the timers of the BFD rows this Route creates.
    pub bfd_timers: Option<BfdTimers>,
    pub enforce: bool,
    /// `symmetricReply`: src-ip routes with symmetric replies on gateway routers.
    pub symmetric_reply: bool,
}

impl OvnRules {
    /// Whether the Route asks for next hops at all (static ones or gateway pods).
    pub fn has_hops(&self) -> bool {
        !self.next_hops.is_empty() || self.hop_pods.is_some()
    }
}

/// Gateway pods as next hops (`spec.ovn.nextHopPods`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopPods {
    pub namespaces: Selector,
    pub pods: Selector,
    /// `(namespace, name)` of the NetworkAttachmentDefinition whose address is the hop.
    pub network: Option<(String, String)>,
}

/// BFD session timers, as ovn-nb(5) names them (`None`: OVN's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BfdTimers {
    /// Milliseconds, 1 ..= 4,294,967 (OVN default 1000).
    pub min_tx: Option<i64>,
    /// Milliseconds, 0 ..= 4,294,967 (0: no packets wanted; OVN default 1000).
    pub min_rx: Option<i64>,
    /// Packets, 1 ..= 255 (OVN default 5).
    pub detect_mult: Option<i64>,
}

impl BfdTimers {
    pub const MAX_INTERVAL_MS: i64 = 4_294_967;
    pub const MAX_DETECT_MULT: i64 = 255;
}

/// A Route after validation: the usable parts and every problem found.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedRoute {
    pub name: String,
    pub priority: i32,
    /// For conflict ties (older wins). `None` (file mode) sorts as oldest.
    pub created: Option<Time>,
    /// Valid `route[]` rules first, then valid `svc[]` rules, each in spec order.
    pub rules: Vec<Rule>,
    pub default_route: Option<DefaultRouteSpec>,
    pub selection: Selection,
    pub exclude: Exclusion,
    pub ovn: OvnRules,
    pub problems: Vec<Problem>,
    /// How many rules (route, svc, defaultRoute) were written, valid or not.
    pub rules_written: usize,
    /// Guard rails this Route lifts through `spec.feature_gate`.
    pub gates: Gates,
}

/// `spec.feature_gate` keys that lift a guard rail of the planner (see docs/crd.md,
/// "Guard rails"). Each must be set to `"true"`; any other value, and any other key, is
/// ignored (the map is free-form in the original API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gates {
    /// `allowPodSubnetCapture`: a rule may route a pod's own subnet (or address) over the
    /// other interface.
    pub pod_subnet: bool,
    /// `allowGatewayCapture`: a rule may cover an interface's gateway.
    pub gateway: bool,
    /// `allowClusterNetworkCapture`: a rule may cover a whole cluster pod or service network.
    pub cluster_network: bool,
}

impl Gates {
    pub const POD_SUBNET: &'static str = "allowPodSubnetCapture";
    pub const GATEWAY: &'static str = "allowGatewayCapture";
    pub const CLUSTER_NETWORK: &'static str = "allowClusterNetworkCapture";

    fn from_map(m: &std::collections::BTreeMap<String, String>) -> Gates {
        let on = |k: &str| {
            m.get(k)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        };
        Gates {
            pod_subnet: on(Self::POD_SUBNET),
            gateway: on(Self::GATEWAY),
            cluster_network: on(Self::CLUSTER_NETWORK),
        }
    }
}

impl ValidatedRoute {
    /// Nothing usable: every rule failed or the selection is broken.
    pub fn is_invalid(&self) -> bool {
        !self.problems.is_empty()
            && ((self.rules.is_empty() && self.default_route.is_none() && self.rules_written > 0)
                || self.selection.broken)
    }
}

pub(crate) fn problem(path: String, reason: &str, message: String) -> Problem {
    Problem {
        path: Some(path),
        pod: None,
        node: None,
        reason: reason.to_owned(),
        message,
    }
}

/// Linux accepts an interface name of 1-15 bytes, not `.`/`..`, without `/`, `:` or
/// whitespace (`dev_valid_name()` in net/core/dev.c).
pub fn check_dev(dev: &str) -> Result<(), String> {
    if dev.is_empty() {
        return Err("empty interface name".into());
    }
    if dev.len() > 15 {
        return Err(format!(
            "interface name {} is longer than 15 bytes",
            quote(dev)
        ));
    }
    if dev == "."
        || dev == ".."
        || dev
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!(
            "{} is not a valid Linux interface name",
            quote(dev)
        ));
    }
    Ok(())
}

/// A Kubernetes object name (DNS subdomain, loosely): non-empty, <= 253, lowercase
/// alphanumerics, `-` and `.`.
pub(crate) fn check_k8s_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// The first `max` of `items`; the rest are reported at `path` (the CRD's `maxItems`).
pub(crate) fn capped<'a, T>(
    items: &'a [T],
    max: usize,
    path: &str,
    reason: &str,
    problems: &mut Vec<Problem>,
) -> &'a [T] {
    if items.len() <= max {
        return items;
    }
    problems.push(problem(
        path.to_owned(),
        reason,
        format!(
            "{}; the ones after the first {max} are ignored",
            limits::too_many_message(items.len(), max)
        ),
    ));
    &items[..max]
}

/// Validates one Route. Never fails: problems are returned beside the usable parts.
pub fn validate(route: &Route) -> ValidatedRoute {
    let spec = &route.spec;
    let mut problems = Vec::new();
    let mut rules = route_rules(route, &mut problems);
    rules.extend(svc_rules(route, &mut problems));
    let default_route = default_route(route, &mut problems);
    let selection = selection::validate_selection(route, &mut problems);
    let exclude = selection::validate_exclude(route, &mut problems);
    let ovn = validate_ovn(route, &mut problems);

    ValidatedRoute {
        name: route.metadata.name.clone().unwrap_or_default(),
        priority: spec.priority,
        created: route.metadata.creation_timestamp.clone(),
        rules,
        default_route,
        selection,
        exclude,
        ovn,
        problems,
        gates: Gates::from_map(&spec.feature_gate),
        rules_written: spec.route.len()
            + spec.svc.len()
            + usize::from(spec.default_route.is_some()),
    }
}

fn route_rules(route: &Route, problems: &mut Vec<Problem>) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut seen_nets: BTreeSet<IpNet> = BTreeSet::new();
    let written = capped(
        &route.spec.route,
        limits::ROUTE_RULES,
        "spec.route",
        reason::TOO_MANY_RULES,
        problems,
    );
    for (i, r) in written.iter().enumerate() {
        let path = format!("spec.route[{i}]");
        let dst = match parse_dst(&r.dst) {
            Ok(d) => Some(d),
            Err(m) => {
                problems.push(problem(format!("{path}.dst"), reason::INVALID_CIDR, m));
                None
            }
        };
        let dev_ok = check_dev(&r.dev)
            .map_err(|m| problems.push(problem(format!("{path}.dev"), reason::INVALID_DEV, m)))
            .is_ok();
        let via = match parse_via(&r.via) {
            Ok(v) => Some(v),
            Err(m) => {
                problems.push(problem(format!("{path}.via"), reason::INVALID_VIA, m));
                None
            }
        };
        let (Some(dst), true, Some(via)) = (dst, dev_ok, via) else {
            continue;
        };
        if let Some(v) = via
            && v.is_ipv6() != matches!(dst, IpNet::V6(_))
        {
            problems.push(problem(
                format!("{path}.via"),
                reason::FAMILY_MISMATCH,
                format!("via {v} and dst {dst} are of different IP families"),
            ));
            continue;
        }
        if !seen_nets.insert(dst) {
            problems.push(problem(
                format!("{path}.dst"),
                reason::DUPLICATE_RULE,
                format!("{dst} already appears in an earlier route rule; this one is ignored"),
            ));
            continue;
        }
        rules.push(Rule {
            path,
            dst: Destination::Net(dst),
            dev: r.dev.clone(),
            via,
        });
    }
    rules
}

fn svc_rules(route: &Route, problems: &mut Vec<Problem>) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut seen_svcs: BTreeSet<(String, String)> = BTreeSet::new();
    let written = capped(
        &route.spec.svc,
        limits::SVC_RULES,
        "spec.svc",
        reason::TOO_MANY_RULES,
        problems,
    );
    for (i, s) in written.iter().enumerate() {
        let path = format!("spec.svc[{i}]");
        let mut ok = true;
        if !check_k8s_name(&s.namespace) {
            problems.push(problem(
                format!("{path}.namespace"),
                reason::INVALID_SERVICE,
                format!("{} is not a namespace name", quote(&s.namespace)),
            ));
            ok = false;
        }
        if !check_k8s_name(&s.name) {
            problems.push(problem(
                format!("{path}.name"),
                reason::INVALID_SERVICE,
                format!("{} is not a Service name", quote(&s.name)),
            ));
            ok = false;
        }
        if let Err(m) = check_dev(&s.dev) {
            problems.push(problem(format!("{path}.dev"), reason::INVALID_DEV, m));
            ok = false;
        }
        let via = match parse_via(&s.via) {
            Ok(v) => v,
            Err(m) => {
                problems.push(problem(format!("{path}.via"), reason::INVALID_VIA, m));
                continue;
            }
        };
        if !ok {
            continue;
        }
        if !seen_svcs.insert((s.namespace.clone(), s.name.clone())) {
            problems.push(problem(
                path.clone(),
                reason::DUPLICATE_RULE,
                format!(
                    "Service {}/{} already appears in an earlier svc rule; this one is ignored",
                    s.namespace, s.name
                ),
            ));
            continue;
        }
        rules.push(Rule {
            path,
            dst: Destination::Service {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
            },
            dev: s.dev.clone(),
            via,
        });
    }
    rules
}

fn default_route(route: &Route, problems: &mut Vec<Problem>) -> Option<DefaultRouteSpec> {
    let d = route.spec.default_route.as_ref()?;
    let dev_ok = check_dev(&d.dev)
        .map_err(|m| {
            problems.push(problem(
                "spec.defaultRoute.dev".into(),
                reason::INVALID_DEV,
                m,
            ))
        })
        .is_ok();
    let via = parse_via(&d.via)
        .map_err(|m| {
            problems.push(problem(
                "spec.defaultRoute.via".into(),
                reason::INVALID_VIA,
                m,
            ))
        })
        .ok()?;
    dev_ok.then(|| DefaultRouteSpec {
        dev: d.dev.clone(),
        via,
    })
}

fn validate_ovn(route: &Route, problems: &mut Vec<Problem>) -> OvnRules {
    let Some(ovn) = &route.spec.ovn else {
        return OvnRules::default();
    };
    let router = match ovn.router.as_deref() {
        None | Some("") => None,
        Some(r) if limits::too_long(r, limits::ROUTER_CHARS) => {
            problems.push(problem(
                "spec.ovn.router".into(),
                reason::INVALID_ROUTER,
                limits::too_long_message(limits::ROUTER_CHARS),
            ));
            None
        }
        Some(r)
            if r.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c)) =>
        {
            Some(r.to_owned())
        }
        Some(r) => {
            problems.push(problem(
                "spec.ovn.router".into(),
                reason::INVALID_ROUTER,
                format!("{} is not a logical router name", quote(r)),
            ));
            None
        }
    };
    let mut next_hops = Vec::new();
    let written = capped(
        &ovn.next_hops,
        limits::NEXT_HOPS,
        "spec.ovn.nextHops",
        reason::INVALID_NEXT_HOP,
        problems,
    );
    for (i, h) in written.iter().enumerate() {
        let path = format!("spec.ovn.nextHops[{i}]");
        if limits::too_long(h, limits::ADDRESS_CHARS) {
            problems.push(problem(
                path,
                reason::INVALID_NEXT_HOP,
                limits::too_long_message(limits::ADDRESS_CHARS),
            ));
            continue;
        }
        match parse_ip(h) {
            Some(ip) if !next_hops.contains(&ip) => next_hops.push(ip),
            Some(ip) => problems.push(problem(
                path,
                reason::DUPLICATE_RULE,
                format!("next hop {ip} is listed twice"),
            )),
            None => problems.push(problem(
                path,
                reason::INVALID_NEXT_HOP,
                format!("{} is not an IP address", quote(h)),
            )),
        }
    }
    let (bfd, bfd_timers) = bfd::validate_bfd(ovn.bfd.as_ref(), problems);
    OvnRules {
        router,
        next_hops,
        hop_pods: bfd::validate_hop_pods(ovn.next_hop_pods.as_ref(), problems),
        bfd,
        bfd_timers,
        enforce: ovn.enforce.unwrap_or(false),
        symmetric_reply: ovn.symmetric_reply.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests;
