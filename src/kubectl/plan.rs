//! `kubectl route plan -f ROUTE.yaml`: reads the Routes of the file, the live cluster (one
//! list per kind, through `k8s::snapshot::read_once`) and with `--nb` the NB, and prints the
//! what-if ([`super::whatif`]). Writes nothing.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::controller::oneshot::CONNECT_TIMEOUT;
use crate::controller::{Options, OutputFormat};
use crate::nb::describe::describe;
use crate::nb::reconcile::{Keep, NbIntent, NbReconciler};
use crate::plan::nb::DesiredNb;

use super::whatif::{Change, Plans, WhatIf, plans, what_if};
use super::{Answer, KubectlError};

/// The what-if and, with `--nb`, what applying would do to the NB's rows of the Routes
/// concerned.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    #[serde(flatten)]
    what_if: WhatIf,
    /// `nb` when the NB rows are the NB's own diff (`nbCommands`), `plan` otherwise.
    nb_against: &'static str,
    /// The `ovn-nbctl` lines applying would amount to (with `--nb`).
    nb_commands: Vec<String>,
    /// Rows the NB side would refuse, and why (with `--nb`).
    nb_problems: Vec<NbProblemOut>,
    /// Things to know about the input.
    notes: Vec<String>,
}

#[derive(Serialize)]
struct NbProblemOut {
    route: String,
    reason: String,
    message: String,
}

/// The Routes of `files` (nothing else is read from them).
fn routes_of(
    files: &[PathBuf],
    opts: &Options,
) -> Result<(Vec<crate::api::Route>, Vec<String>), KubectlError> {
    let loaded = crate::config::load_paths_with(files, &opts.input)
        .map_err(|e| KubectlError::Config(Box::new(e)))?;
    if !loaded.errors.is_empty() {
        let all: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        return Err(KubectlError::Usage(all.join("\n")));
    }
    let docs = loaded.documents;
    let mut notes = Vec::new();
    let others = docs.len() - docs.routes.len();
    if others > 0 {
        notes.push(format!(
            "{others} object(s) other than Routes in -f are ignored: the world is the cluster's"
        ));
    }
    if docs.routes.is_empty() {
        return Err(KubectlError::Usage("no Route in the -f input".into()));
    }
    Ok((docs.routes, notes))
}

/// Routes whose NB rows the what-if touches: the new ones and every one whose desired rows
/// or status change.
fn concerned(p: &Plans, w: &WhatIf) -> BTreeSet<String> {
    let mut out = p.new.clone();
    out.extend(w.nb.iter().map(|c| c.route.clone()));
    out.extend(w.other_routes.iter().map(|c| c.name.clone()));
    out
}

/// The desired rows of `routes` only (a scoped preview reads only their rows from the NB).
fn only(nb: &DesiredNb, routes: &BTreeSet<String>) -> DesiredNb {
    let keep = |o: &crate::plan::nb::Owner| routes.contains(&o.route);
    DesiredNb {
        bfd_timers: nb
            .bfd_timers
            .iter()
            .filter(|(r, _)| routes.contains(*r))
            .map(|(r, t)| (r.clone(), *t))
            .collect(),
        address_sets: nb
            .address_sets
            .iter()
            .filter(|x| keep(&x.owner))
            .cloned()
            .collect(),
        port_groups: nb
            .port_groups
            .iter()
            .filter(|x| keep(&x.owner))
            .cloned()
            .collect(),
        policies: nb
            .policies
            .iter()
            .filter(|x| keep(&x.owner))
            .cloned()
            .collect(),
        static_routes: nb
            .static_routes
            .iter()
            .filter(|x| keep(&x.owner))
            .cloned()
            .collect(),
        acls: nb.acls.iter().filter(|x| keep(&x.owner)).cloned().collect(),
    }
}

pub(super) async fn plan(
    files: &[PathBuf],
    opts: &Options,
    format: OutputFormat,
) -> Result<Answer, KubectlError> {
    let (new, mut notes) = routes_of(files, opts)?;
    let client = crate::k8s::run::client().await?;
    let (world, live, undecodable) = crate::k8s::snapshot::read_once(&client).await?;
    notes.extend(undecodable);
    let p = plans(&world, &live, &new, &opts.plan);
    let mut w = what_if(&world, &p);
    let mut report = Report {
        what_if: WhatIf::default(),
        nb_against: "plan",
        nb_commands: Vec::new(),
        nb_problems: Vec::new(),
        notes,
    };
    if let Some(remotes) = &opts.nb {
        let nb = NbReconciler::connect(opts.client_config(remotes)?, CONNECT_TIMEOUT).await?;
        let keep = Keep::default();
        let routes = concerned(&p, &w);
        let desired = only(&p.after.nb, &routes);
        let service_ips = p
            .after
            .ovn_service_ips
            .iter()
            .filter(|(r, _)| routes.contains(*r))
            .map(|(r, ips)| (r.clone(), ips.clone()))
            .collect();
        let intent = NbIntent {
            desired: &desired,
            service_ips: &service_ips,
            keep: &keep,
        };
        let d = nb.preview(intent, crate::nb::Scope::Routes(&routes));
        report.nb_against = "nb";
        report.nb_commands = d.changes.iter().map(describe).collect();
        for r in &mut w.routes {
            if r.status == "Applied" && d.problems.iter().any(|x| x.route == r.name) {
                r.status = "Degraded".into();
            }
        }
        report.nb_problems = d
            .problems
            .into_iter()
            .map(|x| NbProblemOut {
                route: x.route,
                reason: x.reason,
                message: x.message,
            })
            .collect();
    }
    report.what_if = w;
    let errors: Vec<String> = report
        .what_if
        .routes
        .iter()
        .filter(|r| r.status == "Invalid" || r.status == "Degraded")
        .map(|r| {
            format!(
                "error: Route {} would be {}: see its problems above",
                r.name, r.status
            )
        })
        .collect();
    let out = match format {
        OutputFormat::Json => {
            let mut s = serde_json::to_string(&report).unwrap_or_default();
            s.push('\n');
            s
        }
        OutputFormat::Text => text(&report),
    };
    Ok(Answer {
        out,
        failed: !errors.is_empty(),
        errors,
    })
}

