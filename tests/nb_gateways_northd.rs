//! Gateway pods as next hops against a real NB + SB + ovn-northd (`apply` from files):
//! - with BFD, a gateway whose session is down is out of the ECMP set in the logical flows;
//! - with `symmetricReply`, the src-ip routes on the member's gateway router get ovn-northd's
//!   stateful ECMP flows (`lr_in_ecmp_stateful`, the ct-marked reply route), and without it
//!   there are none.
//!
//! Needs root and ovn-central (ovsdb-server, ovn-northd), like every NB test.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use fixture::*;

/// Two Ready gateway pods in namespace `gw` (label role=gw) on node2: OVN addresses
/// 10.244.2.11 / .12, and on the NetworkAttachmentDefinition `gw/ext` 172.18.0.10 / .11.
fn gateways() -> String {
    let mut y = String::from(
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: gw, labels: {tier: edge}}\n",
    );
    for (i, name) in ["g1", "g2"].iter().enumerate() {
        let ovn = format!("10.244.2.{}", 11 + i);
        let ext = format!("172.18.0.{}", 10 + i);
        y.push_str(&format!(
            r#"---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: gw
  labels: {{role: gw}}
  annotations:
    k8s.ovn.org/pod-networks: '{{"default":{{"ip_addresses":["{ovn}/24"],"mac_address":"0a:58:0a:f4:02:{i:02x}"}}}}'
    k8s.v1.cni.cncf.io/network-status: '[{{"name":"gw/ext","interface":"net1","ips":["{ext}"]}}]'
spec: {{nodeName: node2, containers: [{{name: c, image: gw}}]}}
status:
  phase: Running
  conditions: [{{type: Ready, status: "True"}}]
"#
        ));
    }
    y
}

const BFD_GATEWAYS: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: via-pods}
spec:
  route:
    - {dst: "172.16.70.0/24", dev: eth1}
  ovn:
    bfd: {minTx: 200, detectMult: 4}
    nextHopPods:
      namespaceSelector: {matchLabels: {tier: edge}}
      podSelector: {matchLabels: {role: gw}}
"#;

