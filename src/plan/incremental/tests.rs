//! The engine against the full planner: fixed scenarios for what must (and must not) become
//! dirty, and random event sequences after each step of which the engine's plan equals a
//! fresh full plan and every change is in the dirty sets.
use std::collections::BTreeSet;

use proptest::prelude::*;

use super::{Dirty, Engine};
use crate::api::{DefaultRouteRule, Exclude, OvnSpec, Route};
use crate::cluster::{LinkKind, PodPhase, World, WorldObject, WorldRef};
use crate::plan::testkit::*;
use crate::plan::{Plan, PlanConfig, plan};

fn ovn(r: &mut Route, hops: &[&str]) {
    r.spec.ovn = Some(OvnSpec {
        next_hops: hops.iter().map(|s| s.to_string()).collect(),
        ..OvnSpec::default()
    });
}

fn engine(world_objs: Vec<WorldObject>, routes: &[Route]) -> Engine {
    let mut e = Engine::new(cfg());
    for o in world_objs {
        assert!(e.apply(o));
    }
    e.replace_routes(routes);
    e.take_dirty();
    e
}

fn check(e: &Engine, routes: &[Route]) {
    let full = plan(e.world(), routes, e.config());
    assert_eq!(e.plan(), full);
}

/// A Route with gateway pods `role=gw` in namespaces `tier=edge`, and `hops` static ones.
fn gateway_route(name: &str, hops: &[&str]) -> Route {
    let mut r = mk_route(name, vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.pod_selector = Some(sel(&[("app", "a")]));
    ovn(&mut r, hops);
    if let Some(o) = r.spec.ovn.as_mut() {
        o.next_hop_pods = Some(crate::api::NextHopPods {
            namespace_selector: Some(sel(&[("tier", "edge")])),
            pod_selector: Some(sel(&[("role", "gw")])),
            network: None,
        });
    }
    r
}

fn policy_hops(e: &Engine) -> Vec<String> {
    let p = e.plan();
    p.nb.policies
        .iter()
        .flat_map(|x| x.nexthops.iter().cloned())
        .collect()
}

#[test]
fn gateway_pods_come_and_go_as_next_hops_and_touch_only_their_route() {
    let member = with_labels(mk_pod("apps", "m1"), &[("app", "a")]);
    let gw = |name: &str| with_labels(mk_pod("edge", name), &[("role", "gw")]);
    let g1 = gw("g1");
    let g1_ip = g1.ovn.as_ref().unwrap().ips[0].addr().to_string();
    let routes = [
        gateway_route("via-gw", &[]),
        gateway_route("other", &["100.64.0.9"]),
    ];
    let mut e = engine(
        vec![member.into(), mk_ns("edge", &[("tier", "edge")]).into()],
        &routes[..1],
    );
    // No gateway yet: no policy, reported.
    assert!(e.plan().nb.policies.is_empty());
    let report = e.report("via-gw").unwrap();
    assert!(
        report.problems.iter().any(|p| p.reason == "NoReadyNextHop"),
        "{report:?}"
    );

    assert!(e.apply(g1.clone()));
    assert_eq!(policy_hops(&e), std::slice::from_ref(&g1_ip));
    assert_eq!(e.take_dirty().nb, BTreeSet::from(["via-gw".to_owned()]));
    check(&e, &routes[..1]);

    // Not ready, then terminating: out; the pod side of the members never changes.
    let mut flap = g1.clone();
    flap.ready = false;
    assert!(e.apply(flap));
    assert!(policy_hops(&e).is_empty());
    let d = e.take_dirty();
    assert_eq!(d.nb, BTreeSet::from(["via-gw".to_owned()]));
    assert!(!d.pods.contains(&("apps".to_owned(), "m1".to_owned())));
    assert!(e.apply(g1.clone()));
    let mut going = g1.clone();
    going.terminating = true;
    assert!(e.apply(going));
    assert!(policy_hops(&e).is_empty());
    check(&e, &routes[..1]);

    // A second gateway, then the namespace loses its label: both go.
    assert!(e.apply(g1.clone()));
    assert!(e.apply(gw("g2")));
    assert_eq!(policy_hops(&e).len(), 2);
    assert!(e.apply(mk_ns("edge", &[])));
    assert!(policy_hops(&e).is_empty());
    check(&e, &routes[..1]);
    assert!(e.apply(mk_ns("edge", &[("tier", "edge")])));
    assert!(e.delete(&WorldRef::Pod(("edge".into(), "g2".into()))));
    assert_eq!(policy_hops(&e), std::slice::from_ref(&g1_ip));

    // Static and live hops together: the union; status lists each one.
    e.upsert_route(&routes[1]);
    e.take_dirty();
    let hops = e.report("other").unwrap().next_hops.clone();
    let listed: Vec<(&str, bool)> = hops.iter().map(|h| (h.address.as_str(), h.used)).collect();
    assert_eq!(listed, [("100.64.0.9", true), (g1_ip.as_str(), true)]);
    check(&e, &routes);
}

#[test]
fn pod_label_change_moves_a_pod_between_routes_and_touches_only_them() {
    let mut a = mk_route("a", vec![rr("10.1.0.0/16", "eth1")], vec![]);
    a.spec.pod_selector = Some(sel(&[("app", "a")]));
    let mut b = mk_route("b", vec![rr("10.2.0.0/16", "eth1")], vec![]);
    b.spec.pod_selector = Some(sel(&[("app", "b")]));
    let mut c = mk_route("c", vec![rr("10.3.0.0/16", "eth1")], vec![]);
    c.spec.pod_selector = Some(sel(&[("app", "c")]));
    let routes = vec![a, b, c];
    let p = with_labels(mk_pod("default", "p"), &[("app", "a")]);
    let mut e = engine(vec![p.clone().into()], &routes);
    e.apply(with_labels(p, &[("app", "b")]));
    let d = e.take_dirty();
    assert_eq!(d.nb, BTreeSet::from(["a".to_string(), "b".to_string()]));
    assert_eq!(d.reports, d.nb);
    assert_eq!(d.pods, BTreeSet::from([("default".into(), "p".into())]));
    let (_, r) = e.pod_routes(&("default".into(), "p".into())).unwrap();
    assert_eq!(r.routes[0].dst.to_string(), "10.2.0.0/16");
    check(&e, &routes);
}

#[test]
fn pods_given_equal_routes_share_one_copy_and_part_when_they_differ() {
    let mut a = mk_route("a", vec![rr("10.1.0.0/16", "eth1")], vec![]);
    a.spec.pod_selector = Some(sel(&[("app", "a")]));
    let mut b = mk_route("b", vec![rr("10.2.0.0/16", "eth1")], vec![]);
    b.spec.pod_selector = Some(sel(&[("app", "b")]));
    let routes = vec![a, b];
    let pod = |n: &str, app: &str| with_labels(mk_pod("default", n), &[("app", app)]);
    let mut e = engine(
        vec![
            pod("p1", "a").into(),
            pod("p2", "a").into(),
            pod("p3", "b").into(),
        ],
        &routes,
    );
    let of = |e: &Engine, n: &str| {
        e.pod_routes(&("default".into(), n.into()))
            .unwrap()
            .1
            .clone()
    };
    assert!(std::sync::Arc::ptr_eq(&of(&e, "p1"), &of(&e, "p2")));
    assert!(!std::sync::Arc::ptr_eq(&of(&e, "p1"), &of(&e, "p3")));
    e.apply(pod("p2", "b"));
    assert!(std::sync::Arc::ptr_eq(&of(&e, "p2"), &of(&e, "p3")));
    assert_eq!(of(&e, "p1").routes[0].dst.to_string(), "10.1.0.0/16");
    assert_eq!(of(&e, "p2").routes[0].dst.to_string(), "10.2.0.0/16");
    check(&e, &routes);
}

#[test]
fn editing_a_route_leaves_unrelated_routes_alone_and_reranks_only_its_slot() {
    let mk = |name: &str, dst: &str, prio: i32| {
        let mut r = mk_route(name, vec![rr(dst, "eth1")], vec![]);
        r.spec.pod_selector = Some(sel(&[("app", name)]));
        r.spec.priority = prio;
        ovn(&mut r, &["100.64.0.2"]);
        r
    };
    // a and b share 10.1.0.0/16 on the router; c is elsewhere.
    let mut routes = vec![
        mk("a", "10.1.0.0/16", 1),
        mk("b", "10.1.0.0/16", 0),
        mk("c", "10.9.0.0/16", 0),
    ];
    let pods = ["a", "b", "c"]
        .iter()
        .map(|n| with_labels(mk_pod("default", n), &[("app", n)]).into())
        .collect();
    let mut e = engine(pods, &routes);
    let prio_of = |e: &Engine, r: &str| e.desired_nb([&r.to_string()]).0.policies[0].priority;
    let b_before = prio_of(&e, "b");
    // c changes destination: nothing else moves.
    routes[2] = mk("c", "10.8.0.0/16", 0);
    e.upsert_route(&routes[2]);
    assert_eq!(e.take_dirty().nb, BTreeSet::from(["c".to_string()]));
    // a leaves the shared slot: b, which shared it, is ranked first now.
    routes[0] = mk("a", "10.7.0.0/16", 1);
    e.upsert_route(&routes[0]);
    let d = e.take_dirty();
    assert_eq!(d.nb, BTreeSet::from(["a".to_string(), "b".to_string()]));
    assert!(prio_of(&e, "b") > b_before);
    check(&e, &routes);
}

#[test]
fn services_namespaces_and_workloads_reach_the_routes_that_name_them() {
    let mut svc = mk_route("svc", vec![], vec![sr("default", "db", "eth1")]);
    svc.spec.pod_selector = Some(sel(&[("app", "x")]));
    let mut nsr = mk_route("ns", vec![rr("10.5.0.0/16", "eth1")], vec![]);
    nsr.spec.namespace_selector = Some(sel(&[("team", "t")]));
    let mut dep = mk_route("dep", vec![rr("10.6.0.0/16", "eth1")], vec![]);
    dep.spec.targets = vec![target("Deployment", Some("default"), "web")];
    let routes = vec![svc, nsr, dep];
    let p = owned_by(
        with_labels(mk_pod("default", "p"), &[("app", "x")]),
        "ReplicaSet",
        "rs1",
    );
    let mut e = engine(
        vec![p.into(), mk_svc("default", "db", &["10.96.0.5"]).into()],
        &routes,
    );
    check(&e, &routes);
    e.apply(mk_svc("default", "db", &["10.96.0.6"]));
    assert_eq!(e.take_dirty().pods.len(), 1);
    e.apply(mk_ns("default", &[("team", "t")]));
    assert!(e.take_dirty().nb.contains("ns"));
    e.apply(mk_link(
        LinkKind::ReplicaSet,
        "default",
        "rs1",
        "Deployment",
        "web",
    ));
    assert!(e.take_dirty().nb.contains("dep"));
    check(&e, &routes);
    e.delete(&WorldRef::Service(("default".into(), "db".into())));
    e.delete(&WorldRef::Namespace("default".into()));
    e.delete(&WorldRef::Link(
        LinkKind::ReplicaSet,
        ("default".into(), "rs1".into()),
    ));
    check(&e, &routes);
}

#[test]
fn drift_and_netns_events_mark_without_replanning() {
    let r = mk_route("r", vec![rr("10.1.0.0/16", "eth1")], vec![]);
    let mut e = engine(vec![mk_pod("default", "p").into()], &[r]);
    e.nb_drifted("r");
    e.netns_appeared("default", "p");
    e.netns_appeared("default", "unknown");
    assert_eq!(
        e.take_dirty(),
        Dirty {
            nb: BTreeSet::from(["r".to_string()]),
            pods: BTreeSet::from([("default".into(), "p".into())]),
            reports: BTreeSet::new(),
        }
    );
}

// ----- random event sequences -----

#[derive(Clone, Debug)]
enum Event {
    Route(Box<Route>),
    DeleteRoute(String),
    Pod(Box<crate::cluster::PodInfo>),
    DeletePod(String, String),
    Namespace(String, bool),
    DeleteNamespace(String),
    Service(String, u8),
    DeleteService(String),
    Slice(String, u8),
    Link(bool),
    DeleteLink,
    Relist(Option<Box<crate::cluster::PodInfo>>),
    Rebuild,
}

const NAMES: [&str; 4] = ["r0", "r1", "r2", "r3"];
/// The last two trip guard rails: 10.124.0.0/16 holds every test pod's own OVN subnet
/// (refused over eth0), 169.254.1.1 is Calico's gateway on eth0 (refused over eth1).
const DSTS: [&str; 6] = [
    "10.1.0.0/16",
    "10.2.0.0/16",
    "10.1.0.0/24",
    "fd00:1::/64",
    "10.124.0.0/16",
    "169.254.1.1/32",
];
const PODS: [(&str, &str); 6] = [
    ("ns0", "p0"),
    ("ns0", "p1"),
    ("ns0", "web-1"),
    ("ns1", "p3"),
    ("ns1", "p4"),
    ("ns1", "p5"),
];

fn route_strategy() -> impl Strategy<Value = Route> {
    (
        0usize..4,
        -1i32..2,
        0u8..9,
        prop::collection::vec((0usize..DSTS.len(), prop::bool::ANY), 0..4),
        prop::option::of(0u8..2),
        0u8..4,
        prop::bool::ANY,
        0u8..3,
        0u8..3,
    )
        .prop_map(
            |(n, prio, selection, rules, svc, hops, enforce, extra, gw)| {
                let name = NAMES[n];
                let rules = rules
                    .into_iter()
                    .map(|(d, ovn)| rr(DSTS[d], if ovn { "eth1" } else { "eth0" }))
                    .collect();
                let svcs = svc
                    .map(|s| vec![sr("ns0", &format!("svc{s}"), "eth1")])
                    .unwrap_or_default();
                let mut r = mk_route(name, rules, svcs);
                r.spec.priority = prio;
                match selection {
                    0 => {}
                    1 => r.spec.pod_selector = Some(sel(&[("app", "a")])),
                    2 => r.spec.pod_selector = Some(sel_expr("app", "Exists", &[])),
                    3 => r.spec.namespace_selector = Some(sel(&[("team", "t")])),
                    4 => r.spec.targets = vec![target("Deployment", Some("ns0"), "web")],
                    5 => r.spec.pod_selector = Some(sel_expr("app", "NotIn", &["a"])),
                    6 => r.spec.pod_selector = Some(sel_expr("app", "In", &["a", "b"])),
                    7 => {
                        r.spec.targets = vec![
                            target("Pod", Some("ns1"), "p3"),
                            target("Namespace", None, "ns0"),
                        ]
                    }
                    _ => {
                        r.spec.pod_selector = Some(sel(&[("app", "b")]));
                        r.spec.namespace_selector = Some(sel(&[("team", "t")]));
                    }
                }
                match extra {
                    1 => {
                        r.spec.exclude = Some(Exclude {
                            pods: vec!["ns1/p3".into()],
                            ..Exclude::default()
                        })
                    }
                    2 => {
                        r.spec.default_route = Some(DefaultRouteRule {
                            dev: "eth1".into(),
                            via: None,
                        })
                    }
                    _ => {}
                }
                let hops: &[&str] = match hops {
                    0 => &[],
                    1 => &["100.64.0.2"],
                    2 => &["100.64.0.2", "100.64.0.3"],
                    _ => &["100.64.0.2", "fd98::2"],
                };
                if !hops.is_empty() || enforce || gw > 0 {
                    ovn(&mut r, hops);
                    if let Some(o) = r.spec.ovn.as_mut() {
                        o.enforce = Some(enforce);
                        o.next_hop_pods = match gw {
                            0 => None,
                            1 => Some(crate::api::NextHopPods {
                                namespace_selector: Some(sel(&[])),
                                pod_selector: Some(sel(&[("app", "b")])),
                                network: None,
                            }),
                            _ => Some(crate::api::NextHopPods {
                                namespace_selector: Some(sel(&[("team", "t")])),
                                pod_selector: Some(sel_expr("app", "Exists", &[])),
                                network: None,
                            }),
                        };
                    }
                }
                r
            },
        )
}

fn pod_strategy() -> impl Strategy<Value = crate::cluster::PodInfo> {
    (0usize..6, 0u8..3, 0u8..5, prop::bool::ANY, 0u32..3, 0u8..4).prop_map(
        |(i, app, kind, node1, addr, state)| {
            let (ns, name) = PODS[i];
            let mut p = mk_pod_n(ns, name, i as u32 * 3 + addr);
            match app {
                0 => {}
                1 => p = with_labels(p, &[("app", "a")]),
                _ => p = with_labels(p, &[("app", "b")]),
            }
            if name.starts_with("web") {
                p = owned_by(p, "ReplicaSet", "web-abc");
            }
            match kind {
                1 => p.host_network = true,
                2 => p.phase = PodPhase::Pending,
                3 => p = calico_only(p),
                _ => {}
            }
            if !node1 {
                p = on_node(p, "node2");
            }
            match state {
                1 => p.ready = false,
                2 => p.terminating = true,
                _ => {}
            }
            p
        },
    )
}

fn event_strategy() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => route_strategy().prop_map(|r| Event::Route(Box::new(r))),
        1 => (0usize..4).prop_map(|n| Event::DeleteRoute(NAMES[n].into())),
        4 => pod_strategy().prop_map(|p| Event::Pod(Box::new(p))),
        1 => (0usize..6).prop_map(|i| Event::DeletePod(PODS[i].0.into(), PODS[i].1.into())),
        1 => (0usize..2, prop::bool::ANY).prop_map(|(i, t)| Event::Namespace(format!("ns{i}"), t)),
        1 => (0usize..2).prop_map(|i| Event::DeleteNamespace(format!("ns{i}"))),
        1 => (0usize..2, 0u8..4).prop_map(|(i, v)| Event::Service(format!("svc{i}"), v)),
        1 => (0usize..2).prop_map(|i| Event::DeleteService(format!("svc{i}"))),
        1 => (0usize..2, 0u8..3).prop_map(|(i, v)| Event::Slice(format!("svc{i}"), v)),
        1 => prop::bool::ANY.prop_map(Event::Link),
        1 => Just(Event::DeleteLink),
        1 => prop::option::of(pod_strategy()).prop_map(|p| Event::Relist(p.map(Box::new))),
        1 => Just(Event::Rebuild),
    ]
}

