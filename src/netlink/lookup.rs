//! `ip route get` inside a netns: the kernel's own answer for one destination (RTM_GETROUTE),
//! and with `fibmatch` the table entry that produced it (prefix and protocol), so a reader
//! sees whether one of our routes or another decided.
//!
//! Must not: change anything; it only asks.
use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::route::{
    RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use serde::Serialize;

use super::NetlinkError;
use super::kernel::{dump_links, parse_route};

/// The kernel's answer for one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lookup {
    /// Output interface name (None for unreachable / blackhole answers).
    pub dev: Option<String>,
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would pick.
    pub src: Option<IpAddr>,
    /// The table entry that matched (`ip route get fibmatch`), when in the main table.
    pub matched: Option<IpNet>,
    /// That entry's protocol (136 is ours).
    pub protocol: Option<u8>,
    /// The kernel found no route (ENETUNREACH and friends): its message.
    pub unreachable: Option<String>,
}

/// The request `ip route get DST` sends: destination only, table and protocol left 0 so
/// the kernel runs its normal lookup (policy rules included).
fn request(dst: IpAddr, fibmatch: bool) -> RouteMessage {
    let len = if dst.is_ipv6() { 128 } else { 32 };
    let b = RouteMessageBuilder::<IpAddr>::new();
    let mut msg = match b.destination_prefix(dst, len) {
        Ok(b) => b.build(),
        // Unreachable: a host prefix always fits its family.
        Err(_) => RouteMessage::default(),
    };
    msg.header.table = 0;
    msg.header.protocol = RouteProtocol::Unspec;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unspec;
    if fibmatch {
        msg.header.flags = RouteFlags::FibMatch;
    }
    msg
}

async fn ask(handle: &Handle, dst: IpAddr, fibmatch: bool) -> Result<RouteMessage, String> {
    let mut stream = handle.route().get(request(dst, fibmatch)).execute();
    match stream.try_next().await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err("no answer".into()),
        Err(e) => Err(match super::kernel::errno(&e) {
            Some(errno) => errno.desc().to_owned(),
            None => e.to_string(),
        }),
    }
}

/// Asks the kernel of the handle's netns how it routes `dst`.
pub async fn route_get(handle: &Handle, dst: IpAddr) -> Result<Lookup, NetlinkError> {
    let answer = match ask(handle, dst, false).await {
        Ok(m) => m,
        Err(why) => {
            return Ok(Lookup {
                dev: None,
                gateway: None,
                src: None,
                matched: None,
                protocol: None,
                unreachable: Some(why),
            });
        }
    };
    let links = dump_links(handle).await?;
    let mut out = Lookup {
        dev: None,
        gateway: None,
        src: None,
        matched: None,
        protocol: None,
        unreachable: None,
    };
    for a in &answer.attributes {
        match a {
            RouteAttribute::Oif(i) => {
                out.dev = links
                    .iter()
                    .find(|(_, idx)| *idx == i)
                    .map(|(n, _)| n.clone());
            }
            RouteAttribute::Gateway(g) => out.gateway = addr(g),
            RouteAttribute::PrefSource(s) => out.src = addr(s),
            _ => {}
        }
    }
    // The entry itself: main-table unicast only (parse_route's scope); local and other
    // tables are reported without a matched prefix.
    if let Ok(m) = ask(handle, dst, true).await
        && let Some(r) = parse_route(&m)
    {
        out.matched = Some(r.dst);
        out.protocol = Some(r.protocol);
    }
    Ok(out)
}

fn addr(a: &rtnetlink::packet_route::route::RouteAddress) -> Option<IpAddr> {
    use rtnetlink::packet_route::route::RouteAddress;
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_host_lookup_in_no_table() {
        let m = request(
            "172.16.20.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            true,
        );
        assert_eq!(m.header.destination_prefix_length, 32);
        assert_eq!(m.header.table, 0);
        assert!(m.header.flags.contains(RouteFlags::FibMatch));
        assert!(
            m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
        let m = request("fd00::1".parse().unwrap_or(IpAddr::from([0u16; 8])), false);
        assert_eq!(m.header.destination_prefix_length, 128);
        assert!(!m.header.flags.contains(RouteFlags::FibMatch));
    }
}