fn sign(c: Change) -> char {
    match c {
        Change::Add => '+',
        Change::Change => '~',
        Change::Remove => '-',
    }
}

fn text(r: &Report) -> String {
    let mut out = String::new();
    for n in &r.notes {
        let _ = writeln!(out, "# {n}");
    }
    for route in &r.what_if.routes {
        routes_text(&mut out, route);
    }
    if !r.what_if.other_routes.is_empty() {
        let _ = writeln!(out, "== Other Routes");
        for c in &r.what_if.other_routes {
            let _ = writeln!(out, "{}: {} -> {}", c.name, c.before, c.after);
            for p in &c.new_problems {
                let at = p.path.as_deref().or(p.pod.as_deref()).unwrap_or("-");
                let _ = writeln!(out, "  {at}: {}: {}", p.reason, p.message);
            }
        }
    }
    nb_text(&mut out, r);
    let _ = writeln!(out, "== Pod routes, per node");
    if r.what_if.pods.is_empty() {
        let _ = writeln!(out, "(no pod route changes)");
    }
    for (node, changes) in &r.what_if.pods {
        let _ = writeln!(out, "{node}:");
        for c in changes {
            let what = match (&c.before, &c.after) {
                (Some(b), Some(a)) => format!("{b} -> {a}"),
                (None, Some(a)) => a.clone(),
                (Some(b), None) => b.clone(),
                (None, None) => String::new(),
            };
            let _ = writeln!(out, "  {} {} {}: {what}", sign(c.change), c.pod, c.dst);
        }
    }
    let _ = writeln!(out, "(nothing was written)");
    out
}

fn routes_text(out: &mut String, route: &super::whatif::RouteOutcome) {
    let edit = if route.replaces {
        "replaces the live Route"
    } else {
        "new"
    };
    let _ = writeln!(out, "== Route {} ({edit}): {}", route.name, route.status);
    let _ = writeln!(
        out,
        "selected: {} pod(s){}",
        route.selected,
        if route.selected_pods.is_empty() {
            String::new()
        } else {
            format!(": {}", route.selected_pods.join(", "))
        }
    );
    for w in &route.wins {
        let _ = writeln!(out, "wins {} in {} from Route {}", w.dst, w.pod, w.route);
    }
    for l in &route.losses {
        let _ = writeln!(out, "loses {} in {} to Route {}", l.dst, l.pod, l.route);
    }
    for p in &route.refused {
        let at = p.path.as_deref().unwrap_or("-");
        let pod = p
            .pod
            .as_deref()
            .map(|x| format!(" ({x})"))
            .unwrap_or_default();
        let _ = writeln!(out, "refused {at}{pod}: {}: {}", p.reason, p.message);
    }
    for p in &route.problems {
        let at = p.path.as_deref().or(p.pod.as_deref()).unwrap_or("-");
        let _ = writeln!(out, "problem {at}: {}: {}", p.reason, p.message);
    }
}

fn nb_text(out: &mut String, r: &Report) {
    if r.nb_against == "nb" {
        let _ = writeln!(
            out,
            "== NB (against the database: what applying would write)"
        );
        if r.nb_commands.is_empty() {
            let _ = writeln!(out, "(no change)");
        }
        for c in &r.nb_commands {
            let _ = writeln!(out, "{c}");
        }
        for p in &r.nb_problems {
            let _ = writeln!(out, "# {}: {}: {}", p.route, p.reason, p.message);
        }
        return;
    }
    let _ = writeln!(
        out,
        "== NB rows (the planner's; --nb compares with the database)"
    );
    if r.what_if.nb.is_empty() {
        let _ = writeln!(out, "(no change)");
    }
    for c in &r.what_if.nb {
        let _ = writeln!(
            out,
            "{} {} {}  (Route {})",
            sign(c.change),
            c.table,
            c.row,
            c.route
        );
        if let Some(b) = &c.before {
            let _ = writeln!(out, "    was: {b}");
        }
    }
}
