//! Properties over generated input: validation never panics and always points at the
//! spec; the plan does not depend on the order Routes or rules are given in.
use proptest::prelude::*;

use crate::api::validate::validate;
use crate::api::{DefaultRouteRule, OvnSpec, RouteRule, SvcRule, Target};
use crate::plan::plan;
use crate::plan::testkit::*;

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9./:-]{0,20}",
        "(10|172|192)\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?",
        "fd00:[0-9a-f]{1,4}::(/[0-9]{1,3})?",
        "eth[0-9]",
        ".{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn validation_never_panics_and_paths_point_into_the_spec(
        rules in prop::collection::vec((field(), field(), prop::option::of(field())), 0..6),
        svcs in prop::collection::vec((field(), field(), field()), 0..4),
        kinds in prop::collection::vec((field(), prop::option::of(field()), field()), 0..3),
        hops in prop::collection::vec(field(), 0..3),
        dr in prop::option::of((field(), prop::option::of(field()))),
    ) {
        let mut r = mk_route("r", rules.iter().map(|(d, v, via)| RouteRule { dst: d.clone(), dev: v.clone(), via: via.clone() }).collect(),
            svcs.iter().map(|(a, b, c)| SvcRule { namespace: a.clone(), name: b.clone(), dev: c.clone(), via: None }).collect());
        r.spec.targets = kinds.iter().map(|(k, ns, n)| Target { kind: k.clone(), namespace: ns.clone(), name: n.clone() }).collect();
        r.spec.ovn = Some(OvnSpec { next_hops: hops, ..OvnSpec::default() });
        r.spec.default_route = dr.map(|(dev, via)| DefaultRouteRule { dev, via });
        let v = validate(&r);
        for p in &v.problems {
            prop_assert!(p.path.as_deref().is_some_and(|x| x.starts_with("spec.")), "{p:?}");
            prop_assert!(!p.reason.is_empty() && !p.message.is_empty());
        }
        prop_assert!(v.rules.len() <= rules.len() + svcs.len());
        // planning the same thing never panics either
        let w = world([mk_pod("default", "p").into()]);
        let _ = plan(&w, &[r], &cfg());
    }

    #[test]
    fn plan_is_independent_of_input_order(
        dsts in prop::collection::vec((0u8..4, 0u8..3, 8u8..=32, prop::bool::ANY), 1..8),
        prios in prop::collection::vec(-1i32..2, 3),
        seed in any::<u64>(),
    ) {
        let w = world([
            with_labels(mk_pod_n("default", "a", 1), &[("app", "x")]).into(),
            mk_pod_n("default", "b", 2).into(),
        ]);
        let mut routes = Vec::new();
        for (j, prio) in prios.iter().enumerate() {
            // a destination written twice in one Route is order-dependent by definition
            // (the first is kept), so each Route gets distinct destinations
            let mut seen = std::collections::BTreeSet::new();
            let rules: Vec<_> = dsts
                .iter()
                .filter(|(_, owner, _, _)| usize::from(*owner) == j)
                .filter_map(|(n, _, plen, ovn)| {
                    let net: ipnet::IpNet = format!("172.16.{n}.0/{plen}").parse::<ipnet::IpNet>().unwrap().trunc();
                    seen.insert(net).then(|| rr(&net.to_string(), if *ovn { "eth1" } else { "eth0" }))
                })
                .collect();
            let mut r = mk_route(&format!("r{j}"), rules, vec![]);
            r.spec.priority = *prio;
            if j == 1 {
                r.spec.pod_selector = Some(sel(&[("app", "x")]));
            }
            r.spec.ovn = Some(OvnSpec { next_hops: vec!["100.64.0.2".into()], enforce: Some(true), ..OvnSpec::default() });
            routes.push(r);
        }
        let a = plan(&w, &routes, &cfg());
        // a deterministic shuffle of Routes and of each Route's rules
        let mut shuffled = routes.clone();
        let mut s = seed;
        for r in shuffled.iter_mut() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = r.spec.route.len();
            if len > 0 {
                r.spec.route.rotate_left((s >> 33) as usize % len);
            }
        }
        shuffled.rotate_left((seed % 3) as usize);
        let b = plan(&w, &shuffled, &cfg());
        prop_assert_eq!(&a.pods, &b.pods);
        prop_assert_eq!(&a.nb, &b.nb);
        prop_assert_eq!(&a.next_hops, &b.next_hops);
        prop_assert_eq!(a.reports.keys().collect::<Vec<_>>(), b.reports.keys().collect::<Vec<_>>());
    }
}
