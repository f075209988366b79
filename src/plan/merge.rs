//! One pod's kernel routes: the rules of every Route that has the pod as a member, merged
//! in precedence order. The first Route to claim a destination (or a default route family)
//! in the pod wins it; a later different claim is a conflict reported to the loser.
//!
//! Rules a guard rail refuses for the pod (`guard::PodNets`) and rules over the per-pod cap
//! (`PlanConfig::max_routes_per_pod`, Routes of precedence served first) are left out and
//! reported to their Route.
//!
//! Depends only on the pod and the Routes selecting it, so a change elsewhere never changes
//! a pod's routes.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::cluster::PodInfo;

use super::PlanConfig;
use super::family::IpFamily;
use super::guard::PodNets;
use super::pod::{DefaultRoute, NextHop, PodRoute, PodRoutes};
use super::routes::Prepared;
use super::select;

/// A claim one Route lost to another (or to an earlier rule of its own) in one pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Conflict {
    pub loser: String,
    pub path: String,
    pub winner: String,
    pub wpath: String,
    pub dst: String,
}

/// Rules of one Route a guard rail refused in one pod: (rule path, reason) -> (rules, the
/// first one's message). A Service rule refused for several addresses counts each.
pub(crate) type Refused = BTreeMap<(String, &'static str), (usize, String)>;

/// What merging a pod's Routes gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PodMerge {
    /// Shared: the plan, the pod side and the next plan hold the same copy.
    pub routes: Arc<PodRoutes>,
    /// Routes that won at least one destination here (the pod is programmable for them).
    pub contributed: BTreeSet<String>,
    pub conflicts: Vec<Conflict>,
    /// Per Route, rules refused by a guard rail.
    pub refused: BTreeMap<String, Refused>,
    /// Per Route, routes not given for the per-pod cap.
    pub capped: BTreeMap<String, usize>,
}

/// Who holds a destination in the pod, and with what.
struct Claim<T> {
    route: T,
    by: String,
    path: String,
}

/// The merge in progress.
struct Merge {
    own: PodNets,
    chosen: BTreeMap<IpNet, Claim<PodRoute>>,
    defaults: BTreeMap<IpFamily, Claim<DefaultRoute>>,
    out: PodMerge,
}

impl Merge {
    /// Offers one claim; `same` says whether it routes like the holder (not a conflict).
    fn offer<K: Ord, T>(
        table: &mut BTreeMap<K, Claim<T>>,
        out: &mut PodMerge,
        key: K,
        dst: impl FnOnce() -> String,
        claim: Claim<T>,
        same: impl Fn(&T, &T) -> bool,
    ) {
        match table.get(&key) {
            None => {
                out.contributed.insert(claim.by.clone());
                table.insert(key, claim);
            }
            Some(held) if same(&held.route, &claim.route) => {}
            Some(held) => out.conflicts.push(Conflict {
                loser: claim.by,
                path: claim.path,
                winner: held.by.clone(),
                wpath: held.path.clone(),
                dst: dst(),
            }),
        }
    }

