//! The Kubernetes-mode fixture: a real OVN with the ovn-kubernetes topology, node1's pods as
//! real network namespaces, the Kubernetes API test server holding the same world (the CRDs
//! of deploy/, namespaces, pods with their status, Services), and the real binary run with
//! `--source kubernetes`.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use std::collections::BTreeMap;

use crate::fixture::{BIN, Ovn, PODS, Pod, PodNet, Spawned, free_port, poll, world_yaml};
use crate::kube_api::Background;

pub const LEASE_NS: &str = "ovn-kubernetes";

pub struct Kube {
    pub bg: Background,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Kube {
    /// Who holds the controller's Lease, if anyone.
    pub fn lease_holder(&self) -> Option<String> {
        self.bg
            .api
            .get(
                "coordination.k8s.io/v1",
                "Lease",
                Some(LEASE_NS),
                "ovnkube-route",
            )
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    }

    /// The API server with the CRDs of deploy/ and the controller's namespace.
    pub fn start() -> Kube {
        let bg = Background::start();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = bg.api.kubeconfig(dir.path());
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        bg.api.create_crds(&root.join("deploy/crd.yaml"));
        bg.api.create_crds(&root.join("deploy/crd-nodereport.yaml"));
        bg.api
            .create(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NS}}),
            )
            .unwrap();
        Kube {
            bg,
            dir,
            kubeconfig,
        }
    }

    /// Creates an object, or replaces its spec/metadata if it exists; for objects with a
    /// `status` (pods), the status is then written through the status subresource, as the
    /// kubelet does.
    pub fn put(&self, obj: &Value) -> Value {
        let mut body = obj.clone();
        let status = body.as_object_mut().unwrap().remove("status");
        if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("uid");
        }
        let api = &self.bg.api;
        let av = body["apiVersion"].as_str().unwrap().to_owned();
        let kind = body["kind"].as_str().unwrap().to_owned();
        let name = body["metadata"]["name"].as_str().unwrap().to_owned();
        let ns = body["metadata"]["namespace"].as_str().map(str::to_owned);
        let stored = match api.get(&av, &kind, ns.as_deref(), &name) {
            Some(_) => api.merge(&body, body.clone()).unwrap(),
            None => api.create(body.clone()).unwrap(),
        };
        match status {
            Some(st) => api.set_status(&stored, st).unwrap(),
            None => stored,
        }
    }

    /// Every document of a YAML string, through [`Kube::put`].
    pub fn put_yaml(&self, yaml: &str) -> Vec<Value> {
        serde_yaml_ng::Deserializer::from_str(yaml)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .filter(|v: &Value| !v.is_null())
            .map(|v| self.put(&v))
            .collect()
    }

    pub fn delete(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) {
        let obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}});
        self.bg.api.delete(&obj).unwrap();
    }

    pub fn route(&self, name: &str) -> Option<Value> {
        self.bg.api.get("k8s.ovn.org/v1", "Route", None, name)
    }

    /// `kubectl` against the server; panics with its output when it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl (1.32, in the machine image) is needed");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply` of a YAML string.
    pub fn apply(&self, yaml: &str) {
        let f = self
            .dir
            .path()
            .join(format!("apply-{}.yaml", uuid::Uuid::new_v4()));
        std::fs::write(&f, yaml).unwrap();
        self.kubectl(&["apply", "-f", f.to_str().unwrap()]);
    }
}

/// The world of the NB fixture (namespaces, node1/node2 pods, Services) put into the API
/// server; node1's CNI cache entries get the uids the server assigned.
pub fn load_world(kube: &Kube, net: Option<&PodNet>, services: &[(&str, &str, &str)]) {
    for obj in kube.put_yaml(&world_yaml(services)) {
        if obj["kind"] == "Pod"
            && let Some(net) = net
        {
            let name = obj["metadata"]["name"].as_str().unwrap();
            let p: &Pod = PODS.iter().find(|p| p.name == name).unwrap();
            if p.node == "node1" {
                net.set_uid(p, obj["metadata"]["uid"].as_str().unwrap());
            }
        }
    }
}

/// A running `run --source kubernetes`.
pub struct Controller {
    pub proc: Spawned,
    pub metrics: u16,
    pub identity: String,
}

impl Controller {
    pub fn get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.metrics)) else {
            return (0, String::new());
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, out)
    }

    pub fn wait_ready(&mut self) {
        poll(30, "controller ready", || {
            self.proc.assert_alive();
            let (code, body) = self.get("/readyz");
            if code == 200 { Ok(()) } else { Err(body) }
        });
    }

    /// A metric's value (the first sample line starting with `name`).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

/// Settings of one controller instance.
pub struct Instance<'a> {
    pub mode: &'a str,
    pub node: &'a str,
    pub identity: &'a str,
    pub net: Option<&'a PodNet>,
    pub extra: &'a [&'a str],
}

