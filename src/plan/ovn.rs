//! The OVN Northbound rows a set of Routes needs (see `docs/semantics.md`, "OVN side").
//!
//! Per Route: Address_Sets `ovnkube_route_<name>_v4` / `_v6` and Port_Group
//! `ovnkube_route_<name>` (`-` becomes `_`; OVN identifiers allow `[A-Za-z0-9_.]`, and
//! Kubernetes names never contain `_`, so the mapping is injective). With `ovn.nextHops`:
//! reroute Logical_Router_Policy rows, or Logical_Router_Static_Route rows when the Route
//! selects every pod. With `ovn.enforce`: drop ACLs on the Port_Group.
//!
//! Row ids come only from the Route name and rule content (family, destination, next
//! hop), never from positions, so reordering rules changes nothing.
//!
//! A Route's rows depend on the Route, its members, and the Routes sharing a (router,
//! destination) slot with it ([`Slots`]: policy rank, static route owner), never on any
//! other Route (see `docs/semantics.md`, "Stability").
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::api::Problem;
use crate::cluster::PodInfo;

use super::family::IpFamily;
use super::nb::{
    AclAction, AclDirection, DesiredNb, NbAcl, NbAddressSet, NbPolicy, NbPortGroup, NbStaticRoute,
    Owner, PolicyAction,
};
use super::report::reason;
use super::routes::{Prepared, ResolvedRule};
use super::{NbScope, PlanConfig, Precedence};

fn ident(route: &str) -> String {
    format!("ovnkube_route_{}", route.replace('-', "_"))
}

/// `$name` of a Route's Address_Set for one family.
///
/// Ends in `_v4` / `_v6`, never `_ip4` / `_ip6`: ovn-northd derives Southbound address sets
/// named `<port group>_ip4` / `<port group>_ip6` from every Port_Group, so an NB Address_Set
/// with such a name collides with the one derived from our own Port_Group and makes every
/// Southbound commit of ovn-northd fail ("constraint violation"), for the whole cluster.
pub fn address_set_name(route: &str, family: IpFamily) -> String {
    format!("{}_{}", ident(route), family.suffix())
}

/// `@name` of a Route's Port_Group.
pub fn port_group_name(route: &str) -> String {
    ident(route)
}

/// Policy priority inside the band: the destination's prefix length decides first (more
/// specific wins, as in a routing table), then precedence among the Routes with a policy
/// for the same destination on the same router (`rank` 0 = highest precedence).
/// IPv6 prefix lengths are scaled to the IPv4 range (/128 -> 32) so one band serves both.
pub(crate) fn policy_priority(cfg: &PlanConfig, dst: &IpNet, rank: usize) -> i64 {
    let lo = cfg.priority_min.min(cfg.priority_max);
    let hi = cfg.priority_max.max(cfg.priority_min);
    let slots = hi - lo + 1;
    let bucket = match IpFamily::of_net(dst) {
        IpFamily::V6 => (i64::from(dst.prefix_len()) + 3) / 4,
        IpFamily::V4 => i64::from(dst.prefix_len()),
    };
    const BUCKETS: i64 = 33;
    if slots < BUCKETS {
        return lo + bucket * slots / BUCKETS;
    }
    let width = slots / BUCKETS;
    let rank = i64::try_from(rank).unwrap_or(i64::MAX);
    let offset = (width - 1).saturating_sub(rank).max(0);
    (lo + bucket * width + offset).min(hi)
}

/// What a Route asks of a (router, destination) slot shared with other Routes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ClaimKind {
    /// A reroute policy: Routes with a policy for the same slot are ranked by precedence.
    Policy,
    /// Static routes to these next hops: the first claimant owns the prefix.
    Static(BTreeSet<IpAddr>),
}

/// A slot: router and destination.
pub(crate) type Slot = (String, IpNet);

