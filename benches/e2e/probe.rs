//! Independent checks, never the controller's word:
//! - [`Tables`]: the benchmark's own netlink socket in each pod's namespace (opened inside
//!   it on a short-lived thread), for dumps and for routes deleted by hand;
//! - [`Listener`]: one socket of the benchmark's own in the host namespace that hears the
//!   route notifications of every pod (`NETLINK_LISTEN_ALL_NSID`; the sandbox gives each
//!   pod's namespace an id), stamped on arrival: exact times, no polling;
//! - `ip -n` for the final check of every pod.
//!
//! The listener reads only headers and a few attributes in place; should it lose
//! notifications (its receive buffer overflowing), the figure waits on dumps instead and
//! says so.
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::sys::{Socket, protocols::NETLINK_ROUTE};

/// A netlink socket in each pod's namespace (by pod index).
pub struct Tables {
    handles: Vec<Option<rtnetlink::Handle>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Tables {
    pub fn new() -> Tables {
        Tables {
            handles: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// Opens a socket in each (pod index, namespace path).
    pub fn open(&mut self, paths: &[(usize, PathBuf)]) {
        let paths = paths.to_vec();
        let rt = tokio::runtime::Handle::current();
        let conns = std::thread::spawn(move || {
            // The sockets register with the runtime's reactor.
            let _in_rt = rt.enter();
            let host = File::open("/proc/thread-self/ns/net").expect("own netns");
            let mut out = Vec::new();
            for (i, p) in paths {
                let ns = File::open(&p).expect("pod netns");
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                let (conn, handle, _) = rtnetlink::new_connection().expect("socket");
                out.push((i, conn, handle));
            }
            nix::sched::setns(host.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns back");
            out
        })
        .join()
        .expect("probe thread");
        for (i, conn, handle) in conns {
            self.tasks.push(tokio::spawn(conn));
            if self.handles.len() <= i {
                self.handles.resize(i + 1, None);
            }
            self.handles[i] = Some(handle);
        }
    }

    /// Forgets the sockets of pods from `first` on (their namespaces are going).
    pub fn forget_from(&mut self, first: usize) {
        self.handles.truncate(first);
    }

    fn handle(&self, pod: usize) -> &rtnetlink::Handle {
        self.handles[pod].as_ref().expect("a socket in the pod")
    }

    async fn dump(&self, pod: usize) -> Vec<RouteMessage> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        self.handle(pod)
            .route()
            .get(req)
            .execute()
            .try_collect()
            .await
            .unwrap_or_default()
    }

    /// The pod's IPv4 route destinations (`a.b.c.d/len`) with `protocol`.
    pub async fn dsts(&self, pod: usize, protocol: u8) -> BTreeSet<String> {
        self.dump(pod)
            .await
            .iter()
            .filter(|m| u8::from(m.header.protocol) == protocol)
            .map(dst_of)
            .collect()
    }

    /// Deletes the pod's routes with `protocol`.
    pub async fn flush(&self, pod: usize, protocol: u8) {
        let h = self.handle(pod);
        let ours: Vec<RouteMessage> = self
            .dump(pod)
            .await
            .into_iter()
            .filter(|m| u8::from(m.header.protocol) == protocol)
            .collect();
        futures::future::join_all(ours.into_iter().map(|m| h.route().del(m).execute())).await;
    }

    /// Deletes one route of the pod by destination.
    pub async fn delete(&self, pod: usize, dst: &str) -> bool {
        for m in self.dump(pod).await {
            if dst_of(&m) == dst {
                return self.handle(pod).route().del(m).execute().await.is_ok();
            }
        }
        false
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn dst_of(m: &RouteMessage) -> String {
    let addr = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some(v4.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "0.0.0.0".into());
    format!("{addr}/{}", m.header.destination_prefix_length)
}

/// The pod's routes with `protocol` as `ip -n NS -j route show proto P` lists them.
pub fn ip_routes(netns: &str, protocol: u8) -> BTreeSet<String> {
    let out = Command::new("ip")
        .args([
            "-n",
            netns,
            "-j",
            "route",
            "show",
            "proto",
            &protocol.to_string(),
        ])
        .output()
        .expect("ip");
    assert!(out.status.success(), "ip -n {netns} route failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["dst"].as_str())
        .map(|d| {
            if d.contains('/') {
                d.to_owned()
            } else {
                format!("{d}/32")
            }
        })
        .collect()
}

/// One IPv4 main-table route notification from a pod.
#[derive(Clone, Debug)]
pub struct Ev {
    pub at: Instant,
    pub pod: usize,
    pub added: bool,
    pub protocol: u8,
    /// `a.b.c.d/len`.
    pub dst: String,
}

/// The benchmark's listener; notifications arrive on [`Listener::events`].
pub struct Listener {
    pub events: tokio::sync::mpsc::UnboundedReceiver<Ev>,
    sock: Arc<Socket>,
    pods: Arc<Mutex<HashMap<i32, usize>>>,
    /// Notifications were lost since [`Listener::drain`].
    lost: Arc<AtomicBool>,
}

const SOL_NETLINK: i32 = 270;
const NETLINK_LISTEN_ALL_NSID: i32 = 8;

impl Listener {
    pub fn start() -> Listener {
        let mut sock = Socket::new(NETLINK_ROUTE).expect("netlink socket");
        sock.bind_auto().expect("bind");
        sock.set_listen_all_namespaces(true).expect("listen all");
        let size: usize = 64 << 20;
        if nix::sys::socket::setsockopt(
            &sock.as_fd(),
            nix::sys::socket::sockopt::RcvBufForce,
            &size,
        )
        .is_err()
        {
            sock.set_rx_buf_sz(size).expect("rcvbuf");
        }
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let pods: Arc<Mutex<HashMap<i32, usize>>> = Arc::default();
        let lost = Arc::new(AtomicBool::new(false));
        let sock = Arc::new(sock);
        let (s, p, l) = (sock.clone(), pods.clone(), lost.clone());
        std::thread::Builder::new()
            .name("probe-listener".into())
            .spawn(move || listen(&s, tx, p, l))
            .expect("listener thread");
        Listener {
            events,
            sock,
            pods,
            lost,
        }
    }

    /// Hears route notifications (`true`) or not (at start: not). A socket listening to
    /// every namespace costs the kernel a search of the host's namespace ids per
    /// notification, so the benchmark joins the group only for the figures it times with
    /// notifications, not for the scripted baseline, `apply` and the cold start (hundreds
    /// of thousands of routes; timed from dumps).
    pub fn hear_routes(&self, on: bool) {
        let g = rtnetlink::MulticastGroup::Ipv4Route as u32;
        if on {
            self.sock.add_membership(g).expect("join");
        } else {
            self.sock.drop_membership(g).expect("leave");
        }
    }

    /// Pods heard from now on: (namespace id, pod index).
    pub fn hear(&self, ids: &[(i32, usize)]) {
        let mut m = self.pods.lock().expect("pods");
        for (id, i) in ids {
            m.insert(*id, *i);
        }
    }

    /// Drops what arrived so far; returns whether anything was lost meanwhile.
    pub fn drain(&mut self) -> bool {
        while self.events.try_recv().is_ok() {}
        self.lost.swap(false, Ordering::AcqRel)
    }

    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Feeds arriving notifications to `step` (it returns true once everything awaited has
    /// happened); returns the arrival time of the last one it needed, or None when
    /// notifications were lost or `limit` passed.
    pub async fn until(
        &mut self,
        limit: Duration,
        mut step: impl FnMut(&Ev) -> bool,
    ) -> Option<Instant> {
        let end = Instant::now() + limit;
        loop {
            if self.lost() {
                return None;
            }
            let left = end.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left.min(Duration::from_millis(100)), self.events.recv())
                .await
            {
                Ok(Some(ev)) => {
                    if std::env::var("E2E_TRACE").is_ok() {
                        eprintln!("{ev:?}");
                    }
                    if step(&ev) {
                        return Some(ev.at);
                    }
                }
                Ok(None) => return None,
                Err(_) => {}
            }
        }
    }
}

fn listen(
    sock: &Socket,
    tx: tokio::sync::mpsc::UnboundedSender<Ev>,
    pods: Arc<Mutex<HashMap<i32, usize>>>,
    lost: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let (n, nsid) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!(i32);
            match recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) {
                Ok(m) => {
                    let nsid = m.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|c| match c {
                            ControlMessageOwned::Unknown(u)
                                if u.cmsg_header.cmsg_level == SOL_NETLINK
                                    && u.cmsg_header.cmsg_type == NETLINK_LISTEN_ALL_NSID =>
                            {
                                Some(i32::from_ne_bytes(u.data_bytes.get(..4)?.try_into().ok()?))
                            }
                            _ => None,
                        })
                    });
                    (m.bytes, nsid)
                }
                Err(nix::errno::Errno::ENOBUFS) => {
                    lost.store(true, Ordering::Release);
                    continue;
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => panic!("probe listener: {e}"),
            }
        };
        let at = Instant::now();
        let Some(pod) = nsid.and_then(|id| pods.lock().ok()?.get(&id).copied()) else {
            continue;
        };
        for ev in parse(&buf[..n.min(buf.len())], at, pod) {
            if tx.send(ev).is_err() {
                return;
            }
        }
    }
}

/// The IPv4 main-table route notifications of one datagram, read in place.
fn parse(buf: &[u8], at: Instant, pod: usize) -> Vec<Ev> {
    let u16_at = |b: &[u8], o: usize| u16::from_ne_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32_at(buf, off) as usize;
        if len < 16 + 12 || off + len > buf.len() {
            break;
        }
        let ty = u16_at(buf, off + 4);
        let body = &buf[off + 16..off + len];
        off += (len + 3) & !3;
        // RTM_NEWROUTE / RTM_DELROUTE, AF_INET, main table (254), unicast.
        if !(ty == 24 || ty == 25) || body[0] != 2 || body[7] != 1 {
            continue;
        }
        let (mut table, mut dst) = (u32::from(body[4]), [0u8; 4]);
        let mut a = 12;
        while a + 4 <= body.len() {
            let alen = u16_at(body, a) as usize;
            if alen < 4 || a + alen > body.len() {
                break;
            }
            match u16_at(body, a + 2) & 0x3fff {
                1 if alen == 8 => dst.copy_from_slice(&body[a + 4..a + 8]),
                15 if alen == 8 => table = u32_at(body, a + 4),
                _ => {}
            }
            a += (alen + 3) & !3;
        }
        if table != 254 {
            continue;
        }
        out.push(Ev {
            at,
            pod,
            added: ty == 24,
            protocol: body[5],
            dst: format!("{}.{}.{}.{}/{}", dst[0], dst[1], dst[2], dst[3], body[1]),
        });
    }
    out
}
