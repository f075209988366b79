//! BFD for static routes against a real NB + SB + ovn-northd: the session of a next hop is
//! reused when it exists (a row ovn-kubernetes made is referred to, never changed), created
//! and owned when not, and ovn-northd takes a route out of the logical flows while its
//! session is down.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use fixture::*;

const BFD_EVERYONE: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: everyone}
spec:
  route:
    - {dst: "172.16.60.0/24", dev: eth1}
  ovn:
    nextHops: ["100.64.0.2", "100.64.0.3"]
    bfd: true
"#;

const PORT: &str = "rtoj-ovn_cluster_router";

/// BFD rows as (logical_port, dst_ip, ours, uuid).
fn bfd_rows(ovn: &Ovn) -> Vec<(String, String, bool, String)> {
    let mut v: Vec<_> = ovn
        .dump()
        .remove("BFD")
        .unwrap_or_default()
        .into_iter()
        .map(|(uuid, r)| {
            (
                r["logical_port"].as_str().unwrap().to_owned(),
                r["dst_ip"].as_str().unwrap().to_owned(),
                is_owned(&r),
                uuid,
            )
        })
        .collect();
    v.sort();
    v
}

/// The ovn_cluster_router routing flows for 172.16.60.0/24, from the SB.
fn routing_flows(ovn: &Ovn) -> Vec<String> {
    ovn.lflows("ovn_cluster_router")
        .into_iter()
        .filter(|l| l.contains("lr_in_ip_routing") && l.contains("172.16.60.0/24"))
        .collect()
}

#[test]
fn bfd_sessions_are_shared_and_a_down_session_removes_the_route() {
    let (ovn, inputs) = with_topology(Ovn::start_with_northd());
    // ovn-kubernetes' session to 100.64.0.3 exists already.
    ovn.nbctl(&[
        "create",
        "BFD",
        &format!("logical_port={PORT}"),
        "dst_ip=100.64.0.3",
        "external_ids:k8s.ovn.org/owner-controller=default-network-controller",
    ]);
    let foreign_before: Vec<_> = bfd_rows(&ovn);
    inputs.put("everyone.yaml", BFD_EVERYONE);
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("everyone: Applied"), "{r}");
    assert!(!r.stdout.contains("BfdNotSupported"), "{r}");

    let rows = bfd_rows(&ovn);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2),
        ("100.64.0.2", true),
        "{rows:?}"
    );
    assert_eq!(
        rows[1], foreign_before[0],
        "the foreign row is reused as it is"
    );
    // Each static route refers to the session of its next hop.
    for s in ovn.owned_rows("Logical_Router_Static_Route") {
        let hop = s["nexthop"].as_str().unwrap();
        let want = &rows.iter().find(|b| b.1 == hop).unwrap().3;
        assert_eq!(s["bfd"][1], *want, "{s:?}");
    }

    // ovn-northd: with no ovn-controller to bring them up, both sessions are down and the
    // route is absent; both up, an ECMP route over the two next hops; 100.64.0.2 down,
    // only the route via 100.64.0.3 is left.
    assert!(routing_flows(&ovn).is_empty(), "{:?}", routing_flows(&ovn));
    ovn.set_bfd_status("100.64.0.2", "up");
    ovn.set_bfd_status("100.64.0.3", "up");
    let up = routing_flows(&ovn).join("\n");
    ovn.set_bfd_status("100.64.0.2", "down");
    let down = routing_flows(&ovn).join("\n");
    println!("both up:\n{up}\n100.64.0.2 down:\n{down}");
    assert!(up.contains("select(1, 2)"), "{up}");
    assert!(
        !down.contains("select(")
            && down.contains("reg0 = 100.64.0.3")
            && !down.contains("100.64.0.2"),
        "{down}"
    );

    // Applied again: nothing to change (the status column is OVN's, not ours).
    let r = apply_nb(&ovn, &inputs);
    assert!(r.stdout.contains("NB: 0 change(s)"), "{r}");

    // The Route gone: our session is deleted, ovn-kubernetes' stays untouched.
    inputs.remove("everyone.yaml");
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 0, "{r}");
    let rows = bfd_rows(&ovn);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0], foreign_before[0]);
}
