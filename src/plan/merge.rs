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
use super::report::SkipReason;
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

/// What became of one claim in one pod's merge: the same walk that decides the pod's routes
/// records it, so `explain` tells exactly what the merge did and never walks on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Programmed: this claim holds the destination.
    Won,
    /// An earlier claim asks for the very same route; that one is recorded as the owner.
    SameAs { winner: String },
    /// An earlier claim holds the destination with a different route.
    Lost { winner: String, wpath: String },
    /// A guard rail refused it for this pod.
    Refused { why: &'static str, message: String },
    /// Over `--max-routes-per-pod`.
    OverCap,
    /// The pod lacks the rule's dev, or an address of its family on it.
    Skipped(SkipReason),
}

/// One claim of one Route in one pod, and its fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Traced {
    pub route: String,
    /// `spec.route[i]`, `spec.svc[i]` or `spec.defaultRoute`.
    pub path: String,
    /// The destination (`0.0.0.0/0` / `::/0` for a default route).
    pub dst: IpNet,
    pub dev: String,
    pub fate: Fate,
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
    /// Every claim's fate, when asked for (`explain`).
    trace: Option<Vec<Traced>>,
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
    ) -> Fate {
        match table.get(&key) {
            None => {
                out.contributed.insert(claim.by.clone());
                table.insert(key, claim);
                Fate::Won
            }
            Some(held) if same(&held.route, &claim.route) => Fate::SameAs {
                winner: held.by.clone(),
            },
            Some(held) => {
                let fate = Fate::Lost {
                    winner: held.by.clone(),
                    wpath: held.path.clone(),
                };
                out.conflicts.push(Conflict {
                    loser: claim.by,
                    path: claim.path,
                    winner: held.by.clone(),
                    wpath: held.path.clone(),
                    dst: dst(),
                });
                fate
            }
        }
    }

    /// Records a claim's fate when tracing.
    fn record(&mut self, p: &Prepared, path: &str, dst: IpNet, dev: &str, fate: Fate) {
        if let Some(t) = &mut self.trace {
            t.push(Traced {
                route: p.route.name.clone(),
                path: path.to_owned(),
                dst,
                dev: dev.to_owned(),
                fate,
            });
        }
    }

    fn rules(&mut self, pod: &PodInfo, p: &Prepared, cfg: &PlanConfig) {
        // (dev, family) -> the dev's next hop, or why the rule is skipped; Routes with
        // thousands of rules hit few distinct pairs.
        let mut usable: BTreeMap<(&str, IpFamily), Result<NextHop, SkipReason>> = BTreeMap::new();
        let mut over_cap = 0;
        for rule in &p.resolved.rules {
            let family = IpFamily::of_net(&rule.dst);
            let dev_hop = usable.entry((&*rule.dev, family)).or_insert_with(|| {
                select::rule_fits(pod, &rule.dev, Some(family), cfg)
                    .map(|()| next_hop(pod, &rule.dev, None, family, cfg))
            });
            let dev_hop = match dev_hop {
                Ok(h) => h.clone(),
                Err(why) => {
                    let why = *why;
                    self.record(p, &rule.path, rule.dst, &rule.dev, Fate::Skipped(why));
                    continue;
                }
            };
            if let Some((why, message)) = self.own.refuse(rule, p.route.gates) {
                let e = self
                    .out
                    .refused
                    .entry(p.route.name.clone())
                    .or_default()
                    .entry((rule.path.clone(), why))
                    .or_insert((0, message.clone()));
                e.0 += 1;
                self.record(
                    p,
                    &rule.path,
                    rule.dst,
                    &rule.dev,
                    Fate::Refused { why, message },
                );
                continue;
            }
            if self.chosen.len() >= cfg.max_routes_per_pod && !self.chosen.contains_key(&rule.dst) {
                over_cap += 1;
                self.record(p, &rule.path, rule.dst, &rule.dev, Fate::OverCap);
                continue;
            }
            let claim = Claim {
                route: PodRoute {
                    dst: rule.dst,
                    dev: rule.dev.clone(),
                    next_hop: rule.via.map_or(dev_hop, NextHop::Via),
                    owner: p.owner.clone(),
                },
                by: p.route.name.clone(),
                path: rule.path.clone(),
            };
            let fate = Self::offer(
                &mut self.chosen,
                &mut self.out,
                rule.dst,
                || rule.dst.to_string(),
                claim,
                |a, b| a.dev == b.dev && a.next_hop == b.next_hop,
            );
            self.record(p, &rule.path, rule.dst, &rule.dev, fate);
        }
        if over_cap > 0 {
            self.out.capped.insert(p.route.name.clone(), over_cap);
        }
    }

    fn default_route(&mut self, pod: &PodInfo, p: &Prepared, cfg: &PlanConfig) {
        const PATH: &str = "spec.defaultRoute";
        let Some(d) = &p.route.default_route else {
            return;
        };
        for (family, fits) in default_families(pod, d.via, &d.dev, cfg) {
            let dst = family.default_dst();
            if let Err(why) = fits {
                self.record(p, PATH, dst, &d.dev, Fate::Skipped(why));
                continue;
            }
            let claim = Claim {
                route: DefaultRoute {
                    family,
                    dev: d.dev.clone(),
                    next_hop: next_hop(pod, &d.dev, d.via, family, cfg),
                    owner: p.route.name.clone(),
                },
                by: p.route.name.clone(),
                path: PATH.into(),
            };
            let fate = Self::offer(
                &mut self.defaults,
                &mut self.out,
                family,
                || dst.to_string(),
                claim,
                |a, b| a.dev == b.dev && a.next_hop == b.next_hop,
            );
            self.record(p, PATH, dst, &d.dev, fate);
        }
    }
}

