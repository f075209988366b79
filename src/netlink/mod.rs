//! netlink: the pod side. Finds each pod's network namespace and keeps the kernel
//! routes the planner asked for ([`crate::plan::pod::PodRoutes`]) true inside it.
//!
//! Owns:
//! - [`discover`]: pod uid -> netns path (CNI cache `*-lo` files, then a netns dir,
//!   then `/proc/<pid>/ns/net`).
//! - [`pool`]: the dedicated OS threads that enter network namespaces. `setns(2)` changes
//!   the namespace of the calling *thread* only, so it never runs on a tokio worker: a
//!   worker thread enters the pod's netns, opens an rtnetlink socket there (a netlink
//!   socket stays bound to the namespace it was created in), returns to the host netns
//!   and drives the socket from its own small current-thread runtime.
//! - [`program`]: one pod's reconcile (dump, [`diff`], add / replace / delete).
//! - [`state`]: node-local files recording original default routes (`defaultRoute`).
//! - [`reconciler`]: the async API the controller calls ([`PodRouteReconciler`]).
//! - [`watch`], [`index`], [`events`]: keeping routes true from events (netlink
//!   notifications per pod netns, inotify on the netns sources) plus a slow, spread
//!   safety-net re-check; [`summary`]: what passes did, for logs and metrics.
//!
//! Must not: delete or replace a kernel route that does not carry [`ROUTE_PROTOCOL`]
//! (the one documented exception is the default route under `defaultRoute`, whose
//! original is recorded first and restored later); let one pod's failure affect another
//! pod; call `setns` outside [`pool`]; panic on anything read from the kernel or files;
//! keep a pod's network namespace alive (a watch socket holds it) once its file is gone.
//!
//! Keeping it true: while nothing changes nothing runs. A pod is re-dumped when a netlink
//! notification inside its netns says a route, link or address changed (a link going down
//! flushes IPv4 routes *without* RTM_DELROUTE, so link and address events count too), when
//! its netns appears or moves, when its planned routes change, and once per
//! [`DEFAULT_RECHECK`] period by the re-check, which visits pods one slice at a time. See
//! docs/timers.md for every timer.
pub mod diff;
#[cfg(test)]
mod diff_tests;
pub mod discover;
pub mod events;
pub mod index;
pub mod kernel;
pub mod lookup;
pub mod pool;
pub mod program;
pub mod programmed;
#[cfg(test)]
mod programmed_tests;
pub mod reconciler;
pub mod rtnl;
pub mod show;
pub mod state;
pub mod summary;
pub mod watch;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

pub use discover::{Discovery, DiscoveryConfig, NetnsSource, PodNetns, discover};
pub use program::{PodReport, RouteError, RouteOp, reconcile_pod};
pub use reconciler::{PodRouteReconciler, ReconcilerConfig};
pub use show::{Target, ip_route_lines};
pub use summary::{PassSummary, StatsSnapshot, Trigger};

/// Routing protocol number (`rtm_protocol`) carried by every route we install:
/// 0x88 = 136, unused in iproute2's `/etc/iproute2/rt_protos`. `ip route show proto 136`
/// lists exactly our routes. Configurable through [`ReconcilerConfig::protocol`].
pub const ROUTE_PROTOCOL: u8 = 0x88;

/// Default period of the safety-net re-check (every watched pod re-dumped once per period,
/// spread over it). Events repair drift within milliseconds; this only catches what no
/// event announced.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(10 * 60);

/// Metric we give IPv4 routes (the kernel's default for `ip route add`).
pub const IPV4_METRIC: u32 = 0;
/// Metric we give IPv6 routes (the kernel's default for user routes, `IP6_RT_PRIO_USER`).
pub const IPV6_METRIC: u32 = 1024;

/// The pod side's error enum. Per-route problems are [`RouteError`]s inside a
/// [`PodReport`]; this enum is for whole-pod and setup failures.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The pod's network namespace file does not exist (pod gone or not yet started).
    #[error("network namespace {0} is gone")]
    NetnsGone(PathBuf),
    /// Opening or entering the pod's network namespace failed for another reason.
    #[error("cannot enter network namespace {path}: {source}")]
    EnterNetns {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Returning a pool thread to the host network namespace failed; the thread stops.
    #[error("cannot return to the host network namespace: {0}")]
    ReturnNetns(std::io::Error),
    /// Creating the rtnetlink socket failed.
    #[error("cannot open an rtnetlink socket: {0}")]
    Socket(std::io::Error),
    /// A netlink dump (links or routes) failed.
    #[error("netlink dump of {what} failed: {message}")]
    Dump { what: &'static str, message: String },
    /// Reading or writing a default-route state file failed.
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
    /// The pod uid cannot be used as a file name (it must be a plain identifier).
    #[error("pod uid {0:?} is not a valid state file name")]
    BadUid(String),
    /// The worker pool is shut down or a worker died while handling the pod.
    #[error("netns worker pool unavailable")]
    PoolGone,
    /// Starting a worker thread or its runtime failed.
    #[error("cannot start netns worker: {0}")]
    Worker(std::io::Error),
    /// The kernel refused a route request (errno and its text).
    #[error("kernel refused: {message}")]
    Kernel {
        errno: Option<nix::errno::Errno>,
        message: String,
    },
    /// A route we did not install (another protocol) has the same destination and
    /// metric as the one we want; it is left alone.
    #[error("foreign route to {dst} (protocol {protocol}, metric {metric}) is in the way")]
    Conflict {
        dst: IpNet,
        protocol: u8,
        metric: u32,
    },
    /// A desired route cannot be expressed as a kernel route; nothing was changed for it.
    #[error("invalid route: {0}")]
    InvalidRoute(String),
    /// A recorded original route's interface no longer exists, so it cannot be restored
    /// yet (the record is kept).
    #[error("cannot restore route to {dst}: interface {dev} is missing")]
    RestoreDevMissing { dst: IpNet, dev: String },
}

impl NetlinkError {
    /// A short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            NetlinkError::NetnsGone(_) => "netns_gone",
            NetlinkError::EnterNetns { .. } => "enter_netns",
            NetlinkError::ReturnNetns(_) => "return_netns",
            NetlinkError::Socket(_) => "socket",
            NetlinkError::Dump { .. } => "dump",
            NetlinkError::State { .. } => "state",
            NetlinkError::BadUid(_) => "bad_uid",
            NetlinkError::PoolGone => "pool_gone",
            NetlinkError::Worker(_) => "worker",
            NetlinkError::Kernel { .. } => "kernel",
            NetlinkError::Conflict { .. } => "conflict",
            NetlinkError::RestoreDevMissing { .. } => "restore_dev_missing",
            NetlinkError::InvalidRoute(_) => "invalid_route",
        }
    }

    /// Every value [`NetlinkError::label`] returns (the metrics export each at 0).
    pub const LABELS: [&'static str; 13] = [
        "netns_gone",
        "enter_netns",
        "return_netns",
        "socket",
        "dump",
        "state",
        "bad_uid",
        "pool_gone",
        "worker",
        "kernel",
        "conflict",
        "restore_dev_missing",
        "invalid_route",
    ];
}

/// The IP family of an address or prefix.
pub(crate) fn is_v6(dst: &IpNet) -> bool {
    matches!(dst, IpNet::V6(_))
}

/// Same family test for an address.
pub(crate) fn addr_is_v6(a: &IpAddr) -> bool {
    a.is_ipv6()
}
