//! ovn-trace end to end: Routes applied by the real binary, ovn-northd compiles them into
//! the Southbound DB, ovn-trace follows a pod's packet through the logical topology.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use std::process::Command;

use fixture::*;

/// ecmp and enforce (fixture::ECMP, fixture::ENFORCE) in one file.
fn routes() -> String {
    documents(&[ECMP, ENFORCE])
}

/// `ovn-trace` of a TCP/80 first packet from `pod` to `dst`.
fn trace(ovn: &Ovn, pod: &Pod, dst: &str, extra: &[&str]) -> String {
    let n = &pod.node[4..];
    let flow = format!(
        "inport == \"{}_{}\" && eth.src == {} && eth.dst == {} && ip4.src == {} && ip4.dst == {dst} && ip.ttl == 64 && tcp && tcp.dst == 80",
        pod.ns,
        pod.name,
        mac(pod.ovn_ip),
        mac(&format!("10.244.{n}.1")),
        pod.ovn_ip
    );
    let out = Command::new("ovn-trace")
        .arg(format!("--db={}", ovn.sb_remote()))
        .arg("--ct=new")
        .args(extra)
        .arg(pod.node)
        .arg(&flow)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ovn-trace failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What a trace shows, read from ovn-trace's text output.
#[derive(Debug, Default)]
struct Facts {
    /// Priority of the lr_in_policy flow on ovn_cluster_router that matched (0: none).
    policy_prio: i64,
    /// The next hop a reroute policy chose (lr_in_policy or lr_in_policy_ecmp `reg0 = `).
    policy_hop: Option<String>,
    /// `select(...)`: the policy is ECMP.
    ecmp: bool,
    /// First gateway router the packet enters.
    gr: Option<String>,
    /// An ACL stage dropped the packet.
    acl_drop: bool,
}

fn facts(trace: &str) -> Facts {
    let mut f = Facts::default();
    let (mut dp, mut stage) = (String::new(), String::new());
    for line in trace.lines() {
        let t = line.trim();
        if let Some(rest) = t
            .strip_prefix("ingress(dp=\"")
            .or_else(|| t.strip_prefix("egress(dp=\""))
        {
            dp = rest.split('"').next().unwrap().to_owned();
            if dp.starts_with("GR_") && f.gr.is_none() {
                f.gr = Some(dp.clone());
            }
            stage.clear();
            continue;
        }
        let mut words = t.splitn(3, ' ');
        if let (Some(num), Some(name), Some(rest)) = (words.next(), words.next(), words.next())
            && num.ends_with('.')
            && num[..num.len() - 1].parse::<u32>().is_ok()
            && rest.starts_with('(')
        {
            stage = name.to_owned();
            if dp == "ovn_cluster_router" && stage == "lr_in_policy" {
                let prio = t
                    .rsplit(", priority ")
                    .next()
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap();
                f.policy_prio = prio.parse().unwrap();
            }
            continue;
        }
        if dp == "ovn_cluster_router" && (stage == "lr_in_policy" || stage == "lr_in_policy_ecmp") {
            if t.contains("select(") {
                f.ecmp = true;
            }
            if let Some(h) = t.strip_prefix("reg0 = ") {
                f.policy_hop = Some(h.trim_end_matches(';').to_owned());
            }
        }
        if (stage == "ls_in_acl" || stage == "ls_out_acl")
            && (t == "drop;" || t.starts_with("reject") || t.contains("ct_mark.blocked = 1"))
        {
            f.acl_drop = true;
        }
    }
    f
}

fn setup() -> (Ovn, Inputs) {
    let (ovn, inputs) = with_topology(Ovn::start_with_northd());
    ovn.sync_sb();
    (ovn, inputs)
}

#[test]
fn selected_pod_rerouted_ecmp_unselected_not_enforced_dropped() {
    let (ovn, inputs) = setup();
    let foreign = ovn.foreign();
    // Before: no policy of ours, client-a leaves through its node's GR.
    let before = facts(&trace(&ovn, pod("client-a"), "172.16.20.5", &[]));
    assert_eq!(
        (before.policy_prio, before.gr.as_deref()),
        (0, Some("GR_node1")),
        "{before:?}"
    );

    inputs.put("routes.yaml", &routes());
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 0, "{r}");
    ovn.sync_sb();

    // (a) selected pod: our policy (in the band) reroutes to both gateway routers (ECMP).
    let t = trace(&ovn, pod("client-a"), "172.16.20.5", &[]);
    let f = facts(&t);
    assert!((200..=299).contains(&f.policy_prio) && f.ecmp, "{f:?}\n{t}");
    let mut hops = Vec::new();
    for id in ["1", "2"] {
        let t = trace(
            &ovn,
            pod("client-a"),
            "172.16.20.5",
            &[&format!("--select-id={id}")],
        );
        let f = facts(&t);
        hops.push((
            f.policy_hop.clone().unwrap_or_default(),
            f.gr.clone().unwrap_or_default(),
        ));
    }
    hops.sort();
    assert_eq!(
        hops,
        [
            ("100.64.0.2".to_owned(), "GR_node1".to_owned()),
            ("100.64.0.3".to_owned(), "GR_node2".to_owned())
        ],
        "ECMP buckets"
    );

    // (b) unselected pod on the same node: no policy of ours, normal routing via GR_node1.
    let t = trace(&ovn, pod("client-b"), "172.16.20.5", &[]);
    let f = facts(&t);
    assert_eq!(
        (f.policy_prio, f.gr.as_deref(), f.acl_drop),
        (0, Some("GR_node1"), false),
        "{f:?}\n{t}"
    );

    // (c) enforced destination: dropped in OVN for the selected pod, not for the other.
    let t = trace(&ovn, pod("client-a"), "192.168.50.7", &[]);
    assert!(facts(&t).acl_drop, "not dropped:\n{t}");
    let t = trace(&ovn, pod("client-b"), "192.168.50.7", &[]);
    let f = facts(&t);
    assert!(
        !f.acl_drop && f.gr.as_deref() == Some("GR_node1"),
        "{f:?}\n{t}"
    );

    assert_northd_clean(&ovn);
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

fn assert_northd_clean(ovn: &Ovn) {
    let log = ovn.northd_log();
    for bad in ["constraint violation", "No path for routing policy", "ERR"] {
        assert!(!log.contains(bad), "ovn-northd logged {bad:?}:\n{log}");
    }
}

/// Regression: our Address_Sets once took the name `<port_group>_ip4`, which ovn-northd
/// also derives in the Southbound DB for every Port_Group: its SB transaction then failed
/// with a constraint violation and the SB stopped following the NB.
#[test]
fn address_set_names_never_collide_with_port_group_derived_sets() {
    let (ovn, inputs) = setup();
    inputs.put("routes.yaml", &routes());
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 0, "{r}");
    ovn.sync_sb();
    let out = Command::new("ovn-sbctl")
        .arg(format!("--db={}", ovn.sb_remote()))
        .args(["--bare", "--columns=name", "list", "Address_Set"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let sb: std::collections::BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    for name in [
        "ovnkube_route_ecmp_v4",
        "ovnkube_route_enforce_v4",
        "ovnkube_route_ecmp_ip4",
        "ovnkube_route_enforce_ip4",
    ] {
        assert!(
            sb.contains(name),
            "{name} missing from the SB Address_Set table: {sb:?}"
        );
    }
    // The SB follows later NB changes (a failed northd transaction would stall it).
    inputs.put(
        "routes.yaml",
        &routes().replace("172.16.20.0/24", "172.16.21.0/24"),
    );
    assert_eq!(apply_nb(&ovn, &inputs).code, 0);
    ovn.sync_sb();
    let f = facts(&trace(&ovn, pod("client-a"), "172.16.21.5", &[]));
    assert!((200..=299).contains(&f.policy_prio) && f.ecmp, "{f:?}");
    assert_northd_clean(&ovn);
}

/// A Route name may contain dots (a DNS subdomain): the names derived from it must still
/// be valid in OVN matches (`$set`, `@group`), compiled by ovn-northd and effective.
#[test]
fn dotted_route_name_compiles_and_works() {
    let (ovn, inputs) = setup();
    let routes = routes()
        .replace("{name: ecmp}", "{name: team.a-ecmp}")
        .replace("{name: enforce}", "{name: team.a-enforce}");
    inputs.put("routes.yaml", &routes);
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 0, "{r}");
    ovn.sync_sb();
    let f = facts(&trace(&ovn, pod("client-a"), "172.16.20.5", &[]));
    assert!(
        (200..=299).contains(&f.policy_prio) && f.ecmp,
        "not rerouted: {f:?}\n{r}"
    );
    let t = trace(&ovn, pod("client-a"), "192.168.50.7", &[]);
    assert!(facts(&t).acl_drop, "not dropped:\n{t}");
    assert_northd_clean(&ovn);
}