/// How the slots a Route claims are shared, as decided over the Routes claiming them.
pub(crate) trait Slots {
    /// Policies for the slot from Routes of higher precedence than `me`.
    fn policy_rank(&self, slot: &Slot, me: &Precedence) -> usize;
    /// The Route owning the slot's static routes and its next hops (`me` itself or one of
    /// higher precedence).
    fn static_owner(&self, slot: &Slot, me: &Precedence) -> Option<(&str, &BTreeSet<IpAddr>)>;
}

/// The router a Route's OVN rows go to.
fn router_of(p: &Prepared, cfg: &PlanConfig) -> String {
    p.route
        .ovn
        .router
        .clone()
        .unwrap_or_else(|| cfg.default_router.clone())
}

/// The Route's next hops now: `nextHops` and the addresses of its ready gateway pods.
fn all_hops(p: &Prepared) -> BTreeSet<IpAddr> {
    let statics = p.route.ovn.next_hops.iter().copied();
    let live = p.gateways.iter().flat_map(|g| g.hops().iter().copied());
    statics.chain(live).collect()
}

/// The next hops of a family, and the CIDR rules that get OVN rows: only rules sent over
/// the OVN interface, and not ClusterIP rules (ClusterIP traffic is load-balanced, DNAT to a
/// backend, on the logical switch before it reaches the router, so a policy on a ClusterIP
/// would never match). Each destination once.
fn ovn_rules<'p>(
    p: &'p Prepared,
    cfg: &PlanConfig,
) -> impl Iterator<Item = (&'p ResolvedRule, BTreeSet<IpAddr>)> + 'p {
    let mut done: BTreeSet<IpNet> = BTreeSet::new();
    let ovn_dev = cfg.ovn_dev.clone();
    let with_hops = p.route.ovn.has_hops();
    let hops = all_hops(p);
    p.resolved
        .rules
        .iter()
        .filter(move |x| with_hops && !x.from_svc && *x.dev == *ovn_dev)
        .filter(move |x| done.insert(x.dst))
        .map(move |rule| {
            let family = IpFamily::of_net(&rule.dst);
            let hops = hops
                .iter()
                .copied()
                .filter(|h| IpFamily::of_addr(h) == family)
                .collect();
            (rule, hops)
        })
}

/// The slots a Route claims (rules without a next hop of their family claim none).
pub(crate) fn claims(p: &Prepared, cfg: &PlanConfig) -> Vec<(Slot, ClaimKind)> {
    let router = router_of(p, cfg);
    ovn_rules(p, cfg)
        .filter(|(_, hops)| !hops.is_empty())
        .map(|(rule, hops)| {
            let kind = if p.everything {
                ClaimKind::Static(hops)
            } else {
                ClaimKind::Policy
            };
            ((router.clone(), rule.dst), kind)
        })
        .collect()
}

/// One Route's OVN side.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RouteNb {
    /// This Route's rows, each family sorted.
    pub nb: DesiredNb,
    /// (router, next hop) pairs its rows rely on.
    pub next_hops: BTreeSet<(String, IpAddr)>,
    /// ClusterIPs it sends over the OVN interface (each needs a Load_Balancer VIP).
    pub service_ips: BTreeSet<IpAddr>,
    pub problems: Vec<Problem>,
}

/// What the incremental planner keeps of a Route's rows between passes: not the rows (rebuilt
/// on demand by [`route_nb`] from the same Route, members and slots), a fingerprint that
/// tells when they change, and the parts its report and the Load_Balancer VIPs read. At
/// 5,000 Routes the rows are tens of megabytes that the NB replica holds anyway.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct NbKept {
    /// Two independently keyed hashes of the rows and next hops.
    print: (u64, u64),
    pub service_ips: BTreeSet<IpAddr>,
    pub problems: Vec<Problem>,
}

impl NbKept {
    pub(crate) fn of(rnb: RouteNb) -> NbKept {
        use std::hash::BuildHasher;
        static KEYS: std::sync::LazyLock<[std::hash::RandomState; 2]> =
            std::sync::LazyLock::new(|| [Default::default(), Default::default()]);
        let print = |k: &std::hash::RandomState| k.hash_one((&rnb.nb, &rnb.next_hops));
        NbKept {
            print: (print(&KEYS[0]), print(&KEYS[1])),
            service_ips: rnb.service_ips,
            problems: rnb.problems,
        }
    }
}

