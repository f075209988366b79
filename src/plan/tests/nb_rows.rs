//! NB rows: address sets, port groups, policies, static routes, ACLs, ids, priorities.
use crate::api::OvnSpec;
use crate::plan::nb::{ID_KEY, NAME_KEY, PolicyAction};
use crate::plan::testkit::*;
use crate::plan::{PlanConfig, plan};

fn two_pods() -> crate::cluster::World {
    world([
        with_labels(mk_pod_n("default", "a", 1), &[("app", "x")]).into(),
        with_labels(mk_pod_n("default", "b", 2), &[("app", "y")]).into(),
        calico_only(mk_pod_n("default", "c", 3)).into(),
    ])
}

fn ovn(hops: &[&str], enforce: bool) -> Option<OvnSpec> {
    Some(OvnSpec {
        next_hops: hops.iter().map(|s| s.to_string()).collect(),
        enforce: Some(enforce),
        ..OvnSpec::default()
    })
}

#[test]
fn selection_only_route_gets_address_sets_and_port_group() {
    let mut r = mk_route("my-route", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    r.spec.pod_selector = Some(sel(&[("app", "x")]));
    let p = plan(&two_pods(), &[r], &cfg());
    let nb = &p.nb;
    assert_eq!(nb.address_sets.len(), 2);
    assert_eq!(nb.address_sets[0].name, "ovnkube_route_my_route_v4");
    assert_eq!(
        nb.address_sets[0].addresses.iter().collect::<Vec<_>>(),
        ["10.124.0.3"]
    );
    assert!(nb.address_sets[1].addresses.is_empty());
    assert_eq!(nb.port_groups[0].name, "ovnkube_route_my_route");
    assert_eq!(
        nb.port_groups[0].ports.iter().collect::<Vec<_>>(),
        ["default_a"]
    );
    assert!(nb.policies.is_empty() && nb.static_routes.is_empty() && nb.acls.is_empty());
    let ids = nb.address_sets[0].owner.external_ids();
    assert_eq!(ids[NAME_KEY], "my-route");
    assert_eq!(ids[ID_KEY], "my-route/address-set/ip4");
}

#[test]
fn next_hops_make_reroute_policies_for_ovn_rules_only() {
    let mut r = mk_route(
        "r",
        vec![
            rr("172.16.10.0/24", "eth1"),
            rr("172.16.11.0/24", "eth0"),
            rr("fd00:1::/64", "eth1"),
        ],
        vec![],
    );
    r.spec.pod_selector = Some(sel(&[("app", "x")]));
    r.spec.ovn = ovn(&["100.64.0.3", "100.64.0.2"], false);
    let p = plan(&two_pods(), &[r], &cfg());
    let pol = &p.nb.policies;
    assert_eq!(pol.len(), 1);
    assert_eq!(pol[0].router, "ovn_cluster_router");
    assert_eq!(pol[0].action, PolicyAction::Reroute);
    assert_eq!(
        pol[0].match_,
        "ip4.src == $ovnkube_route_r_v4 && ip4.dst == 172.16.10.0/24"
    );
    assert_eq!(
        pol[0].nexthops.iter().collect::<Vec<_>>(),
        ["100.64.0.2", "100.64.0.3"]
    );
    assert!((200..=299).contains(&pol[0].priority));
    // the v6 rule has no v6 next hop: reported, no row
    let probs = &p.reports["r"].problems;
    assert_eq!(probs.len(), 1);
    assert_eq!(probs[0].reason, "NoNextHopForFamily");
    assert_eq!(probs[0].path.as_deref(), Some("spec.route[2].dst"));
    let hops: Vec<String> = p.next_hops["ovn_cluster_router"]
        .keys()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(hops, ["100.64.0.2", "100.64.0.3"]);
}

#[test]
fn select_all_routes_use_static_routes_on_the_named_router() {
    let mut r = mk_route("all", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    r.spec.ovn = Some(OvnSpec {
        router: Some("GR_node1".into()),
        next_hops: vec!["100.64.0.2".into(), "100.64.0.3".into()],
        bfd: Some(true.into()),
        enforce: None,
        next_hop_pods: None,
        symmetric_reply: None,
    });
    let p = plan(&two_pods(), &[r], &cfg());
    assert!(p.nb.policies.is_empty());
    let sr = &p.nb.static_routes;
    assert_eq!(sr.len(), 2);
    assert!(
        sr.iter()
            .all(|s| s.router == "GR_node1" && s.ip_prefix == "172.16.10.0/24" && s.bfd)
    );
    assert_ne!(sr[0].owner.id, sr[1].owner.id);
    assert!(p.reports["all"].problems.is_empty());
}

#[test]
fn bfd_on_a_route_written_as_policies_is_reported() {
    let mut r = mk_route("some", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    r.spec.pod_selector = Some(sel(&[("app", "x")]));
    r.spec.ovn = Some(OvnSpec {
        router: None,
        next_hops: vec!["100.64.0.2".into()],
        bfd: Some(true.into()),
        enforce: None,
        next_hop_pods: None,
        symmetric_reply: None,
    });
    let p = plan(&two_pods(), &[r], &cfg());
    assert_eq!(p.nb.policies.len(), 1);
    let probs = &p.reports["some"].problems;
    assert_eq!(probs.len(), 1, "{probs:?}");
    assert_eq!(probs[0].reason, "BfdNotSupported");
    assert_eq!(probs[0].path.as_deref(), Some("spec.ovn.bfd"));
}

#[test]
fn static_route_prefix_claimed_by_two_select_all_routes() {
    let mut a = mk_route("a", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    a.spec.ovn = ovn(&["100.64.0.2"], false);
    let mut b = mk_route("b", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    b.spec.ovn = ovn(&["100.64.0.9"], false);
    let p = plan(&two_pods(), &[b, a], &cfg());
    assert_eq!(p.nb.static_routes.len(), 1);
    assert_eq!(p.nb.static_routes[0].owner.route, "a");
    assert_eq!(p.reports["b"].problems[0].reason, "Conflict");
}

#[test]
fn enforce_drops_destinations_sent_over_the_other_interface() {
    let w = {
        let mut w = two_pods();
        w.apply(mk_svc("kube-system", "nginx1", &["10.86.69.17"]));
        w
    };
    let mut r = mk_route(
        "r",
        vec![
            rr("172.16.10.0/24", "eth1"),
            rr("172.16.11.0/24", "eth0"),
            rr("fd00:2::/64", "eth0"),
        ],
        vec![sr("kube-system", "nginx1", "eth0")],
    );
    r.spec.ovn = ovn(&[], true);
    let p = plan(&w, &[r], &cfg());
    let acls: Vec<(&str, &str, &str)> =
        p.nb.acls
            .iter()
            .map(|a| (a.match_.as_str(), a.direction.as_str(), a.action.as_str()))
            .collect();
    assert_eq!(
        acls,
        [
            (
                "inport == @ovnkube_route_r && ip4.dst == 10.86.69.17/32",
                "from-lport",
                "drop"
            ),
            (
                "inport == @ovnkube_route_r && ip4.dst == 172.16.11.0/24",
                "from-lport",
                "drop"
            ),
            (
                "inport == @ovnkube_route_r && ip6.dst == fd00:2::/64",
                "from-lport",
                "drop"
            ),
        ]
    );
    assert!(p.nb.acls.iter().all(|a| a.port_group == "ovnkube_route_r"));
}

#[test]
fn priorities_prefer_longer_prefixes_then_route_precedence() {
    let c = PlanConfig::default();
    use crate::plan::ovn::policy_priority;
    let p8 = policy_priority(&c, &"10.0.0.0/8".parse().unwrap(), 0);
    let p16 = policy_priority(&c, &"10.1.0.0/16".parse().unwrap(), 0);
    let p16_second = policy_priority(&c, &"10.1.0.0/16".parse().unwrap(), 1);
    let p32 = policy_priority(&c, &"10.1.0.1/32".parse().unwrap(), 5);
    let v6_128 = policy_priority(&c, &"fd00::1/128".parse().unwrap(), 0);
    assert!(p8 < p16_second && p16_second < p16 && p16 < p32);
    assert!(p32 <= 299 && v6_128 <= 299 && p8 >= 200);
    // narrow band: still inside it
    let narrow = PlanConfig {
        priority_min: 250,
        priority_max: 259,
        ..c
    };
    for plen in [0u8, 8, 24, 32] {
        let n = format!("10.0.0.0/{plen}")
            .parse::<ipnet::IpNet>()
            .unwrap()
            .trunc();
        let pr = policy_priority(&narrow, &n, 0);
        assert!((250..=259).contains(&pr), "{pr}");
    }

    // two Routes with a policy for the same destination: the winner sits higher
    let mut a = mk_route("a", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    a.spec.pod_selector = Some(sel(&[("app", "x")]));
    a.spec.ovn = ovn(&["100.64.0.2"], false);
    a.spec.priority = 3;
    let mut b = a.clone();
    b.metadata.name = Some("b".into());
    b.spec.priority = 1;
    let p = plan(&two_pods(), &[b, a], &cfg());
    let by_route: std::collections::BTreeMap<_, _> =
        p.nb.policies
            .iter()
            .map(|x| (x.owner.route.as_str(), x.priority))
            .collect();
    assert!(by_route["a"] > by_route["b"], "{by_route:?}");
}

#[test]
fn symmetric_replies_are_src_ip_routes_on_each_members_gateway_router() {
    let mut r = mk_route("sym", vec![rr("172.16.10.0/24", "eth1")], vec![]);
    r.spec.pod_selector = Some(sel(&[("app", "x")]));
    r.spec.default_route = Some(crate::api::DefaultRouteRule {
        dev: "eth1".into(),
        via: None,
    });
    r.spec.ovn = Some(OvnSpec {
        next_hops: vec![
            "172.18.0.10".into(),
            "172.18.0.11".into(),
            "fd18::10".into(),
        ],
        symmetric_reply: Some(true),
        ..OvnSpec::default()
    });
    let p = plan(&two_pods(), std::slice::from_ref(&r), &cfg());
    let sym: Vec<_> = p.nb.static_routes.iter().filter(|s| s.symmetric).collect();
    // Pod a (10.124.0.3 here, IPv4 only) on node1: one route per IPv4 hop.
    assert_eq!(sym.len(), 2, "{sym:?}");
    for s in &sym {
        assert_eq!(s.router, "GR_node1");
        assert_eq!(s.policy, Some(crate::plan::nb::RoutePolicy::SrcIp));
        assert!(s.ip_prefix.ends_with("/32"), "{s:?}");
        assert!(s.owner.id.starts_with("sym/symmetric/"), "{s:?}");
    }
    assert_ne!(sym[0].owner.id, sym[1].owner.id);
    // The destination rule keeps its policy on the distributed router, and is told its
    // replies are not symmetric.
    assert_eq!(p.nb.policies.len(), 1);
    let reasons: Vec<(&str, Option<&str>)> = p.reports["sym"]
        .problems
        .iter()
        .map(|x| (x.reason.as_str(), x.path.as_deref()))
        .collect();
    assert_eq!(
        reasons,
        [("SymmetricReplyNeedsGatewayRouter", Some("spec.route[0]"))]
    );

    // Without a default route over OVN: nothing of it is written, and it says why.
    r.spec.default_route = None;
    let p = plan(&two_pods(), &[r], &cfg());
    assert!(p.nb.static_routes.iter().all(|s| !s.symmetric));
    assert!(
        p.reports["sym"]
            .problems
            .iter()
            .any(|x| x.reason == "SymmetricReplyNeedsGatewayRouter"
                && x.path.as_deref() == Some("spec.ovn.symmetricReply")),
        "{:?}",
        p.reports["sym"].problems
    );
}

#[test]
fn dual_stack_gateway_pods_give_each_family_its_own_hops() {
    let mut gw = mk_pod_n("edge", "g", 9);
    gw.labels = [("role".to_owned(), "gw".to_owned())].into();
    gw.ovn = Some(crate::cluster::OvnInfo {
        ips: vec![
            "100.64.1.9/16".parse().unwrap(),
            "fd98::9/64".parse().unwrap(),
        ],
        ..Default::default()
    });
    let mut w = two_pods();
    w.apply(gw);
    let mut r = mk_route(
        "ds",
        vec![rr("172.16.10.0/24", "eth1"), rr("fd00:10::/64", "eth1")],
        vec![],
    );
    r.spec.pod_selector = Some(sel(&[("app", "x")]));
    r.spec.ovn = Some(OvnSpec {
        next_hops: vec!["100.64.0.2".into()],
        next_hop_pods: Some(crate::api::NextHopPods {
            namespace_selector: Some(sel(&[])),
            pod_selector: Some(sel(&[("role", "gw")])),
            network: None,
        }),
        ..OvnSpec::default()
    });
    let p = plan(&w, &[r], &cfg());
    let hops: Vec<(String, Vec<String>)> =
        p.nb.policies
            .iter()
            .map(|x| (x.match_.clone(), x.nexthops.iter().cloned().collect()))
            .collect();
    assert_eq!(hops.len(), 2, "{hops:?}");
    for (m, h) in &hops {
        if m.contains("ip6") {
            assert_eq!(h, &["fd98::9"], "{m}");
        } else {
            assert_eq!(h, &["100.64.0.2", "100.64.1.9"], "{m}");
        }
    }
    let listed: Vec<(&str, Option<&str>, bool)> = p.reports["ds"]
        .next_hops
        .iter()
        .map(|h| (h.address.as_str(), h.pod.as_deref(), h.used))
        .collect();
    assert_eq!(
        listed,
        [
            ("100.64.0.2", None, true),
            ("100.64.1.9", Some("edge/g"), true),
            ("fd98::9", Some("edge/g"), true)
        ]
    );
}
