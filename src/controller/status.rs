//! This instance's view of every Route's status: the planner's report, the NB side's
//! problems (where this instance writes the NB) and what the pod pass did on this node.
//!
//! Owns: the per-node counts and their definitions (docs/crd.md, "Status"):
//! `selected = programmed + skipped + failed + pending`, over this node's pods.
//! Must not: write anything; the Kubernetes status writer and file mode's log lines consume
//! what is computed here. Pure.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::api::{NextHopStatus, Problem, Route};
use crate::cluster::PodPhase;
use crate::nb::diff::NbProblem;
use crate::plan::incremental::Engine;
use crate::plan::pod::PodKey;
use crate::plan::{RouteReport, Summary};

/// Per-Route pod counts over this node's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PodCounts {
    /// Pods the Route selects.
    pub selected: usize,
    /// Selected pods whose routes from this Route are all in place.
    pub programmed: usize,
    /// Selected pods the Route never touches (hostNetwork, finished, or lacking every
    /// interface / address family its rules need).
    pub skipped: usize,
    /// Selected pods whose programming failed.
    pub failed: usize,
    /// Selected pods not programmable yet (phase Pending, or no network namespace found).
    pub pending: usize,
    /// (pod, rule) pairs skipped because the pod lacks the rule's interface or address
    /// family; not part of the pod sum above.
    pub skipped_rules: usize,
}

/// What one instance knows of one Route.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RouteLocal {
    /// `metadata.generation` of the version planned.
    pub generation: Option<i64>,
    /// The one-word status as this instance sees it.
    pub summary: Summary,
    pub counts: PodCounts,
    /// Problems of the Route itself (validation, conflicts, Services), bounded by the planner.
    pub route_problems: Vec<Problem>,
    /// Problems beyond the planner's bound.
    pub route_problems_omitted: usize,
    /// Problems only this node sees: pods whose programming failed, and NB problems when
    /// this instance writes the NB.
    pub node_problems: Vec<Problem>,
    /// The Route's next hops (static and gateway pods) and whether each is used.
    pub next_hops: Vec<crate::api::NextHopStatus>,
}

/// This instance's view of every Route, by name. A Route's entry is shared with the view
/// before when nothing it is built from changed ([`StatusCache`]), so comparing two views
/// costs a pointer comparison per unchanged Route.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NodeStatus {
    pub routes: BTreeMap<String, Arc<RouteLocal>>,
    /// Built by the loop (false only in the placeholder a status channel starts with: a
    /// Route missing from that is not known yet, not gone).
    pub published: bool,
}

/// What the last pod pass left behind, per pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodOutcome {
    /// Pods whose programming failed, with why.
    pub failed: BTreeMap<PodKey, String>,
    /// Pods with routes planned but no network namespace found.
    pub no_netns: BTreeSet<PodKey>,
}

/// Bound on node problems listed per Route.
pub const MAX_NODE_PROBLEMS: usize = 10;

impl NodeStatus {
    /// The same view: equal entries, compared by pointer first.
    pub fn same(&self, other: &NodeStatus) -> bool {
        self.published == other.published
            && self.routes.len() == other.routes.len()
            && self
                .routes
                .iter()
                .zip(&other.routes)
                .all(|((n, a), (m, b))| n == m && (Arc::ptr_eq(a, b) || a == b))
    }
}

/// Builds the node's view from the planner's state (`routes`: the Routes it plans, for
/// their generations), the NB side's problems and what the pod side did.
pub fn node_status<R: std::borrow::Borrow<Route>>(
    routes: &[R],
    engine: &Engine,
    nb_problems: &[NbProblem],
    pods: &PodOutcome,
    bfd: &BTreeMap<String, String>,
) -> NodeStatus {
    StatusCache::default().view(routes, engine, nb_problems, pods, bfd)
}

/// The entries of the last view and what each was built from. A view then costs a few
/// comparisons per Route and a build per Route whose report (the planner's, compared by
/// pointer: it is replaced only when it changes), generation, node problems, counts or BFD
/// states changed: at 5,000 Routes, rebuilding every entry after each event was most of the
/// loop's time.
#[derive(Debug, Default)]
pub struct StatusCache {
    built: BTreeMap<String, Built>,
}

#[derive(Debug)]
struct Built {
    report: Arc<RouteReport>,
    from: Inputs,
    local: Arc<RouteLocal>,
}

