//! `plan`'s pod half: for each pod of this node whose network namespace is on this machine,
//! what the pod side would change in it now, read-only: its tables dumped, its recorded
//! default routes read, and the same diff the pod side runs (`netlink::diff::plan_pod`). For
//! a pod whose namespace is not here, the desired routes, said to be desired state.
//!
//! Must not: write to a pod or to the state directory.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::netlink::ROUTE_PROTOCOL;
use crate::netlink::diff::{PodPlan, plan_pod};
use crate::netlink::kernel::Links;
use crate::netlink::pool::NetnsPool;
use crate::netlink::state::{PodState, StateDir};
use crate::plan::incremental::Engine;
use crate::plan::pod::{PodKey, PodRoutes};

use super::{PodOptions, pods};

/// Where `plan` found a pod: its netns file, and whether it is a name under the netns dir
/// (`ip -n NAME`).
#[derive(Clone, Debug, Default)]
pub struct PodAt {
    pub netns: PathBuf,
    pub named: bool,
}

/// What the pod side would do in a pod found here: the diff and the pod's links (to name
/// devices), or why its tables could not be read.
pub type PodDiff = Result<(PodPlan, Links), String>;

/// One pod as `plan` shows it.
#[derive(Clone, Debug)]
pub struct PodView {
    pub key: PodKey,
    pub desired: Arc<PodRoutes>,
    /// `None`: the pod's netns is not on this machine (or pods were not looked at).
    pub at: Option<PodAt>,
    /// Present when the netns was found.
    pub diff: Option<PodDiff>,
}

impl PodView {
    /// Kernel changes the pod side would make here (0 when not reachable).
    pub fn changes(&self) -> usize {
        match &self.diff {
            Some(Ok((p, _))) => {
                p.deletes.len()
                    + p.writes.len()
                    + p.restores.len()
                    + p.foreign_default_deletes.len()
            }
            _ => 0,
        }
    }
}

/// Every pod of `node` (all pods when `None`) that has routes planned or whose netns is
/// here, with what would change in it. `look`: read the pods' tables (false with
/// `--skip-pods`).
pub async fn pod_views(
    engine: &Engine,
    opts: &PodOptions,
    node: Option<&str>,
    look: bool,
) -> Vec<PodView> {
    let none = Arc::new(PodRoutes::default());
    let discovery = if look {
        Some(pods::find_netns(opts))
    } else {
        None
    };
    let pool = match (look, NetnsPool::new(2, 8)) {
        (false, _) => None,
        (true, Ok(p)) => Some(p),
        (true, Err(e)) => {
            tracing::warn!(error = %e, "cannot look into pods; desired routes are shown");
            None
        }
    };
    let states = StateDir::open(opts.state_dir.join("pods")).ok();
    let mut out = Vec::new();
    for pod in engine.world().pods() {
        if pod.host_network || node.is_some_and(|n| pod.node.as_deref() != Some(n)) {
            continue;
        }
        let key = PodKey::of(pod);
        let desired = engine
            .pod_routes(&(key.namespace.clone(), key.name.clone()))
            .map_or_else(|| none.clone(), |(_, r)| r.clone());
        let found = discovery.as_ref().and_then(|d| d.get(&key.uid));
        let at = found.map(|f| PodAt {
            netns: f.netns.clone(),
            named: f.netns.parent() == Some(opts.netns_dir.as_path()),
        });
        let diff = match (&at, &pool) {
            (Some(at), Some(pool)) => {
                let state = states
                    .as_ref()
                    .and_then(|s| s.load(&key).ok())
                    .unwrap_or_else(|| PodState::new(&key));
                Some(read_and_diff(pool, at, &desired, state).await)
            }
            _ => None,
        };
        if desired.is_empty()
            && diff
                .as_ref()
                .is_none_or(|d| matches!(d, Ok((p, _)) if p.is_noop()))
        {
            continue;
        }
        out.push(PodView {
            key,
            desired,
            at,
            diff,
        });
    }
    out
}

async fn read_and_diff(
    pool: &NetnsPool,
    at: &PodAt,
    desired: &Arc<PodRoutes>,
    state: PodState,
) -> PodDiff {
    let read = pool
        .run_blocking(&at.netns, |sock| {
            Ok::<_, crate::netlink::NetlinkError>((sock.dump_routes()?, sock.dump_links()?))
        })
        .await;
    match read {
        Ok(Ok((current, links))) => {
            let plan = plan_pod(desired, &links, &current, &state, ROUTE_PROTOCOL);
            Ok((plan, links))
        }
        Ok(Err(e)) | Err(e) => Err(e.to_string()),
    }
}

/// The pods' kernel changes and how many pods they touch.
pub fn totals(views: &[PodView]) -> (usize, usize, usize) {
    let changes: usize = views.iter().map(PodView::changes).sum();
    let pods = views.iter().filter(|v| v.changes() > 0).count();
    let away = views.iter().filter(|v| v.diff.is_none()).count();
    (changes, pods, away)
}

/// Pods by key (for renderings that look pods up).
pub fn by_key(views: &[PodView]) -> BTreeMap<&PodKey, &PodView> {
    views.iter().map(|v| (&v.key, v)).collect()
}
