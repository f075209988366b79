//! Live next hops from gateway pods (`spec.ovn.nextHopPods`), end to end: the central
//! writer (`run --source kubernetes --mode central --skip-pods`) against the Kubernetes API
//! test server and a real OVN NB. Gateway pods are scaled 0 -> 3 -> 1 -> 0, flap readiness,
//! terminate and change address; the NB's ECMP set follows each step with no periodic pass
//! (`--audit-mins 0`). Then 20 restarts leave exactly one row per id, and BFD timers reach
//! the sessions we own. Needs root and ovsdb-server (as every NB test): it fails loudly
//! without them.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;
mod kube_api;
mod kube_env;

use std::collections::BTreeMap;

use fixture::*;
use kube_env::*;
use serde_json::{Value, json};

/// deploy/examples/gateways/gateway-pods.yaml: `egress-gateways` (policies) and
/// `egress-all-bfd` (static routes with BFD timers), as a user applies them.
const EXAMPLE: &str = include_str!("../deploy/examples/gateways/gateway-pods.yaml");

fn example(name: &str) -> String {
    EXAMPLE
        .split("\n---\n")
        .find(|d| d.contains(&format!("name: {name}\n")))
        .unwrap()
        .to_owned()
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels}})
}

/// A pod with OVN address `ip` (on node1 for 10.244.1.x, else node2), Ready or not, with
/// the extra metadata given.
fn pod(ns: &str, name: &str, labels: Value, ip: &str, ready: bool, meta: Value) -> Value {
    let pn = json!({"default": {"ip_addresses": [format!("{ip}/24")],
        "mac_address": "0a:58:0a:f4:02:0b", "gateway_ips": ["10.244.2.1"]}})
    .to_string();
    let mut metadata = json!({"name": name, "namespace": ns, "labels": labels,
        "annotations": {"k8s.ovn.org/pod-networks": pn}});
    if let (Some(m), Some(extra)) = (metadata.as_object_mut(), meta.as_object()) {
        m.extend(extra.clone());
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {"nodeName": if ip.starts_with("10.244.1.") { "node1" } else { "node2" },
            "containers": [{"name": "c", "image": "gw"}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

fn gateway(kube: &Kube, name: &str, ip: &str, ready: bool) {
    kube.put(&pod(
        "egress",
        name,
        json!({"role": "egress-gw"}),
        ip,
        ready,
        json!({}),
    ));
}

/// Waits until our one policy's next hops are `want` (no policy at all when empty).
fn wait_hops(ovn: &Ovn, c: &mut Controller, want: &[&str], what: &str) {
    poll(15, what, || {
        c.proc.assert_alive();
        let p = ovn.owned_policies();
        let hops: Vec<Vec<String>> = p.iter().map(|x| x.3.clone()).collect();
        let ok = if want.is_empty() {
            p.is_empty()
        } else {
            hops == [want.iter().map(|s| s.to_string()).collect::<Vec<_>>()]
        };
        if ok { Ok(()) } else { Err(hops) }
    });
}

fn central(kube: &Kube, ovn: &Ovn) -> Controller {
    let mut c = spawn(
        kube,
        ovn,
        Instance {
            mode: "central",
            node: "node1",
            identity: "central",
            net: None,
            extra: &["--skip-pods"],
        },
    );
    c.wait_ready();
    c
}

/// The problems' reasons in a Route's status.
fn reasons(kube: &Kube, route: &str) -> Vec<String> {
    kube.route(route)
        .and_then(|r| r["status"]["problems"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p["reason"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn gateway_pods_scale_flap_terminate_and_move_and_the_ecmp_set_follows() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let foreign = ovn.foreign();
    let kube = Kube::start();
    kube.put(&namespace("egress", json!({"tier": "egress"})));
    kube.put(&namespace("apps", json!({})));
    kube.put(&pod(
        "apps",
        "m1",
        json!({"app": "payments"}),
        "10.244.2.50",
        true,
        json!({}),
    ));
    kube.apply(&example("egress-gateways"));
    let mut c = central(&kube, &ovn);

    // 0 gateways: no row; the rule is reported.
    poll(15, "NoReadyNextHop reported", || {
        let r = reasons(&kube, "egress-gateways");
        if r.iter().any(|x| x == "NoReadyNextHop") {
            Ok(())
        } else {
            Err(r)
        }
    });
    assert!(ovn.owned_policies().is_empty());

    // 0 -> 3.
    for (i, name) in ["g1", "g2", "g3"].iter().enumerate() {
        gateway(&kube, name, &format!("10.244.2.{}", 11 + i), true);
    }
    wait_hops(
        &ovn,
        &mut c,
        &["10.244.2.11", "10.244.2.12", "10.244.2.13"],
        "3 gateways",
    );

    // Readiness flaps: out and back in.
    gateway(&kube, "g2", "10.244.2.12", false);
    wait_hops(
        &ovn,
        &mut c,
        &["10.244.2.11", "10.244.2.13"],
        "g2 not ready",
    );
    poll(10, "status lists g2 NotReady", || {
        let st = kube.route("egress-gateways").unwrap()["status"]["nextHops"].clone();
        let g2 = st
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["pod"] == "egress/g2");
        match g2 {
            Some(h) if h["used"] == false && h["reason"] == "NotReady" => Ok(()),
            _ => Err(st),
        }
    });
    gateway(&kube, "g2", "10.244.2.12", true);
    wait_hops(
        &ovn,
        &mut c,
        &["10.244.2.11", "10.244.2.12", "10.244.2.13"],
        "g2 ready",
    );

    // A typo in nextHopPods: reported, and the reroute stays exactly as it was.
    let good = example("egress-gateways");
    let bad = good.replace(
        "      # network: egress/ext-net",
        "      network: not-a-ref #",
    );
    assert_ne!(bad, good);
    kube.apply(&bad);
    poll(15, "InvalidNextHopPods reported", || {
        let r = reasons(&kube, "egress-gateways");
        if r.iter().any(|x| x == "InvalidNextHopPods") {
            Ok(())
        } else {
            Err(r)
        }
    });
    gateway(&kube, "g1", "10.244.2.11", false);
    std::thread::sleep(std::time::Duration::from_millis(300));
    wait_hops(
        &ovn,
        &mut c,
        &["10.244.2.11", "10.244.2.12", "10.244.2.13"],
        "rows kept while the Route is broken",
    );
    gateway(&kube, "g1", "10.244.2.11", true);
    kube.apply(&good);
    poll(15, "problem gone", || {
        let r = reasons(&kube, "egress-gateways");
        if r.iter().any(|x| x == "InvalidNextHopPods") {
            Err(r)
        } else {
            Ok(())
        }
    });

    // Terminating (a finalizer holds the deleted pod): out at once.
    kube.put(&pod(
        "egress",
        "g3",
        json!({"role": "egress-gw"}),
        "10.244.2.13",
        true,
        json!({"finalizers": ["example.com/drain"]}),
    ));
    kube.delete("v1", "Pod", Some("egress"), "g3");
    let g3 = kube.bg.api.get("v1", "Pod", Some("egress"), "g3").unwrap();
    assert!(g3["metadata"]["deletionTimestamp"].is_string(), "{g3}");
    wait_hops(
        &ovn,
        &mut c,
        &["10.244.2.11", "10.244.2.12"],
        "g3 terminating",
    );

    // 3 -> 1 (a deletion), then the last one changes address, then a relabel drops it.
    kube.delete("v1", "Pod", Some("egress"), "g2");
    wait_hops(&ovn, &mut c, &["10.244.2.11"], "g2 deleted");
    gateway(&kube, "g1", "10.244.2.21", true);
    wait_hops(&ovn, &mut c, &["10.244.2.21"], "g1 moved");
    kube.put(&namespace("egress", json!({"tier": "retired"})));
    wait_hops(&ovn, &mut c, &[], "namespace deselected");
    kube.put(&namespace("egress", json!({"tier": "egress"})));
    wait_hops(&ovn, &mut c, &["10.244.2.21"], "namespace selected again");

    // 1 -> 0: the policy goes, the Address_Set and Port_Group stay.
    kube.delete("v1", "Pod", Some("egress"), "g1");
    wait_hops(&ovn, &mut c, &[], "no gateway left");
    let owned = ovn.owned();
    assert_eq!(owned.get("Address_Set").map(Vec::len), Some(2), "{owned:?}");
    assert_eq!(owned.get("Port_Group").map(Vec::len), Some(1), "{owned:?}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

/// Our rows by id: id -> how many rows carry it.
fn ids(ovn: &Ovn) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for rows in ovn.dump().values() {
        for r in rows.values().filter(|r| is_owned(r)) {
            *out.entry(ext_id(r, "k8s.ovn.org/id").unwrap_or_default())
                .or_default() += 1;
        }
    }
    out
}

fn bfd_rows(ovn: &Ovn) -> Vec<serde_json::Map<String, Value>> {
    ovn.dump()
        .get("BFD")
        .map(|r| r.values().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn restarts_leave_one_row_per_id_and_bfd_timers_reach_our_sessions() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let kube = Kube::start();
    kube.put(&namespace("egress", json!({"tier": "egress"})));
    gateway(&kube, "g1", "10.244.2.11", true);
    gateway(&kube, "g2", "10.244.2.12", true);
    kube.apply(&example("egress-gateways"));
    kube.apply(&example("egress-all-bfd"));
    let mut c = central(&kube, &ovn);
    wait_hops(&ovn, &mut c, &["10.244.2.11", "10.244.2.12"], "2 gateways");
    poll(15, "static routes with BFD", || {
        let b = bfd_rows(&ovn);
        if b.len() == 2 { Ok(()) } else { Err(b) }
    });
    for b in bfd_rows(&ovn) {
        assert_eq!(b["min_tx"], 300, "{b:?}");
        assert_eq!(b["min_rx"], 300, "{b:?}");
        assert_eq!(b["detect_mult"], 3, "{b:?}");
        assert!(is_owned(&b), "{b:?}");
    }
    let before = ids(&ovn);
    assert!(before.values().all(|n| *n == 1), "{before:?}");

    // The state ovn-northd copies to a session shows in the Route's status.
    let uuid = ovn.nbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "BFD",
        "dst_ip=10.244.2.12",
    ]);
    ovn.nbctl(&["set", "BFD", uuid.trim(), "status=down"]);
    poll(15, "BFD state in status", || {
        let st = kube.route("egress-all-bfd").unwrap()["status"]["nextHops"].clone();
        let h = st
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["address"] == "10.244.2.12");
        match h {
            Some(h) if h["bfd"] == "down" => Ok(()),
            _ => Err(st),
        }
    });

    // 20 restarts, gateways changing in between: one row per id, nothing else.
    for i in 0..20 {
        let pid = nix::unistd::Pid::from_raw(c.proc.child.id() as i32);
        let sig = if i % 2 == 0 {
            nix::sys::signal::Signal::SIGTERM
        } else {
            nix::sys::signal::Signal::SIGKILL
        };
        nix::sys::signal::kill(pid, sig).unwrap();
        c.proc.child.wait().unwrap();
        if i == 10 {
            gateway(&kube, "g2", "10.244.2.12", false);
        }
        c = central(&kube, &ovn);
        if i == 10 {
            wait_hops(
                &ovn,
                &mut c,
                &["10.244.2.11"],
                "g2 not ready across a restart",
            );
            gateway(&kube, "g2", "10.244.2.12", true);
        }
        wait_hops(
            &ovn,
            &mut c,
            &["10.244.2.11", "10.244.2.12"],
            "after restart",
        );
        let now = ids(&ovn);
        assert!(now.values().all(|n| *n == 1), "restart {i}: {now:?}");
    }
    poll(15, "rows as before the restarts", || {
        let now = ids(&ovn);
        if now == before { Ok(()) } else { Err(now) }
    });
    assert_eq!(bfd_rows(&ovn).len(), 2);

    // New timers reach our sessions; `true` puts OVN's defaults back.
    let bfd_route = example("egress-all-bfd");
    kube.apply(&bfd_route.replace("minTx: 300", "minTx: 100"));
    poll(15, "timers updated", || {
        let b = bfd_rows(&ovn);
        if b.iter().all(|b| b["min_tx"] == 100) {
            Ok(())
        } else {
            Err(b)
        }
    });
    let plain = bfd_route.replace("bfd: {minTx: 300, minRx: 300, detectMult: 3}", "bfd: true");
    assert_ne!(plain, bfd_route);
    kube.apply(&plain);
    poll(15, "timers cleared", || {
        let b = bfd_rows(&ovn);
        let empty = json!(["set", []]);
        if b.iter()
            .all(|b| b["min_tx"] == empty && b["detect_mult"] == empty)
        {
            Ok(())
        } else {
            Err(b)
        }
    });
}

/// `ic` mode: a node's NB reaches only its own pods directly, and the instance watches only
/// its node's pods: a gateway pod on this node is a hop, one on another node is not seen.
#[test]
fn in_ic_mode_the_gateway_pods_of_this_node_are_the_hops() {
    let ovn = Ovn::start();
    ovn.build_topology();
    let kube = Kube::start();
    kube.put(&namespace("apps", json!({})));
    kube.put(&namespace("egress", json!({"tier": "egress"})));
    kube.put(&pod(
        "apps",
        "m1",
        json!({"app": "payments"}),
        "10.244.1.50",
        true,
        json!({}),
    ));
    gateway(&kube, "local", "10.244.1.21", true);
    gateway(&kube, "remote", "10.244.2.21", true);
    kube.apply(&example("egress-gateways"));
    let mut c = spawn(
        &kube,
        &ovn,
        Instance {
            mode: "ic",
            node: "node1",
            identity: "node1",
            net: None,
            extra: &["--skip-pods"],
        },
    );
    c.wait_ready();
    wait_hops(&ovn, &mut c, &["10.244.1.21"], "this node's gateway");
    gateway(&kube, "local", "10.244.1.21", false);
    wait_hops(&ovn, &mut c, &[], "this node's gateway not ready");
    gateway(&kube, "local", "10.244.1.22", true);
    wait_hops(&ovn, &mut c, &["10.244.1.22"], "ready at a new address");
}