/// What a step changed in the full plans before and after it.
fn changed(before: &Plan, after: &Plan) -> Dirty {
    let mut d = Dirty::default();
    let routes: BTreeSet<&String> = before.reports.keys().chain(after.reports.keys()).collect();
    for r in routes {
        let rows = |p: &Plan| {
            let mut nb = p.nb.clone();
            nb.address_sets.retain(|x| &x.owner.route == r);
            nb.port_groups.retain(|x| &x.owner.route == r);
            nb.policies.retain(|x| &x.owner.route == r);
            nb.static_routes.retain(|x| &x.owner.route == r);
            nb.acls.retain(|x| &x.owner.route == r);
            (nb, p.ovn_service_ips.get(r).cloned())
        };
        if rows(before) != rows(after) {
            d.nb.insert(r.clone());
        }
        if before.reports.get(r) != after.reports.get(r) {
            d.reports.insert(r.clone());
        }
    }
    let pods: BTreeSet<_> = before.pods.keys().chain(after.pods.keys()).collect();
    for k in pods {
        if before.pods.get(k) != after.pods.get(k) {
            d.pods.insert((k.namespace.clone(), k.name.clone()));
        }
    }
    d
}

fn apply_event(e: &mut Engine, routes: &mut Vec<Route>, ev: Event) {
    let _ = match ev {
        Event::Route(r) => {
            let name = r.metadata.name.clone();
            routes.retain(|x| x.metadata.name != name);
            routes.push((*r).clone());
            e.upsert_route(&r);
            true
        }
        Event::DeleteRoute(n) => {
            routes.retain(|x| x.metadata.name.as_deref() != Some(n.as_str()));
            e.delete_route(&n);
            true
        }
        Event::Pod(p) => e.apply(*p),
        Event::DeletePod(ns, n) => e.delete(&WorldRef::Pod((ns, n))),
        Event::Namespace(n, team) => {
            let l: &[(&str, &str)] = if team { &[("team", "t")] } else { &[] };
            e.apply(mk_ns(&n, l))
        }
        Event::DeleteNamespace(n) => e.delete(&WorldRef::Namespace(n)),
        Event::Service(n, v) => match v {
            0 => e.apply(mk_svc("ns0", &n, &["10.96.0.10"])),
            1 => e.apply(mk_svc("ns0", &n, &["10.96.0.11", "fd97::11"])),
            2 => e.apply(mk_headless("ns0", &n)),
            _ => e.apply(mk_svc("ns0", &n, &[])),
        },
        Event::DeleteService(n) => e.delete(&WorldRef::Service(("ns0".into(), n))),
        Event::Slice(svc, v) => {
            let ready: &[&str] = match v {
                0 => &[],
                1 => &["10.124.9.9"],
                _ => &["10.124.9.9", "10.124.9.10"],
            };
            e.apply(mk_slice("ns0", &format!("{svc}-x"), &svc, ready))
        }
        Event::Link(to_web) => e.apply(mk_link(
            LinkKind::ReplicaSet,
            "ns0",
            "web-abc",
            "Deployment",
            if to_web { "web" } else { "other" },
        )),
        Event::DeleteLink => e.delete(&WorldRef::Link(
            LinkKind::ReplicaSet,
            ("ns0".into(), "web-abc".into()),
        )),
        Event::Relist(w) => {
            let mut world: World = e.world().clone();
            // A relist that lost a pod and a namespace, and changed another pod.
            world.delete(&WorldRef::Pod(("ns1".into(), "p4".into())));
            world.delete(&WorldRef::Namespace("ns0".into()));
            if let Some(p) = w {
                world.apply(*p);
            }
            e.replace_world(world);
            e.replace_routes(routes);
            true
        }
        Event::Rebuild => {
            // As after a full pass; what was dirty stays for the caller, and a batch that
            // was open stays open.
            let open = e.batch.is_some();
            e.commit();
            let dirty = e.take_dirty();
            *e = e.rebuilt();
            e.dirty = dirty;
            if open {
                e.begin();
            }
            true
        }
    };
}

