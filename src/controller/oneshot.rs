//! `plan` and `apply`: one pass over files, then exit.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, load_paths_with};
use crate::nb::describe::as_creates;
use crate::nb::reconcile::{NbIntent, NbReconciler};
use crate::netlink::ROUTE_PROTOCOL;
use crate::netlink::diff::dev_gateway;
use crate::netlink::pool::NetnsPool;
use crate::plan::plan;
use crate::plan::pod::{NextHop, PodKey};

use super::keep::{keep_for, without_kept};
use super::render::PodAt;
use super::source::world_from;
use super::{ControllerError, Options, OutputFormat, pods, render};

/// How long `plan` / `apply` wait for the NB database before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PlanOutcome {
    pub rendered: String,
    /// `error:` lines for Invalid / Degraded Routes, for stderr after `rendered`.
    pub route_errors: Vec<String>,
    /// Some input could not be loaded, or some Route is Invalid or Degraded (reported in
    /// `rendered` and on stderr).
    pub input_errors: bool,
}

pub struct ApplyOutcome {
    pub rendered: String,
    /// `error:` lines for Invalid / Degraded Routes, for stderr after `rendered`.
    pub route_errors: Vec<String>,
    pub input_errors: bool,
    pub nb_changes: usize,
    pub pods_failed: usize,
}

impl ApplyOutcome {
    /// Everything loaded and nothing failed (Route-level problems are reported in status
    /// terms and do not fail the command).
    pub fn ok(&self) -> bool {
        !self.input_errors && self.pods_failed == 0
    }
}

fn report_load_errors(errors: &[ConfigError]) {
    for e in errors {
        eprintln!("error: {e}");
    }
}

/// Bad input gets a message on stderr as well as the non-zero exit. The caller prints
/// these after the rendered output (stdout, flushed), so that with both streams in one file
/// each message follows the problems it points at.
fn failed_route_messages(failed: &[(String, crate::plan::Summary)]) -> Vec<String> {
    failed
        .iter()
        .map(|(name, summary)| {
            format!(
                "error: Route {name} is {}: its problems are listed under \"{name}:\" in the output (stdout)",
                summary.as_str()
            )
        })
        .collect()
}

fn boxed(e: ConfigError) -> ControllerError {
    ControllerError::Config(Box::new(e))
}

/// The planned pods found on this machine, with their own gateways on the devs whose
/// routes use them (read from the pod's table, as the pod side does when programming).
async fn pods_at(plan: &crate::plan::Plan, opts: &super::PodOptions) -> BTreeMap<PodKey, PodAt> {
    let discovery = pods::find_netns(opts);
    let pool = match NetnsPool::new(1, 1) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "cannot look into pods; gateways are not shown");
            None
        }
    };
    let mut out = BTreeMap::new();
    for (key, routes) in &plan.pods {
        let Some(found) = discovery.get(&key.uid) else {
            continue;
        };
        let mut at = PodAt {
            netns: found.netns.clone(),
            named: found.netns.parent() == Some(opts.netns_dir.as_path()),
            gateways: BTreeMap::new(),
        };
        let wanted: BTreeSet<(String, bool)> = routes
            .routes
            .iter()
            .filter(|r| r.next_hop == NextHop::DevGateway)
            .map(|r| (r.dev.to_string(), matches!(r.dst, ipnet::IpNet::V6(_))))
            .chain(
                routes
                    .default_routes
                    .iter()
                    .filter(|d| d.next_hop == NextHop::DevGateway)
                    .map(|d| (d.dev.clone(), d.family.is_v6())),
            )
            .collect();
        if let (Some(pool), false) = (&pool, wanted.is_empty()) {
            let read = pool
                .run_blocking(&found.netns, |sock| {
                    Ok::<_, crate::netlink::NetlinkError>((sock.dump_routes()?, sock.dump_links()?))
                })
                .await;
            match read {
                Ok(Ok((current, links))) => {
                    for (dev, v6) in wanted {
                        if let Some(oif) = links.get(&dev)
                            && let Some(gw) =
                                dev_gateway(&current, &[], &dev, *oif, v6, ROUTE_PROTOCOL)
                        {
                            at.gateways.insert((dev, v6), gw);
                        }
                    }
                }
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "cannot read the pod's routes");
                }
            }
        }
        out.insert(key.clone(), at);
    }
    out
}

