//! A blocking rtnetlink socket for the pool threads: requests are built with
//! `netlink-packet-route` and sent many to one `send` (the kernel runs every request of a
//! datagram in order, inside that system call), and replies are read in place, without
//! building a message value per route.
//!
//! Why not the async `rtnetlink` handle: a pod pass is a few hundred requests and one dump,
//! all answered by the kernel inside our own system calls. Through the async handle each
//! request was a future, a channel message, its own `sendto` and an allocated reply; the
//! profile of a 2,000-pod node showed more time there than in the kernel's route tables
//! (docs/benchmarks.md, "Pod side, profiled").
//!
//! Writes ask for no acknowledgement but the last of each batch: the kernel answers a
//! request without `NLM_F_ACK` only when it fails, so a batch of 250 adds gets one reply,
//! and every error of the batch is queued before that last reply (requests run in order).
//! A batch is bounded ([`BATCH`]) so that even all-failing replies fit the receive buffer.
//!
//! Must not: enter a network namespace (the socket is opened where its caller stands, see
//! [`super::pool`]); decide anything about routes; panic on what the kernel sends (a reply
//! it cannot read is an error of that request, a route it cannot read is skipped).
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REPLACE,
    NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkExtentMask, LinkMessage};
use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::{Socket, protocols::NETLINK_ROUTE};

use super::NetlinkError;
use super::kernel::{KernelRoute, Links, MAIN_TABLE, route_message};