/// Every Route's pairs are what evaluating its selection against every pod gives: the pod
/// index only narrows down which pods are tried, it never decides.
fn selection_is_brute_force(e: &Engine) -> Result<(), String> {
    use crate::plan::select::{namespace_labels, pair};
    for (name, entry) in &e.routes {
        let want: std::collections::BTreeMap<crate::cluster::SharedKey, _> = e
            .world
            .pods()
            .filter_map(|pod| {
                let labels = namespace_labels(&e.world, &pod.namespace);
                pair(&e.world, &entry.p, pod, &labels, &e.cfg)
                    .map(|s| ((pod.namespace.clone(), pod.name.clone()).into(), s))
            })
            .collect();
        if want != entry.pairs {
            return Err(format!(
                "{name}: pairs {:?}, selection gives {:?}",
                entry.pairs, want
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn engine_equals_a_fresh_full_plan_after_every_event(
        events in prop::collection::vec(event_strategy(), 1..40),
        node_local in prop::bool::ANY,
        band in prop::bool::ANY,
        guards in prop::bool::ANY,
        batch in 1usize..4,
    ) {
        let mut cfg = PlanConfig::default();
        if node_local {
            cfg.node = Some("node1".into());
            cfg.nb_scope = crate::plan::NbScope::Node;
        }
        if band {
            // A narrow band: several prefix lengths share a priority.
            cfg.priority_min = 200;
            cfg.priority_max = 210;
        }
        if guards {
            // Few routes per pod (Routes of precedence served first), and a cluster
            // network that 10.1.0.0/16 covers whole.
            cfg.max_routes_per_pod = 2;
            cfg.cluster_networks = vec!["10.1.0.0/24".parse().unwrap()];
        }
        let mut e = Engine::new(cfg.clone());
        let mut routes: Vec<Route> = Vec::new();
        let mut before = plan(e.world(), &routes, &cfg);
        // Events in batches of `batch` (Engine::begin .. commit), as the run loop coalesces
        // a burst of updates.
        for evs in events.chunks(batch) {
            e.begin();
            for ev in evs {
                apply_event(&mut e, &mut routes, ev.clone());
            }
            e.commit();
            let ev = evs;
            let full = plan(e.world(), &routes, &cfg);
            prop_assert_eq!(&e.plan(), &full, "after {:?}", ev);
            if let Err(why) = selection_is_brute_force(&e) {
                prop_assert!(false, "{} after {:?}", why, ev);
            }
            let d = e.take_dirty();
            let must = changed(&before, &full);
            prop_assert!(must.nb.is_subset(&d.nb), "NB {:?} not in {:?} after {:?}", must.nb, d.nb, ev);
            prop_assert!(must.pods.is_subset(&d.pods), "pods {:?} not in {:?} after {:?}", must.pods, d.pods, ev);
            prop_assert!(must.reports.is_subset(&d.reports), "reports {:?} not in {:?} after {:?}", must.reports, d.reports, ev);
            before = full;
        }
    }
}

#[test]
fn guard_refusals_and_the_cap_follow_pods_in_and_out() {
    let mut c = cfg();
    c.max_routes_per_pod = 1;
    let r = mk_route(
        "r",
        vec![rr("10.124.0.0/16", "eth0"), rr("172.16.0.0/16", "eth1")],
        vec![],
    );
    let mut s = mk_route(
        "s",
        vec![rr("172.17.0.0/16", "eth1"), rr("172.18.0.0/16", "eth1")],
        vec![],
    );
    s.spec.priority = -1;
    let routes = vec![r, s];
    let mut e = Engine::new(c.clone());
    e.replace_routes(&routes);
    let full = |e: &Engine| plan(e.world(), &routes, &c);
    e.apply(WorldObject::from(mk_pod("default", "a")));
    e.apply(WorldObject::from(mk_pod("default", "b")));
    assert_eq!(e.plan(), full(&e));
    let reasons = |e: &Engine, n: &str| -> Vec<String> {
        e.report(n)
            .unwrap()
            .problems
            .iter()
            .map(|p| p.reason.clone())
            .collect()
    };
    assert_eq!(reasons(&e, "r"), ["CapturesPodSubnet"]);
    assert_eq!(reasons(&e, "s"), ["TooManyRoutes"]);
    assert!(
        e.report("r").unwrap().problems[0]
            .message
            .ends_with("2 pod(s) affected")
    );
    e.delete(&WorldRef::Pod(("default".into(), "a".into())));
    assert_eq!(e.plan(), full(&e));
    assert!(
        e.report("r").unwrap().problems[0]
            .message
            .ends_with("1 pod(s) affected")
    );
    e.delete(&WorldRef::Pod(("default".into(), "b".into())));
    assert_eq!(e.plan(), full(&e));
    assert!(reasons(&e, "r").is_empty() && reasons(&e, "s").is_empty());
}

#[test]
fn skipped_rules_follow_a_pod_losing_and_regaining_its_ovn_interface() {
    // Two eth1 rules and one eth0 rule: a pod without eth1 skips two (pod, rule) pairs and
    // is still programmed; a hostNetwork pod is skipped whole and counts no rule.
    let r = mk_route(
        "r",
        vec![
            rr("10.1.0.0/16", "eth1"),
            rr("10.2.0.0/16", "eth1"),
            rr("10.3.0.0/16", "eth0"),
        ],
        vec![],
    );
    let routes = vec![r];
    let p = mk_pod("default", "p");
    let mut host = mk_pod("default", "h");
    host.host_network = true;
    let mut e = engine(vec![p.clone().into(), host.into()], &routes);
    let counts = |e: &Engine| {
        let rep = e.report("r").unwrap();
        (rep.skipped, rep.skipped_rules, rep.here.skipped_rules)
    };
    assert_eq!(counts(&e), (1, 0, 0));
    e.apply(calico_only(p.clone()));
    assert_eq!(counts(&e), (1, 2, 2));
    assert_eq!(
        e.report("r").unwrap().skipped_rules_by_reason,
        [(crate::plan::SkipReason::MissingDev, 2)].into()
    );
    check(&e, &routes);
    e.apply(p);
    assert_eq!(counts(&e), (1, 0, 0));
    assert!(e.report("r").unwrap().skipped_rules_by_reason.is_empty());
    check(&e, &routes);
}
