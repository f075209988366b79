//! Kernel route and link tables as plain values, and the rtnetlink calls that read and
//! write them. Only the main table (254) and unicast routes are considered: local,
//! broadcast and other tables belong to the kernel or to other tools.
//!
//! Must not: decide anything (that is [`super::diff`]); panic on a message it does not
//! understand (such routes are skipped).
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

use super::NetlinkError;

/// The main routing table's id.
pub const MAIN_TABLE: u32 = 254;

/// One unicast route of the main table, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KernelRoute {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    /// Output interface index (None for multipath or blackhole-like routes).
    pub oif: Option<u32>,
    pub protocol: u8,
    pub metric: u32,
    pub scope: u8,
}

/// Scope numbers as in `rtnetlink(7)`.
pub const SCOPE_UNIVERSE: u8 = 0;
pub const SCOPE_LINK: u8 = 253;

/// Interface name -> index inside one netns.
pub type Links = HashMap<String, u32>;

/// Dumps the links of the socket's netns.
pub async fn dump_links(handle: &Handle) -> Result<Links, NetlinkError> {
    let mut links = Links::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream.try_next().await.map_err(|e| NetlinkError::Dump {
        what: "links",
        message: e.to_string(),
    })? {
        for attr in &msg.attributes {
            if let LinkAttribute::IfName(name) = attr {
                links.insert(name.clone(), msg.header.index);
            }
        }
    }
    Ok(links)
}

/// Turns a kernel message into a [`KernelRoute`]; None for routes outside the main
/// table, non-unicast routes and messages we cannot read.
pub fn parse_route(msg: &RouteMessage) -> Option<KernelRoute> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let mut dst_addr: Option<IpAddr> = None;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = 0;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst_addr = route_addr(a),
            RouteAttribute::Gateway(a) => gateway = route_addr(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    if table != MAIN_TABLE {
        return None;
    }
    let len = msg.header.destination_prefix_length;
    let dst = match msg.header.address_family {
        AddressFamily::Inet => {
            let a = match dst_addr {
                Some(IpAddr::V4(a)) => a,
                None => Ipv4Addr::UNSPECIFIED,
                Some(IpAddr::V6(_)) => return None,
            };
            IpNet::new(IpAddr::V4(a), len).ok()?
        }
        AddressFamily::Inet6 => {
            let a = match dst_addr {
                Some(IpAddr::V6(a)) => a,
                None => Ipv6Addr::UNSPECIFIED,
                Some(IpAddr::V4(_)) => return None,
            };
            IpNet::new(IpAddr::V6(a), len).ok()?
        }
        _ => return None,
    };
    Some(KernelRoute {
        dst,
        gateway,
        oif,
        protocol: u8::from(msg.header.protocol),
        metric,
        scope: u8::from(msg.header.scope),
    })
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Builds the netlink message for a route in the main table (`RouteMessageBuilder` sets
/// the main table, unicast type and address family; we add our protocol, scope, metric
/// and, for a default route, no destination attribute at all, as `ip route` does).
pub fn route_message(route: &KernelRoute) -> RouteMessage {
    let mut b = RouteMessageBuilder::<IpAddr>::new();
    b = match route.dst.prefix_len() {
        0 => family_only(b, &route.dst),
        len => match b.destination_prefix(route.dst.network(), len) {
            Ok(b) => b,
            // Unreachable: an IpNet's prefix length always fits its family.
            Err(_) => family_only(RouteMessageBuilder::<IpAddr>::new(), &route.dst),
        },
    };
    if let Some(gw) = route.gateway {
        // A gateway of the other family is rejected by the builder; the kernel would
        // refuse it too, and the diff never asks for one (it reports such a route).
        b = match b.clone().gateway(gw) {
            Ok(with) => with,
            Err(_) => b,
        };
    }
    if let Some(oif) = route.oif {
        b = b.output_interface(oif);
    }
    b.protocol(RouteProtocol::from(route.protocol))
        .scope(RouteScope::from(route.scope))
        .priority(route.metric)
        .build()
}

fn family_only(mut b: RouteMessageBuilder<IpAddr>, dst: &IpNet) -> RouteMessageBuilder<IpAddr> {
    b.get_mut().header.address_family = match dst {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    };
    b
}

/// The errno of a failed netlink request, if the kernel sent one.
pub fn errno(e: &rtnetlink::Error) -> Option<Errno> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(Errno::from_raw(m.raw_code().abs())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rtnetlink::packet_route::route::RouteHeader;

    use super::*;

    fn kr(dst: &str, gw: Option<&str>, metric: u32) -> KernelRoute {
        KernelRoute {
            dst: dst.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            oif: Some(7),
            protocol: 136,
            metric,
            scope: SCOPE_UNIVERSE,
        }
    }

    #[test]
    fn messages_round_trip_through_the_parser() {
        for r in [
            kr("10.96.0.0/12", Some("10.244.1.1"), 0),
            kr("0.0.0.0/0", Some("10.244.1.1"), 0),
            kr("fd00:96::/64", Some("fd00::1"), 1024),
            kr("::/0", None, 1024),
            KernelRoute {
                scope: SCOPE_LINK,
                ..kr("172.16.0.0/16", None, 0)
            },
        ] {
            let msg = route_message(&r);
            assert_eq!(parse_route(&msg), Some(r.clone()), "{msg:?}");
            assert_eq!(msg.header.table, RouteHeader::RT_TABLE_MAIN);
            let has_dst = msg
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)));
            // `ip route add default` sends no destination attribute; neither do we.
            assert_eq!(has_dst, r.dst.prefix_len() > 0, "{msg:?}");
        }
    }

    #[test]
    fn a_gateway_of_the_other_family_is_left_out() {
        let msg = route_message(&kr("10.0.0.0/8", Some("fd00::1"), 0));
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Gateway(_)))
        );
        assert_eq!(msg.header.address_family, AddressFamily::Inet);
    }
}