/// The rows of one Route whose members are `members`. Depends on the Route, its members and
/// how its slots are shared ([`Slots`]), nothing else.
pub(crate) fn route_nb<'a>(
    p: &Prepared,
    members: impl IntoIterator<Item = &'a PodInfo>,
    slots: &dyn Slots,
    cfg: &PlanConfig,
) -> RouteNb {
    let mut b = Rows {
        p,
        cfg,
        router: router_of(p, cfg),
        out: RouteNb::default(),
        symmetric: Vec::new(),
    };
    b.selection(members);
    b.out.service_ips = p
        .resolved
        .rules
        .iter()
        .filter(|x| x.from_svc && *x.dev == *cfg.ovn_dev)
        .map(|x| x.dst.addr())
        .collect();
    b.bfd_on_policies();
    for (rule, hops) in ovn_rules(p, cfg) {
        b.rule(rule, hops, slots);
    }
    if p.route.ovn.symmetric_reply {
        b.symmetric_reply();
    }
    if p.route.ovn.enforce {
        b.enforce();
    }
    let nb = &mut b.out.nb;
    nb.address_sets.sort();
    nb.port_groups.sort();
    nb.policies.sort();
    nb.static_routes.sort();
    nb.acls.sort();
    b.out
}

/// One Route's rows in the making.
struct Rows<'p> {
    p: &'p Prepared,
    cfg: &'p PlanConfig,
    router: String,
    out: RouteNb,
    /// With `symmetricReply`: each member's node and OVN addresses.
    symmetric: Vec<(String, Vec<IpAddr>)>,
}

