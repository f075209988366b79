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
use rtnetlink::Handle;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
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

/// Looks up the named links only (one non-dump request each, sent together; they can
/// run beside a route dump on the same socket, which two dumps cannot). A missing name is
/// simply absent from the result.
pub async fn lookup_links(handle: &Handle, names: &[&str]) -> Result<Links, NetlinkError> {
    let lookups = names.iter().map(|name| async move {
        let mut stream = handle.link().get().match_name(name.to_string()).execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Some((name.to_string(), msg.header.index))),
            Ok(None) => Ok(None),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(NetlinkError::Dump {
                what: "links",
                message: e.to_string(),
            }),
        }
    });
    let mut links = Links::new();
    for found in futures::future::join_all(lookups).await {
        if let Some((name, index)) = found? {
            links.insert(name, index);
        }
    }
    Ok(links)
}

/// Dumps the main-table unicast routes of both families in one request (AF_UNSPEC).
pub async fn dump_routes(handle: &Handle) -> Result<Vec<KernelRoute>, NetlinkError> {
    let mut out = Vec::new();
    let mut req = RouteMessage::default();
    req.header.address_family = AddressFamily::Unspec;
    let mut stream = handle.route().get(req).execute();
    while let Some(msg) = stream.try_next().await.map_err(|e| NetlinkError::Dump {
        what: "routes",
        message: e.to_string(),
    })? {
        if let Some(route) = parse_route(&msg) {
            out.push(route);
        }
    }
    Ok(out)
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

/// Builds the netlink message for a route in the main table.
pub fn route_message(route: &KernelRoute) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = match route.dst {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    };
    msg.header.destination_prefix_length = route.dst.prefix_len();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(route.protocol);
    msg.header.scope = RouteScope::from(route.scope);
    msg.header.kind = RouteType::Unicast;
    if route.dst.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                route.dst.network(),
            )));
    }
    if let Some(gw) = route.gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    if let Some(oif) = route.oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg.attributes.push(RouteAttribute::Priority(route.metric));
    msg
}

/// Adds a route; `replace` swaps the route with the same dst + metric in place
/// (`NLM_F_REPLACE`), otherwise an existing one fails with EEXIST.
pub async fn add_route(
    handle: &Handle,
    route: &KernelRoute,
    replace: bool,
) -> Result<(), rtnetlink::Error> {
    let req = handle.route().add(route_message(route));
    if replace {
        req.replace().execute().await
    } else {
        req.execute().await
    }
}

/// Deletes exactly this route (dst, metric, protocol, gateway and oif must match).
pub async fn del_route(handle: &Handle, route: &KernelRoute) -> Result<(), rtnetlink::Error> {
    handle.route().del(route_message(route)).execute().await
}

/// The errno of a failed netlink request, if the kernel sent one (positive, e.g. 17).
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

/// EEXIST: the route is already there.
pub const EEXIST: i32 = 17;
/// ESRCH: no such route.
pub const ESRCH: i32 = 3;
/// ENODEV: the output interface vanished.
pub const ENODEV: i32 = 19;
