//! `run` writes what had to wait: rows for a router that does not exist yet, and a pod whose
//! logical switch port does not exist yet, are reported and then written as soon as the
//! router / port appears (the NB monitor triggers the pass; the periodic resync is an hour).
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use fixture::*;

const LATE: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: late}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [client-a, client-b]}]}
  route:
    - {dst: "172.16.70.0/24", dev: eth1}
  ovn:
    router: late_router
    nextHops: ["100.99.0.2"]
"#;

fn late_policies(ovn: &Ovn) -> String {
    ovn.nbctl(&["lr-policy-list", "late_router"])
}

fn group_ports(ovn: &Ovn) -> String {
    let ports = ovn.nbctl(&[
        "--bare",
        "--columns=ports",
        "find",
        "Port_Group",
        "name=ovnkube_route_late",
    ]);
    ports
        .split_whitespace()
        .map(|u| ovn.nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port", u]))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn rows_waiting_for_a_router_or_a_port_are_written_when_they_appear() {
    let (ovn, inputs) = with_topology(Ovn::start());
    // client-b's logical switch port is not there yet (its pod is still being wired).
    ovn.nbctl(&["lsp-del", "default_client-b"]);
    inputs.put("late.yaml", LATE);
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);

    poll(
        15,
        "the Route's port group with the ports that exist",
        || {
            run.assert_alive();
            let ports = group_ports(&ovn);
            if ports.trim() == "default_client-a" {
                Ok(())
            } else {
                Err(ports)
            }
        },
    );
    poll(5, "RouterNotFound and PortNotFound in the log", || {
        let log = run.log();
        if log.contains("RouterNotFound") && log.contains("PortNotFound") {
            Ok(())
        } else {
            Err(log)
        }
    });
    let policies = ovn.nbctl(&[
        "--bare",
        "--columns=match",
        "find",
        "Logical_Router_Policy",
        "external_ids:\"k8s.ovn.org/name\"=late",
    ]);
    assert!(
        policies.trim().is_empty(),
        "a policy was written without its router: {policies}"
    );

    // The router appears, with a port on the next hop's network.
    ovn.nbctl(&["lr-add", "late_router"]);
    ovn.nbctl(&[
        "lrp-add",
        "late_router",
        "rtol-late",
        "0a:58:64:63:00:01",
        "100.99.0.1/16",
    ]);
    let took = poll(10, "the policy on the new router", || {
        run.assert_alive();
        let p = late_policies(&ovn);
        if p.contains("$ovnkube_route_late_v4")
            && p.contains("172.16.70.0/24")
            && p.contains("100.99.0.2")
        {
            Ok(())
        } else {
            Err(p)
        }
    });
    println!("policy written {took:?} after its router appeared");

    // The port appears.
    ovn.nbctl(&["lsp-add", "node1", "default_client-b"]);
    let took = poll(10, "client-b in the port group", || {
        let ports = group_ports(&ovn);
        if ports.contains("default_client-a") && ports.contains("default_client-b") {
            Ok(())
        } else {
            Err(ports)
        }
    });
    println!("port added {took:?} after it appeared");
}
