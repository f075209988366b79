//! `explain --trace`: runs `ovn-trace` for the pod's first packet to the address and reads
//! the verdict from its output. The flow follows ovn-kubernetes' conventions: the pod's
//! logical switch port is `<namespace>_<name>` on the switch named after its node, the
//! router port's MAC is derived from the gateway address (`0a:58` + the IPv4 bytes).
//!
//! Must not: fail `explain` when ovn-trace is missing or fails (the reason is reported).
use std::net::IpAddr;

use serde::Serialize;

use crate::cluster::PodInfo;

/// What ovn-trace said.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    /// The command, to run again by hand for the full output.
    pub command: String,
    /// One line: dropped / rerouted to / output to, or why there is no trace.
    pub verdict: String,
    /// The lr_in_policy flow that matched on the cluster router, if any.
    pub policy: Option<String>,
    /// The next hop a reroute chose.
    pub next_hop: Option<String>,
    pub dropped: bool,
    /// The last logical port the packet was output to.
    pub output: Option<String>,
}

/// ovn-kubernetes' MAC for an IPv4 address (`0a:58:` and the four bytes); IPv6 uses the
/// last four bytes.
pub fn ovnk_mac(ip: IpAddr) -> String {
    let b = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// The microflow of the pod's first TCP/80 packet to `dst`, or why none can be written.
pub fn flow(pod: &PodInfo, dst: IpAddr) -> Result<(String, String), String> {
    let ovn = pod
        .ovn
        .as_ref()
        .ok_or("the pod has no OVN interface (no k8s.ovn.org/pod-networks)")?;
    let src = ovn
        .ips
        .iter()
        .map(|n| n.addr())
        .find(|a| a.is_ipv6() == dst.is_ipv6())
        .ok_or("the pod has no OVN address of the destination's family")?;
    let gw = ovn
        .gateways
        .iter()
        .find(|g| g.is_ipv6() == dst.is_ipv6())
        .ok_or("the pod's OVN gateway of that family is unknown")?;
    let switch = pod.node.clone().ok_or("the pod has no node")?;
    let f = if dst.is_ipv6() { "ip6" } else { "ip4" };
    let mac = ovn.mac.clone().unwrap_or_else(|| ovnk_mac(src));
    Ok((
        switch,
        format!(
            "inport == \"{}\" && eth.src == {mac} && eth.dst == {} && {f}.src == {src} && {f}.dst == {dst} && ip.ttl == 64 && tcp && tcp.dst == 80",
            pod.lsp_name(),
            ovnk_mac(*gw),
        ),
    ))
}

/// Reads ovn-trace's detailed text output.
pub fn read(out: &str) -> Trace {
    let mut t = Trace::default();
    let (mut dp, mut stage) = (String::new(), String::new());
    for line in out.lines() {
        let l = line.trim();
        if let Some(rest) = l
            .strip_prefix("ingress(dp=\"")
            .or_else(|| l.strip_prefix("egress(dp=\""))
        {
            dp = rest.split('"').next().unwrap_or_default().to_owned();
            stage.clear();
            if let Some(port) = l.split("outport=\"").nth(1) {
                t.output = port.split('"').next().map(str::to_owned);
            }
            continue;
        }
        let mut words = l.splitn(3, ' ');
        if let (Some(num), Some(name), Some(rest)) = (words.next(), words.next(), words.next())
            && num.ends_with('.')
            && num.trim_end_matches('.').parse::<u32>().is_ok()
            && rest.starts_with('(')
        {
            stage = name.to_owned();
            // The first router's policy stage decides the reroute; later routers (the
            // gateway router) have their own, unrelated to ours.
            if stage == "lr_in_policy" && t.policy.is_none() {
                t.policy = Some(format!("{dp}: {l}"));
            }
            continue;
        }
        if (stage == "lr_in_policy" || stage == "lr_in_policy_ecmp")
            && let Some(h) = l.strip_prefix("reg0 = ")
            && t.next_hop.is_none()
        {
            t.next_hop = Some(h.trim_end_matches(';').to_owned());
        }
        if (stage == "ls_in_acl" || stage == "ls_out_acl" || stage.starts_with("ls_in_acl"))
            && (l == "drop;" || l.starts_with("reject") || l.contains("ct_mark.blocked = 1"))
        {
            t.dropped = true;
        }
        if let Some(port) = l.strip_prefix("output(\"") {
            t.output = port.split('"').next().map(str::to_owned);
        }
    }
    t.verdict = if t.dropped {
        "dropped by an ACL".into()
    } else if let Some(h) = &t.next_hop {
        format!("rerouted to next hop {h}")
    } else if let Some(o) = &t.output {
        format!("output to {o}")
    } else {
        "no output (see the full trace)".into()
    };
    t
}

/// Runs ovn-trace; every failure becomes the verdict.
pub async fn run(sb: &str, pod: &PodInfo, dst: IpAddr) -> Trace {
    let (switch, flow) = match flow(pod, dst) {
        Ok(x) => x,
        Err(why) => {
            return Trace {
                verdict: format!("not traced: {why}"),
                ..Trace::default()
            };
        }
    };
    let args = [format!("--db={sb}"), "--ct=new".into(), switch, flow];
    let command = format!(
        "ovn-trace {} {} {} '{}'",
        args[0], args[1], args[2], args[3]
    );
    let out = tokio::process::Command::new("ovn-trace")
        .args(&args)
        .output()
        .await;
    match out {
        Err(e) => Trace {
            command,
            verdict: format!("not traced: cannot run ovn-trace ({e}); install ovn-central"),
            ..Trace::default()
        },
        Ok(o) if !o.status.success() => Trace {
            command,
            verdict: format!(
                "not traced: ovn-trace failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            ..Trace::default()
        },
        Ok(o) => Trace {
            command,
            ..read(&String::from_utf8_lossy(&o.stdout))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_follow_ovn_kubernetes() {
        assert_eq!(ovnk_mac(IpAddr::from([10, 244, 1, 1])), "0a:58:0a:f4:01:01");
    }

    #[test]
    fn a_reroute_and_a_drop_are_read() {
        let reroute = "ingress(dp=\"ovn_cluster_router\", inport=\"rtos-node1\")\n\
             12. lr_in_policy (northd.c:1): ip4.src == $a && ip4.dst == 172.16.20.0/24, priority 224, uuid 1\n\
                 reg0 = 100.64.0.2;\n\
             egress(dp=\"join\", inport=\"jtor-ovn_cluster_router\", outport=\"jtor-GR_node1\")\n";
        let later = "ingress(dp=\"GR_node1\", inport=\"rtoj-GR_node1\")\n\
             15. lr_in_policy (northd.c:3): 1, priority 0, uuid 3\n\
                 reg0 = 9.9.9.9;\n";
        let t = read(&format!("{reroute}{later}"));
        assert!(
            t.policy
                .as_deref()
                .unwrap()
                .starts_with("ovn_cluster_router"),
            "{t:?}"
        );
        assert_eq!(t.next_hop.as_deref(), Some("100.64.0.2"));
        assert_eq!(t.output.as_deref(), Some("jtor-GR_node1"));
        assert!(!t.dropped && t.verdict.starts_with("rerouted"), "{t:?}");
        let drop = "ingress(dp=\"node1\", inport=\"default_client-a\")\n\
             9. ls_in_acl (northd.c:2): inport == @pg && ip4.dst == 192.168.50.0/24, priority 2500, uuid 2\n\
                 drop;\n";
        let t = read(drop);
        assert!(t.dropped && t.verdict.starts_with("dropped"), "{t:?}");
    }
}
