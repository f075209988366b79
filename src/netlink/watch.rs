//! The pod side's event sources, on one dedicated OS thread blocked in `epoll_wait`: one
//! rtnetlink socket in the host namespace that hears the route, link and address
//! notifications of every watched pod's namespace (`NETLINK_LISTEN_ALL_NSID`), and inotify on
//! the directories where network namespaces appear (the CNI result cache, the netns dir, and
//! the parent of every watched netns file). While nothing changes nothing runs: no timer, no
//! wake-up.
//!
//! Why one socket and not one per pod: the kernel hands every route notification, in any
//! namespace, to a walk over every netlink socket subscribed to a route group on the host.
//! With a socket per watched pod, each route written anywhere cost a walk over thousands of
//! sockets: programming a node of 2,000 pods x 250 routes took 99 s instead of 5 s, in that
//! walk (docs/benchmarks.md, "Pod side, profiled"). A socket listening to all namespaces
//! hears a namespace once the host has an id for it (`ip netns set NAME auto` does the
//! same), so watching a pod is giving its namespace an id and remembering it; notifications
//! carry that id. Holding no socket inside the pod, we never keep its namespace alive.
//!
//! Why links and addresses too: when a link goes down the kernel flushes its IPv4 routes
//! *without* RTM_DELROUTE notifications (only the link event is sent), and removing an
//! address flushes the routes through it the same way. Any such event marks the pod for a
//! re-dump; the reconcile decides what, if anything, to do.
//!
//! Our own writes are not events: the kernel stamps every notification with the netlink
//! port id of the socket whose request caused it, and each pod pass records the port id of
//! its socket ([`OwnPorts`]) before sending anything, so the pass's own echoes are dropped.
//! Lost notifications (the socket's receive buffer overflowed, `ENOBUFS`) cannot be told
//! apart by pod: every watched pod counts as changed ([`Event::Overflow`]).
//!
//! Must not: enter a network namespace; decide anything about routes (it only says *which*
//! pod changed); block on the async side (events are sent on an unbounded channel).
use std::collections::HashMap;
use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use rtnetlink::MulticastGroup;
use rtnetlink::sys::{Socket, protocols::NETLINK_ROUTE};
use tracing::{debug, error, warn};

use super::NetlinkError;
use super::rtnl::{Rtnl, is_route, messages, parse_route_body};

/// What happened, as the reconciler needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Something changed inside the netns watched under this id (or notifications were
    /// lost): its pod needs a re-dump.
    Netns(u64),
    /// A file was created, written or moved into a watched directory.
    FileUp(PathBuf),
    /// A file was removed from (or moved out of) a watched directory.
    FileGone(PathBuf),
    /// The inotify queue overflowed: file events were lost, rescan everything.
    Rescan,
    /// Try this pod's netns again (it appeared but could not be entered yet).
    Retry(String),
    /// Notifications were lost: any watched pod may have changed.
    Overflow,
}

/// Notification groups of the watch socket.
const GROUPS: [MulticastGroup; 5] = [
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv6Ifaddr,
    MulticastGroup::Ipv4Route,
    MulticastGroup::Ipv6Route,
];

// rtnetlink message types (linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;

/// Port ids of the sockets our last passes in one pod used. Two slots: the echoes of a pass
/// may still be queued when the next pass starts.
#[derive(Debug, Default)]
pub struct OwnPorts {
    ports: [AtomicU32; 2],
    next: AtomicUsize,
}

impl OwnPorts {
    /// Records the port id of a socket about to write in the pod.
    pub fn record(&self, port: u32) {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % 2;
        self.ports[slot].store(port, Ordering::Release);
    }

    /// True for a port id one of our passes used (0, the kernel's own, never is).
    pub fn contains(&self, port: u32) -> bool {
        port != 0 && self.ports.iter().any(|p| p.load(Ordering::Acquire) == port)
    }
}

/// True when a batch of notifications read from the watch socket says something changed
/// that our own pass did not cause: a main-table unicast route added or removed, any link
/// or address event, or anything unreadable (when in doubt, re-dump). Reads in place.
pub fn relevant(buf: &[u8], own: &OwnPorts) -> bool {
    let mut read = 0;
    let mut any = false;
    for (ty, _, _, port, body) in messages(buf) {
        read += (body.len() + 16 + 3) & !3;
        if own.contains(port) {
            continue;
        }
        any |= match ty {
            RTM_NEWLINK | RTM_DELLINK | RTM_NEWADDR | RTM_DELADDR => true,
            t if is_route(t) => parse_route_body(body).is_some(),
            _ => false,
        };
    }
    // A datagram that does not split into whole messages is unreadable.
    any || read < buf.len()
}

