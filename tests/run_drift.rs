//! `run` repairs drift: with the controller running (periodic resync set to an hour, so only
//! the NB monitor can trigger the repair), owned rows deleted or edited with ovn-nbctl come
//! back; foreign rows stay byte-for-byte as they were.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use fixture::*;

/// ecmp selecting client-a and client-b (fixture::ECMP selects client-a only).
const ECMP_AB: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: ecmp}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [client-a, client-b]}]}
  route:
    - {dst: "172.16.20.0/24", dev: eth1}
  ovn:
    nextHops: ["100.64.0.2", "100.64.0.3"]
"#;

/// ecmp_ab, enforce and everyone in one file.
fn routes() -> String {
    documents(&[ECMP_AB, ENFORCE, EVERYONE])
}

const OWNED: &str = "external_ids:\"k8s.ovn.org/owner-controller\"=ovnkube-route";

fn policy_uuid(ovn: &Ovn) -> String {
    ovn.nbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Logical_Router_Policy",
        OWNED,
    ])
}

/// One change made behind the controller's back.
type Drift = Box<dyn Fn(&Ovn)>;

#[test]
fn run_repairs_deleted_and_edited_rows() {
    let (ovn, inputs) = with_topology(Ovn::start());
    let foreign = ovn.foreign();
    inputs.put("routes.yaml", &routes());
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);

    let took = poll(15, "initial programming", || {
        run.assert_alive();
        let o = ovn.owned();
        let n = |t: &str| o.get(t).map_or(0, Vec::len);
        if (
            n("Logical_Router_Policy"),
            n("ACL"),
            n("Address_Set"),
            n("Port_Group"),
            n("Logical_Router_Static_Route"),
        ) == (1, 1, 6, 3, 2)
        {
            Ok(())
        } else {
            Err(o
                .iter()
                .map(|(t, v)| (t.clone(), v.len()))
                .collect::<Vec<_>>())
        }
    });
    println!("initial programming: {took:?}");
    let want = ovn.owned();
    let ecmp_set = "ovnkube_route_ecmp_v4";
    assert_eq!(
        ovn.nbctl(&[
            "--bare",
            "--columns=addresses",
            "find",
            "Address_Set",
            &format!("name={ecmp_set}")
        ]),
        "10.244.1.4 10.244.1.5"
    );

    let drifts: Vec<(&str, Drift)> = vec![
        (
            "delete the policy",
            Box::new(|o: &Ovn| {
                o.nbctl(&["lr-policy-del", "ovn_cluster_router", &policy_uuid(o)]);
            }),
        ),
        (
            "delete the address set",
            Box::new(|o: &Ovn| {
                o.nbctl(&["destroy", "Address_Set", ecmp_set]);
            }),
        ),
        (
            "delete the ACL",
            Box::new(|o: &Ovn| {
                o.nbctl(&["--type=port-group", "acl-del", "ovnkube_route_enforce"]);
            }),
        ),
        (
            "change the policy's priority",
            Box::new(|o: &Ovn| {
                o.nbctl(&[
                    "set",
                    "Logical_Router_Policy",
                    &policy_uuid(o),
                    "priority=150",
                ]);
            }),
        ),
        (
            "remove an address from the set",
            Box::new(|o: &Ovn| {
                o.nbctl(&["remove", "Address_Set", ecmp_set, "addresses", "10.244.1.5"]);
            }),
        ),
        (
            "change the ACL's action",
            Box::new(|o: &Ovn| {
                let acl = o.nbctl(&["--bare", "--columns=_uuid", "find", "ACL", OWNED]);
                o.nbctl(&["set", "ACL", &acl, "action=allow"]);
            }),
        ),
        (
            "delete a static route",
            Box::new(|o: &Ovn| {
                o.nbctl(&[
                    "lr-route-del",
                    "ovn_cluster_router",
                    "172.16.60.0/24",
                    "100.64.0.3",
                ]);
            }),
        ),
        (
            "delete the port group (its ACL goes with it)",
            Box::new(|o: &Ovn| {
                o.nbctl(&["destroy", "Port_Group", "ovnkube_route_enforce"]);
            }),
        ),
        (
            "remove a port from the port group",
            Box::new(|o: &Ovn| {
                let lsp = o.nbctl(&[
                    "--bare",
                    "--columns=_uuid",
                    "find",
                    "Logical_Switch_Port",
                    "name=default_client-b",
                ]);
                o.nbctl(&["remove", "Port_Group", "ovnkube_route_ecmp", "ports", &lsp]);
            }),
        ),
        (
            "a duplicate of our policy appears",
            Box::new(|o: &Ovn| {
                let id = o.nbctl(&[
                    "get",
                    "Logical_Router_Policy",
                    &policy_uuid(o),
                    "external_ids",
                ]);
                o.nbctl(&[
                    "--id=@p",
                    "create",
                    "Logical_Router_Policy",
                    "priority=274",
                    "match=\"ip4.src == $ovnkube_route_ecmp_v4 && ip4.dst == 172.16.20.0/24\"",
                    "action=reroute",
                    "nexthops=\"100.64.0.2\",\"100.64.0.3\"",
                    &format!("external_ids={id}"),
                    "--",
                    "add",
                    "Logical_Router",
                    "ovn_cluster_router",
                    "policies",
                    "@p",
                ]);
            }),
        ),
        (
            "a duplicate of our static route appears",
            Box::new(|o: &Ovn| {
                let uuid = o.nbctl(&[
                    "--bare",
                    "--columns=_uuid",
                    "find",
                    "Logical_Router_Static_Route",
                    OWNED,
                    "nexthop=100.64.0.2",
                ]);
                let id = o.nbctl(&["get", "Logical_Router_Static_Route", &uuid, "external_ids"]);
                o.nbctl(&[
                    "--id=@r",
                    "create",
                    "Logical_Router_Static_Route",
                    "ip_prefix=\"172.16.60.0/24\"",
                    "nexthop=\"100.64.0.2\"",
                    &format!("external_ids={id}"),
                    "--",
                    "add",
                    "Logical_Router",
                    "ovn_cluster_router",
                    "static_routes",
                    "@r",
                ]);
            }),
        ),
    ];
    for (what, drift) in drifts {
        drift(&ovn);
        // No check that the drift is visible: the repair often lands before the next dump.
        let took = poll(10, what, || {
            run.assert_alive();
            let now = ovn.owned();
            if now == want { Ok(()) } else { Err(now) }
        });
        println!("repaired after '{what}' in {took:?}");
    }
    assert_foreign_unchanged(&foreign, &ovn.foreign());

    // A foreign row edited behind our back is not ours to repair: it stays as edited.
    edit_foreign_policy(&ovn);
    let edited = ovn.foreign();
    assert_ne!(edited, foreign);
    // Something the controller does react to, so a pass certainly runs after the edit.
    ovn.nbctl(&["lr-policy-del", "ovn_cluster_router", &policy_uuid(&ovn)]);
    poll(10, "repair after the foreign edit", || {
        if ovn.owned() == want { Ok(()) } else { Err(()) }
    });
    assert_foreign_unchanged(&edited, &ovn.foreign());
    run.assert_alive();
}

