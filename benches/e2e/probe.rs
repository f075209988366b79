//! Independent checks: the benchmark's own netlink sockets, one per pod namespace (opened
//! inside it on a dedicated thread), reading the pods' routing tables; `ip -n` for the final
//! full check; and the NB through a connection of the benchmark's own. Never the
//! controller's word.
use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};

/// A netlink socket in each pod's namespace.
pub struct Probe {
    handles: Vec<rtnetlink::Handle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Probe {
    /// Opens one socket per namespace (paths under /var/run/netns).
    pub fn open(paths: &[PathBuf]) -> Probe {
        let paths = paths.to_vec();
        let rt = tokio::runtime::Handle::current();
        let conns = std::thread::spawn(move || {
            // The sockets register with the runtime's reactor.
            let _in_rt = rt.enter();
            let host = File::open("/proc/thread-self/ns/net").expect("own netns");
            let mut out = Vec::new();
            for p in paths {
                let ns = File::open(&p).expect("pod netns");
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                let (conn, handle, _) = rtnetlink::new_connection().expect("socket");
                out.push((conn, handle));
            }
            nix::sched::setns(host.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns back");
            out
        })
        .join()
        .expect("probe thread");
        let mut probe = Probe {
            handles: Vec::new(),
            tasks: Vec::new(),
        };
        for (conn, handle) in conns {
            probe.tasks.push(tokio::spawn(conn));
            probe.handles.push(handle);
        }
        probe
    }

    /// Adds a socket for one more namespace.
    pub fn add(&mut self, path: PathBuf) {
        let mut more = Probe::open(&[path]);
        self.handles.append(&mut more.handles);
        self.tasks.append(&mut more.tasks);
    }

    async fn dump(&self, pod: usize) -> Vec<RouteMessage> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        self.handles[pod]
            .route()
            .get(req)
            .execute()
            .try_collect()
            .await
            .unwrap_or_default()
    }

    /// The pod's IPv4 route destinations (`a.b.c.d/len`) with `protocol` (any when None).
    pub async fn dsts(&self, pod: usize, protocol: Option<u8>) -> BTreeSet<String> {
        self.dump(pod)
            .await
            .iter()
            .filter(|m| protocol.is_none_or(|p| u8::from(m.header.protocol) == p))
            .map(dst_of)
            .collect()
    }

    /// Deletes the pod's routes with `protocol`.
    pub async fn flush(&self, pod: usize, protocol: u8) {
        for m in self.dump(pod).await {
            if u8::from(m.header.protocol) == protocol {
                let _ = self.handles[pod].route().del(m).execute().await;
            }
        }
    }

    /// Deletes one route of the pod by destination.
    pub async fn delete(&self, pod: usize, dst: &str) -> bool {
        for m in self.dump(pod).await {
            if dst_of(&m) == dst {
                return self.handles[pod].route().del(m).execute().await.is_ok();
            }
        }
        false
    }
}

impl Drop for Probe {
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

/// The pod's eth1 routes as `ip -n NS -j route show dev eth1` lists them (destinations).
pub fn ip_routes(netns: &str) -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-n", netns, "-j", "route", "show", "dev", "eth1"])
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
