//! `kubectl apply` refuses a bad Route on the spot: the Kubernetes API test server runs the
//! CRD's validation (bounds, enums, CEL rules) as the API server does, and real `kubectl`
//! 1.32 shows the refusal, with `--dry-run=server` too. Also: validation ratcheting lets the
//! controller keep writing the status of a Route stored before the rules existed, and the
//! `--compat pre-1.31` CRD refuses by pattern what it can.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod kube_api;

use std::path::{Path, PathBuf};
use std::process::Command;

use kube_api::Background;
use serde_json::json;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// kubectl against the server: (exit ok, stdout, stderr).
fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl 1.32 is in the machine image; this test needs it");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BAD: &str = r#"apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: bad}
spec:
  route:
    - {dst: "10.0.0.5/24", dev: eth1}
    - {dst: "172.16.0.0/16", dev: "eth 0"}
    - {dst: "fd00::/64", dev: eth1, via: "10.0.0.1"}
  svc:
    - {namespace: default, name: Nginx, dev: eth1}
  targets:
    - {kind: Pod, name: client}
  ovn:
    nextHops: ["100.64.0.300"]
"#;

const WANT: [&str; 6] = [
    r#"spec.route[0].dst: Invalid value: "string": "10.0.0.5/24" has host bits set; did you mean 10.0.0.0/24?"#,
    r#"spec.route[1].dev: Invalid value: "string": "eth 0" is not a valid Linux interface name"#,
    r#"spec.route[2].via: Invalid value: "object": via 10.0.0.1 and dst fd00::/64 are of different IP families"#,
    r#"spec.svc[0].name: Invalid value: "string": "Nginx" is not a Service name"#,
    r#"spec.targets[0].namespace: Invalid value: "object": a Pod target needs a namespace"#,
    r#"spec.ovn.nextHops[0]: Invalid value: "string": "100.64.0.300" is not an IP address"#,
];

