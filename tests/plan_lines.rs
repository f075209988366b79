//! `plan`'s lines run when pasted: every `ovn-nbctl` line against a real NB, every `ip`
//! line inside the pods' real network namespaces; pods not on this machine get a note and
//! commented lines, never a line that fails.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use std::process::Command;

use fixture::*;

/// An eth0 rule without via: the pod's own eth0 gateway (169.254.1.1) is used.
const ETH0: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: eth0}
spec:
  podSelector: {matchLabels: {app: client-a}}
  route:
    - {dst: "172.16.11.0/24", dev: eth0}
"#;

/// Selects client-c, which runs on node2: no netns here.
const ELSEWHERE: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: elsewhere}
spec:
  podSelector: {matchLabels: {app: client-c}}
  route:
    - {dst: "172.16.12.0/24", dev: eth1}
"#;

/// An empty Address_Set (selects nobody).
const NOBODY: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: nobody}
spec:
  podSelector: {matchLabels: {app: nobody}}
  route:
    - {dst: "172.16.13.0/24", dev: eth1}
"#;

fn sh(line: &str, nb: &str) {
    let out = Command::new("sh")
        .args(["-c", line])
        .env("OVN_NB_DB", nb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pasted line failed: {line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn section<'a>(out: &'a str, head: &str) -> Vec<&'a str> {
    out.split("\n== ")
        .find(|s| s.starts_with(head))
        .unwrap_or_else(|| panic!("no section {head}:\n{out}"))
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn plan_lines_run_when_pasted() {
    let (ovn, inputs) = with_topology(Ovn::start());
    let net = PodNet::new("lines");
    inputs.put(
        "routes.yaml",
        &documents(&[ECMP, ENFORCE, ETH0, ELSEWHERE, NOBODY]),
    );
    let world = inputs.world();
    let routes = inputs.routes();
    // No --node: every pod is planned, node2's too (its netns is not here).
    let args = [
        "plan",
        "-f",
        world.to_str().unwrap(),
        "-f",
        routes.to_str().unwrap(),
        "--nb",
        &ovn.nb_remote(),
        "--cni-results",
        net.cni_results.path().to_str().unwrap(),
        "--state-dir",
        net.state.path().to_str().unwrap(),
    ];
    let r = ovnkube(&args);
    assert_eq!(r.code, 0, "{r}");
    let nb = section(&r.stdout, "OVN Northbound");
    assert!(
        nb.iter()
            .any(|l| l
                .contains(r#"create Address_Set 'name="ovnkube_route_nobody_v4"' 'addresses=[]'"#)),
        "{r}"
    );
    for line in nb.iter().filter(|l| !l.starts_with('#')) {
        sh(line, &ovn.nb_remote());
    }
    let pods = section(&r.stdout, "Pod routes");
    let a = pod("client-a");
    let eth0 = pods.iter().find(|l| l.contains("172.16.11.0/24")).unwrap();
    assert!(
        eth0.starts_with(&format!(
            "ip -n {} route replace 172.16.11.0/24 via 169.254.1.1 dev eth0 proto 136",
            net.ns(a)
        )),
        "{eth0}"
    );
    assert!(
        pods.iter()
            .any(|l| l.starts_with("# default/client-c: network namespace not found")),
        "{r}"
    );
    let c_line = pods.iter().find(|l| l.contains("172.16.12.0/24")).unwrap();
    assert!(c_line.starts_with("# ip -n <netns> "), "{c_line}");
    for line in pods.iter().filter(|l| l.starts_with("ip ")) {
        sh(line, &ovn.nb_remote());
    }
    let table = net.routes(a);
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("172.16.11.0/24 via 169.254.1.1 dev eth0 proto 136")),
        "{table:?}"
    );
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("172.16.20.0/24 via 10.244.1.1 dev eth1 proto 136")),
        "{table:?}"
    );
    // Pasted rows carry our ownership: planned again, nothing is left to do in the NB.
    let again = ovnkube(&args);
    assert!(
        again.stdout.contains("== OVN Northbound: 0 change(s)"),
        "{again}"
    );
    assert!(!again.stdout.contains("NameTaken"), "{again}");

    // Updates and deletes run too: ecmp selects client-b as well and keeps one next hop,
    // enforce and nobody are gone.
    let ecmp = ECMP
        .replace(
            "{matchLabels: {app: client-a}}",
            "{matchExpressions: [{key: app, operator: In, values: [client-a, client-b]}]}",
        )
        .replace(r#"["100.64.0.2", "100.64.0.3"]"#, r#"["100.64.0.2"]"#);
    inputs.put("routes.yaml", &documents(&[&ecmp, ETH0, ELSEWHERE]));
    let r = ovnkube(&args);
    assert_eq!(r.code, 0, "{r}");
    let nb = section(&r.stdout, "OVN Northbound");
    for want in [
        "add Address_Set ovnkube_route_ecmp_v4 addresses",
        "add Port_Group ovnkube_route_ecmp ports",
        "set Logical_Router_Policy",
        "pg-del ovnkube_route_enforce",
        "destroy Address_Set",
    ] {
        assert!(nb.iter().any(|l| l.contains(want)), "{want}:\n{r}");
    }
    for line in nb.iter().filter(|l| !l.starts_with('#')) {
        sh(line, &ovn.nb_remote());
    }
    let again = ovnkube(&args);
    assert!(
        again.stdout.contains("== OVN Northbound: 0 change(s)"),
        "{again}"
    );
}
