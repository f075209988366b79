//! Selection, exclusion and skip rules.
use crate::api::Exclude;
use crate::cluster::PodPhase;
use crate::plan::IpFamily;
use crate::plan::testkit::*;
use crate::plan::{SkipReason, plan};

fn basic_world() -> crate::cluster::World {
    world([
        mk_ns("default", &[("team", "a")]).into(),
        mk_ns("prod", &[("team", "b")]).into(),
        with_labels(mk_pod("default", "web-1"), &[("app", "web")]).into(),
        with_labels(mk_pod("default", "db-1"), &[("app", "db")]).into(),
        with_labels(mk_pod("prod", "web-2"), &[("app", "web")]).into(),
    ])
}

#[test]
fn no_selection_means_every_pod() {
    let r = mk_route("all", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    let p = plan(&basic_world(), &[r], &cfg());
    assert_eq!(
        planned_pods(&p),
        ["default/db-1", "default/web-1", "prod/web-2"]
    );
    assert_eq!(p.reports["all"].selected, 3);
    assert_eq!(p.reports["all"].programmable, 3);
}

#[test]
fn pod_selector_and_namespace_selector_intersect() {
    let mut r = mk_route("web", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.pod_selector = Some(sel(&[("app", "web")]));
    let p = plan(&basic_world(), std::slice::from_ref(&r), &cfg());
    assert_eq!(planned_pods(&p), ["default/web-1", "prod/web-2"]);

    r.spec.namespace_selector = Some(sel(&[("team", "b")]));
    let p = plan(&basic_world(), &[r], &cfg());
    assert_eq!(planned_pods(&p), ["prod/web-2"]);
}

#[test]
fn namespace_selector_on_unknown_namespace_uses_the_name_label() {
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.namespace_selector = Some(sel(&[("kubernetes.io/metadata.name", "ghost")]));
    let w = world([mk_pod("ghost", "p").into(), mk_pod("other", "q").into()]);
    assert_eq!(planned_pods(&plan(&w, &[r], &cfg())), ["ghost/p"]);
}

#[test]
fn match_expressions_select() {
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.pod_selector = Some(sel_expr("app", "NotIn", &["db"]));
    assert_eq!(
        planned_pods(&plan(&basic_world(), &[r], &cfg())),
        ["default/web-1", "prod/web-2"]
    );
}

#[test]
fn exclusion_wins_over_every_selection() {
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.targets = vec![
        target("Namespace", None, "default"),
        target("Pod", Some("prod"), "web-2"),
    ];
    r.spec.exclude = Some(Exclude {
        pods: vec!["default/db-1".into()],
        namespaces: vec!["prod".into()],
        ..Exclude::default()
    });
    let p = plan(&basic_world(), std::slice::from_ref(&r), &cfg());
    assert_eq!(planned_pods(&p), ["default/web-1"]);

    r.spec.exclude = Some(Exclude {
        pod_selector: Some(sel(&[("app", "web")])),
        ..Exclude::default()
    });
    assert_eq!(
        planned_pods(&plan(&basic_world(), std::slice::from_ref(&r), &cfg())),
        ["default/db-1"]
    );

    r.spec.exclude = Some(Exclude {
        namespace_selector: Some(sel(&[("team", "a")])),
        ..Exclude::default()
    });
    assert_eq!(
        planned_pods(&plan(&basic_world(), &[r], &cfg())),
        ["prod/web-2"]
    );
}

#[test]
fn broken_selector_selects_nothing_and_broken_exclude_excludes_everything() {
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.pod_selector = Some(sel_expr("app", "In", &[]));
    let p = plan(&basic_world(), std::slice::from_ref(&r), &cfg());
    assert!(p.pods.is_empty());
    assert_eq!(p.reports["r"].summary.as_str(), "Invalid");

    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.exclude = Some(Exclude {
        pod_selector: Some(sel_expr("app", "Bogus", &["x"])),
        ..Exclude::default()
    });
    let p = plan(&basic_world(), &[r], &cfg());
    assert!(p.pods.is_empty());
    assert_eq!(p.reports["r"].summary.as_str(), "Degraded");
    assert_eq!(p.reports["r"].problems[0].reason, "InvalidSelector");
}

#[test]
fn host_network_finished_and_missing_dev_are_skipped_and_counted() {
    let mut host = mk_pod("default", "host");
    host.host_network = true;
    let mut done = mk_pod("default", "done");
    done.phase = PodPhase::Finished;
    let w = world([
        host.into(),
        done.into(),
        calico_only(mk_pod("default", "calico")).into(),
        mk_pod("default", "dual").into(),
    ]);
    let r = mk_route(
        "r",
        vec![rr("172.16.10.0/24", "eth1"), rr("172.16.11.0/24", "eth0")],
        vec![],
    );
    let p = plan(&w, &[r], &cfg());
    // the calico-only pod gets only its eth0 rule
    assert_eq!(
        dst_dev(&p, "default", "calico"),
        [("172.16.11.0/24".into(), "eth0".into())]
    );
    assert_eq!(dst_dev(&p, "default", "dual").len(), 2);
    assert!(routes_of(&p, "default", "host").is_none());
    assert!(routes_of(&p, "default", "done").is_none());
    let rep = &p.reports["r"];
    assert_eq!(rep.selected, 4);
    // Skipped entirely: host and done; calico skips only its eth1 rule.
    assert_eq!(rep.skipped, 2);
    assert_eq!(rep.skipped_rules, 1);
    assert_eq!(rep.skipped_rules_by_reason[&SkipReason::MissingDev], 1);
    assert_eq!(
        rep.selected,
        rep.programmable + rep.skipped,
        "the counts add up"
    );
    assert_eq!(rep.skipped_by_reason[&SkipReason::HostNetwork], 1);
    assert_eq!(rep.skipped_by_reason[&SkipReason::Finished], 1);
    assert_eq!(rep.skipped_by_reason[&SkipReason::MissingDev], 1);
    assert_eq!(rep.programmable, 2);
    assert_eq!(rep.summary.as_str(), "Applied");
    // hostNetwork pods are not in the OVN selection either
    let ports: Vec<_> = p.nb.port_groups[0].ports.iter().collect();
    assert_eq!(ports, ["default_dual"]);
}

#[test]
fn network_status_decides_which_devs_exist_and_their_gateways() {
    let pod = with_interfaces(
        mk_pod("default", "p"),
        &[
            ("eth0", &["192.168.0.9"], &[]),
            ("net1", &["10.9.0.5"], &["10.9.0.1"]),
        ],
    );
    let w = world([pod.into()]);
    let r = mk_route(
        "r",
        vec![
            rr("172.16.10.0/24", "eth1"),
            rr("172.16.12.0/24", "net1"),
            rr("172.16.11.0/24", "eth0"),
        ],
        vec![],
    );
    let p = plan(&w, &[r], &cfg());
    let routes = &routes_of(&p, "default", "p").unwrap().routes;
    let got: Vec<_> = routes
        .iter()
        .map(|x| (x.dst.to_string(), &*x.dev, x.next_hop.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "172.16.11.0/24".to_string(),
                "eth0",
                crate::plan::pod::NextHop::DevGateway
            ),
            ("172.16.12.0/24".to_string(), "net1", via("10.9.0.1")),
        ]
    );
}

#[test]
fn other_nodes_pods_get_no_pod_routes_but_stay_in_cluster_nb_rows() {
    let w = world([
        mk_pod("default", "here").into(),
        on_node(mk_pod("default", "there"), "node2").into(),
    ]);
    let r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    let mut c = cfg();
    c.node = Some("node1".into());
    let p = plan(&w, std::slice::from_ref(&r), &c);
    assert_eq!(planned_pods(&p), ["default/here"]);
    assert_eq!(p.nb.port_groups[0].ports.len(), 2);
    c.nb_scope = crate::plan::NbScope::Node;
    let p = plan(&w, &[r], &c);
    assert_eq!(
        p.nb.port_groups[0].ports.iter().collect::<Vec<_>>(),
        ["default_here"]
    );
    assert_eq!(p.reports["r"].selected, 2);
    assert_eq!(p.reports["r"].programmable, 1);
}

#[test]
fn family_must_match_the_pod() {
    let w = world([mk_pod("default", "v4only").into()]);
    let r = mk_route(
        "r",
        vec![rr("fd00:10::/64", "eth1"), rr("172.16.0.0/16", "eth1")],
        vec![],
    );
    let p = plan(&w, &[r], &cfg());
    assert_eq!(
        dst_dev(&p, "default", "v4only"),
        [("172.16.0.0/16".into(), "eth1".into())]
    );
    assert_eq!(
        p.reports["r"].skipped_by_reason[&SkipReason::NoAddressOfFamily],
        1
    );
}

#[test]
fn default_route_per_family_with_gateway() {
    let mut r = mk_route("r", vec![], vec![]);
    r.spec.default_route = Some(crate::api::DefaultRouteRule {
        dev: "eth1".into(),
        via: None,
    });
    let mut pod = mk_pod("default", "p");
    let ovn = pod.ovn.as_mut().unwrap();
    ovn.ips.push("fd00:124::5/64".parse().unwrap());
    ovn.gateways.push(ip("fd00:124::1"));
    let p = plan(&world([pod.into()]), &[r], &cfg());
    let d = &routes_of(&p, "default", "p").unwrap().default_routes;
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].family, d[1].family), (IpFamily::V4, IpFamily::V6));
    assert_eq!(d[1].next_hop, via("fd00:124::1"));
    assert_eq!(&*d[0].dev, "eth1");
}

