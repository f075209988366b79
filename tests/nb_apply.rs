//! `apply` against a real NB: create / update / delete Routes, restart with the same input,
//! a Route deleted while stopped, a 10,000-rule Route, problems only the NB can show (bad
//! input is in nb_bad_input.rs). After every step, the foreign (ovn-kubernetes) rows are
//! byte-for-byte what they were.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use fixture::*;

#[test]
fn create_update_delete_routes() {
    let (ovn, inputs, foreign) = setup();

    // Create.
    inputs.put("ecmp.yaml", ECMP);
    inputs.put("enforce.yaml", ENFORCE);
    inputs.put("everyone.yaml", EVERYONE);
    let r = apply_ok(&ovn, &inputs);
    assert!(r.stdout.contains("ecmp: Applied"), "{r}");
    assert!(r.stdout.contains("enforce: Applied"), "{r}");
    let p = ovn.owned_policies();
    in_band(&p);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (&p[0].1[..], &p[0].2[..], &p[0].3),
        (ECMP_MATCH, "reroute", &two())
    );
    let listed = ovn.nbctl(&["lr-policy-list", "ovn_cluster_router"]);
    assert!(listed.contains(ECMP_MATCH), "{listed}");
    assert!(listed.contains("100.64.0.2, 100.64.0.3"), "{listed}");
    assert_eq!(address_set(&ovn, "ovnkube_route_ecmp_v4"), "10.244.1.4");
    assert_eq!(address_set(&ovn, "ovnkube_route_enforce_v4"), "10.244.1.4");
    let acls = ovn.nbctl(&["acl-list", "ovnkube_route_enforce"]);
    assert!(
        acls.contains("from-lport")
            && acls
                .contains("(inport == @ovnkube_route_enforce && ip4.dst == 192.168.50.0/24) drop"),
        "{acls}"
    );
    assert_eq!(acls.lines().count(), 1, "{acls}");
    let owned = ovn.owned();
    let counts: Vec<(&str, usize)> = owned.iter().map(|(t, v)| (t.as_str(), v.len())).collect();
    assert_eq!(
        counts,
        [
            ("ACL", 1),
            ("Address_Set", 6),
            ("Logical_Router_Policy", 1),
            ("Logical_Router_Static_Route", 2),
            ("Port_Group", 3)
        ],
        "{owned:#?}"
    );
    assert_eq!(
        static_routes(&ovn),
        ["172.16.60.0/24 100.64.0.2", "172.16.60.0/24 100.64.0.3"]
    );
    let listed = ovn.nbctl(&["lr-route-list", "ovn_cluster_router"]);
    for hop in ["100.64.0.2", "100.64.0.3"] {
        assert!(
            listed
                .lines()
                .any(|l| l.split_whitespace().take(2).eq(["172.16.60.0/24", hop])),
            "{listed}"
        );
    }
    // Every pod (node1 and node2) is in everyone's address set.
    assert_eq!(
        address_set(&ovn, "ovnkube_route_everyone_v4"),
        "10.244.1.3 10.244.1.4 10.244.1.5 10.244.2.4"
    );
    assert_foreign_unchanged(&foreign, &ovn.foreign());

    // Update: another selection, two new destinations, one next hop.
    inputs.put(
        "ecmp.yaml",
        &ECMP
            .replace(
                "podSelector: {matchLabels: {app: client-a}}",
                "podSelector: {matchExpressions: [{key: app, operator: In, values: [client-a, client-b]}]}",
            )
            .replace(
                "- {dst: \"172.16.20.0/24\", dev: eth1}",
                "- {dst: \"172.16.21.0/24\", dev: eth1}\n    - {dst: \"172.16.22.0/24\", dev: eth1}",
            )
            .replace("[\"100.64.0.2\", \"100.64.0.3\"]", "[\"100.64.0.3\"]"),
    );
    apply_ok(&ovn, &inputs);
    let p = ovn.owned_policies();
    in_band(&p);
    let got: Vec<(&str, &[String])> = p.iter().map(|p| (&p.1[..], &p.3[..])).collect();
    let three = ["100.64.0.3".to_owned()];
    assert_eq!(
        got,
        [
            (
                "ip4.src == $ovnkube_route_ecmp_v4 && ip4.dst == 172.16.21.0/24",
                &three[..]
            ),
            (
                "ip4.src == $ovnkube_route_ecmp_v4 && ip4.dst == 172.16.22.0/24",
                &three[..]
            ),
        ],
        "{p:?}"
    );
    assert_eq!(
        address_set(&ovn, "ovnkube_route_ecmp_v4"),
        "10.244.1.4 10.244.1.5"
    );
    let listed = ovn.nbctl(&["lr-policy-list", "ovn_cluster_router"]);
    assert!(!listed.contains("172.16.20.0/24"), "{listed}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());

    // Delete enforce: its ACL, port group and address sets go, ecmp stays.
    inputs.remove("enforce.yaml");
    apply_ok(&ovn, &inputs);
    let owned = ovn.owned();
    assert!(!owned.contains_key("ACL"), "{owned:#?}");
    assert!(
        owned.values().flatten().all(|r| !r.contains("enforce")),
        "{owned:#?}"
    );
    assert_eq!(owned["Logical_Router_Policy"].len(), 2);
    let names = ovn.nbctl(&["--bare", "--columns=name", "list", "Port_Group"]);
    assert!(!names.contains("ovnkube_route_enforce"), "{names}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());

    // Delete everyone: its static routes go.
    assert_eq!(static_routes(&ovn).len(), 2);
    inputs.remove("everyone.yaml");
    apply_ok(&ovn, &inputs);
    assert!(static_routes(&ovn).is_empty(), "{:?}", static_routes(&ovn));
    let listed = ovn.nbctl(&["lr-route-list", "ovn_cluster_router"]);
    assert!(!listed.contains("172.16.60.0/24"), "{listed}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());

    // Delete the last Route: nothing of ours is left.
    inputs.remove("ecmp.yaml");
    apply_ok(&ovn, &inputs);
    assert!(ovn.owned().is_empty(), "{:#?}", ovn.owned());
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

#[test]
fn restart_with_unchanged_input_writes_nothing_and_cleans_routes_deleted_while_stopped() {
    let (ovn, inputs, foreign) = setup();
    inputs.put("ecmp.yaml", ECMP);
    inputs.put("enforce.yaml", ENFORCE);
    inputs.put("everyone.yaml", EVERYONE);
    let first = apply_ok(&ovn, &inputs);
    assert!(!first.stdout.contains("NB: 0 change(s)"), "{first}");
    let owned = ovn.owned();
    let size = std::fs::metadata(ovn.nb_db_file()).unwrap().len();

    for _ in 0..2 {
        let again = apply_ok(&ovn, &inputs);
        assert!(again.stdout.contains("NB: 0 change(s)"), "{again}");
        // A standalone ovsdb-server appends every committed transaction to its file.
        assert_eq!(
            std::fs::metadata(ovn.nb_db_file()).unwrap().len(),
            size,
            "the NB file grew: something was written"
        );
        assert_eq!(ovn.owned(), owned);
        // Static routes have no index in the schema: a restart must not duplicate them.
        assert_eq!(static_routes(&ovn).len(), 2, "{:?}", static_routes(&ovn));
    }

    // ecmp deleted while no controller ran: the next apply removes exactly its rows.
    inputs.remove("ecmp.yaml");
    let r = apply_ok(&ovn, &inputs);
    assert!(!r.stdout.contains("NB: 0 change(s)"), "{r}");
    let now = ovn.owned();
    assert!(
        now.values().flatten().all(|r| !r.contains("ecmp")),
        "{now:#?}"
    );
    let mut expected = owned.clone();
    for rows in expected.values_mut() {
        rows.retain(|r| !r.contains("ecmp"));
    }
    expected.retain(|_, v| !v.is_empty());
    assert_eq!(now, expected);
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

/// The foreign-row comparison itself sees a changed foreign row, a foreign policy removed
/// from the router, and a foreign address set edited (so the checks above can fail).
#[test]
fn foreign_snapshot_detects_changes() {
    let (ovn, _inputs, foreign) = setup();
    assert_eq!(foreign, ovn.foreign(), "two snapshots of an idle NB differ");
    let uuid = edit_foreign_policy(&ovn);
    assert_ne!(foreign, ovn.foreign());
    let f2 = ovn.foreign();
    ovn.nbctl(&["lr-policy-del", "ovn_cluster_router", &uuid]);
    assert_ne!(f2, ovn.foreign());
    let f3 = ovn.foreign();
    ovn.nbctl(&[
        "remove",
        "Address_Set",
        "a10148211500778908391",
        "addresses",
        "10.244.1.5",
    ]);
    assert_ne!(f3, ovn.foreign());
}

/// A 10,000-rule Route with next hops: one policy per rule, all in the band, and a second
/// apply writes nothing.
#[test]
fn ten_thousand_rule_route() {
    let (ovn, inputs, foreign) = setup();
    let mut y = String::from(
        "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: big}\nspec:\n  podSelector: {matchLabels: {app: client-a}}\n  ovn:\n    nextHops: [\"100.64.0.2\"]\n  route:\n",
    );
    for i in 0..10_000u32 {
        y.push_str(&format!(
            "    - {{dst: \"10.{}.{}.0/24\", dev: eth1}}\n",
            100 + i / 256,
            i % 256
        ));
    }
    inputs.put("big.yaml", &y);
    let start = std::time::Instant::now();
    let r = apply_ok(&ovn, &inputs);
    println!("10,000-rule Route applied in {:?}", start.elapsed());
    assert!(r.stdout.contains("big: Applied"), "{r}");
    let p = ovn.owned_policies();
    assert_eq!(p.len(), 10_000);
    in_band(&p);
    let again = apply_ok(&ovn, &inputs);
    assert!(again.stdout.contains("NB: 0 change(s)"), "{again}");
    inputs.remove("big.yaml");
    apply_ok(&ovn, &inputs);
    assert!(ovn.owned().is_empty());
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

/// Problems only the NB can show are reported per Route, and nothing is written for them:
/// a next hop on no network of the router, an unknown router, a name a foreign row holds,
/// a Service sent over OVN without a load balancer.
#[test]
fn nb_problems_are_reported_and_write_nothing_wrong() {
    let (ovn, inputs, _) = setup();
    // A foreign Address_Set already holds the name our Route would use.
    ovn.nbctl(&[
        "create",
        "Address_Set",
        "name=ovnkube_route_taken_v4",
        "addresses=\"192.0.2.1\"",
    ]);
    // ... and a foreign Port_Group the name of an enforcing Route's group.
    ovn.nbctl(&["pg-add", "ovnkube_route_pgtaken", "default_client-b"]);
    let foreign = ovn.foreign();
    inputs.set_world(&world_yaml(&[NGINX, ("default", "web", "10.96.100.20")]));
    let route = |name: &str, extra: &str| {
        format!(
            "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {{name: {name}}}\nspec:\n  podSelector: {{matchLabels: {{app: client-a}}}}\n{extra}"
        )
    };
    inputs.put(
        "far.yaml",
        &route(
            "far",
            "  route: [{dst: \"172.16.70.0/24\", dev: eth1}]\n  ovn: {nextHops: [\"10.99.0.1\"]}\n",
        ),
    );
    inputs.put(
        "norouter.yaml",
        &route("norouter", "  route: [{dst: \"172.16.71.0/24\", dev: eth1}]\n  ovn: {router: GR_nowhere, nextHops: [\"100.64.0.2\"]}\n"),
    );
    inputs.put(
        "taken.yaml",
        &route("taken", "  route: [{dst: \"172.16.72.0/24\", dev: eth1}]\n  ovn: {nextHops: [\"100.64.0.2\"]}\n"),
    );
    inputs.put(
        "pgtaken.yaml",
        &route(
            "pgtaken",
            "  route: [{dst: \"172.16.73.0/24\", dev: eth0}]\n  ovn: {enforce: true}\n",
        ),
    );
    inputs.put(
        "nolb.yaml",
        &route("nolb", "  svc: [{namespace: default, name: web, dev: eth1}, {namespace: default, name: nginx, dev: eth1}]\n"),
    );
    let r = apply_nb(&ovn, &inputs);
    assert_no_panic(&r);
    println!("{r}");
    for (route, reason) in [
        ("far", "NextHopUnreachable"),
        ("norouter", "RouterNotFound"),
        ("taken", "NameTaken"),
        ("pgtaken", "NameTaken"),
        ("nolb", "NoLoadBalancer"),
    ] {
        let section: String = r
            .stdout
            .split(&format!("\n{route}: "))
            .nth(1)
            .unwrap_or_else(|| panic!("no status for {route}:\n{r}"))
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with(' ') || !l.contains(": "))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            section.contains(reason),
            "{route}: {reason} not reported:\n{r}"
        );
    }
    assert!(
        r.stdout.contains("10.96.100.20"),
        "the VIP without a load balancer is named:\n{r}"
    );
    let m = matches(&ovn);
    // Not 172.16.72.0/24 either: `$ovnkube_route_taken_v4` would name the FOREIGN set.
    for dst in ["172.16.70.0/24", "172.16.71.0/24", "172.16.72.0/24"] {
        assert!(
            !m.iter().any(|x| x.contains(dst)),
            "policy for {dst} written: {m:?}"
        );
    }
    // The foreign set keeps its addresses, the taken name is not written over.
    assert_eq!(address_set(&ovn, "ovnkube_route_taken_v4"), "192.0.2.1");
    // No ACL of ours anywhere for pgtaken (it would drop the foreign group's traffic).
    assert!(
        ovn.owned_rows("ACL").is_empty(),
        "{:?}",
        ovn.owned_rows("ACL")
    );
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

/// `apply --node` on a machine where none of that node's pods is found programs no pod and
/// leaves no state directory behind (it is created with the first record).
#[test]
fn apply_that_programs_no_pod_creates_no_state_dir() {
    let (ovn, inputs, _) = setup();
    inputs.put("ecmp.yaml", ECMP);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let cni = tmp.path().join("cni");
    std::fs::create_dir(&cni).unwrap();
    let world = inputs.world();
    let routes = inputs.routes();
    let r = ovnkube(&[
        "apply",
        "-f",
        world.to_str().unwrap(),
        "-f",
        routes.to_str().unwrap(),
        "--nb",
        &ovn.nb_remote(),
        "--node",
        "node1",
        "--cni-results",
        cni.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("pods: 0 reconciled"), "{r}");
    assert!(r.stdout.contains("ecmp: Applied"), "{r}");
    assert!(!state.exists(), "state dir created: {r}");
}
