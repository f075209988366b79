//! Desired pod routes as `ip` command lines, for `plan` output and logs. Pure.
//!
//! A `NextHop::DevGateway` is resolved inside the pod at programming time (the gateway of
//! the pod's own routes on that dev, else a link route), so it is shown as a comment.
use std::fmt::Write;

use super::is_v6;
use crate::plan::pod::{NextHop, PodRoutes};

/// One line per route: `ip -n <netns> route replace <dst> [via <gw>] dev <dev> proto <n>`.
pub fn ip_route_lines(netns: &str, routes: &PodRoutes, protocol: u8) -> Vec<String> {
    let mut out = Vec::with_capacity(routes.routes.len() + routes.default_routes.len());
    let mut line = |v6: bool, dst: &str, dev: &str, next_hop: &NextHop, owner: &str| {
        let mut s = format!("ip -n {netns} ");
        if v6 {
            s.push_str("-6 ");
        }
        let _ = write!(s, "route replace {dst}");
        match next_hop {
            NextHop::Via(gw) => {
                let _ = write!(s, " via {gw} dev {dev} proto {protocol}");
            }
            NextHop::DevGateway => {
                let _ = write!(
                    s,
                    " dev {dev} proto {protocol}  # via {dev}'s gateway if the pod has one, else scope link"
                );
            }
        }
        let _ = write!(s, "  # {owner}");
        out.push(s);
    };
    for d in &routes.default_routes {
        line(d.family.is_v6(), "default", &d.dev, &d.next_hop, &d.owner);
    }
    for r in &routes.routes {
        line(
            is_v6(&r.dst),
            &r.dst.to_string(),
            &r.dev,
            &r.next_hop,
            &r.owner,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::pod::{DefaultRoute, PodRoute};

    #[test]
    fn renders_ip_lines() {
        let routes = PodRoutes {
            routes: vec![PodRoute {
                dst: "10.96.0.0/12".parse().unwrap(),
                dev: "eth1".into(),
                next_hop: NextHop::Via("10.244.1.1".parse().unwrap()),
                owner: "demo".into(),
            }],
            default_routes: vec![DefaultRoute {
                family: crate::plan::IpFamily::V6,
                dev: "eth0".into(),
                next_hop: NextHop::DevGateway,
                owner: "demo".into(),
            }],
        };
        assert_eq!(
            ip_route_lines("cni-1", &routes, 136),
            vec![
                "ip -n cni-1 -6 route replace default dev eth0 proto 136  # via eth0's gateway if the pod has one, else scope link  # demo",
                "ip -n cni-1 route replace 10.96.0.0/12 via 10.244.1.1 dev eth1 proto 136  # demo",
            ]
        );
    }
}