enum Cmd {
    Watch {
        id: u64,
        netns: PathBuf,
        own: Arc<OwnPorts>,
        done: tokio::sync::oneshot::Sender<Result<(), NetlinkError>>,
    },
    Unwatch(u64),
    Dir(PathBuf),
}

const WAKE: u64 = 0;
const INOTIFY: u64 = 1;
const NETLINK: u64 = 2;

/// `SOL_NETLINK` and its `NETLINK_LISTEN_ALL_NSID` control message (linux/netlink.h).
const SOL_NETLINK: i32 = 270;
const NETLINK_LISTEN_ALL_NSID: i32 = 8;
/// Receive buffer of the watch socket: it hears every watched pod, and a pass of ours
/// writing hundreds of routes sends as many notifications (read and dropped as ours).
/// Kernel memory, used only while notifications wait to be read.
const WATCH_RCVBUF: usize = 32 << 20;
/// Datagrams read from the watch socket before the other sources get a turn.
const READS_PER_WAKE: usize = 256;

/// Handle of the watcher thread; dropping it stops the thread and closes the socket.
pub struct Watcher {
    /// The watch socket's port id.
    port: u32,
    cmds: Option<mpsc::Sender<Cmd>>,
    wake: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

fn io(e: Errno) -> NetlinkError {
    NetlinkError::Worker(std::io::Error::from(e))
}

/// The socket that hears every namespace the host has an id for, subscribed to [`GROUPS`],
/// and its port id: one far from the ones the kernel gives out (process ids, and counting
/// down from -4096), so that our writing sockets can take the same one inside pods (see
/// [`super::rtnl::Rtnl::open_as`]).
fn listener() -> Result<(Socket, u32), NetlinkError> {
    let mut s = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
    let mut port = None;
    for _ in 0..16 {
        let p = 0x4000_0000 | (rand::random::<u32>() & 0x3fff_ffff);
        if s.bind(&rtnetlink::sys::SocketAddr::new(p, 0)).is_ok() {
            port = Some(p);
            break;
        }
    }
    let port = match port {
        Some(p) => p,
        None => s.bind_auto().map_err(NetlinkError::Socket)?.port_number(),
    };
    s.set_listen_all_namespaces(true)
        .map_err(NetlinkError::Socket)?;
    for g in GROUPS {
        s.add_membership(g as u32).map_err(NetlinkError::Socket)?;
    }
    if setsockopt(&s.as_fd(), sockopt::RcvBufForce, &WATCH_RCVBUF).is_err() {
        s.set_rx_buf_sz(WATCH_RCVBUF)
            .map_err(NetlinkError::Socket)?;
    }
    s.set_non_blocking(true).map_err(NetlinkError::Socket)?;
    Ok((s, port))
}

impl Watcher {
    /// Starts the thread; `dirs` are watched with inotify from the start (missing ones are
    /// skipped with a debug log and can be added later with [`Watcher::watch_dir`]). Call
    /// from a thread in the host's network namespace.
    pub fn start(
        dirs: Vec<PathBuf>,
        events: tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Result<Self, NetlinkError> {
        let (listener, port) = listener()?;
        let control = Rtnl::open().map_err(NetlinkError::Socket)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io)?;
        let wake = Arc::new(
            EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(io)?,
        );
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(io)?;
        epoll
            .add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE))
            .map_err(io)?;
        epoll
            .add(
                inotify.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY),
            )
            .map_err(io)?;
        epoll
            .add(
                listener.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, NETLINK),
            )
            .map_err(io)?;
        let (tx, rx) = mpsc::channel();
        let mut state = Thread {
            epoll,
            inotify,
            wake: wake.clone(),
            listener,
            control,
            cmds: rx,
            events,
            pods: HashMap::new(),
            nsids: HashMap::new(),
            dirs: HashMap::new(),
            buf: vec![0; 64 * 1024],
        };
        for d in dirs {
            state.add_dir(d);
        }
        let thread = std::thread::Builder::new()
            .name("netns-watch".into())
            .spawn(move || state.run())
            .map_err(NetlinkError::Worker)?;
        Ok(Watcher {
            port,
            cmds: Some(tx),
            wake,
            thread: Some(thread),
        })
    }

    /// The watch socket's port id (see [`super::rtnl::Rtnl::open_as`]).
    pub fn port(&self) -> u32 {
        self.port
    }

    fn send(&self, cmd: Cmd) -> Result<(), NetlinkError> {
        self.cmds
            .as_ref()
            .ok_or(NetlinkError::PoolGone)?
            .send(cmd)
            .map_err(|_| NetlinkError::PoolGone)?;
        self.wake.write(1).map_err(io)?;
        Ok(())
    }

    /// Starts hearing `netns` under `id` (replacing what was under `id`): once this returns,
    /// every later change inside it is reported.
    pub async fn watch(
        &self,
        id: u64,
        netns: PathBuf,
        own: Arc<OwnPorts>,
    ) -> Result<(), NetlinkError> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.send(Cmd::Watch {
            id,
            netns,
            own,
            done,
        })?;
        rx.await.map_err(|_| NetlinkError::PoolGone)?
    }

    /// Stops reporting what happens under `id`.
    pub fn unwatch(&self, id: u64) {
        if let Err(e) = self.send(Cmd::Unwatch(id)) {
            warn!(error = %e, "cannot reach the netns watcher");
        }
    }

    /// Adds an inotify watch on `dir` (nothing if it is already watched).
    pub fn watch_dir(&self, dir: PathBuf) {
        if let Err(e) = self.send(Cmd::Dir(dir)) {
            warn!(error = %e, "cannot reach the netns watcher");
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Closing the command channel, then waking the thread, makes it return.
        self.cmds = None;
        let _ = self.wake.write(1);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Thread {
    epoll: Epoll,
    inotify: Inotify,
    wake: Arc<EventFd>,
    listener: Socket,
    /// Asks the host for the id of a pod's namespace.
    control: Rtnl,
    cmds: mpsc::Receiver<Cmd>,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    /// Namespace id -> the watch id heard under it, and its pass's port ids.
    pods: HashMap<i32, (u64, Arc<OwnPorts>)>,
    /// Watch id -> namespace id.
    nsids: HashMap<u64, i32>,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    /// The read buffer of the watch socket.
    buf: Vec<u8>,
}

impl Thread {
    fn run(mut self) {
        let mut ready = [EpollEvent::empty(); 8];
        loop {
            let n = match self.epoll.wait(&mut ready, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    error!(error = %e, "netns watcher stopped: epoll_wait failed");
                    return;
                }
            };
            for ev in &ready[..n] {
                let open = match ev.data() {
                    WAKE => {
                        let _ = self.wake.read();
                        self.commands()
                    }
                    INOTIFY => {
                        self.files();
                        true
                    }
                    _ => {
                        self.notifications();
                        true
                    }
                };
                if !open {
                    return;
                }
            }
        }
    }

    /// Runs the queued commands; false once the handle is gone.
    fn commands(&mut self) -> bool {
        loop {
            match self.cmds.try_recv() {
                Ok(cmd) => self.command(cmd),
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Watch {
                id,
                netns,
                own,
                done,
            } => {
                self.unwatch(id);
                let reply = self.nsid(&netns).map(|nsid| {
                    self.pods.insert(nsid, (id, own));
                    self.nsids.insert(id, nsid);
                });
                if let Some(parent) = netns.parent() {
                    self.add_dir(parent.to_path_buf());
                }
                let _ = done.send(reply);
            }
            Cmd::Unwatch(id) => self.unwatch(id),
            Cmd::Dir(dir) => self.add_dir(dir),
        }
    }

    /// The host's id for the namespace at `netns` (given one if it has none).
    fn nsid(&mut self, netns: &Path) -> Result<i32, NetlinkError> {
        let file = File::open(netns).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                NetlinkError::NetnsGone(netns.to_path_buf())
            } else {
                NetlinkError::EnterNetns {
                    path: netns.to_path_buf(),
                    source: e,
                }
            }
        })?;
        self.control.nsid(&file).map_err(|e| match e {
            // Not a network namespace (a plain file where one is expected, or a
            // namespace file not mounted yet).
            NetlinkError::Kernel { errno, .. } => NetlinkError::EnterNetns {
                path: netns.to_path_buf(),
                source: std::io::Error::from(errno.unwrap_or(Errno::EINVAL)),
            },
            other => other,
        })
    }

    fn unwatch(&mut self, id: u64) {
        if let Some(nsid) = self.nsids.remove(&id)
            && self.pods.get(&nsid).is_some_and(|(i, _)| *i == id)
        {
            self.pods.remove(&nsid);
        }
    }

    fn add_dir(&mut self, dir: PathBuf) {
        if self.dirs.values().any(|d| *d == dir) {
            return;
        }
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_ONLYDIR;
        match self.inotify.add_watch(dir.as_path(), mask) {
            Ok(wd) => {
                debug!(dir = %dir.display(), "watching directory");
                self.dirs.insert(wd, dir);
            }
            Err(e) => debug!(dir = %dir.display(), error = %e, "cannot watch directory (yet)"),
        }
    }

    fn files(&mut self) {
        loop {
            let batch = match self.inotify.read_events() {
                Ok(b) => b,
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    warn!(error = %e, "inotify read failed; rescanning");
                    let _ = self.events.send(Event::Rescan);
                    return;
                }
            };
            for e in batch {
                if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    let _ = self.events.send(Event::Rescan);
                    continue;
                }
                if e.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The directory itself went away; it is re-added when seen again.
                    self.dirs.remove(&e.wd);
                    continue;
                }
                let (Some(dir), Some(name)) = (self.dirs.get(&e.wd), e.name) else {
                    continue;
                };
                let path = dir.join(name);
                let gone = e
                    .mask
                    .intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM);
                let _ = self.events.send(if gone {
                    Event::FileGone(path)
                } else {
                    Event::FileUp(path)
                });
            }
        }
    }

    /// Reads one datagram: its length and the namespace id it came from (None: the host's
    /// own namespace). Err(WouldBlock) when nothing is queued.
    fn recv(&mut self) -> Result<(usize, Option<i32>), Errno> {
        let mut iov = [IoSliceMut::new(&mut self.buf)];
        let mut cmsg = nix::cmsg_space!(i32);
        let msg = recvmsg::<()>(
            self.listener.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        )?;
        let nsid = msg.cmsgs().ok().and_then(|mut c| {
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
        Ok((msg.bytes, nsid))
    }

    fn notifications(&mut self) {
        let mut changed: Vec<u64> = Vec::new();
        // Bounded, so that a long stream (a pass of ours writing thousands of routes) does
        // not hold back the commands: the socket is still readable on the next wait.
        for _ in 0..READS_PER_WAKE {
            let (n, nsid) = match self.recv() {
                Ok((0, _)) => break,
                Ok(got) => got,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOBUFS) => {
                    warn!("pod netlink notifications were lost; every watched pod is checked");
                    let _ = self.events.send(Event::Overflow);
                    continue;
                }
                Err(e) => {
                    error!(error = %e, "watch socket read failed; every watched pod is checked");
                    let _ = self.events.send(Event::Overflow);
                    break;
                }
            };
            let Some(nsid) = nsid else { continue };
            if !self.pods.contains_key(&nsid) {
                // A pod whose watch was asked for before this change was made is known
                // once the commands queued meanwhile have run.
                self.commands();
            }
            let Some((id, own)) = self.pods.get(&nsid) else {
                continue;
            };
            let n = n.min(self.buf.len());
            if !changed.contains(id) && relevant(&self.buf[..n], own) {
                changed.push(*id);
            }
        }
        for id in changed {
            let _ = self.events.send(Event::Netns(id));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rtnetlink::packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    use rtnetlink::packet_route::link::LinkMessage;
    use rtnetlink::packet_route::route::RouteMessage;

    use super::*;
    use crate::netlink::kernel::{KernelRoute, SCOPE_UNIVERSE, route_message};

    fn bytes(inner: RouteNetlinkMessage, port: u32) -> Vec<u8> {
        let mut m = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(inner));
        m.header.port_number = port;
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    fn route(table_main: bool) -> RouteMessage {
        let mut r = route_message(&KernelRoute {
            dst: "10.96.0.0/12".parse().unwrap(),
            gateway: Some("10.244.1.1".parse().unwrap()),
            oif: Some(3),
            protocol: 136,
            metric: 0,
            scope: SCOPE_UNIVERSE,
        });
        if !table_main {
            r.header.table = 255;
        }
        r
    }

    #[test]
    fn our_echoes_are_dropped_and_the_rest_counts() {
        let own = OwnPorts::default();
        own.record(4242);
        let ours = bytes(RouteNetlinkMessage::NewRoute(route(true)), 4242);
        let theirs = bytes(RouteNetlinkMessage::DelRoute(route(true)), 777);
        let kernel = bytes(RouteNetlinkMessage::NewLink(LinkMessage::default()), 0);
        let local = bytes(RouteNetlinkMessage::NewRoute(route(false)), 0);
        assert!(!relevant(&ours, &own), "our own write");
        assert!(relevant(&theirs, &own), "a route deleted by someone else");
        assert!(
            relevant(&kernel, &own),
            "a link event (IPv4 flush without route events)"
        );
        assert!(
            !relevant(&local, &own),
            "a local-table route is not ours to care about"
        );
        // Several messages in one read: one relevant message is enough.
        let batch = [ours.clone(), local, theirs].concat();
        assert!(relevant(&batch, &own));
        // Unreadable input: re-dump rather than miss something.
        assert!(relevant(&ours[..10].repeat(2), &own));
        let mut bad = ours.clone();
        bad[0] = 200; // a length beyond the buffer
        assert!(relevant(&bad, &own));
    }

    #[test]
    fn two_passes_of_echoes_are_recognised() {
        let own = OwnPorts::default();
        assert!(
            !own.contains(0),
            "the kernel's own notifications are never ours"
        );
        own.record(1);
        own.record(2);
        assert!(own.contains(1) && own.contains(2));
        own.record(3);
        assert!(!own.contains(1) && own.contains(2) && own.contains(3));
    }
}
