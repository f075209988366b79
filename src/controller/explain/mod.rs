//! `ovnkube-route explain POD DST`: for one pod and one destination (an address, or a
//! Service whose addresses are each explained), the Route and rule that decided, what
//! happened to every other covering rule, what the pod's kernel actually does
//! (`ip route get` inside its netns) and, with an NB, which of our OVN rows apply (with
//! `--trace`, the `ovn-trace` verdict).
//!
//! Reads only: it writes nothing to the NB and changes no pod.
mod ovn;
mod render;
mod trace;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::api::Route;
use crate::cluster::World;
use crate::nb::observed::Observed;
use crate::nb::reconcile::NbReconciler;
use crate::netlink::lookup::{Lookup, route_get};
use crate::netlink::pool::NetnsPool;
use crate::plan::explain::PodExplanation;
use crate::plan::incremental::Engine;

pub use ovn::{OvnRow, OvnSide};
pub use trace::Trace;

use super::oneshot::CONNECT_TIMEOUT;
use super::{ControllerError, Options, OutputFormat};

/// What `explain` is asked about.
#[derive(Clone, Debug)]
pub struct ExplainRequest {
    pub namespace: String,
    pub name: String,
    /// An address, or `namespace/name` of a Service.
    pub dst: String,
    /// Run ovn-trace against this Southbound database.
    pub trace_sb: Option<String>,
}

impl ExplainRequest {
    /// `ns/name` and `DST` as typed on the command line.
    pub fn parse(pod: &str, dst: &str, trace_sb: Option<String>) -> Result<Self, ControllerError> {
        let Some((namespace, name)) = pod
            .split_once('/')
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        else {
            return Err(ControllerError::Explain(format!(
                "POD must be namespace/name, got {pod:?}"
            )));
        };
        if dst.parse::<IpAddr>().is_err() && !is_ns_name(dst) {
            return Err(ControllerError::Explain(format!(
                "DST must be an IP address or a Service as namespace/name, got {dst:?}"
            )));
        }
        Ok(ExplainRequest {
            namespace: namespace.into(),
            name: name.into(),
            dst: dst.into(),
            trace_sb,
        })
    }
}

fn is_ns_name(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('/'))
}

/// The pod's kernel, asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum KernelSide {
    /// `ip route get` inside the pod's netns.
    Looked {
        netns: PathBuf,
        #[serde(flatten)]
        lookup: Lookup,
        /// Whether the kernel's entry is the route our plan wants (None: no route of ours
        /// was planned for the address, nothing to compare).
        agrees: Option<bool>,
    },
    /// hostNetwork: the node's own namespace, asked as is; never changed by us.
    HostNetwork {
        #[serde(flatten)]
        lookup: Lookup,
    },
    /// The netns could not be found or entered on this machine.
    NotFound { why: String },
}

/// One destination address, explained.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DstExplanation {
    pub plan: PodExplanation,
    pub kernel: KernelSide,
    /// None without `--nb`.
    pub ovn: Option<OvnSide>,
    pub trace: Option<Trace>,
    /// The next hops of the deciding Route, when it sends the address into OVN with some:
    /// each hop's gateway pod, whether it is used and why not, and its BFD state (`--nb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hops: Option<HopSet>,
}

/// A Route's next hops as `explain` shows them.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HopSet {
    pub route: String,
    pub hops: Vec<crate::api::NextHopStatus>,
}

/// The deciding Route's next hops (`None` when it has none or does not use OVN's interface).
fn hop_set(engine: &Engine, plan: &PodExplanation, observed: Option<&Observed>) -> Option<HopSet> {
    let dc = plan.decision.as_ref()?;
    let v = engine.validated(&dc.route)?;
    if !v.ovn.has_hops() || dc.dev != engine.config().ovn_dev {
        return None;
    }
    let states = observed
        .map(crate::nb::bfd::observed_states)
        .unwrap_or_default();
    let listed = &engine.report(&dc.route)?.next_hops;
    let hops = crate::controller::status::hops_with_bfd(engine, &dc.route, listed, &states);
    Some(HopSet {
        route: dc.route.clone(),
        hops,
    })
}

/// The whole answer.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub pod: String,
    /// The destination as asked (an address, or a Service).
    pub asked: String,
    pub destinations: Vec<DstExplanation>,
    pub notes: Vec<String>,
}