/// `run` started over a programmed NB with unchanged input writes nothing; started after
/// a Route was deleted while no controller ran, it removes exactly that Route's rows.
#[test]
fn run_restart_writes_nothing_and_cleans_routes_deleted_while_stopped() {
    let (ovn, inputs) = with_topology(Ovn::start());
    let foreign = ovn.foreign();
    inputs.put("routes.yaml", &routes());
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 0, "{r}");
    let owned = ovn.owned();
    let size = std::fs::metadata(ovn.nb_db_file()).unwrap().len();

    {
        let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);
        poll(15, "initial pass", || {
            run.assert_alive();
            if run.log().contains("initial pass done") {
                Ok(())
            } else {
                Err(run.log())
            }
        });
        assert_eq!(
            std::fs::metadata(ovn.nb_db_file()).unwrap().len(),
            size,
            "run wrote to the NB although nothing changed:\n{}",
            run.log()
        );
        assert_eq!(ovn.owned(), owned);
    }

    // everyone deleted while stopped.
    inputs.put("routes.yaml", &documents(&[ECMP_AB, ENFORCE]));
    let mut expected = owned.clone();
    for rows in expected.values_mut() {
        rows.retain(|r| !r.contains("everyone"));
    }
    expected.retain(|_, v| !v.is_empty());
    assert!(
        expected.contains_key("Logical_Router_Policy")
            && !expected.contains_key("Logical_Router_Static_Route")
    );
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);
    let took = poll(15, "everyone's rows removed", || {
        run.assert_alive();
        let now = ovn.owned();
        if now == expected { Ok(()) } else { Err(now) }
    });
    println!("rows of a Route deleted while stopped removed after {took:?}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}
