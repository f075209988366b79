//! `run` with pods as real network namespaces: svc rules follow their Service in the world
//! file, a deleted Route removes exactly its routes, a route deleted by hand comes back.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use fixture::*;

const SVC: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: svc}
spec:
  podSelector: {matchLabels: {app: client-a}}
  svc:
    - {namespace: default, name: web, dev: eth1}
  route:
    - {dst: "172.16.10.0/24", dev: eth1}
"#;

const OTHER: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: other}
spec:
  podSelector: {matchLabels: {app: client-a}}
  route:
    - {dst: "172.16.11.0/24", dev: eth0}
"#;

/// Polls until `pod`'s table contains every line of `present` (prefix match) and no line
/// starts with one of `absent`.
fn wait_routes(
    net: &PodNet,
    run: &mut Spawned,
    p: &Pod,
    present: &[&str],
    absent: &[&str],
    what: &str,
) {
    let took = poll(10, what, || {
        run.assert_alive();
        let t = net.routes(p);
        let ok = present.iter().all(|w| t.iter().any(|l| l.starts_with(w)))
            && absent.iter().all(|w| !t.iter().any(|l| l.starts_with(w)));
        if ok { Ok(()) } else { Err(t) }
    });
    println!("{what}: {took:?}");
}

#[test]
fn run_programs_pods_and_follows_services_routes_and_drift() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let foreign = ovn.foreign();
    let net = PodNet::new("run");
    let inputs = Inputs::new(&world_yaml(&[NGINX, ("default", "web", "10.96.100.20")]));
    inputs.put("svc.yaml", SVC);
    inputs.put("other.yaml", OTHER);
    let a = pod("client-a");
    let b = pod("client-b");
    let base_a = net.routes(a);
    let base_b = net.routes(b);
    let args = net.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = spawn_run(&ovn, &inputs, &args);

    wait_routes(
        &net,
        &mut run,
        a,
        &[
            "10.96.100.20 via 10.244.1.1 dev eth1",
            "172.16.10.0/24 via 10.244.1.1 dev eth1",
            "172.16.11.0/24 via 169.254.1.1 dev eth0",
        ],
        &[],
        "initial programming",
    );
    let mut want: Vec<String> = base_a.clone();
    want.extend(
        [
            "10.96.100.20 via 10.244.1.1 dev eth1 proto 136",
            "172.16.10.0/24 via 10.244.1.1 dev eth1 proto 136",
            "172.16.11.0/24 via 169.254.1.1 dev eth0 proto 136",
        ]
        .map(String::from),
    );
    want.sort();
    assert_eq!(
        net.routes(a),
        want,
        "client-a: exactly its own routes plus ours"
    );
    assert_eq!(net.routes(b), base_b, "client-b is not selected");

    // The Service gets a new ClusterIP: the host route moves.
    inputs.set_world(&world_yaml(&[NGINX, ("default", "web", "10.96.100.21")]));
    wait_routes(
        &net,
        &mut run,
        a,
        &["10.96.100.21 via 10.244.1.1 dev eth1"],
        &["10.96.100.20"],
        "svc follows the new ClusterIP",
    );

    // The Service is deleted: its route goes, the Route's other rule stays.
    inputs.set_world(&world_yaml(&[NGINX]));
    wait_routes(
        &net,
        &mut run,
        a,
        &["172.16.10.0/24 via 10.244.1.1 dev eth1"],
        &["10.96.100.21"],
        "svc route removed with the Service",
    );

    // Bad input over the programmed state: broken YAML, then a version invalid as a whole.
    // Both are rejected and `other` keeps its route (its last good version stays planned).
    let programmed = net.routes(a);
    let broken = std::fs::read_to_string(format!("{CORPUS}/broken-yaml.yaml")).unwrap();
    inputs.put("other.yaml", &broken);
    poll(10, "broken YAML reported", || {
        run.assert_alive();
        if run.log().contains("YAML syntax error") {
            Ok(())
        } else {
            Err(())
        }
    });
    inputs.put(
        "other.yaml",
        &OTHER.replace("172.16.11.0/24", "172.16.11.0/33"),
    );
    poll(10, "invalid version reported", || {
        run.assert_alive();
        if run.log().contains("keeping the last good one") {
            Ok(())
        } else {
            Err(())
        }
    });
    // A valid change after the bad input: once it shows, a full pass has run since.
    inputs.put(
        "svc.yaml",
        &SVC.replace(
            "- {dst: \"172.16.10.0/24\", dev: eth1}",
            "- {dst: \"172.16.10.0/24\", dev: eth1}\n    - {dst: \"172.16.12.0/24\", dev: eth1}",
        ),
    );
    wait_routes(
        &net,
        &mut run,
        a,
        &["172.16.12.0/24 via 10.244.1.1 dev eth1"],
        &[],
        "valid change after bad input",
    );
    let mut want = programmed.clone();
    want.push("172.16.12.0/24 via 10.244.1.1 dev eth1 proto 136".into());
    want.sort();
    assert_eq!(net.routes(a), want, "bad input changed the pod's routes");
    assert!(!run.log().contains("panicked"), "{}", run.log());

    // Route `other` deleted from the files: exactly its route goes.
    inputs.remove("other.yaml");
    wait_routes(
        &net,
        &mut run,
        a,
        &["172.16.10.0/24"],
        &["172.16.11.0/24"],
        "deleted Route's routes removed",
    );
    let mut want = base_a.clone();
    want.push("172.16.10.0/24 via 10.244.1.1 dev eth1 proto 136".into());
    want.push("172.16.12.0/24 via 10.244.1.1 dev eth1 proto 136".into());
    want.sort();
    assert_eq!(net.routes(a), want, "client-a after the deletions");

    // A route deleted by hand comes back (pod resync timer; NB resync is an hour away).
    ip(&["-n", &net.ns(a), "route", "del", "172.16.10.0/24"]);
    assert!(
        !net.routes(a)
            .iter()
            .any(|l| l.starts_with("172.16.10.0/24"))
    );
    wait_routes(
        &net,
        &mut run,
        a,
        &["172.16.10.0/24 via 10.244.1.1 dev eth1"],
        &[],
        "route deleted by hand restored",
    );
    assert_eq!(net.routes(a), want);
    assert_eq!(net.routes(b), base_b, "client-b untouched throughout");
    assert_foreign_unchanged(&foreign, &ovn.foreign());
    run.assert_alive();
}