#[test]
fn kubectl_apply_refuses_a_bad_route_with_the_controllers_words() {
    let bg = Background::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = bg.api.kubeconfig(dir.path());
    let k = |args: &[&str]| kubectl(&kc, args);
    let crd = repo("deploy/crd.yaml");
    let (ok, _, err) = k(&["apply", "-f", crd.to_str().unwrap()]);
    assert!(ok, "{err}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, BAD).unwrap();
    let bad = bad.to_str().unwrap();

    for args in [
        vec!["apply", "--dry-run=server", "-f", bad],
        vec!["apply", "--server-side", "--dry-run=server", "-f", bad],
        vec!["apply", "-f", bad],
        vec!["create", "-f", bad],
    ] {
        let (ok, out, err) = k(&args);
        assert!(!ok, "kubectl {args:?} accepted a bad Route: {out}");
        println!("$ kubectl {}\n{err}", args.join(" "));
        assert!(
            err.contains(r#"The Route "bad" is invalid"#),
            "{args:?}: {err}"
        );
        for want in WANT {
            assert!(
                err.contains(want),
                "kubectl {args:?} does not show\n  {want}\nin\n{err}"
            );
        }
    }
    let (_, out, err) = k(&["get", "routes", "-o", "name"]);
    assert!(
        out.trim().is_empty(),
        "a refused Route was stored: {out} {err}"
    );

    // Good Routes pass, and a server-side dry run stores nothing.
    let examples = repo("deploy/examples");
    let (ok, out, err) = k(&[
        "apply",
        "--dry-run=server",
        "-f",
        examples.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("(server dry run)"), "{out}");
    let (_, out, _) = k(&["get", "routes", "-o", "name"]);
    assert!(out.trim().is_empty(), "a dry run stored {out}");
    let (ok, _, err) = k(&["apply", "-R", "-f", examples.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (_, out, _) = k(&[
        "get",
        "route",
        "egress-all-bfd",
        "-o",
        "jsonpath={.spec.ovn.bfd.minTx}",
    ]);
    assert_eq!(out.trim(), "300", "bfd timers stored as written");

    // An edit that breaks a stored Route is refused, dry run or not, and changes nothing.
    for dry in ["--dry-run=server", "--dry-run=none"] {
        let (ok, _, err) = k(&[
            "patch",
            "route",
            "demo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"route":[{"dst":"0.0.0.0/0","dev":"eth1"}]}}"#,
            dry,
        ]);
        assert!(!ok, "{dry}");
        assert!(
            err.contains(r#"spec.route[0].dst: Invalid value: "string": "0.0.0.0/0" would replace the default route; use spec.defaultRoute for that"#),
            "{err}"
        );
    }
    let (_, out, _) = k(&[
        "get",
        "route",
        "demo",
        "-o",
        "jsonpath={.spec.route[0].dst}",
    ]);
    assert_eq!(out, "172.16.10.0/24");
}

/// The API server's answer itself: 422 Invalid, one cause per failure naming the field.
#[test]
fn the_refusal_is_a_422_status_with_causes() {
    let bg = Background::start();
    bg.api.create_crds(&repo("deploy/crd.yaml"));
    let doc: serde_json::Value = serde_yaml_ng::from_str(BAD).unwrap();
    let e = bg.api.create(doc).unwrap_err();
    let st = e.status();
    assert_eq!(st["code"], 422);
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(st["details"]["kind"], "Route");
    assert_eq!(st["details"]["group"], "k8s.ovn.org");
    let causes = st["details"]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), WANT.len(), "{causes:#?}");
    let mut got: Vec<String> = causes
        .iter()
        .map(|c| {
            assert_eq!(c["reason"], "FieldValueInvalid");
            format!(
                "{}: {}",
                c["field"].as_str().unwrap(),
                c["message"].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    let mut want = WANT.to_vec();
    want.sort();
    assert_eq!(got, want);
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.starts_with(r#"Route.k8s.ovn.org "bad" is invalid: ["#),
        "{st}"
    );
    assert!(msg.contains(WANT[0]), "{st}");
    // An enum and a bound, in the API server's words; the rules were not run.
    let e = bg
        .api
        .create(json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "k"},
            "spec": {"targets": [{"kind": "Gadget", "namespace": "a", "name": "g"}],
                     "route": [{"dst": "x", "dev": "eth1"}],
                     "ovn": {"nextHops": (0..257).map(|i| format!("100.64.1.{}", i % 250)).collect::<Vec<_>>()}}}))
        .unwrap_err();
    let msg = e.status()["message"].as_str().unwrap().to_owned();
    assert!(msg.contains(r#"spec.targets[0].kind: Unsupported value: "Gadget": supported values: "Pod", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob", "Namespace""#), "{msg}");
    assert!(
        msg.contains("spec.ovn.nextHops: Too many: 257: must have at most 256 items"),
        "{msg}"
    );
    assert!(
        msg.contains("some validation rules were not checked"),
        "{msg}"
    );
    assert!(!msg.contains("not a CIDR"), "{msg}");
}

/// A Route stored before the CRD had its rules (validation off while it was written) keeps
/// getting its status written, and edits that leave its bad value alone pass; an edit to
/// another bad value does not.
#[test]
fn ratcheting_keeps_old_routes_writable() {
    let bg = Background::start();
    bg.api.create_crds(&repo("deploy/crd.yaml"));
    bg.api.set_validation(false);
    let old = bg
        .api
        .create(
            json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "old"},
            "spec": {"route": [{"dst": "10.0.0.5/24", "dev": "eth1"}]}}),
        )
        .unwrap();
    bg.api.set_validation(true);
    bg.api
        .set_status(&old, json!({"status": "Degraded", "problems": [{"path": "spec.route[0].dst", "reason": "InvalidCIDR", "message": "x"}]}))
        .unwrap();
    bg.api
        .merge(&old, json!({"spec": {"priority": 3}}))
        .unwrap();
    let e = bg
        .api
        .merge(
            &old,
            json!({"spec": {"route": [{"dst": "10.0.0.6/24", "dev": "eth1"}]}}),
        )
        .unwrap_err();
    assert_eq!(e.code, 422, "{}", e.message);
}

/// The `--compat pre-1.31` CRD (no CEL) still refuses by pattern, length and enum, and lets
/// through what only the rules catch (the controller reports that in the status).
#[test]
fn the_compat_crd_refuses_what_its_patterns_can() {
    let out = Command::new(env!("CARGO_BIN_EXE_ovnkube-route"))
        .args(["crd", "--compat", "pre-1.31"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains("x-kubernetes-validations"),
        "no CEL in the compat CRD"
    );
    assert!(text.contains("pattern:"));
    let bg = Background::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crd-compat.yaml");
    std::fs::write(&path, &text).unwrap();
    let kc = bg.api.kubeconfig(dir.path());
    let (ok, _, err) = kubectl(&kc, &["apply", "-f", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    let host_bits = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "a"},
        "spec": {"route": [{"dst": "10.0.0.5/24", "dev": "eth1"}]}});
    bg.api.create(host_bits).unwrap();
    let spaced = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "b"},
        "spec": {"route": [{"dst": " 10.0.0.0/24", "dev": "eth1"}]}});
    let e = bg.api.create(spaced).unwrap_err();
    assert!(
        e.message.contains("spec.route[0].dst in body should match"),
        "{}",
        e.message
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_ovnkube-route"))
        .args(["crd", "--compat", "1.20"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("pre-1.31"));
}