/// Loads, plans and shows the changes; writes nothing.
pub async fn plan_once(
    paths: &[PathBuf],
    opts: &Options,
    format: OutputFormat,
) -> Result<PlanOutcome, ControllerError> {
    let loaded = load_paths_with(paths, &opts.input).map_err(boxed)?;
    report_load_errors(&loaded.errors);
    let (world, routes) = world_from(&loaded.documents);
    let mut plan = plan(&world, &routes, &opts.plan);
    let keep = keep_for(&loaded.errors, &routes, &plan);
    without_kept(&mut plan, &keep);
    let intent = NbIntent {
        desired: &plan.nb,
        service_ips: &plan.ovn_service_ips,
        keep: &keep,
    };
    let (changes, nb_problems, note) = match &opts.nb {
        Some(remotes) => {
            let nb = NbReconciler::connect(opts.client_config(remotes)?, CONNECT_TIMEOUT).await?;
            let d = nb.preview(intent);
            (d.changes, d.problems, String::new())
        }
        None => (
            as_creates(&plan.nb),
            Vec::new(),
            " (no --nb: every row shown as new; router, next-hop and load balancer checks need --nb)"
                .to_owned(),
        ),
    };
    let pods_at = if opts.pods.skip {
        BTreeMap::new()
    } else {
        pods_at(&plan, &opts.pods).await
    };
    let rendered = match format {
        OutputFormat::Text => render::text(
            &plan,
            &changes,
            &nb_problems,
            &pods_at,
            ROUTE_PROTOCOL,
            &note,
        ),
        OutputFormat::Json => {
            let mut s = render::json(&plan, &changes, &nb_problems).to_string();
            s.push('\n');
            s
        }
    };
    let failed = super::any_route_failed(&plan, &nb_problems);
    Ok(PlanOutcome {
        rendered,
        route_errors: failed_route_messages(&failed),
        input_errors: !loaded.errors.is_empty() || !failed.is_empty(),
    })
}

/// Loads, plans, writes the NB changes and programs this node's pods, once.
pub async fn apply_once(
    paths: &[PathBuf],
    opts: &Options,
) -> Result<ApplyOutcome, ControllerError> {
    let loaded = load_paths_with(paths, &opts.input).map_err(boxed)?;
    report_load_errors(&loaded.errors);
    let (world, routes) = world_from(&loaded.documents);
    let mut plan = plan(&world, &routes, &opts.plan);
    let keep = keep_for(&loaded.errors, &routes, &plan);
    without_kept(&mut plan, &keep);
    let Some(remotes) = &opts.nb else {
        return Err(ControllerError::Nb(
            crate::nb::reconcile::NbError::Unreachable {
                remotes: String::new(),
                secs: 0,
            },
        ));
    };
    let nb = NbReconciler::connect(opts.client_config(remotes)?, CONNECT_TIMEOUT).await?;
    let intent = NbIntent {
        desired: &plan.nb,
        service_ips: &plan.ovn_service_ips,
        keep: &keep,
    };
    let pass = nb.reconcile(intent).await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "NB: {} change(s) in {} operation(s)",
        pass.changes, pass.operations
    );
    let mut pods_failed = 0;
    if opts.pods.skip {
        let _ = writeln!(out, "pods: skipped (--skip-pods)");
    } else if keep.absent || !keep.routes.is_empty() {
        // Without the full input, removing routes from pods could tear down what a Route
        // that failed to load had programmed: leave pods as they are.
        let _ = writeln!(
            out,
            "pods: not changed: some input could not be used ({}); fix it and apply again",
            if keep.routes.is_empty() {
                "unreadable file".to_owned()
            } else {
                keep.routes.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        );
    } else {
        let rec = pods::reconciler(&opts.pods)?;
        let discovery = pods::find_netns(&opts.pods);
        let p = pods::program(&rec, &world, &plan, opts.plan.node.as_deref(), &discovery).await;
        pods_failed = p.failed.len();
        let _ = writeln!(
            out,
            "pods: {} reconciled, {} route(s) added/replaced, {} deleted, {} skipped (missing dev), {} without netns, {} failed",
            p.pods,
            p.routes_changed,
            p.routes_deleted,
            p.skipped_routes,
            p.no_netns.len(),
            p.failed.len()
        );
        for (pod, why) in &p.failed {
            let _ = writeln!(out, "  {pod}: {why}");
        }
    }
    for (name, r) in &plan.reports {
        let _ = writeln!(
            out,
            "{name}: {}  {}",
            super::summary_with_nb(r, name, &pass.problems).as_str(),
            super::render::counts_line(r)
        );
        for p in &r.problems {
            let at = p.path.as_deref().or(p.pod.as_deref()).unwrap_or("-");
            let _ = writeln!(out, "  {at}: {}: {}", p.reason, p.message);
        }
        for p in pass.problems.iter().filter(|p| &p.route == name) {
            let _ = writeln!(out, "  ovn: {}: {}", p.reason, p.message);
        }
    }
    for name in &keep.routes {
        let _ = writeln!(
            out,
            "{name}: kept as programmed (its new version is unreadable or invalid)"
        );
    }
    let failed = super::any_route_failed(&plan, &pass.problems);
    Ok(ApplyOutcome {
        rendered: out,
        route_errors: failed_route_messages(&failed),
        input_errors: !loaded.errors.is_empty() || !failed.is_empty(),
        nb_changes: pass.changes,
        pods_failed,
    })
}