/// Explains against a world and Routes already read (file mode or one API read).
pub async fn explain(
    world: &World,
    routes: &[Route],
    req: &ExplainRequest,
    opts: &Options,
) -> Result<Explanation, ControllerError> {
    let Some(pod) = world.pod(&req.namespace, &req.name) else {
        return Err(ControllerError::Explain(format!(
            "pod {}/{} is not in the input",
            req.namespace, req.name
        )));
    };
    let mut notes = Vec::new();
    let addrs: Vec<IpAddr> = match req.dst.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let (ns, name) = req.dst.split_once('/').unwrap_or_default();
            let Some(svc) = world.service(ns, name) else {
                return Err(ControllerError::Explain(format!(
                    "Service {ns}/{name} is not in the input"
                )));
            };
            let a: Vec<IpAddr> = if svc.headless {
                notes.push(format!(
                    "Service {ns}/{name} is headless: its ready endpoints are explained"
                ));
                world.ready_endpoints(ns, name).into_iter().collect()
            } else {
                svc.cluster_ips.clone()
            };
            if a.is_empty() {
                return Err(ControllerError::Explain(format!(
                    "Service {ns}/{name} has no address to explain"
                )));
            }
            a
        }
    };
    let observed = match &opts.nb {
        Some(remotes) => {
            let nb = NbReconciler::connect(opts.client_config(remotes)?, CONNECT_TIMEOUT).await?;
            Some(Observed::collect_all(
                &nb.snapshot(),
                &crate::plan::nb::DesiredNb::default(),
                [],
            ))
        }
        None => {
            notes.push("no --nb: the OVN side is not shown".into());
            None
        }
    };
    let netns = netns_of(pod, opts);
    let pool = NetnsPool::new(1, 1)?;
    let mut destinations = Vec::new();
    let engine = Engine::build(opts.plan.clone(), world.clone(), routes);
    for dst in addrs {
        let Some(plan) = crate::plan::explain::explain(&engine, &req.namespace, &req.name, dst)
        else {
            continue;
        };
        let hops = hop_set(&engine, &plan, observed.as_ref());
        let kernel = kernel_side(&pool, pod.host_network, netns.as_ref(), &plan, dst).await;
        let ovn = observed.as_ref().map(|o| ovn::ovn_side(o, pod, dst));
        let trace = match &req.trace_sb {
            Some(sb) => Some(trace::run(sb, pod, dst).await),
            None => None,
        };
        destinations.push(DstExplanation {
            plan,
            kernel,
            ovn,
            trace,
            hops,
        });
    }
    Ok(Explanation {
        pod: format!("{}/{}", req.namespace, req.name),
        asked: req.dst.clone(),
        destinations,
        notes,
    })
}

/// File mode: the same inputs as `plan` / `apply`. Files that fail to load are reported on
/// stderr and left out, as `plan` does.
pub async fn explain_files(
    paths: &[PathBuf],
    req: &ExplainRequest,
    opts: &Options,
) -> Result<Explanation, ControllerError> {
    let loaded = crate::config::load_paths_with(paths, &opts.input)
        .map_err(|e| ControllerError::Config(Box::new(e)))?;
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    let (world, routes) = super::source::world_from(&loaded.documents);
    let mut e = explain(&world, &routes, req, opts).await?;
    if !loaded.errors.is_empty() {
        e.notes.push(format!(
            "{} input error(s) on stderr: the Routes in those files are not considered",
            loaded.errors.len()
        ));
    }
    Ok(e)
}

/// Renders as text or JSON.
pub fn render(e: &Explanation, format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => render::text(e),
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(e)
                .unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"));
            s.push('\n');
            s
        }
    }
}

/// The pod's netns on this machine, or why not.
fn netns_of(pod: &crate::cluster::PodInfo, opts: &Options) -> Result<PathBuf, String> {
    if opts.pods.skip {
        return Err("--skip-pods: the pod side is not looked at".into());
    }
    let found = super::pods::find_netns(&opts.pods);
    match found.get(&pod.uid) {
        Some(n) => Ok(n.netns.clone()),
        None => Err(format!(
            "no network namespace for uid {} under {} (CNI cache), {} or {} on this machine",
            pod.uid,
            opts.pods.cni_results.display(),
            opts.pods.netns_dir.display(),
            opts.pods.proc_root.display()
        )),
    }
}

async fn lookup(pool: &NetnsPool, netns: &Path, dst: IpAddr) -> Result<Lookup, String> {
    match pool
        .run(netns, move |h, _| async move { route_get(&h, dst).await })
        .await
    {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(e)) | Err(e) => Err(e.to_string()),
    }
}

async fn kernel_side(
    pool: &NetnsPool,
    host_network: bool,
    netns: Result<&PathBuf, &String>,
    plan: &PodExplanation,
    dst: IpAddr,
) -> KernelSide {
    if host_network {
        // The node's namespace: the process's own (the pool's threads return to it).
        return match lookup(pool, Path::new("/proc/self/ns/net"), dst).await {
            Ok(lookup) => KernelSide::HostNetwork { lookup },
            Err(why) => KernelSide::NotFound { why },
        };
    }
    let netns = match netns {
        Ok(p) => p.clone(),
        Err(why) => return KernelSide::NotFound { why: why.clone() },
    };
    match lookup(pool, &netns, dst).await {
        Ok(lookup) => {
            let agrees = plan.decision.as_ref().map(|d| {
                lookup.dev.as_deref() == Some(d.dev.as_str())
                    && lookup.matched == Some(d.dst)
                    && lookup.protocol == Some(crate::netlink::ROUTE_PROTOCOL)
            });
            KernelSide::Looked {
                netns,
                lookup,
                agrees,
            }
        }
        Err(why) => KernelSide::NotFound { why },
    }
}
