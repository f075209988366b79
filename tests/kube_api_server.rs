//! The Kubernetes API test server, checked against the API conventions with an independent
//! client: `kubectl` 1.32 (`--kubeconfig` pointing at the server), plus kube-rs for the
//! protocol details kubectl does not show (watch resumption, 410, bookmarks, pagination).
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod kube_api;

use std::path::Path;
use std::process::Command;

use kube_api::ApiServer;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Runs kubectl against the server; returns (exit ok, stdout, stderr).
fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl 1.32 is in the machine image; the test needs it");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_gets_and_deletes_routes() {
    let server = ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = server.kubeconfig(dir.path());
    let cfg = kc.clone();
    let crd = repo("deploy/crd.yaml");
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || kubectl(&cfg, &["apply", "-f", crd.to_str().unwrap()]))
            .await
            .unwrap();
    assert!(ok, "apply CRD: {out}\n{err}");
    let cfg = kc.clone();
    let ex = repo("deploy/examples");
    let (ok, out, err) =
        tokio::task::spawn_blocking(move || kubectl(&cfg, &["apply", "-f", ex.to_str().unwrap()]))
            .await
            .unwrap();
    assert!(ok, "apply examples: {out}\n{err}");
    let cfg = kc.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || kubectl(&cfg, &["get", "routes"]))
        .await
        .unwrap();
    assert!(ok, "get routes: {out}\n{err}");
    assert!(out.contains("ROUTE STATUS"), "{out}");
    eprintln!("{out}");
}
