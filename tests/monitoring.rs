//! What an operator monitors ovnkube-route with, tested against the real tools:
//! - deploy/monitoring/alerts.yaml with `promtool test rules` (series that fire and series
//!   that stay quiet), every alert with a runbook entry in docs/operations.md;
//! - the opt-in kustomize component (PodMonitor, PrometheusRule = alerts.yaml) and the
//!   DaemonSet's scrape annotations, rendered by `kubectl kustomize`;
//! - a real Prometheus (Debian's `prometheus`) scraping a running controller (file source,
//!   real NB): every metric and label the rules and the dashboard name exists, and every
//!   dashboard panel query returns data. A renamed metric or label fails here.
//!
//! promtool, prometheus and kubectl are required (scripts/install-deps.sh installs the
//! first two); a missing one fails the test.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use fixture::*;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring")
}

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn promtool(args: &[&str]) -> String {
    require("promtool");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// Every alert of alerts.yaml: (name, expression).
fn alerts() -> Vec<(String, String)> {
    let rules = yaml(&monitoring().join("alerts.yaml"));
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

#[test]
fn alerts_fire_and_stay_quiet_under_promtool_and_each_has_a_runbook() {
    let check = promtool(&["check", "rules", "alerts.yaml"]);
    assert!(check.contains("SUCCESS: 14 rules found"), "{check}");
    let test = promtool(&["test", "rules", "alerts_test.yaml"]);
    assert!(test.contains("SUCCESS"), "{test}");

    let tests = yaml(&monitoring().join("alerts_test.yaml"));
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap().iter())
        .collect();
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    for (name, _) in alerts() {
        let fires = cases.iter().any(|c| {
            c["alertname"] == name.as_str() && !c["exp_alerts"].as_array().unwrap().is_empty()
        });
        assert!(fires, "{name}: no promtool case where it fires");
        assert!(
            runbook.contains(&format!("### {name}\n")),
            "{name}: no runbook entry (### {name}) in docs/operations.md"
        );
    }
    // Quiet cases: every test group has an evaluation that expects no alert, or instances
    // whose series must not appear among the expected alerts.
    let quiet = cases
        .iter()
        .filter(|c| c["exp_alerts"].as_array().unwrap().is_empty())
        .count();
    assert!(quiet >= 8, "only {quiet} cases expect silence");
}

/// `kubectl kustomize` of a copy of deploy/ with `components: [monitoring]` added, as
/// docs/install.md says to enable it.
fn render_with_monitoring() -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let copy = dir.path().join("deploy");
    let cp = Command::new("cp")
        .arg("-r")
        .arg(&root)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    let k = copy.join("kustomization.yaml");
    let mut text = std::fs::read_to_string(&k).unwrap();
    text.push_str("components:\n  - monitoring\n");
    std::fs::write(&k, text).unwrap();
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| panic!("kubectl is required for this test and could not run: {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

#[test]
fn the_monitoring_component_renders_a_pod_monitor_and_the_rules() {
    let docs = render_with_monitoring();
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} rendered"))
            .clone()
    };
    let ds = find("DaemonSet");
    let pm = find("PodMonitor");
    let rule = find("PrometheusRule");
    assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pm["metadata"]["namespace"], ds["metadata"]["namespace"]);
    // The PodMonitor selects the DaemonSet's pods and scrapes its named metrics port.
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in pm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "PodMonitor selector {k}");
    }
    let endpoint = &pm["spec"]["podMetricsEndpoints"][0];
    let ports = &ds["spec"]["template"]["spec"]["containers"][0]["ports"];
    let port = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .expect("the PodMonitor's port is a named container port");
    assert_eq!(endpoint["path"], "/metrics");
    // The plain scrape annotations point at the same port.
    let ann = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    assert_eq!(
        ann["prometheus.io/port"].as_str().unwrap(),
        port["containerPort"].to_string()
    );
    // The PrometheusRule carries alerts.yaml's groups, unchanged.
    assert_eq!(
        rule["spec"]["groups"],
        yaml(&monitoring().join("alerts.yaml"))["groups"],
        "deploy/monitoring/prometheusrule.yaml differs from alerts.yaml: copy its groups"
    );
    // Without the component, deploy/ renders neither (it stays opt-in).
    let plain = Command::new("kubectl")
        .arg("kustomize")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(plain.status.success() && !text.contains("kind: PodMonitor"));
    assert!(!text.contains("kind: PrometheusRule"));
}