impl StatusCache {
    /// The view now (see [`node_status`]); entries of Routes whose inputs did not change
    /// are the last view's.
    pub fn view<R: std::borrow::Borrow<Route>>(
        &mut self,
        routes: &[R],
        engine: &Engine,
        nb_problems: &[NbProblem],
        pods: &PodOutcome,
        bfd: &BTreeMap<String, String>,
    ) -> NodeStatus {
        let (failed, no_netns) = pod_troubles(engine, pods);
        let generation = generations(routes);
        let mut nb_by_route: BTreeMap<&str, Vec<&NbProblem>> = BTreeMap::new();
        for p in nb_problems {
            nb_by_route.entry(p.route.as_str()).or_default().push(p);
        }
        let mut planned = 0;
        for (name, report) in engine.reports() {
            planned += 1;
            let fails = failed.get(name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            let nb = nb_by_route
                .get(name.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let pending = no_netns.get(name.as_str()).copied().unwrap_or(0);
            let hops_bfd = bfd_states(engine, name, &report.next_hops, bfd);
            let inputs = Inputs {
                generation: generation(name),
                counts: counts(report, fails.len(), pending),
                node_problems: node_problems(nb, fails),
                bfd: hops_bfd,
            };
            match self.built.get_mut(name) {
                Some(b) if Arc::ptr_eq(&b.report, report) && inputs == b.from => {}
                Some(b) => *b = inputs.build(report),
                None => {
                    self.built.insert(name.clone(), inputs.build(report));
                }
            }
        }
        if self.built.len() != planned {
            let reports: BTreeSet<&String> = engine.reports().map(|(n, _)| n).collect();
            self.built.retain(|n, _| reports.contains(n));
        }
        NodeStatus {
            routes: self
                .built
                .iter()
                .map(|(n, b)| (n.clone(), b.local.clone()))
                .collect(),
            published: true,
        }
    }
}

/// What a Route's entry is built from, besides the planner's report.
#[derive(Debug, PartialEq)]
struct Inputs {
    generation: Option<i64>,
    counts: PodCounts,
    node_problems: Vec<Problem>,
    /// Each next hop's BFD state (empty when the Route does not use BFD).
    bfd: Vec<Option<String>>,
}

impl Inputs {
    fn build(self, report: &Arc<RouteReport>) -> Built {
        let summary = if report.summary == Summary::Applied && !self.node_problems.is_empty() {
            Summary::Degraded
        } else {
            report.summary
        };
        let next_hops = with_bfd(&report.next_hops, &self.bfd);
        let local = RouteLocal {
            generation: self.generation,
            summary,
            counts: self.counts,
            route_problems: report.problems.clone(),
            route_problems_omitted: report.problems_omitted,
            node_problems: self.node_problems.clone(),
            next_hops,
        };
        Built {
            report: report.clone(),
            from: self,
            local: Arc::new(local),
        }
    }
}

/// Each Route's `metadata.generation` by name: a binary search when `routes` is sorted by
/// name (the loop's effective Routes are), else through a map.
fn generations<R: std::borrow::Borrow<Route>>(routes: &[R]) -> impl Fn(&str) -> Option<i64> + '_ {
    let sorted = routes
        .windows(2)
        .all(|w| route_name(w[0].borrow()) <= route_name(w[1].borrow()));
    let map: BTreeMap<&str, Option<i64>> = if sorted {
        BTreeMap::new()
    } else {
        routes
            .iter()
            .map(|r| (route_name(r.borrow()), r.borrow().metadata.generation))
            .collect()
    };
    move |n: &str| {
        if sorted {
            // The last of equal names, as the map keeps.
            let i = routes.partition_point(|r| route_name(r.borrow()) <= n);
            i.checked_sub(1)
                .and_then(|i| routes.get(i))
                .filter(|r| route_name((*r).borrow()) == n)
                .and_then(|r| r.borrow().metadata.generation)
        } else {
            map.get(n).copied().flatten()
        }
    }
}

fn route_name(r: &Route) -> &str {
    r.metadata.name.as_deref().unwrap_or_default()
}

/// A Route's counts over this node's pods.
fn counts(report: &RouteReport, failed: usize, no_netns: usize) -> PodCounts {
    let here = report.here;
    let pending = here.waiting + no_netns;
    PodCounts {
        selected: here.selected,
        skipped: here.skipped,
        skipped_rules: here.skipped_rules,
        failed,
        pending,
        programmed: here
            .selected
            .saturating_sub(here.skipped + failed + pending),
    }
}

/// Problems only this node sees: NB problems, then pods whose programming failed; bounded.
fn node_problems(nb: &[&NbProblem], fails: &[(PodKey, &str)]) -> Vec<Problem> {
    let mut out: Vec<Problem> = nb
        .iter()
        .map(|p| Problem {
            reason: p.reason.clone(),
            message: p.message.clone(),
            ..Problem::default()
        })
        .collect();
    out.extend(fails.iter().map(|(pod, why)| Problem {
        pod: Some(pod.to_string()),
        reason: "ProgrammingFailed".into(),
        message: (*why).to_owned(),
        ..Problem::default()
    }));
    out.truncate(MAX_NODE_PROBLEMS);
    out
}

/// Route -> pods of this node (from the plan) that failed, and how many wait for their
/// network namespace.
#[allow(clippy::type_complexity)]
fn pod_troubles<'a>(
    engine: &Engine,
    pods: &'a PodOutcome,
) -> (
    BTreeMap<String, Vec<(PodKey, &'a str)>>,
    BTreeMap<String, usize>,
) {
    let world = engine.world();
    // Route -> pods of this node (from the plan) that failed / wait for their netns. Only
    // the pods in trouble are looked up: a pass costs what went wrong, not every pod.
    let mut failed: BTreeMap<String, Vec<(PodKey, &str)>> = BTreeMap::new();
    let mut no_netns: BTreeMap<String, usize> = BTreeMap::new();
    let owners = |key: &PodKey| -> Vec<String> {
        let Some((planned, pr)) = engine.pod_routes(&(key.namespace.clone(), key.name.clone()))
        else {
            return Vec::new();
        };
        if planned != *key {
            return Vec::new();
        }
        let set: BTreeSet<&str> = pr
            .routes
            .iter()
            .map(|r| &*r.owner)
            .chain(pr.default_routes.iter().map(|d| d.owner.as_str()))
            .collect();
        set.into_iter().map(str::to_owned).collect()
    };
    for (key, why) in &pods.failed {
        for o in owners(key) {
            failed.entry(o).or_default().push((key.clone(), why));
        }
    }
    for key in pods
        .no_netns
        .iter()
        .filter(|k| !pods.failed.contains_key(*k))
    {
        // A pod still in phase Pending is counted as waiting by the planner already.
        let waiting = world
            .pod(&key.namespace, &key.name)
            .is_some_and(|p| p.phase == PodPhase::Pending);
        if !waiting {
            for o in owners(key) {
                *no_netns.entry(o).or_default() += 1;
            }
        }
    }
    (failed, no_netns)
}

/// The Route's next hops, each with its BFD session's state when the Route uses BFD.
pub(crate) fn hops_with_bfd(
    engine: &Engine,
    route: &str,
    hops: &[NextHopStatus],
    bfd: &BTreeMap<String, String>,
) -> Vec<NextHopStatus> {
    with_bfd(hops, &bfd_states(engine, route, hops, bfd))
}

/// The BFD session state of each next hop, when the Route uses BFD (else empty).
fn bfd_states(
    engine: &Engine,
    route: &str,
    hops: &[NextHopStatus],
    bfd: &BTreeMap<String, String>,
) -> Vec<Option<String>> {
    if !engine.validated(route).is_some_and(|v| v.ovn.bfd) {
        return Vec::new();
    }
    hops.iter().map(|h| bfd.get(&h.address).cloned()).collect()
}

/// The next hops with their BFD states (`states` by position; none past its end).
fn with_bfd(hops: &[NextHopStatus], states: &[Option<String>]) -> Vec<NextHopStatus> {
    hops.iter()
        .enumerate()
        .map(|(i, h)| NextHopStatus {
            bfd: states.get(i).cloned().flatten(),
            ..h.clone()
        })
        .collect()
}

/// Routes that do not decode are Invalid, whatever their last readable version planned
/// (that version keeps being planned, so what it programmed stays).
pub fn mark_undecodable<'a>(
    view: &mut NodeStatus,
    routes: impl IntoIterator<Item = &'a crate::controller::inputs::Undecodable>,
) {
    for u in routes {
        let entry = Arc::make_mut(view.routes.entry(u.name.clone()).or_default());
        entry.generation = u.generation;
        entry.summary = Summary::Invalid;
        entry.route_problems = vec![Problem {
            reason: "Undecodable".into(),
            message: format!(
                "the Route object cannot be read ({}); what its last readable version programmed stays",
                u.error
            ),
            ..Problem::default()
        }];
        entry.route_problems_omitted = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PodInfo, World};
    use crate::plan::testkit::*;

    fn key(world: &World, name: &str) -> PodKey {
        let p = world.pod("default", name).unwrap();
        PodKey {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
        }
    }

    fn web(name: &str, node: &str) -> PodInfo {
        on_node(
            with_labels(mk_pod("default", name), &[("app", "web")]),
            node,
        )
    }

    #[test]
    fn counts_add_up_over_programmed_failed_pending_and_skipped() {
        let mut world = World::new();
        for n in ["a", "b", "c", "d"] {
            world.apply(web(n, "n1"));
        }
        let mut host = web("host", "n1");
        host.host_network = true;
        world.apply(host);
        world.apply(web("other-node", "n2"));
        let mut r = mk_route("web", vec![rr("172.16.0.0/16", "eth1")], vec![]);
        r.spec.pod_selector = Some(sel(&[("app", "web")]));
        r.metadata.generation = Some(3);
        let mut cfg = cfg();
        cfg.node = Some("n1".into());
        let e = Engine::build(cfg, world.clone(), std::slice::from_ref(&r));
        let mut outcome = PodOutcome::default();
        outcome
            .failed
            .insert(key(&world, "b"), "netns vanished".into());
        outcome.no_netns.insert(key(&world, "c"));
        let nb = [NbProblem {
            route: "web".into(),
            reason: "RouterNotFound".into(),
            message: "no router".into(),
        }];
        let s = node_status(
            std::slice::from_ref(&r),
            &e,
            &nb,
            &outcome,
            &BTreeMap::new(),
        );
        let web = &s.routes["web"];
        assert_eq!(web.generation, Some(3));
        assert_eq!(
            web.counts,
            PodCounts {
                selected: 5,
                programmed: 2,
                skipped: 1,
                failed: 1,
                pending: 1,
                skipped_rules: 0,
            }
        );
        let c = web.counts;
        assert_eq!(c.selected, c.programmed + c.skipped + c.failed + c.pending);
        assert_eq!(web.summary, Summary::Degraded);
        let reasons: Vec<&str> = web
            .node_problems
            .iter()
            .map(|p| p.reason.as_str())
            .collect();
        assert_eq!(reasons, ["RouterNotFound", "ProgrammingFailed"]);
        assert_eq!(web.node_problems[1].pod.as_deref(), Some("default/b"));
    }

    #[test]
    fn a_clean_pass_is_applied_with_every_pod_programmed() {
        let mut world = World::new();
        world.apply(mk_pod("default", "a"));
        let r = mk_route("all", vec![rr("172.16.0.0/16", "eth1")], vec![]);
        let e = Engine::build(cfg(), world, std::slice::from_ref(&r));
        let s = node_status(
            std::slice::from_ref(&r),
            &e,
            &[],
            &PodOutcome::default(),
            &BTreeMap::new(),
        );
        let all = &s.routes["all"];
        assert_eq!(all.summary, Summary::Applied);
        assert_eq!(all.counts.programmed, 1);
        assert!(all.node_problems.is_empty());
    }

    /// The view kept between passes equals one built from scratch after every change, and
    /// shares exactly the entries of the Routes nothing changed for.
    #[test]
    fn the_kept_view_rebuilds_only_the_routes_that_changed() {
        use crate::api::OvnSpec;
        let mut world = World::new();
        for n in ["a", "b"] {
            world.apply(web(n, "n1"));
        }
        let mut db = mk_route("db", vec![rr("172.17.0.0/16", "eth1")], vec![]);
        db.spec.pod_selector = Some(sel(&[("app", "db")]));
        let mut w = mk_route("web", vec![rr("172.16.0.0/16", "eth1")], vec![]);
        w.spec.pod_selector = Some(sel(&[("app", "web")]));
        let mut hop = mk_route("hop", vec![rr("172.18.0.0/16", "eth1")], vec![]);
        hop.spec.pod_selector = Some(sel(&[("app", "gw")]));
        hop.spec.ovn = Some(OvnSpec {
            router: Some("GR_n1".into()),
            next_hops: vec!["100.64.0.2".into()],
            bfd: Some(true.into()),
            enforce: None,
            next_hop_pods: None,
            symmetric_reply: None,
        });
        let mut routes = vec![db, hop, w];
        let mut cfg = cfg();
        cfg.node = Some("n1".into());
        let mut e = Engine::build(cfg, world.clone(), &routes);
        let mut cache = StatusCache::default();
        let mut nb: Vec<NbProblem> = Vec::new();
        let mut pods = PodOutcome::default();
        let mut bfd = BTreeMap::new();
        let mut before = cache.view(&routes, &e, &nb, &pods, &bfd);
        // Checks the kept view against a fresh one; `changed`: the Routes whose entry must
        // be new, every other entry must be the one of the view before.
        let mut step = |routes: &[Route],
                        e: &Engine,
                        nb: &[NbProblem],
                        pods: &PodOutcome,
                        bfd: &BTreeMap<String, String>,
                        changed: &[&str]| {
            let v = cache.view(routes, e, nb, pods, bfd);
            assert_eq!(v, node_status(routes, e, nb, pods, bfd));
            for (n, l) in &v.routes {
                let kept = before.routes.get(n).is_some_and(|o| Arc::ptr_eq(o, l));
                assert_eq!(kept, !changed.contains(&n.as_str()), "{n}");
            }
            before = v;
        };
        // A pod joins `web`: only its report changed.
        let mut c = web("c", "n1");
        c.uid = "uid-c".into();
        e.apply(c);
        step(&routes, &e, &nb, &pods, &bfd, &["web"]);
        // A new generation of `db` with the same content: only its generation.
        routes[0].metadata.generation = Some(7);
        step(&routes, &e, &nb, &pods, &bfd, &["db"]);
        // An NB problem for `web`, then a failed pod of `web` (node problems, counts).
        nb.push(NbProblem {
            route: "web".into(),
            reason: "RouterNotFound".into(),
            message: "no router".into(),
        });
        step(&routes, &e, &nb, &pods, &bfd, &["web"]);
        let k = key(e.world(), "a");
        pods.failed.insert(k, "netns vanished".into());
        step(&routes, &e, &nb, &pods, &bfd, &["web"]);
        // A BFD session comes up: only the Route using BFD.
        bfd.insert("100.64.0.2".to_owned(), "up".to_owned());
        step(&routes, &e, &nb, &pods, &bfd, &["hop"]);
        let hop_now = node_status(&routes, &e, &nb, &pods, &bfd);
        assert_eq!(
            hop_now.routes["hop"].next_hops[0].bfd.as_deref(),
            Some("up")
        );
        // Nothing changed: every entry kept; the Routes in any order give the same view.
        step(&routes, &e, &nb, &pods, &bfd, &[]);
        let mut shuffled = routes.clone();
        shuffled.reverse();
        step(&shuffled, &e, &nb, &pods, &bfd, &[]);
        // A Route goes, another comes.
        e.delete_route("db");
        routes.remove(0);
        let mut x = mk_route("x", vec![rr("172.19.0.0/16", "eth1")], vec![]);
        x.spec.pod_selector = Some(sel(&[("app", "web")]));
        e.upsert_route(&x);
        routes.push(x);
        step(&routes, &e, &nb, &pods, &bfd, &["x"]);
        assert!(!cache.built.contains_key("db"));
    }

    #[test]
    fn generations_are_found_in_sorted_and_unsorted_routes_alike() {
        let r = |name: &str, g: i64| {
            let mut r = mk_route(name, vec![], vec![]);
            r.metadata.generation = Some(g);
            r
        };
        let sorted = [r("a", 1), r("b", 2), r("b", 3), r("c", 4)];
        let unsorted = [r("c", 4), r("b", 2), r("a", 1), r("b", 3)];
        let (s, u) = (generations(&sorted), generations(&unsorted));
        for (n, want) in [("a", Some(1)), ("b", Some(3)), ("c", Some(4)), ("d", None)] {
            assert_eq!(s(n), want, "{n}");
            assert_eq!(u(n), want, "{n}");
        }
        assert_eq!(generations(&[] as &[Route])("a"), None);
    }
}
