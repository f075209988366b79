//! A real Prometheus (Debian's `prometheus`, on 127.0.0.1 in a temp dir) scraping a running
//! controller (`run --source file:` against a real NB ovsdb-server): every metric and every
//! label that deploy/monitoring/alerts.yaml and dashboard.json name exists in what
//! Prometheus scraped, and every dashboard panel query returns data. Renaming a metric or a
//! label without the rules and the dashboard fails here.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use fixture::*;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring")
}

/// `GET` over HTTP/1.0 (no chunked replies): status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus API call; panics unless it answers `status: success`.
fn api(port: u16, path: &str) -> Value {
    let (code, body) = get(port, path).unwrap_or_else(|| panic!("no answer to {path}"));
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{code}: {body}"));
    assert_eq!(v["status"], "success", "{path}: {body}");
    v["data"].clone()
}

fn query(port: u16, q: &str) -> Vec<Value> {
    api(port, &format!("/api/v1/query?query={}", encode(q)))["result"]
        .as_array()
        .unwrap()
        .clone()
}

fn series(port: u16, selector: &str) -> Vec<Value> {
    api(
        port,
        &format!("/api/v1/series?match[]={}", encode(selector)),
    )
    .as_array()
    .unwrap()
    .clone()
}

/// The series selectors (`name{matchers}`) of an expression, for our metrics and `up`.
fn selectors(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
        let starts = i == 0 || !ident(b[i - 1]);
        let rest = &expr[i..];
        let ours = rest.starts_with("ovnkube_route_") || rest.starts_with("up{");
        if !(starts && ours) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && ident(b[j]) {
            j += 1;
        }
        if j < b.len() && b[j] == b'{' {
            j += expr[j..].find('}').unwrap() + 1;
        }
        out.push(expr[i..j].to_owned());
        i = j;
    }
    out
}

/// Labels an expression groups or matches on (`by (...)`, `on (...)`).
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kw in ["by (", "on (", "by(", "on("] {
        for (at, _) in expr.match_indices(kw) {
            let list = &expr[at + kw.len()..];
            let list = &list[..list.find(')').unwrap()];
            out.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    out
}

/// Dashboard variables as the test's Prometheus sees them: every instance, a rate window of
/// a few scrapes.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$instance", ".*")
}

