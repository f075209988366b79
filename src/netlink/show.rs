//! Desired pod routes as `ip` command lines, for `plan` output and logs. Pure.
//!
//! A `NextHop::DevGateway` is resolved inside the pod at programming time (the gateway of
//! the pod's own routes on that dev, else a link route). When the caller could look into
//! the pod it passes that gateway and the line is exact; for a pod whose netns was not
//! found the lines are printed commented out, to be completed by hand.
use std::fmt::Write;
use std::net::IpAddr;
use std::path::Path;

use super::diff::PodPlan;
use super::is_v6;
use super::kernel::{KernelRoute, Links, SCOPE_LINK};
use crate::plan::pod::{NextHop, PodRoutes};

/// Where a pod's lines run.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A named netns under /var/run/netns: `ip -n NAME`.
    Named(&'a str),
    /// Any other netns file: `nsenter --net=PATH ip`.
    Path(&'a Path),
    /// Not found on this machine: lines are comments.
    Unknown,
}

/// One line per route: `ip -n <netns> route replace <dst> [via <gw>] dev <dev> proto <n>`.
/// `gateway(dev, v6)` is the pod's own gateway on `dev` (for `NextHop::DevGateway`).
pub fn ip_route_lines(
    target: Target<'_>,
    routes: &PodRoutes,
    protocol: u8,
    gateway: &dyn Fn(&str, bool) -> Option<IpAddr>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(routes.routes.len() + routes.default_routes.len());
    let mut line = |v6: bool, dst: &str, dev: &str, next_hop: &NextHop, owner: &str| {
        let mut s = prefix(target, v6);
        let _ = write!(s, "route replace {dst}");
        let hop = match next_hop {
            NextHop::Via(gw) => Some(*gw),
            NextHop::DevGateway => gateway(dev, v6),
        };
        match (hop, target) {
            (Some(gw), _) => {
                let _ = write!(s, " via {gw} dev {dev} proto {protocol}");
            }
            (None, Target::Unknown) => {
                let _ = write!(
                    s,
                    " dev {dev} proto {protocol}  (via {dev}'s gateway if the pod has one, else scope link)"
                );
            }
            (None, _) => {
                let _ = write!(s, " dev {dev} proto {protocol} scope link");
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

/// `ip` prefix of a line for `target`.
fn prefix(target: Target<'_>, v6: bool) -> String {
    let mut s = match target {
        Target::Named(n) => format!("ip -n {n} "),
        Target::Path(p) => format!("nsenter --net={} ip ", p.display()),
        Target::Unknown => "# ip -n <netns> ".to_owned(),
    };
    if v6 {
        s.push_str("-6 ");
    }
    s
}

/// One kernel route as `ip route` arguments (device names from `links`).
fn route_text(r: &KernelRoute, links: &Links) -> String {
    let mut s = if r.dst.prefix_len() == 0 {
        "default".to_owned()
    } else {
        r.dst.to_string()
    };
    if let Some(gw) = r.gateway {
        let _ = write!(s, " via {gw}");
    }
    let dev = r.oif.and_then(|i| {
        links
            .iter()
            .find(|(_, idx)| **idx == i)
            .map(|(n, _)| n.as_str())
    });
    if let Some(dev) = dev {
        let _ = write!(s, " dev {dev}");
    }
    let _ = write!(s, " proto {} metric {}", r.protocol, r.metric);
    if r.scope == SCOPE_LINK {
        s.push_str(" scope link");
    }
    s
}

/// `ip ... route <verb> <route>`.
fn route_line(target: Target<'_>, verb: &str, r: &KernelRoute, links: &Links) -> String {
    format!(
        "{}route {verb} {}",
        prefix(target, is_v6(&r.dst)),
        route_text(r, links)
    )
}

/// What the pod side would do in one pod (`plan`), as lines that do it when pasted, in the
/// order the pod side does it. Recording an original default route is the controller's
/// bookkeeping: a comment says so.
pub fn plan_lines(target: Target<'_>, plan: &PodPlan, links: &Links) -> Vec<String> {
    let mut out = Vec::new();
    for r in &plan.record {
        out.push(format!(
            "# the original default route ({}) is recorded first, to be put back when no \
             Route replaces it",
            route_text(&r.route, links)
        ));
    }
    for r in &plan.deletes {
        out.push(route_line(target, "del", r, links));
    }
    for r in &plan.restores {
        out.push(format!(
            "{}  # original default route put back",
            route_line(target, "replace", &r.route, links)
        ));
    }
    for (r, _) in &plan.writes {
        out.push(route_line(target, "replace", r, links));
    }
    for r in &plan.foreign_default_deletes {
        out.push(route_line(target, "del", r, links));
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
        let none = |_: &str, _: bool| None;
        assert_eq!(
            ip_route_lines(Target::Named("cni-1"), &routes, 136, &none),
            vec![
                "ip -n cni-1 -6 route replace default dev eth0 proto 136 scope link  # demo",
                "ip -n cni-1 route replace 10.96.0.0/12 via 10.244.1.1 dev eth1 proto 136  # demo",
            ]
        );
        let gw = |dev: &str, v6: bool| {
            (dev == "eth0" && v6).then(|| "fe80::ecee:eeff:feee:eeee".parse().unwrap())
        };
        assert_eq!(
            ip_route_lines(Target::Path(Path::new("/proc/7/ns/net")), &routes, 136, &gw)[0],
            "nsenter --net=/proc/7/ns/net ip -6 route replace default via fe80::ecee:eeff:feee:eeee dev eth0 proto 136  # demo"
        );
        let lines = ip_route_lines(Target::Unknown, &routes, 136, &gw);
        assert!(
            lines.iter().all(|l| l.starts_with("# ip -n <netns> ")),
            "{lines:?}"
        );
    }
}