impl Rows<'_> {
    fn name(&self) -> &str {
        &self.p.route.name
    }

    fn owner(&self, id: String) -> Owner {
        let name = self.name();
        Owner {
            route: name.to_owned(),
            id: format!("{name}/{id}"),
        }
    }

    fn problem(&mut self, path: String, reason: &str, message: String) {
        self.out.problems.push(Problem {
            path: Some(path),
            pod: None,
            node: None,
            reason: reason.into(),
            message,
        });
    }

    /// The Address_Sets (one per family) and the Port_Group of the members (this node's
    /// only in `ic` mode).
    fn selection<'a>(&mut self, members: impl IntoIterator<Item = &'a PodInfo>) {
        let cfg = self.cfg;
        let mut addresses: BTreeMap<IpFamily, BTreeSet<String>> = BTreeMap::new();
        let mut ports = BTreeSet::new();
        for pod in members {
            if cfg.nb_scope == NbScope::Node
                && cfg
                    .node
                    .as_ref()
                    .is_some_and(|n| pod.node.as_ref() != Some(n))
            {
                continue;
            }
            let Some(o) = &pod.ovn else { continue };
            if self.p.route.ovn.symmetric_reply
                && let Some(node) = &pod.node
            {
                let ips = o.ips.iter().map(|n| n.addr()).collect();
                self.symmetric.push((node.clone(), ips));
            }
            for ip in &o.ips {
                addresses
                    .entry(IpFamily::of_addr(&ip.addr()))
                    .or_default()
                    .insert(ip.addr().to_string());
            }
            ports.insert(pod.lsp_name());
        }
        for family in IpFamily::ALL {
            let set = NbAddressSet {
                // The id keeps the OVN field word (`ip4`): ids never change across versions.
                owner: self.owner(format!("address-set/{}", family.ovn_field())),
                name: address_set_name(self.name(), family),
                addresses: addresses.remove(&family).unwrap_or_default(),
            };
            self.out.nb.address_sets.push(set);
        }
        let group = NbPortGroup {
            owner: self.owner("port-group".into()),
            name: port_group_name(self.name()),
            ports,
        };
        self.out.nb.port_groups.push(group);
    }

    /// `ovn.bfd` on a Route written as policies: reported (OVN 23.03 policies have no BFD).
    fn bfd_on_policies(&mut self) {
        let r = &self.p.route;
        let policies = ovn_rules(self.p, self.cfg).next().is_some();
        if r.ovn.bfd && !self.p.everything && r.ovn.has_hops() && policies {
            self.problem(
                "spec.ovn.bfd".into(),
                reason::BFD_NOT_SUPPORTED,
                "this Route selects some pods, so it is written as Logical_Router_Policy \
                 rows, which have no BFD in OVN 23.03 (NB schema 7.0.0); the policies are \
                 written without it (BFD applies to Routes that select every pod)"
                    .into(),
            );
        }
    }

    /// The rows of one rule sent over the OVN interface: static routes when the Route
    /// selects every pod (unless another Route owns the prefix), else a reroute policy.
    fn rule(&mut self, rule: &ResolvedRule, hops: BTreeSet<IpAddr>, slots: &dyn Slots) {
        if hops.is_empty() && self.p.route.ovn.hop_pods.is_some() {
            let family = IpFamily::of_net(&rule.dst);
            self.problem(
                format!("{}.dst", rule.path),
                reason::NO_READY_NEXT_HOP,
                format!(
                    "no ready gateway pod of spec.ovn.nextHopPods has an {family} address \
                     (and spec.ovn.nextHops none): no OVN row for {}; the pods keep their \
                     routes, so this traffic follows OVN's own routing",
                    rule.dst
                ),
            );
            return;
        }
        if hops.is_empty() {
            let family = IpFamily::of_net(&rule.dst);
            self.problem(
                format!("{}.dst", rule.path),
                reason::NO_NEXT_HOP_FOR_FAMILY,
                format!(
                    "spec.ovn.nextHops has no {family} address for {}; no OVN row for it",
                    rule.dst
                ),
            );
            return;
        }
        let me = Precedence::of(&self.p.route);
        let slot = (self.router.clone(), rule.dst);
        let written = if self.p.everything {
            self.static_routes(rule, &hops, slots.static_owner(&slot, &me))
        } else {
            self.policy(rule, &hops, slots.policy_rank(&slot, &me));
            true
        };
        if written {
            for h in hops {
                self.out.next_hops.insert((self.router.clone(), h));
            }
        }
    }

    /// Static routes for a rule, unless another Route owns the prefix (reported when its
    /// next hops differ). Returns whether they are written.
    fn static_routes(
        &mut self,
        rule: &ResolvedRule,
        hops: &BTreeSet<IpAddr>,
        owner: Option<(&str, &BTreeSet<IpAddr>)>,
    ) -> bool {
        if let Some((winner, whops)) = owner
            && winner != self.name()
        {
            if whops != hops {
                let message = format!(
                    "static route {} on {} is owned by Route {winner:?}, which wins",
                    rule.dst, self.router
                );
                self.problem(rule.path.clone(), reason::CONFLICT, message);
            }
            return false;
        }
        if let Some(t) = self.p.route.ovn.bfd_timers.filter(|_| self.p.route.ovn.bfd) {
            self.out.nb.bfd_timers.insert(self.name().to_owned(), t);
        }
        for h in hops {
            let row = NbStaticRoute {
                owner: self.owner(format!("static-route/{}/{h}", rule.dst)),
                router: self.router.clone(),
                ip_prefix: rule.dst.to_string(),
                nexthop: h.to_string(),
                policy: None,
                bfd: self.p.route.ovn.bfd,
                symmetric: false,
            };
            self.out.nb.static_routes.push(row);
        }
        true
    }

    /// A reroute policy for a rule, its priority from the prefix length and its rank among
    /// the Routes with a policy for the same destination.
    fn policy(&mut self, rule: &ResolvedRule, hops: &BTreeSet<IpAddr>, rank: usize) {
        let family = IpFamily::of_net(&rule.dst);
        let row = NbPolicy {
            owner: self.owner(format!("policy/{}", rule.dst)),
            router: self.router.clone(),
            priority: policy_priority(self.cfg, &rule.dst, rank),
            match_: format!(
                "{f}.src == ${} && {f}.dst == {}",
                address_set_name(self.name(), family),
                rule.dst,
                f = family.ovn_field()
            ),
            action: PolicyAction::Reroute,
            nexthops: hops.iter().map(|h| h.to_string()).collect(),
        };
        self.out.nb.policies.push(row);
    }

    /// `ovn.symmetricReply`: per member IP and next hop of its family, a src-ip static route
    /// with symmetric replies on the gateway router of the member's node (docs/ovn-facts.md:
    /// OVN has them on gateway routers only, and a src-ip route matches every destination, so
    /// only a Route sending all of its pods' traffic over OVN can have them).
    fn symmetric_reply(&mut self) {
        let r = &self.p.route;
        let path = "spec.ovn.symmetricReply".to_owned();
        let whole = r
            .default_route
            .as_ref()
            .is_some_and(|d| d.dev == self.cfg.ovn_dev);
        if !whole {
            let message = format!(
                "symmetric replies need src-ip routes on each pod's gateway router, which match \
                 every destination of the pod; this Route sends only some destinations over {}, \
                 so none is written (set defaultRoute over {} to send all of the pods' traffic \
                 through the next hops)",
                self.cfg.ovn_dev, self.cfg.ovn_dev
            );
            self.problem(path, reason::SYMMETRIC_REPLY_NEEDS_GATEWAY_ROUTER, message);
            return;
        }
        let scoped: Vec<String> = ovn_rules(self.p, self.cfg)
            .map(|(rule, _)| rule.path.clone())
            .collect();
        for at in scoped {
            let message = format!(
                "the reroute policy for this rule is on {}, a distributed router: OVN keeps \
                 replies symmetric only for src-ip routes on gateway routers, so its replies may \
                 come back through another next hop",
                self.router
            );
            self.problem(at, reason::SYMMETRIC_REPLY_NEEDS_GATEWAY_ROUTER, message);
        }
        let hops = all_hops(self.p);
        if hops.is_empty() && r.ovn.hop_pods.is_some() {
            let message = "no ready gateway pod: no src-ip route is written; the pods' traffic \
                           follows OVN's own routing"
                .to_owned();
            self.problem(path, reason::NO_READY_NEXT_HOP, message);
        }
        let name = self.name().to_owned();
        if let Some(t) = r.ovn.bfd_timers.filter(|_| r.ovn.bfd) {
            self.out.nb.bfd_timers.insert(name.clone(), t);
        }
        for (node, ips) in std::mem::take(&mut self.symmetric) {
            for ip in ips {
                let family = IpFamily::of_addr(&ip);
                for h in hops.iter().filter(|h| IpFamily::of_addr(h) == family) {
                    let row = NbStaticRoute {
                        owner: Owner {
                            route: name.clone(),
                            id: format!("{name}/symmetric/{ip}/{h}"),
                        },
                        router: format!("GR_{node}"),
                        ip_prefix: IpNet::from(ip).to_string(),
                        nexthop: h.to_string(),
                        policy: Some(super::nb::RoutePolicy::SrcIp),
                        bfd: r.ovn.bfd,
                        symmetric: true,
                    };
                    self.out.next_hops.insert((row.router.clone(), *h));
                    self.out.nb.static_routes.push(row);
                }
            }
        }
    }

    /// `ovn.enforce`: drop ACLs on the Port_Group for the destinations sent over the other
    /// interface.
    fn enforce(&mut self) {
        let pg = port_group_name(self.name());
        let dsts: BTreeSet<IpNet> = self
            .p
            .resolved
            .rules
            .iter()
            .filter(|x| *x.dev != *self.cfg.ovn_dev)
            .map(|x| x.dst)
            .collect();
        for dst in dsts {
            let acl = NbAcl {
                owner: self.owner(format!("acl/{dst}")),
                port_group: pg.clone(),
                direction: AclDirection::FromLport,
                priority: self.cfg.acl_priority,
                match_: format!(
                    "inport == @{pg} && {}.dst == {dst}",
                    IpFamily::of_net(&dst).ovn_field()
                ),
                action: AclAction::Drop,
            };
            self.out.nb.acls.push(acl);
        }
    }
}
