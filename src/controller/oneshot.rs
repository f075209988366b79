//! `plan` and `apply`: one pass over files, then exit.
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, load_paths_with};
use crate::nb::Scope;
use crate::nb::describe::as_creates;
use crate::nb::reconcile::Keep;
use crate::nb::reconcile::{NbIntent, NbReconciler};
use crate::plan::incremental::Engine;

use super::keep::{drop_kept, hold_selection, keep, world_unknown};
use super::pod_diff::pod_views;
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

/// Loads the files and plans them: the planner, its plan with the rows of Routes kept as
/// they are left out, and the keep rules.
fn load_and_plan(
    paths: &[PathBuf],
    opts: &Options,
) -> Result<(crate::config::Loaded, Engine, crate::plan::Plan, Keep), ControllerError> {
    let loaded = load_paths_with(paths, &opts.input).map_err(boxed)?;
    report_load_errors(&loaded.errors);
    let (world, routes) = world_from(&loaded.documents);
    let engine = Engine::build(opts.plan.clone(), world, &routes);
    let keep = keep(&loaded.errors, [], &engine, Scope::All);
    let mut plan = engine.plan();
    drop_kept(&mut plan.nb, &keep);
    Ok((loaded, engine, plan, keep))
}

/// When an unreadable input may have held pods, which pods each Route selects is unknown:
/// the Routes with rows in the NB keep them as they are (see `keep`). Returns those Routes.
fn hold_unknown(
    errors: &[ConfigError],
    nb: &NbReconciler,
    keep: &mut Keep,
    plan: &mut crate::plan::Plan,
) -> Vec<String> {
    if !world_unknown(errors) {
        return Vec::new();
    }
    let held = hold_selection(keep, crate::nb::route_names(&nb.snapshot()));
    drop_kept(&mut plan.nb, keep);
    held
}

/// Loads, plans and shows the changes; writes nothing.
pub async fn plan_once(
    paths: &[PathBuf],
    opts: &Options,
    format: OutputFormat,
) -> Result<PlanOutcome, ControllerError> {
    let (loaded, engine, mut plan, mut keep) = load_and_plan(paths, opts)?;
    let (changes, nb_problems, note) = match &opts.nb {
        Some(remotes) => {
            let nb = NbReconciler::connect(opts.client_config(remotes)?, CONNECT_TIMEOUT).await?;
            hold_unknown(&loaded.errors, &nb, &mut keep, &mut plan);
            let intent = NbIntent {
                desired: &plan.nb,
                service_ips: &plan.ovn_service_ips,
                keep: &keep,
            };
            let d = nb.preview(intent, Scope::All);
            (d.changes, d.problems, String::new())
        }
        None => (
            as_creates(&plan.nb),
            Vec::new(),
            " (no --nb: every row shown as new; router, next-hop and load balancer checks need --nb)"
                .to_owned(),
        ),
    };
    // Without the full input, pods keep what they have (as `apply` and `run` do): their
    // routes are shown as desired state only.
    let look = !opts.pods.skip && !keep.absent && keep.routes.is_empty();
    let pods = pod_views(&engine, &opts.pods, opts.plan.node.as_deref(), look).await;
    let rendered = match format {
        OutputFormat::Text => render::text(&plan, &changes, &nb_problems, &pods, &note),
        OutputFormat::Json => {
            let mut s = render::json(&plan, &changes, &nb_problems, &pods).to_string();
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
    let (loaded, engine, mut plan, mut keep) = load_and_plan(paths, opts)?;
    let Some(remotes) = &opts.nb else {
        return Err(ControllerError::Nb(
            crate::nb::reconcile::NbError::Unreachable {
                remotes: String::new(),
                secs: 0,
            },
        ));
    };
    let nb = NbReconciler::connect(opts.client_config(remotes)?, CONNECT_TIMEOUT).await?;
    let held = hold_unknown(&loaded.errors, &nb, &mut keep, &mut plan);
    let intent = NbIntent {
        desired: &plan.nb,
        service_ips: &plan.ovn_service_ips,
        keep: &keep,
    };
    let pass = nb.reconcile(intent, Scope::All).await?;
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
            if keep.absent {
                "an unreadable file or document".to_owned()
            } else {
                keep.routes.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        );
    } else {
        let rec = pods::reconciler(&opts.pods)?;
        let discovery = pods::find_netns(&opts.pods);
        let p = pods::program(&rec, &engine, opts.plan.node.as_deref(), &discovery).await;
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
    for name in keep.routes.iter().filter(|n| !held.contains(n)) {
        let _ = writeln!(
            out,
            "{name}: kept as programmed (its new version is unreadable or invalid)"
        );
    }
    for name in &held {
        let _ = writeln!(
            out,
            "{name}: kept as programmed (the pods it selects are unknown while some input cannot be read)"
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