/// The dual-stack case of the counts: pods skipped only for some rules are programmable,
/// and their skipped rules are counted apart, so `selected = programmable + skipped`.
#[test]
fn dual_stack_counts_add_up_and_count_skipped_rules() {
    let dual = |name: &str, i: u8| {
        let mut p = mk_pod("default", name);
        let o = p.ovn.as_mut().unwrap();
        o.ips.push(format!("fd00:124::{i}/64").parse().unwrap());
        o.gateways.push("fd00:124::1".parse().unwrap());
        p.pod_ips.push(format!("fd00:192::{i}").parse().unwrap());
        p
    };
    let mut host = mk_pod("default", "host");
    host.host_network = true;
    let w = world([
        dual("d1", 1).into(),
        dual("d2", 2).into(),
        mk_pod("default", "v4only").into(),
        calico_only(mk_pod("default", "calico")).into(),
        host.into(),
    ]);
    let r = mk_route(
        "r",
        vec![
            rr("172.16.10.0/24", "eth1"),
            rr("fd00:10::/64", "eth1"),
            rr("172.16.11.0/24", "eth0"),
        ],
        vec![],
    );
    let p = plan(&w, &[r], &cfg());
    let rep = &p.reports["r"];
    assert_eq!(rep.selected, 5);
    assert_eq!(rep.programmable, 4, "d1, d2, v4only, calico");
    assert_eq!(rep.skipped, 1, "host only");
    assert_eq!(rep.selected, rep.programmable + rep.skipped);
    // v4only lacks IPv6 on eth1 (1 rule); calico lacks eth1 (2 rules).
    assert_eq!(rep.skipped_rules, 3);
    assert_eq!(
        rep.skipped_rules_by_reason[&SkipReason::NoAddressOfFamily],
        1
    );
    assert_eq!(rep.skipped_rules_by_reason[&SkipReason::MissingDev], 2);
    assert_eq!(rep.here.skipped_rules, 3, "no node set: every pod is here");
    assert_eq!(dst_dev(&p, "default", "calico").len(), 1);
    assert_eq!(dst_dev(&p, "default", "v4only").len(), 2);
}

/// A node's share of the skipped rules counts only its own pods (what its report carries).
#[test]
fn skipped_rules_here_count_only_this_nodes_pods() {
    let w = world([
        calico_only(mk_pod("default", "a")).into(),
        calico_only(on_node(mk_pod("default", "b"), "node2")).into(),
        mk_pod("default", "c").into(),
    ]);
    let r = mk_route(
        "r",
        vec![rr("172.16.10.0/24", "eth1"), rr("172.16.11.0/24", "eth0")],
        vec![],
    );
    let mut c = cfg();
    c.node = Some("node1".into());
    let p = plan(&w, &[r], &c);
    let rep = &p.reports["r"];
    assert_eq!(rep.skipped_rules, 2, "a and b lack eth1");
    assert_eq!(rep.here.skipped_rules, 1, "only a is on node1");
    assert_eq!(rep.here.selected, 2);
}