/// Merges the Routes that have `pod` as a member, given in precedence order.
pub(crate) fn merge_pod<'a>(
    pod: &PodInfo,
    routes: impl IntoIterator<Item = &'a Prepared>,
    cfg: &PlanConfig,
) -> PodMerge {
    merge(pod, routes, cfg, false).0
}

/// [`merge_pod`], with every claim's fate (for `explain`).
pub(crate) fn merge_traced<'a>(
    pod: &PodInfo,
    routes: impl IntoIterator<Item = &'a Prepared>,
    cfg: &PlanConfig,
) -> (PodMerge, Vec<Traced>) {
    let (m, t) = merge(pod, routes, cfg, true);
    (m, t.unwrap_or_default())
}

fn merge<'a>(
    pod: &PodInfo,
    routes: impl IntoIterator<Item = &'a Prepared>,
    cfg: &PlanConfig,
    trace: bool,
) -> (PodMerge, Option<Vec<Traced>>) {
    let mut m = Merge {
        own: PodNets::of(pod, cfg),
        chosen: BTreeMap::new(),
        defaults: BTreeMap::new(),
        out: PodMerge::default(),
        trace: trace.then(Vec::new),
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
    (out, m.trace)
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

/// Families a default route is asked for, each with whether the pod can carry it: the
/// via's family when given, else every family the pod has an address of on that dev (IPv4
/// when nothing is known). A pod lacking the dev gets none of them.
fn default_families(
    pod: &PodInfo,
    via: Option<IpAddr>,
    dev: &str,
    cfg: &PlanConfig,
) -> Vec<(IpFamily, Result<(), SkipReason>)> {
    if let Some(v) = via {
        let family = IpFamily::of_addr(&v);
        return vec![(family, select::rule_fits(pod, dev, Some(family), cfg))];
    }
    if let Err(why) = select::rule_fits(pod, dev, None, cfg) {
        return vec![(IpFamily::V4, Err(why))];
    }
    let addrs = select::dev_addrs(pod, dev, cfg);
    if addrs.is_empty() {
        return vec![(IpFamily::V4, Ok(()))];
    }
    IpFamily::ALL
        .into_iter()
        .map(|f| {
            let has = addrs.iter().any(|a| IpFamily::of_addr(a) == f);
            (
                f,
                if has {
                    Ok(())
                } else {
                    Err(SkipReason::NoAddressOfFamily)
                },
            )
        })
        .collect()
}