/// Every query of the dashboard: panel targets and the variables' `label_values(...)`.
fn dashboard_queries() -> (Vec<(String, String)>, Vec<String>) {
    let d: Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring().join("dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut targets = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            targets.push((
                p["title"].as_str().unwrap().to_owned(),
                t["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let vars = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["definition"].as_str().map(str::to_owned))
        .collect();
    (targets, vars)
}

fn alert_exprs() -> Vec<(String, String)> {
    let rules: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(monitoring().join("alerts.yaml")).unwrap(),
    )
    .unwrap();
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What is missing for one expression: selectors without series, grouping labels that no
/// series of the expression carries.
fn missing(port: u16, what: &str, expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut labels = BTreeSet::new();
    let sels = selectors(expr);
    if sels.is_empty() {
        out.push(format!("{what}: names none of our metrics: {expr}"));
    }
    for sel in sels {
        let found = series(port, &sel);
        if found.is_empty() {
            out.push(format!("{what}: no series for {sel}"));
        }
        for s in &found {
            labels.extend(s.as_object().unwrap().keys().cloned());
        }
    }
    for l in grouping_labels(expr) {
        if !labels.contains(&l) {
            out.push(format!("{what}: no series carries the label {l:?}: {expr}"));
        }
    }
    out
}

struct Prometheus {
    proc: Spawned,
    port: u16,
}

/// Starts Prometheus in `dir`, scraping `target` every second as job `ovnkube-route`.
fn prometheus(dir: &Path, target: u16) -> Prometheus {
    require("prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: ovnkube-route\n    static_configs:\n      \
             - targets: ['127.0.0.1:{target}']\n",
            monitoring().join("alerts.yaml").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.join("prometheus.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("cannot start prometheus");
    Prometheus {
        proc: Spawned { child, log },
        port,
    }
}

#[test]
fn a_real_prometheus_finds_every_metric_the_rules_and_the_dashboard_name() {
    let (ovn, inputs) = with_topology(Ovn::start());
    inputs.put("routes.yaml", &documents(&[ECMP, ENFORCE, EVERYONE]));
    let metrics = free_port();
    let log = inputs.dir.path().join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let source = format!(
        "file:{},{}",
        inputs.world().display(),
        inputs.routes().display()
    );
    let child = Command::new(BIN)
        .args(["--log", "info", "run", "--source", &source])
        .args(["--nb", &ovn.nb_remote(), "--skip-pods"])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut run = Spawned { child, log };
    poll(20, "controller ready", || {
        run.assert_alive();
        match get(metrics, "/readyz") {
            Some((200, _)) => Ok(()),
            other => Err(other),
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let mut prom = prometheus(dir.path(), metrics);
    let port = prom.port;
    let took = poll(30, "two scrapes of the controller", || {
        prom.proc.assert_alive();
        let n = get(port, "/-/ready")
            .filter(|r| r.0 == 200)
            .map(|_| query(port, "count_over_time(up{job=\"ovnkube-route\"}[1m])"))
            .and_then(|r| r.first().cloned())
            .and_then(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()));
        match n {
            Some(n) if n >= 2.0 => Ok(()),
            other => Err((other, prom.proc.log())),
        }
    });
    println!("Prometheus had two scrapes after {took:?}");
    let up = query(port, "up{job=\"ovnkube-route\"}");
    assert_eq!(up[0]["value"][1], "1", "target down: {up:?}");

    let mut problems = Vec::new();
    for (alert, expr) in alert_exprs() {
        problems.extend(missing(port, &format!("alert {alert}"), &expr));
    }
    let (targets, vars) = dashboard_queries();
    for (panel, expr) in &targets {
        let expr = substitute(expr);
        let what = format!("panel {panel:?}");
        problems.extend(missing(port, &what, &expr));
        if query(port, &expr).is_empty() {
            problems.push(format!("{what}: no data for {expr}"));
        }
    }
    for var in vars {
        let inner = var
            .strip_prefix("label_values(")
            .and_then(|v| v.strip_suffix(')'))
            .unwrap();
        let (metric, label) = inner.split_once(',').unwrap();
        let values = api(
            port,
            &format!(
                "/api/v1/label/{}/values?match[]={}",
                label.trim(),
                encode(metric.trim())
            ),
        );
        if values.as_array().unwrap().is_empty() {
            problems.push(format!("variable {var}: no values"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    println!(
        "{} alert expressions and {} panel queries checked",
        alert_exprs().len(),
        targets.len()
    );
    // The rules loaded into the real Prometheus too (it refuses to start on a bad file).
    let groups = api(port, "/api/v1/rules")["groups"].clone();
    let loaded: usize = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert_eq!(loaded, alert_exprs().len());
    // A healthy controller with Applied Routes: no alert pending or firing.
    let alerts = api(port, "/api/v1/alerts")["alerts"].clone();
    assert_eq!(
        alerts,
        serde_json::json!([]),
        "alerts on a healthy controller"
    );
    drop(ovn);
}

#[test]
fn the_expression_scanner_finds_selectors_and_labels() {
    let e = "sum by (instance, kind) (increase(ovnkube_route_status_writes_total{result=\"error\"}[10m])) > 0 and on (instance) up{job=~\".*x\"}";
    assert_eq!(
        selectors(e),
        vec![
            "ovnkube_route_status_writes_total{result=\"error\"}".to_owned(),
            "up{job=~\".*x\"}".to_owned()
        ]
    );
    assert_eq!(
        grouping_labels(e),
        BTreeSet::from(["instance".to_owned(), "kind".to_owned()])
    );
}
