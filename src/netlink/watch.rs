//! The pod side's event sources, on one dedicated OS thread blocked in `epoll_wait`: a
//! netlink socket per watched pod netns (route, link and address groups) and inotify on the
//! directories where network namespaces appear (the CNI result cache, the netns dir, and the
//! parent of every watched netns file). While nothing changes nothing runs: no timer, no
//! wake-up.
//!
//! Why links and addresses too: when a link goes down the kernel flushes its IPv4 routes
//! *without* RTM_DELROUTE notifications (only the link event is sent), and removing an
//! address flushes the routes through it the same way. Any such event marks the pod for a
//! re-dump; the reconcile decides what, if anything, to do.
//!
//! Our own writes are not events: the kernel stamps every notification with the netlink
//! port id of the socket whose request caused it, and each pod pass records the port id of
//! its socket ([`OwnPorts`]) before sending anything, so the pass's own echoes are dropped.
//! Lost notifications (the socket's receive buffer overflowed, `ENOBUFS`) count as a change.
//!
//! A watch socket holds a reference on its network namespace, so a namespace we watch
//! stays alive until the socket is closed: the owner must [`Watcher::unwatch`] as soon as
//! the namespace's file is gone (see [`Event::FileGone`]).
//!
//! Must not: enter a netns other than through [`super::pool::in_netns`]; decide anything
//! about routes (it only says *which* pod changed); block on the async side (events are
//! sent on an unbounded channel).
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tracing::{debug, error, warn};

use super::NetlinkError;
use super::kernel::parse_route;
use super::pool::in_netns;

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
}

/// Notification groups of a watch socket.
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
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;

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

/// True when a batch of notifications read from a watch socket says something changed that
/// our own pass did not cause: a main-table unicast route added or removed, any link or
/// address event, or anything unreadable (when in doubt, re-dump).
pub fn relevant(buf: &[u8], own: &OwnPorts) -> bool {
    let mut off = 0;
    let mut any = false;
    while off + 16 <= buf.len() {
        let word = |at: usize| -> [u8; 4] {
            let mut w = [0; 4];
            w.copy_from_slice(&buf[at..at + 4]);
            w
        };
        let len = u32::from_ne_bytes(word(off)) as usize;
        if len < 16 || off + len > buf.len() {
            return true;
        }
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        let port = u32::from_ne_bytes(word(off + 12));
        let msg = &buf[off..off + len];
        off += (len + 3) & !3;
        if own.contains(port) {
            continue;
        }
        any |= match ty {
            RTM_NEWLINK | RTM_DELLINK | RTM_NEWADDR | RTM_DELADDR => true,
            RTM_NEWROUTE | RTM_DELROUTE => {
                match NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) {
                    Ok(NetlinkMessage {
                        payload:
                            NetlinkPayload::InnerMessage(
                                RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r),
                            ),
                        ..
                    }) => parse_route(&r).is_some(),
                    _ => true,
                }
            }
            _ => false,
        };
    }
    any
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
const FIRST_ID: u64 = 2;

/// Handle of the watcher thread; dropping it stops the thread and closes every socket.
pub struct Watcher {
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

impl Watcher {
    /// Starts the thread; `dirs` are watched with inotify from the start (missing ones are
    /// skipped with a debug log and can be added later with [`Watcher::watch_dir`]).
    pub fn start(
        dirs: Vec<PathBuf>,
        events: tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Result<Self, NetlinkError> {
        raise_fd_limit();
        // Opened before anything else, on the thread that starts us: the host netns.
        let host = File::open("/proc/thread-self/ns/net").map_err(NetlinkError::Worker)?;
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
        let (tx, rx) = mpsc::channel();
        let mut state = Thread {
            epoll,
            inotify,
            wake: wake.clone(),
            host,
            events,
            sockets: HashMap::new(),
            dirs: HashMap::new(),
            buf: vec![0; 64 * 1024],
        };
        for d in dirs {
            state.add_dir(d);
        }
        let thread = std::thread::Builder::new()
            .name("netns-watch".into())
            .spawn(move || state.run(rx))
            .map_err(NetlinkError::Worker)?;
        Ok(Watcher {
            cmds: Some(tx),
            wake,
            thread: Some(thread),
        })
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

    /// Opens a watch socket in `netns` under `id` (replacing one already under `id`).
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

    /// Closes the socket under `id` (releasing its netns).
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
    host: File,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    sockets: HashMap<u64, (Socket, Arc<OwnPorts>)>,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    /// One read buffer for all sockets (only one is read at a time).
    buf: Vec<u8>,
}

impl Thread {
    fn run(mut self, cmds: mpsc::Receiver<Cmd>) {
        let mut ready = [EpollEvent::empty(); 64];
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
                match ev.data() {
                    WAKE => {
                        let _ = self.wake.read();
                        loop {
                            match cmds.try_recv() {
                                Ok(cmd) => self.command(cmd),
                                Err(mpsc::TryRecvError::Empty) => break,
                                Err(mpsc::TryRecvError::Disconnected) => return,
                            }
                        }
                    }
                    INOTIFY => self.files(),
                    token => self.socket(token - FIRST_ID),
                }
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
                self.close(id);
                let opened = open(&netns, &self.host).and_then(|s| {
                    self.epoll
                        .add(
                            s.as_fd(),
                            EpollEvent::new(EpollFlags::EPOLLIN, id + FIRST_ID),
                        )
                        .map_err(io)?;
                    Ok(s)
                });
                let reply = opened.map(|s| {
                    self.sockets.insert(id, (s, own));
                });
                if let Some(parent) = netns.parent() {
                    self.add_dir(parent.to_path_buf());
                }
                let _ = done.send(reply);
            }
            Cmd::Unwatch(id) => self.close(id),
            Cmd::Dir(dir) => self.add_dir(dir),
        }
    }

    fn close(&mut self, id: u64) {
        if let Some((s, _)) = self.sockets.remove(&id) {
            let _ = self.epoll.delete(s.as_fd());
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

    fn socket(&mut self, id: u64) {
        let Some((sock, own)) = self.sockets.get(&id) else {
            return;
        };
        let mut changed = false;
        loop {
            match sock.recv(&mut &mut self.buf[..], 0) {
                Ok(0) => break,
                Ok(n) => changed |= relevant(&self.buf[..n.min(self.buf.len())], own),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(Errno::ENOBUFS as i32) => changed = true,
                Err(e) => {
                    debug!(id, error = %e, "watch socket read failed");
                    changed = true;
                    break;
                }
            }
        }
        if changed {
            let _ = self.events.send(Event::Netns(id));
        }
    }
}

/// One socket per watched pod: a node with thousands of pods needs thousands of
/// descriptors, more than the usual soft limit of 1024. Raise it to the hard limit (what
/// the Go runtime does for every Go program, ovn-kubernetes included).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => debug!(from = soft, to = hard, "raised the open files limit"),
            Err(e) => warn!(soft, error = %e, "cannot raise the open files limit"),
        },
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot read the open files limit"),
    }
}

/// A non-blocking rtnetlink socket in `netns`, subscribed to [`GROUPS`].
fn open(netns: &Path, host: &File) -> Result<Socket, NetlinkError> {
    in_netns(netns, host, || {
        let mut s = Socket::new(NETLINK_ROUTE)?;
        s.bind(&SocketAddr::new(0, 0))?;
        for g in GROUPS {
            s.add_membership(g as u32)?;
        }
        s.set_non_blocking(true)?;
        Ok(s)
    })?
    .map_err(NetlinkError::Socket)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rtnetlink::packet_core::NetlinkHeader;
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
