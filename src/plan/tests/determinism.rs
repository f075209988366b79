//! Same input, same output: order of Routes, rules and objects changes nothing.
use crate::api::OvnSpec;
use crate::plan::testkit::*;
use crate::plan::{Plan, plan};

fn input() -> (crate::cluster::World, Vec<crate::api::Route>) {
    let w = world([
        mk_pod_n("default", "a", 1).into(),
        mk_pod_n("prod", "b", 2).into(),
        mk_svc("default", "nginx", &["10.86.0.5"]).into(),
    ]);
    let mut r1 = mk_route(
        "one",
        vec![
            rr("172.16.10.0/24", "eth1"),
            rr("172.16.11.0/24", "eth0"),
            rr("10.0.0.0/8", "eth1"),
        ],
        vec![sr("default", "nginx", "eth1")],
    );
    r1.spec.pod_selector = Some(sel(&[]));
    r1.spec.ovn = Some(OvnSpec {
        next_hops: vec!["100.64.0.2".into()],
        enforce: Some(true),
        ..OvnSpec::default()
    });
    let r2 = mk_route("two", vec![rr("172.16.12.0/24", "eth1")], vec![]);
    (w, vec![r1, r2])
}

fn ids(p: &Plan) -> Vec<String> {
    let nb = &p.nb;
    nb.address_sets
        .iter()
        .map(|x| &x.owner.id)
        .chain(nb.port_groups.iter().map(|x| &x.owner.id))
        .chain(nb.policies.iter().map(|x| &x.owner.id))
        .chain(nb.static_routes.iter().map(|x| &x.owner.id))
        .chain(nb.acls.iter().map(|x| &x.owner.id))
        .cloned()
        .collect()
}

#[test]
fn reordering_routes_and_rules_gives_the_same_plan() {
    let (w, routes) = input();
    let a = plan(&w, &routes, &cfg());
    assert_eq!(a, plan(&w, &routes, &cfg()));

    let mut shuffled = routes.clone();
    shuffled.reverse();
    shuffled[1].spec.route.reverse();
    let b = plan(&w, &shuffled, &cfg());
    assert_eq!(a.pods, b.pods);
    assert_eq!(a.nb, b.nb);
    assert_eq!(a.next_hops, b.next_hops);
}

#[test]
fn row_ids_are_unique_per_table_and_independent_of_rule_positions() {
    let (w, routes) = input();
    let p = plan(&w, &routes, &cfg());
    let all = ids(&p);
    let set: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(set.len(), all.len(), "{all:?}");
    assert!(all.contains(&"one/policy/172.16.10.0/24".to_string()));
    // routes in pods come out sorted by destination
    let r = &routes_of(&p, "default", "a").unwrap().routes;
    let mut sorted = r.clone();
    sorted.sort_by_key(|x| x.dst);
    assert_eq!(*r, sorted);
}

#[test]
fn world_insertion_order_does_not_matter() {
    let (w, routes) = input();
    let mut w2 = crate::cluster::World::new();
    let mut objs: Vec<crate::cluster::WorldObject> = vec![
        mk_svc("default", "nginx", &["10.86.0.5"]).into(),
        mk_pod_n("prod", "b", 2).into(),
        mk_pod_n("default", "a", 1).into(),
    ];
    objs.reverse();
    for o in objs {
        w2.apply(o);
    }
    assert_eq!(w, w2);
    assert_eq!(plan(&w, &routes, &cfg()), plan(&w2, &routes, &cfg()));
}

#[test]
fn a_replan_shares_unchanged_pods_routes_with_the_previous_plan() {
    use std::sync::Arc;
    let (w, routes) = input();
    let mut engine = crate::plan::Engine::build(cfg(), w.clone(), &routes);
    let first = engine.plan();
    // Nothing changed: same value as a fresh plan, and every pod's routes are shared.
    engine.replace_routes(&routes);
    let again = engine.plan();
    assert_eq!(again, plan(&w, &routes, &cfg()));
    assert!(!again.pods.is_empty());
    for (k, r) in &again.pods {
        assert!(Arc::ptr_eq(r, &first.pods[k]), "{k} not shared");
    }
    // Route `two` (selecting every pod) gets one more rule: every pod changes, none is
    // shared, and the result is still exactly a fresh plan.
    let mut edited = routes.clone();
    edited[1].spec.route.push(rr("172.16.13.0/24", "eth1"));
    engine.replace_routes(&edited);
    let next = engine.plan();
    assert_eq!(next, plan(&w, &edited, &cfg()));
    for (k, r) in &next.pods {
        assert!(!Arc::ptr_eq(r, &first.pods[k]), "{k} shared but changed");
    }
}
