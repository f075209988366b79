//! `explain --source kubernetes`: the Routes and the world read once from the Kubernetes
//! API test server (only calls the deployed RBAC grants), explained like file mode.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;
mod kube_api;
mod kube_env;

use std::process::Command;

use fixture::*;
use kube_env::*;

fn explain(kube: &Kube, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .args(["--log", "warn", "explain"])
        .args(args)
        .args(["--source", "kubernetes", "--skip-pods"])
        .env("KUBECONFIG", &kube.kubeconfig)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn explain_reads_the_cluster_once() {
    let kube = Kube::start();
    load_world(&kube, None, &[NGINX]);
    kube.apply(WEB);
    let r = explain(&kube, &["default/client-a", "172.16.10.5", "-o", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let d = &j["destinations"][0];
    assert_eq!(d["plan"]["decision"]["route"], "web", "{r}");
    assert_eq!(d["plan"]["decision"]["dev"], "eth1", "{r}");
    assert_eq!(d["kernel"]["state"], "notFound", "{r}");
    // The Service as DST: its ClusterIP, decided by the svc rule.
    let r = explain(&kube, &["default/client-a", "default/nginx", "-o", "json"]);
    assert_eq!(r.code, 0, "{r}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["destinations"][0]["plan"]["dst"], "10.96.100.10", "{r}");
    assert_eq!(
        j["destinations"][0]["plan"]["decision"]["rule"], "spec.svc[0]",
        "{r}"
    );
    // An unselected pod in the same cluster.
    let r = explain(&kube, &["default/client-b", "172.16.10.5"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("not selected"), "{r}");
    assert_only_granted_calls(&kube);
}