pub fn spawn(kube: &Kube, ovn: &Ovn, i: Instance<'_>) -> Controller {
    let log = kube.dir.path().join(format!("{}.log", i.identity));
    let file = std::fs::File::create(&log).unwrap();
    let metrics = free_port();
    let state = kube.dir.path().join(format!("state-{}", i.identity));
    let cni = kube.dir.path().join(format!("cni-{}", i.identity));
    std::fs::create_dir_all(&cni).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--log",
        "info,ovnkube_route=debug",
        "run",
        "--source",
        "kubernetes",
    ])
    .args(["--nb", &ovn.nb_remote(), "--mode", i.mode, "--node", i.node])
    .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
    .args(["--audit-mins", "0"])
    .args([
        "--lease-duration-secs",
        "4",
        "--renew-deadline-secs",
        "3",
        "--retry-period-secs",
        "1",
    ]);
    match i.net {
        Some(net) => {
            cmd.args(["--cni-results", net.cni_results.path().to_str().unwrap()])
                .args(["--state-dir", net.state.path().to_str().unwrap()]);
        }
        None => {
            cmd.args(["--cni-results", cni.to_str().unwrap()])
                .args(["--state-dir", state.to_str().unwrap()]);
        }
    }
    if !i.extra.contains(&"--status-interval-ms") {
        cmd.args(["--status-interval-ms", "200"]);
    }
    cmd.args(i.extra)
        .env("KUBECONFIG", &kube.kubeconfig)
        .env("POD_NAMESPACE", LEASE_NS)
        .env("POD_NAME", i.identity)
        .env("POD_UID", format!("uid-{}", i.identity))
        .env_remove("NODE_NAME")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .stdin(Stdio::null());
    let child = cmd.spawn().expect("cannot start ovnkube-route");
    Controller {
        proc: Spawned { child, log },
        metrics,
        identity: i.identity.to_owned(),
    }
}

/// The `status` of a Route, once it has one with the given word.
pub fn wait_status(kube: &Kube, c: &mut Controller, route: &str, word: &str) -> Value {
    let mut last = Value::Null;
    poll(20, &format!("Route {route} status {word}"), || {
        c.proc.assert_alive();
        last = kube
            .route(route)
            .map(|r| r["status"].clone())
            .unwrap_or(Value::Null);
        if last["status"] == word {
            Ok(())
        } else {
            let log = c.proc.log();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            for r in kube
                .bg
                .api
                .requests()
                .iter()
                .filter(|r| r.verb != "watch" && r.verb != "list")
            {
                eprintln!("{} {} {} -> {}", r.method, r.path, r.resource, r.code);
            }
            Err((
                last.clone(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            ))
        }
    });
    last
}

/// Every request the controller sent (kubectl's are the test's) is one that
/// `src/k8s/access.rs`, and so `deploy/rbac.yaml`, allows.
pub fn assert_only_granted_calls(kube: &Kube) {
    let mut seen = std::collections::BTreeSet::new();
    for r in kube.bg.api.requests() {
        if r.verb.is_empty() || r.user_agent.starts_with("kubectl") {
            continue;
        }
        assert!(
            ovnkube_route::k8s::access::allowed(&r.group, &r.resource, &r.verb),
            "the controller made a call RBAC does not grant: {} {} ({} on {}/{})",
            r.method,
            r.path,
            r.verb,
            r.group,
            r.resource
        );
        seen.insert(format!("{}/{}:{}", r.group, r.resource, r.verb));
    }
    assert!(
        !seen.is_empty(),
        "no request from the controller was logged"
    );
}

/// client-a reaches 172.16.10.0/24 and the nginx Service over eth1, rerouted to GR node1.
pub const WEB: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: client-a}}
  route:
    - {dst: "172.16.10.0/24", dev: eth1}
  svc:
    - {namespace: default, name: nginx, dev: eth1}
  ovn:
    nextHops: ["100.64.0.2"]
"#;

/// client-b reaches 172.16.23.0/24 over eth1, rerouted to GR node2.
pub const LATE: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: late}
spec:
  podSelector: {matchLabels: {app: client-b}}
  route:
    - {dst: "172.16.23.0/24", dev: eth1}
  ovn:
    nextHops: ["100.64.0.3"]
"#;

/// Polls until `p`'s table has a line starting with each of `present` and none with any
/// of `absent`.
pub fn wait_routes(
    net: &PodNet,
    c: &mut Controller,
    p: &Pod,
    present: &[&str],
    absent: &[&str],
    what: &str,
) {
    let took = poll(15, what, || {
        c.proc.assert_alive();
        let t = net.routes(p);
        let ok = present.iter().all(|w| t.iter().any(|l| l.starts_with(w)))
            && absent.iter().all(|w| !t.iter().any(|l| l.starts_with(w)));
        if ok { Ok(()) } else { Err((t, c.proc.log())) }
    });
    println!("{what}: {took:?}");
}

pub fn has_route(net: &PodNet, p: &Pod, prefix: &str) -> bool {
    net.routes(p).iter().any(|l| l.starts_with(prefix))
}

/// Every row in `before` is still there (rows may have been added).
pub fn nothing_removed(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    for (table, rows) in before {
        for r in rows {
            if !after.get(table).is_some_and(|a| a.contains(r)) {
                return Err(format!("{table}: {r} gone"));
            }
        }
    }
    Ok(())
}

/// The usual instance: `ic` mode on node1, programming `net`'s pods.
pub fn spawn_ic(kube: &Kube, ovn: &Ovn, net: &PodNet) -> Controller {
    spawn(
        kube,
        ovn,
        Instance {
            mode: "ic",
            node: "node1",
            identity: "node1",
            net: Some(net),
            extra: &[],
        },
    )
}