#[test]
fn a_gateway_whose_bfd_session_is_down_leaves_the_ecmp_set() {
    let (ovn, inputs) = with_topology(Ovn::start_with_northd());
    inputs.set_world(&(world_yaml(&[NGINX]) + &gateways()));
    // The gateway pods are pods like any other: selected too, so their ports must exist.
    for (name, ip) in [("gw_g1", "10.244.2.11"), ("gw_g2", "10.244.2.12")] {
        ovn.nbctl(&["lsp-add", "node2", name]);
        ovn.nbctl(&[
            "lsp-set-addresses",
            name,
            &format!("0a:58:0a:f4:02:{} {ip}", &ip[9..]),
        ]);
    }
    inputs.put("via-pods.yaml", BFD_GATEWAYS);
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 0, "{r}");
    let routes = static_routes(&ovn);
    assert_eq!(routes.len(), 2, "{routes:?}");
    let bfd = ovn.owned_rows("BFD");
    assert_eq!(bfd.len(), 2, "{bfd:?}");
    for b in &bfd {
        assert_eq!(b["logical_port"], "rtos-node2", "{b:?}");
        assert_eq!(b["min_tx"], 200, "{b:?}");
        assert_eq!(b["detect_mult"], 4, "{b:?}");
    }
    let routing = |ovn: &Ovn| -> String {
        ovn.lflows("ovn_cluster_router")
            .into_iter()
            .filter(|l| l.contains("lr_in_ip_routing") && l.contains("172.16.70.0/24"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    ovn.set_bfd_status("10.244.2.11", "up");
    ovn.set_bfd_status("10.244.2.12", "up");
    let up = routing(&ovn);
    ovn.set_bfd_status("10.244.2.12", "down");
    let down = routing(&ovn);
    println!("both up:\n{up}\n10.244.2.12 down:\n{down}");
    assert!(up.contains("select(1, 2)"), "{up}");
    assert!(
        !down.contains("select(")
            && down.contains("reg0 = 10.244.2.11")
            && !down.contains("10.244.2.12"),
        "{down}"
    );
    // explain shows the hop set the pod's traffic takes, with each hop's pod and session.
    let (world, routes, nb) = (inputs.world(), inputs.routes(), ovn.nb_remote());
    let explain = |extra: &[&str]| {
        let mut args = vec!["explain", "default/client-a", "172.16.70.5"];
        args.extend_from_slice(extra);
        args.extend([
            "-f",
            world.to_str().unwrap(),
            "-f",
            routes.to_str().unwrap(),
        ]);
        args.extend(["--nb", nb.as_str(), "--cni-results", "/nonexistent"]);
        ovnkube(&args)
    };
    let r = explain(&["-o", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let e: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let hops = &e["destinations"][0]["hops"];
    assert_eq!(hops["route"], "via-pods", "{e}");
    let seen: Vec<(String, String, String)> = hops["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let s = |k: &str| h[k].as_str().unwrap_or_default().to_owned();
            (s("address"), s("pod"), s("bfd"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("10.244.2.11".into(), "gw/g1".into(), "up".into()),
            ("10.244.2.12".into(), "gw/g2".into(), "down".into())
        ],
        "{e}"
    );
    let text = explain(&[]);
    assert!(
        text.stdout
            .contains("10.244.2.12 gateway pod gw/g2: in the ECMP set, BFD down"),
        "{text}"
    );

    // Applied again: nothing to change (the state is OVN's, not ours).
    let r = apply_nb(&ovn, &inputs);
    assert!(r.stdout.contains("NB: 0 change(s)"), "{r}");
}

const SYMMETRIC: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: symmetric}
spec:
  targets: [{kind: Pod, namespace: default, name: client-a}]
  defaultRoute: {dev: eth1}
  ovn:
    symmetricReply: true
    nextHopPods:
      namespaceSelector: {matchLabels: {tier: edge}}
      podSelector: {matchLabels: {role: gw}}
      network: gw/ext
"#;

#[test]
fn symmetric_replies_get_the_stateful_ecmp_flows_on_the_gateway_router() {
    let (ovn, inputs) = with_topology(Ovn::start_with_northd());
    inputs.set_world(&(world_yaml(&[NGINX]) + &gateways()));
    let ip = PODS.iter().find(|p| p.name == "client-a").unwrap().ovn_ip;
    let stateful = |ovn: &Ovn| -> Vec<String> {
        ovn.lflows("GR_node1")
            .into_iter()
            .filter(|l| {
                (l.contains("lr_in_ecmp_stateful") || l.contains("ct_mark.ecmp_reply_port"))
                    && l.contains(ip)
            })
            .collect()
    };
    let before = stateful(&ovn);
    assert!(before.is_empty(), "{before:?}");

    inputs.put("symmetric.yaml", SYMMETRIC);
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 0, "{r}");
    let rows = ovn.owned_rows("Logical_Router_Static_Route");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for s in &rows {
        assert_eq!(s["policy"], "src-ip", "{s:?}");
        assert_eq!(s["ip_prefix"], format!("{ip}/32"), "{s:?}");
        assert_eq!(
            s["options"],
            serde_json::json!(["map", [["ecmp_symmetric_reply", "true"]]]),
            "{s:?}"
        );
    }
    let gr = ovn.nbctl(&[
        "--bare",
        "--columns=static_routes",
        "list",
        "Logical_Router",
        "GR_node1",
    ]);
    for s in ovn.dump()["Logical_Router_Static_Route"]
        .iter()
        .filter(|(_, r)| is_owned(r))
    {
        assert!(
            gr.contains(s.0.as_str()),
            "our routes hang off GR_node1: {gr}"
        );
    }
    let with = stateful(&ovn);
    println!("symmetric:\n{}", with.join("\n"));
    assert!(
        with.iter()
            .any(|l| l.contains("lr_in_ecmp_stateful") && l.contains("ct_commit")),
        "{with:?}"
    );
    assert!(
        with.iter()
            .any(|l| l.contains("ct.rpl") && l.contains("ct_mark.ecmp_reply_port")),
        "{with:?}"
    );
    assert!(r.stdout.contains("symmetric: Applied"), "{r}");

    // Without symmetricReply: the src-ip routes go and so do the stateful flows.
    inputs.put(
        "symmetric.yaml",
        &SYMMETRIC.replace("symmetricReply: true", "symmetricReply: false"),
    );
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 0, "{r}");
    assert!(ovn.owned_rows("Logical_Router_Static_Route").is_empty());
    assert!(stateful(&ovn).is_empty(), "{:?}", stateful(&ovn));

    // A node without a gateway router is told, and nothing is written for its pods.
    ovn.nbctl(&["remove", "Logical_Router", "GR_node1", "options", "chassis"]);
    inputs.put("symmetric.yaml", SYMMETRIC);
    let r = apply_nb(&ovn, &inputs);
    assert!(r.stdout.contains("SymmetricReplyNeedsGatewayRouter"), "{r}");
    assert!(ovn.owned_rows("Logical_Router_Static_Route").is_empty());
}