    fn rules(&mut self, pod: &PodInfo, p: &Prepared, cfg: &PlanConfig) {
        // (dev, family) -> the dev's next hop, or None when the rule is skipped; Routes with
        // thousands of rules hit few distinct pairs.
        let mut usable: BTreeMap<(&str, IpFamily), Option<NextHop>> = BTreeMap::new();
        let mut over_cap = 0;
        for rule in &p.resolved.rules {
            let family = IpFamily::of_net(&rule.dst);
            let dev_hop = usable.entry((&*rule.dev, family)).or_insert_with(|| {
                (select::has_dev(pod, &rule.dev, cfg)
                    && select::family_ok(pod, &rule.dev, family, cfg))
                .then(|| next_hop(pod, &rule.dev, None, family, cfg))
            });
            let Some(dev_hop) = dev_hop else {
                continue;
            };
            if let Some((why, message)) = self.own.refuse(rule, p.route.gates) {
                let e = self
                    .out
                    .refused
                    .entry(p.route.name.clone())
                    .or_default()
                    .entry((rule.path.clone(), why))
                    .or_insert((0, message));
                e.0 += 1;
                continue;
            }
            if self.chosen.len() >= cfg.max_routes_per_pod && !self.chosen.contains_key(&rule.dst) {
                over_cap += 1;
                continue;
            }
            let claim = Claim {
                route: PodRoute {
                    dst: rule.dst,
                    dev: rule.dev.clone(),
                    next_hop: rule.via.map_or_else(|| dev_hop.clone(), NextHop::Via),
                    owner: p.owner.clone(),
                },
                by: p.route.name.clone(),
                path: rule.path.clone(),
            };
            Self::offer(
                &mut self.chosen,
                &mut self.out,
                rule.dst,
                || rule.dst.to_string(),
                claim,
                |a, b| a.dev == b.dev && a.next_hop == b.next_hop,
            );
        }
        if over_cap > 0 {
            self.out.capped.insert(p.route.name.clone(), over_cap);
        }
    }

    fn default_route(&mut self, pod: &PodInfo, p: &Prepared, cfg: &PlanConfig) {
        let Some(d) = &p.route.default_route else {
            return;
        };
        for family in default_families(pod, d.via, &d.dev, cfg) {
            let claim = Claim {
                route: DefaultRoute {
                    family,
                    dev: d.dev.clone(),
                    next_hop: next_hop(pod, &d.dev, d.via, family, cfg),
                    owner: p.route.name.clone(),
                },
                by: p.route.name.clone(),
                path: "spec.defaultRoute".into(),
            };
            Self::offer(
                &mut self.defaults,
                &mut self.out,
                family,
                || family.default_dst().to_string(),
                claim,
                |a, b| a.dev == b.dev && a.next_hop == b.next_hop,
            );
        }
    }
}

/// Merges the Routes that have `pod` as a member, given in precedence order.
pub(crate) fn merge_pod<'a>(
    pod: &PodInfo,
    routes: impl IntoIterator<Item = &'a Prepared>,
    cfg: &PlanConfig,
) -> PodMerge {
    let mut m = Merge {
        own: PodNets::of(pod, cfg),
        chosen: BTreeMap::new(),
        defaults: BTreeMap::new(),
        out: PodMerge::default(),
    };
    for p in routes {
        m.rules(pod, p, cfg);
        m.default_route(pod, p, cfg);
    }
    let mut out = m.out;
    out.routes = Arc::new(PodRoutes {
        routes: m.chosen.into_values().map(|c| c.route).collect(),
        default_routes: m.defaults.into_values().map(|c| c.route).collect(),
    });
    out
}

fn next_hop(
    pod: &PodInfo,
    dev: &str,
    via: Option<IpAddr>,
    family: IpFamily,
    cfg: &PlanConfig,
) -> NextHop {
    match via.or_else(|| select::dev_gateway(pod, dev, family, cfg)) {
        Some(ip) => NextHop::Via(ip),
        None => NextHop::DevGateway,
    }
}

/// Families for a default route: the via's family when given, else every family the pod
/// has an address of on that dev (IPv4 when nothing is known).
fn default_families(
    pod: &PodInfo,
    via: Option<IpAddr>,
    dev: &str,
    cfg: &PlanConfig,
) -> Vec<IpFamily> {
    if let Some(v) = via {
        let family = IpFamily::of_addr(&v);
        return if select::family_ok(pod, dev, family, cfg) {
            vec![family]
        } else {
            vec![]
        };
    }
    let addrs = select::dev_addrs(pod, dev, cfg);
    if addrs.is_empty() {
        return vec![IpFamily::V4];
    }
    let mut fams: Vec<IpFamily> = addrs.iter().map(IpFamily::of_addr).collect();
    fams.sort();
    fams.dedup();
    fams
}
