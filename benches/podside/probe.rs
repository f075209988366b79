//! What the benchmark observes with: route notifications inside pods' network namespaces
//! (exact arrival times, no polling granularity), a process's CPU time and memory from
//! /proc, and the peak RSS of a child from `getrusage(RUSAGE_CHILDREN)` in a helper process.
use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use ovnkube_route::netlink::ROUTE_PROTOCOL;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// A route notification: (added?, destination as `a.b.c.d/len`, ours?).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEvent {
    pub added: bool,
    pub dst: String,
    pub ours: bool,
}

/// A netlink socket subscribed to IPv4 route notifications inside one pod's netns.
pub struct Listener {
    sock: Socket,
    buf: Vec<u8>,
}

impl Listener {
    /// Opens the socket inside `netns` (on a short-lived thread: `setns` is per thread).
    pub fn open(netns: &Path) -> Listener {
        let netns = netns.to_path_buf();
        let sock = std::thread::spawn(move || {
            let ns = File::open(&netns).expect("open netns");
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let mut s = Socket::new(NETLINK_ROUTE).expect("netlink socket");
            s.bind(&SocketAddr::new(0, 0)).expect("bind");
            s.add_membership(MulticastGroup::Ipv4Route as u32)
                .expect("join group");
            s.set_rx_buf_sz(4 << 20).expect("rcvbuf");
            s.set_non_blocking(true).expect("nonblocking");
            s
        })
        .join()
        .expect("listener thread");
        Listener {
            sock,
            buf: vec![0; 1 << 16],
        }
    }

    /// Reads everything queued now.
    pub fn read(&mut self, out: &mut Vec<RouteEvent>) {
        loop {
            self.buf.clear();
            self.buf.resize(1 << 16, 0);
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("listener recv: {e}"),
            };
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(self.buf[off..off + 4].try_into().expect("4 bytes"))
                    as usize;
                if len < 16 || off + len > n {
                    break;
                }
                if let Ok(msg) =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..off + len])
                    && let Some(ev) = event(&msg)
                {
                    out.push(ev);
                }
                off += (len + 3) & !3;
            }
        }
    }

    pub fn drain(&mut self) {
        let mut v = Vec::new();
        self.read(&mut v);
    }
}

fn event(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<RouteEvent> {
    let NetlinkPayload::InnerMessage(inner) = &msg.payload else {
        return None;
    };
    let (added, r) = match inner {
        RouteNetlinkMessage::NewRoute(r) => (true, r),
        RouteNetlinkMessage::DelRoute(r) => (false, r),
        _ => return None,
    };
    let dst = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(a.to_string()),
        _ => None,
    })?;
    Some(RouteEvent {
        added,
        dst: format!("{dst}/{}", r.header.destination_prefix_length),
        ours: u8::from(r.header.protocol) == ROUTE_PROTOCOL,
    })
}

/// Waits until `done(i, events so far of listener i)` holds for every listener; returns the
/// time from `start` until each did (None when `limit` passed first).
pub fn wait_each(
    listeners: &mut [Listener],
    start: Instant,
    limit: Duration,
    mut done: impl FnMut(usize, &[RouteEvent]) -> bool,
) -> Vec<Option<Duration>> {
    let mut seen: Vec<Vec<RouteEvent>> = vec![Vec::new(); listeners.len()];
    let mut at: Vec<Option<Duration>> = vec![None; listeners.len()];
    let mut pending: HashSet<usize> = (0..listeners.len()).collect();
    while !pending.is_empty() && start.elapsed() < limit {
        let ready: Vec<usize> = {
            let mut fds: Vec<PollFd> = listeners
                .iter()
                .map(|l| PollFd::new(l.sock.as_fd(), PollFlags::POLLIN))
                .collect();
            let _ = poll(&mut fds, PollTimeout::from(20u16));
            fds.iter()
                .enumerate()
                .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect()
        };
        for i in ready {
            listeners[i].read(&mut seen[i]);
            if at[i].is_none() && done(i, &seen[i]) {
                at[i] = Some(start.elapsed());
                pending.remove(&i);
            }
        }
    }
    at
}

/// utime + stime of `pid` in seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = &stat[stat.rfind(") ").expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    ticks as f64 / hz
}

/// A /proc/<pid>/status field in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Child mode: runs the given command, waits, prints `elapsed_s maxrss_kib exit_code`.
/// Being the only child of this process, its peak RSS is `RUSAGE_CHILDREN`'s maxrss.
pub fn child_measure(cmd: &[String]) {
    let start = Instant::now();
    let status = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("spawn measured command");
    let took = start.elapsed();
    let ru = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    println!(
        "{} {} {}",
        took.as_secs_f64(),
        ru.max_rss(),
        status.code().unwrap_or(-1)
    );
}

/// Runs `cmd` under a child copy of this benchmark (see [`child_measure`]): (time, peak KiB).
pub fn measured(cmd: &[String]) -> (Duration, u64) {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .arg("--child-measure")
        .args(cmd)
        .output()
        .expect("spawn measuring child");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert!(f.len() == 3, "measuring child: {text:?}");
    assert_eq!(f[2], "0", "{cmd:?} failed");
    (
        Duration::from_secs_f64(f[0].parse().expect("secs")),
        f[1].parse().expect("kib"),
    )
}

/// The floor of a no-op check: one thread reads every pod's routing table (enter the netns,
/// open an rtnetlink socket, dump both families) and does nothing else.
pub fn dump_floor(paths: &[std::path::PathBuf]) -> (Duration, usize) {
    use futures::TryStreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    std::thread::scope(|s| {
        s.spawn(|| {
            let host = File::open("/proc/thread-self/ns/net").expect("host netns");
            let start = Instant::now();
            let mut routes = 0;
            rt.block_on(async {
                for p in paths {
                    let ns = File::open(p).expect("netns");
                    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                        .expect("setns");
                    let (conn, handle, _) = rtnetlink::new_connection().expect("socket");
                    nix::sched::setns(host.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                        .expect("setns back");
                    let task = tokio::spawn(conn);
                    let mut req = rtnetlink::packet_route::route::RouteMessage::default();
                    req.header.address_family = rtnetlink::packet_route::AddressFamily::Unspec;
                    let mut dump = handle.route().get(req).execute();
                    while let Some(_m) = dump.try_next().await.expect("dump") {
                        routes += 1;
                    }
                    task.abort();
                }
            });
            (start.elapsed(), routes)
        })
        .join()
        .expect("floor thread")
    })
}
