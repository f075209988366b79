//! `kubectl route status [NAME]`: every Route (or one) with its status as the controller
//! wrote it: the one-word summary, pod counts, whether the status is for the current
//! generation, and its problems, per node where a node reported them. One list call.
use std::fmt::Write as _;

use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};
use serde_json::{Value as Json, json};

use crate::api::{Problem, RouteStatus};
use crate::k8s::watch::route_resource;

use super::{Answer, KubectlError};

/// One Route as listed.
struct Row {
    name: String,
    generation: Option<i64>,
    status: Option<RouteStatus>,
    /// The status does not decode (written by another version?).
    bad_status: Option<String>,
}

fn rows(list: Vec<DynamicObject>) -> Vec<Row> {
    let mut out: Vec<Row> = list
        .into_iter()
        .map(|o| {
            let raw = o.data.get("status").cloned().unwrap_or(Json::Null);
            let (status, bad_status) = if raw.is_null() {
                (None, None)
            } else {
                match serde_json::from_value::<RouteStatus>(raw) {
                    Ok(s) => (Some(s), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            };
            Row {
                name: o.metadata.name.unwrap_or_default(),
                generation: o.metadata.generation,
                status,
                bad_status,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn count(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |n| n.to_string())
}

/// `yes`, or why the status is not for the current spec.
fn observed(r: &Row) -> String {
    match (
        r.status.as_ref().and_then(|s| s.observed_generation),
        r.generation,
    ) {
        (Some(o), Some(g)) if o == g => "yes".into(),
        (Some(o), Some(g)) => format!("no ({o}/{g})"),
        _ => "-".into(),
    }
}

fn problem_line(p: &Problem) -> String {
    let mut s = String::from("  ");
    if let Some(n) = &p.node {
        let _ = write!(s, "[{n}] ");
    }
    let at: Vec<&str> = [p.path.as_deref(), p.pod.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !at.is_empty() {
        let _ = write!(s, "{} ", at.join(" "));
    }
    let _ = write!(s, "{}: {}", p.reason, p.message);
    s
}

fn table(rows: &[Row]) -> String {
    let mut lines = vec![
        [
            "NAME",
            "STATUS",
            "SELECTED",
            "PROGRAMMED",
            "SKIPPED",
            "FAILED",
            "PENDING",
            "PROBLEMS",
            "CURRENT",
        ]
        .map(str::to_owned),
    ];
    for r in rows {
        let s = r.status.clone().unwrap_or_default();
        let problems = s.problems.len() as i64 + s.problems_omitted.unwrap_or(0);
        lines.push([
            r.name.clone(),
            s.status.clone().unwrap_or_else(|| "-".into()),
            count(s.selected_pods),
            count(s.programmed_pods),
            count(s.skipped_pods),
            count(s.failed_pods),
            count(s.pending_pods),
            problems.to_string(),
            observed(r),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("   ").trim_end());
    }
    for r in rows {
        details(&mut out, r);
    }
    out
}

/// A Route's problems and failing nodes, under the table.
fn details(out: &mut String, r: &Row) {
    if let Some(e) = &r.bad_status {
        let _ = writeln!(out, "\n{}: status does not decode: {e}", r.name);
    }
    let Some(s) = &r.status else {
        return;
    };
    if s.problems.is_empty() && s.failing_nodes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}:", r.name);
    // The Route's own problems first, then each node's, as the status lists them.
    for p in &s.problems {
        let _ = writeln!(out, "{}", problem_line(p));
    }
    if let Some(n) = s.problems_omitted.filter(|n| *n > 0) {
        let _ = writeln!(out, "  ... and {n} more problem(s)");
    }
    if !s.failing_nodes.is_empty() {
        let more = s
            .failing_nodes_omitted
            .filter(|n| *n > 0)
            .map(|n| format!(" and {n} more"))
            .unwrap_or_default();
        let _ = writeln!(out, "  failing nodes: {}{more}", s.failing_nodes.join(", "));
    }
}

fn json(rows: &[Row]) -> String {
    let routes: Vec<Json> = rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "generation": r.generation,
                "current": r.status.as_ref().and_then(|s| s.observed_generation) == r.generation && r.generation.is_some(),
                "status": r.status,
                "statusError": r.bad_status,
            })
        })
        .collect();
    let mut s = json!({ "routes": routes }).to_string();
    s.push('\n');
    s
}

/// Lists the Routes (one call) and renders them.
pub(super) async fn status(
    client: &Client,
    name: Option<&str>,
    as_json: bool,
) -> Result<Answer, KubectlError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &route_resource());
    let mut rows = rows(api.list(&ListParams::default()).await?.items);
    if let Some(n) = name {
        rows.retain(|r| r.name == n);
        if rows.is_empty() {
            return Ok(Answer {
                out: String::new(),
                errors: vec![format!("error: Route {n:?} not found")],
                failed: true,
            });
        }
    }
    let out = if as_json {
        json(&rows)
    } else if rows.is_empty() {
        "No Routes.\n".to_owned()
    } else {
        table(&rows)
    };
    Ok(Answer {
        out,
        errors: Vec::new(),
        failed: false,
    })
}