/// Requests per `send` at most: every one of them may come back as an error reply (and an
/// echo, see [`Rtnl::open_as`]), and those must fit the receive buffer ([`RCVBUF`]) before
/// we read them.
pub const BATCH: usize = 128;
/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max` unless we are root,
/// where `SO_RCVBUFFORCE` is used).
const RCVBUF: usize = 1 << 20;
/// A dump reply is at most 32 KiB per datagram (the kernel's cap); twice that for margin.
const RXBUF: usize = 64 * 1024;
/// A reply the kernel owes us and never sent is not waited for longer than this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A dump the kernel marks inconsistent (the table changed under it) is read again.
const DUMP_TRIES: usize = 3;

// rtnetlink message types (linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWNSID: u16 = 88;
// Attribute types.
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const IFLA_IFNAME: u16 = 3;
const NETNSA_NSID: u16 = 1;
const RTN_UNICAST: u8 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const NLMSG_HDRLEN: usize = 16;
const RTMSG_LEN: usize = 12;
const IFINFOMSG_LEN: usize = 16;

/// One route write of a batch.
#[derive(Clone, Copy, Debug)]
pub enum Write<'a> {
    /// Add; `true` replaces the route with the same destination and metric in place.
    Add(&'a KernelRoute, bool),
    Delete(&'a KernelRoute),
}

/// A blocking rtnetlink socket in the network namespace it was opened in.
pub struct Rtnl {
    sock: Socket,
    port: u32,
    /// Writes ask for their notification back (`NLM_F_ECHO`): see [`Rtnl::open_as`].
    echo: bool,
    seq: u32,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl std::fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtnl").field("port", &self.port).finish()
    }
}

fn socket_err(e: io::Error) -> NetlinkError {
    NetlinkError::Socket(e)
}

fn errno_err(errno: Errno) -> NetlinkError {
    NetlinkError::Kernel {
        errno: Some(errno),
        message: io::Error::from(errno).to_string(),
    }
}

fn dump_err(what: &'static str, e: impl std::fmt::Display) -> NetlinkError {
    NetlinkError::Dump {
        what,
        message: e.to_string(),
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The netlink messages of one datagram: (type, flags, seq, port, payload).
pub fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, u16, u32, u32, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let len = u32_at(buf, off)? as usize;
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return None;
        }
        let at = off;
        off += (len + 3) & !3;
        Some((
            u16_at(buf, at + 4)?,
            u16_at(buf, at + 6)?,
            u32_at(buf, at + 8)?,
            u32_at(buf, at + 12)?,
            &buf[at + NLMSG_HDRLEN..at + len],
        ))
    })
}

/// The attributes of a message body after its fixed header: (type, value).
fn attributes(body: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let len = u16_at(body, off)? as usize;
        if len < 4 || off + len > body.len() {
            return None;
        }
        let at = off;
        off += (len + 3) & !3;
        // The top bits of the type are flags (nested, byte order).
        Some((u16_at(body, at + 2)? & 0x3fff, &body[at + 4..at + len]))
    })
}

fn addr(v: &[u8]) -> Option<IpAddr> {
    match v.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?))),
        _ => None,
    }
}

/// A route message's body (`rtmsg` and attributes) as a [`KernelRoute`]; None outside the
/// main table, for other types than unicast and for what cannot be read. Reads in place:
/// the same answer as [`super::kernel::parse_route`] without building the message.
pub fn parse_route_body(body: &[u8]) -> Option<KernelRoute> {
    if body.len() < RTMSG_LEN || body[7] != RTN_UNICAST {
        return None;
    }
    let (family, len) = (body[0], body[1]);
    let mut table = u32::from(body[4]);
    let (mut dst, mut gateway, mut oif, mut metric) = (None, None, None, 0);
    for (ty, v) in attributes(&body[RTMSG_LEN..]) {
        match ty {
            RTA_DST => dst = Some(addr(v)?),
            RTA_GATEWAY => gateway = addr(v),
            RTA_OIF => oif = u32_at(v, 0),
            RTA_PRIORITY => metric = u32_at(v, 0)?,
            RTA_TABLE => table = u32_at(v, 0)?,
            _ => {}
        }
    }
    if table != MAIN_TABLE {
        return None;
    }
    let dst = match (family, dst) {
        (AF_INET, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (AF_INET6, None) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (AF_INET, Some(a @ IpAddr::V4(_))) | (AF_INET6, Some(a @ IpAddr::V6(_))) => a,
        _ => return None,
    };
    Some(KernelRoute {
        dst: IpNet::new(dst, len).ok()?,
        gateway,
        oif,
        protocol: body[5],
        metric,
        scope: body[6],
    })
}

/// Whether a datagram's message of type `ty` is a route message this module would read.
pub fn is_route(ty: u16) -> bool {
    ty == RTM_NEWROUTE || ty == RTM_NEWROUTE + 1
}

/// The errno of an error reply's body (0: an acknowledgement).
fn error_code(body: &[u8]) -> Option<i32> {
    Some(u32_at(body, 0)? as i32)
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Rtnl> {
        Rtnl::open_as(None)
    }

    /// Opens a socket in the calling thread's network namespace with the port id `port`
    /// when it is free there, and then writes with `NLM_F_ECHO`. Why: the kernel sends the
    /// notification of an echoed request back to its sender and to no other socket with
    /// the sender's port id (`nlmsg_notify`), before looking at namespaces. Our watch
    /// socket ([`super::watch`]) has that port id in the host's namespace, so it is spared
    /// our own writes: for a socket listening to all namespaces every notification
    /// otherwise costs a search through the host's namespace ids, thousands on a busy node
    /// (docs/benchmarks.md). A port taken in the pod already: an ordinary socket (the
    /// watcher then drops our notifications itself, by port id).
    pub fn open_as(port: Option<u32>) -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        let bound = port.filter(|p| sock.bind(&rtnetlink::sys::SocketAddr::new(*p, 0)).is_ok());
        let (port, echo) = match bound {
            Some(p) => (p, true),
            None => (sock.bind_auto()?.port_number(), false),
        };
        // Error replies without a copy of the request: smaller, so more fit.
        sock.set_cap_ack(true)?;
        let fd = sock.as_fd();
        if nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::RcvBufForce, &RCVBUF)
            .is_err()
        {
            sock.set_rx_buf_sz(RCVBUF)?;
        }
        let timeout = nix::sys::time::TimeVal::new(TIMEOUT.as_secs() as i64, 0);
        nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .map_err(io::Error::from)?;
        Ok(Rtnl {
            sock,
            port,
            echo,
            seq: 0,
            tx: Vec::with_capacity(16 * 1024),
            rx: vec![0; RXBUF],
        })
    }

    /// The socket's netlink port id: the kernel stamps it on the notifications our
    /// requests cause (see [`super::watch::OwnPorts`]).
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Appends one request to the pending datagram; returns its sequence number.
    fn push(&mut self, payload: RouteNetlinkMessage, flags: u16) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(payload));
        msg.finalize();
        let at = self.tx.len();
        self.tx.resize(at + msg.buffer_len(), 0);
        msg.serialize(&mut self.tx[at..]);
        // Messages of one datagram are 4-byte aligned.
        self.tx.resize((self.tx.len() + 3) & !3, 0);
        self.seq
    }

    fn send(&mut self) -> Result<(), NetlinkError> {
        let out = self.sock.send(&self.tx, 0);
        self.tx.clear();
        match out {
            Ok(_) => Ok(()),
            Err(e) => Err(socket_err(e)),
        }
    }

    /// Receives one datagram into `rx`; returns its length.
    fn recv(&mut self) -> Result<usize, NetlinkError> {
        match self.sock.recv(&mut &mut self.rx[..], 0) {
            Ok(n) => Ok(n.min(self.rx.len())),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(dump_err(
                "reply",
                format!("no reply from the kernel within {TIMEOUT:?}"),
            )),
            Err(e) => Err(socket_err(e)),
        }
    }

    /// Runs a dump request and reads each reply body of type `ty` with `read`; reads it
    /// all again when the kernel says the table changed during the dump.
    fn dump<T>(
        &mut self,
        what: &'static str,
        request: impl Fn() -> RouteNetlinkMessage,
        ty: u16,
        read: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>, NetlinkError> {
        let mut out = Vec::new();
        for attempt in 1..=DUMP_TRIES {
            out.clear();
            let seq = self.push(request(), NLM_F_REQUEST | NLM_F_DUMP);
            self.send()?;
            let mut interrupted = false;
            'reply: loop {
                let n = self.recv()?;
                for (t, flags, s, _, body) in messages(&self.rx[..n]) {
                    if s != seq {
                        continue;
                    }
                    interrupted |= flags & NLM_F_DUMP_INTR != 0;
                    match t {
                        NLMSG_DONE => break 'reply,
                        NLMSG_ERROR => match error_code(body) {
                            Some(0) => {}
                            Some(code) => return Err(dump_err(what, Errno::from_raw(-code))),
                            None => return Err(dump_err(what, "unreadable error reply")),
                        },
                        t if t == ty => out.extend(read(body)),
                        _ => {}
                    }
                }
            }
            if !interrupted || attempt == DUMP_TRIES {
                break;
            }
        }
        Ok(out)
    }

    /// The main table's unicast routes, both families, in one dump.
    pub fn dump_routes(&mut self) -> Result<Vec<KernelRoute>, NetlinkError> {
        let request = || {
            let mut req = RouteMessage::default();
            req.header.address_family = AddressFamily::Unspec;
            RouteNetlinkMessage::GetRoute(req)
        };
        self.dump("routes", request, RTM_NEWROUTE, parse_route_body)
    }

    /// Every link's name and index.
    pub fn dump_links(&mut self) -> Result<Links, NetlinkError> {
        let request = || {
            let mut m = LinkMessage::default();
            m.attributes
                .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
            RouteNetlinkMessage::GetLink(m)
        };
        Ok(self
            .dump("links", request, RTM_NEWLINK, link_of)?
            .into_iter()
            .collect())
    }

    /// Looks up the named links only, one request each, all in one datagram. A missing name
    /// is simply absent from the result.
    pub fn links(&mut self, names: &[&str]) -> Result<Links, NetlinkError> {
        let mut links = Links::new();
        if names.is_empty() {
            return Ok(links);
        }
        let first = self.seq.wrapping_add(1);
        for name in names {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName((*name).to_owned()));
            m.attributes
                .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
            self.push(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST);
        }
        self.send()?;
        let mut answered = 0;
        while answered < names.len() {
            let n = self.recv()?;
            for (t, _, seq, _, body) in messages(&self.rx[..n]) {
                let i = seq.wrapping_sub(first) as usize;
                let Some(name) = names.get(i) else { continue };
                match t {
                    RTM_NEWLINK => {
                        answered += 1;
                        if let Some((_, index)) = link_of(body) {
                            links.insert((*name).to_owned(), index);
                        }
                    }
                    NLMSG_ERROR => {
                        answered += 1;
                        match error_code(body).map(|c| Errno::from_raw(-c)) {
                            Some(Errno::ENODEV) => {}
                            Some(e) => return Err(dump_err("links", e)),
                            None => return Err(dump_err("links", "unreadable error reply")),
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(links)
    }

    /// Sends the writes, [`BATCH`] per datagram, and returns each one's outcome in order
    /// (`Err(errno)` as the kernel answered). A batch whose replies were lost (the receive
    /// buffer overflowed) fails as a whole with [`NetlinkError::Socket`].
    pub fn write(&mut self, writes: &[Write<'_>]) -> Result<Vec<Result<(), Errno>>, NetlinkError> {
        let mut out = Vec::with_capacity(writes.len());
        for chunk in writes.chunks(BATCH) {
            let first = self.seq.wrapping_add(1);
            let echo = if self.echo { NLM_F_ECHO } else { 0 };
            for (i, w) in chunk.iter().enumerate() {
                let ack = if i + 1 == chunk.len() { NLM_F_ACK } else { 0 };
                let (msg, flags) = match w {
                    Write::Add(r, replace) => {
                        let mode = if *replace { NLM_F_REPLACE } else { NLM_F_EXCL };
                        (
                            RouteNetlinkMessage::NewRoute(route_message(r)),
                            NLM_F_CREATE | mode,
                        )
                    }
                    Write::Delete(r) => (RouteNetlinkMessage::DelRoute(route_message(r)), 0),
                };
                self.push(msg, NLM_F_REQUEST | flags | ack | echo);
            }
            let last = self.seq;
            self.send()?;
            let mut results: Vec<Result<(), Errno>> = vec![Ok(()); chunk.len()];
            'replies: loop {
                let n = self.recv()?;
                for (t, _, seq, _, body) in messages(&self.rx[..n]) {
                    let i = seq.wrapping_sub(first) as usize;
                    if t != NLMSG_ERROR || i >= chunk.len() {
                        continue;
                    }
                    match error_code(body) {
                        Some(0) => {}
                        Some(code) => results[i] = Err(Errno::from_raw(-code)),
                        None => results[i] = Err(Errno::EBADMSG),
                    }
                    if seq == last {
                        break 'replies;
                    }
                }
            }
            out.append(&mut results);
        }
        Ok(out)
    }

    /// The id the calling thread's namespace gives `netns` (a peer namespace), assigning
    /// one if it has none yet (what `ip netns set NAME auto` does). Notifications from a
    /// namespace with an id reach a socket listening with `NETLINK_LISTEN_ALL_NSID`.
    pub fn nsid(&mut self, netns: &File) -> Result<i32, NetlinkError> {
        let fd = u32::try_from(netns.as_raw_fd()).map_err(|_| errno_err(Errno::EBADF))?;
        let ask = |fd| {
            let mut m = NsidMessage::default();
            m.attributes.push(NsidAttribute::Fd(fd));
            m
        };
        if let Some(id) = self.nsid_request(RouteNetlinkMessage::GetNsId(ask(fd)))? {
            return Ok(id);
        }
        let mut m = ask(fd);
        m.attributes.push(NsidAttribute::Id(-1));
        let seq = self.push(RouteNetlinkMessage::NewNsId(m), NLM_F_REQUEST | NLM_F_ACK);
        self.send()?;
        let code = self.reply_code(seq)?;
        // EEXIST: someone assigned one in between; ask again.
        if code != 0 && code != -(Errno::EEXIST as i32) {
            return Err(errno_err(Errno::from_raw(-code)));
        }
        self.nsid_request(RouteNetlinkMessage::GetNsId(ask(fd)))?
            .ok_or_else(|| errno_err(Errno::ENOENT))
    }

    /// One RTM_GETNSID: the id, or None when the namespace has none.
    fn nsid_request(&mut self, req: RouteNetlinkMessage) -> Result<Option<i32>, NetlinkError> {
        let seq = self.push(req, NLM_F_REQUEST);
        self.send()?;
        loop {
            let n = self.recv()?;
            for (t, _, s, _, body) in messages(&self.rx[..n]) {
                if s != seq {
                    continue;
                }
                match t {
                    RTM_NEWNSID => {
                        let id = attributes(body.get(4..).unwrap_or_default())
                            .find(|(ty, _)| *ty == NETNSA_NSID)
                            .and_then(|(_, v)| u32_at(v, 0))
                            .map(|v| v as i32);
                        return Ok(id.filter(|id| *id >= 0));
                    }
                    NLMSG_ERROR => {
                        let code = error_code(body).unwrap_or(-(Errno::EBADMSG as i32));
                        return Err(errno_err(Errno::from_raw(-code)));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Waits for the acknowledgement (or error) of request `seq`.
    fn reply_code(&mut self, seq: u32) -> Result<i32, NetlinkError> {
        loop {
            let n = self.recv()?;
            for (t, _, s, _, body) in messages(&self.rx[..n]) {
                if s == seq && t == NLMSG_ERROR {
                    return Ok(error_code(body).unwrap_or(-(Errno::EBADMSG as i32)));
                }
            }
        }
    }
}

/// A link message's (name, index).
fn link_of(body: &[u8]) -> Option<(String, u32)> {
    let index = u32_at(body, 4)?;
    let name = attributes(body.get(IFINFOMSG_LEN..)?)
        .find(|(ty, _)| *ty == IFLA_IFNAME)
        .map(|(_, v)| v.split(|b| *b == 0).next().unwrap_or_default())?;
    Some((String::from_utf8_lossy(name).into_owned(), index))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::netlink::kernel::{SCOPE_LINK, SCOPE_UNIVERSE, parse_route};

    fn body(r: &RouteMessage) -> Vec<u8> {
        let mut m = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::from(RouteNetlinkMessage::NewRoute(r.clone())),
        );
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf[NLMSG_HDRLEN..].to_vec()
    }

    fn kr(dst: &str, gw: Option<&str>, metric: u32, protocol: u8, scope: u8) -> KernelRoute {
        KernelRoute {
            dst: dst.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            oif: Some(7),
            protocol,
            metric,
            scope,
        }
    }

    #[test]
    fn the_in_place_reader_agrees_with_the_message_parser() {
        let routes = [
            kr("10.96.0.0/12", Some("10.244.1.1"), 0, 136, SCOPE_UNIVERSE),
            kr("0.0.0.0/0", Some("169.254.1.1"), 0, 3, SCOPE_UNIVERSE),
            kr("fd00:96::/64", Some("fd00::1"), 1024, 136, SCOPE_UNIVERSE),
            kr("::/0", None, 1024, 2, SCOPE_UNIVERSE),
            kr("172.16.0.0/16", None, 0, 4, SCOPE_LINK),
            kr("10.1.2.0/24", Some("10.244.1.1"), 4242, 136, SCOPE_UNIVERSE),
        ];
        for r in &routes {
            let msg = route_message(r);
            assert_eq!(parse_route_body(&body(&msg)), parse_route(&msg), "{r:?}");
            assert_eq!(parse_route_body(&body(&msg)).as_ref(), Some(r));
        }
        // Another table (255, local) and another type are left out, as the parser does.
        let mut local = route_message(&routes[0]);
        local.header.table = 255;
        assert_eq!(parse_route_body(&body(&local)), None);
        assert_eq!(parse_route(&local), None);
        let mut blackhole = route_message(&routes[0]);
        blackhole.header.kind = rtnetlink::packet_route::route::RouteType::BlackHole;
        assert_eq!(parse_route_body(&body(&blackhole)), None);
        // Truncated input is not a route, and does not panic.
        let b = body(&route_message(&routes[2]));
        for cut in 0..b.len() {
            let _ = parse_route_body(&b[..cut]);
        }
    }

    #[test]
    fn a_datagram_splits_into_its_messages() {
        let one = {
            let mut m = NetlinkMessage::new(
                NetlinkHeader::default(),
                NetlinkPayload::from(RouteNetlinkMessage::NewRoute(route_message(&kr(
                    "10.0.0.0/8",
                    None,
                    0,
                    136,
                    SCOPE_LINK,
                )))),
            );
            m.header.sequence_number = 7;
            m.header.port_number = 99;
            m.finalize();
            let mut buf = vec![0; m.buffer_len()];
            m.serialize(&mut buf);
            buf
        };
        let two = [one.clone(), one.clone()].concat();
        let got: Vec<_> = messages(&two).map(|(t, _, s, p, _)| (t, s, p)).collect();
        assert_eq!(got, vec![(RTM_NEWROUTE, 7, 99), (RTM_NEWROUTE, 7, 99)]);
        // A length past the end stops the walk.
        let mut bad = one.clone();
        bad[0] = 255;
        assert_eq!(messages(&bad).count(), 0);
    }
}
