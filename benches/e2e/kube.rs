//! The Kubernetes source of the benchmark: the tests' API server (`tests/kube_api`, the
//! only stand-in of the test suite) holding the sandbox's world as API objects, and the
//! node agent as it runs in a cluster: `run --source kubernetes --mode ic --node node1`.
//! Pods are created as the kubelet sees them (the object, then its status through the
//! status subresource); the API server assigns their uids, which the CNI cache files carry.
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::kube_api::Background;
use super::sandbox::{Pod, ROUTES, route_doc, selected};

/// The namespace of the controller's own objects (Lease, node reports).
pub const LEASE_NS: &str = "ovn-kubernetes";

pub struct Cluster {
    pub bg: Background,
    pub kubeconfig: PathBuf,
    /// The stored Route objects (for patches).
    routes: Vec<Value>,
}

impl Cluster {
    /// The API server with the CRDs of deploy/ and the controller's namespace.
    pub fn start(dir: &Path) -> Cluster {
        let bg = Background::start();
        let kubeconfig = bg.api.kubeconfig(dir);
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        bg.api.create_crds(&root.join("deploy/crd.yaml"));
        bg.api.create_crds(&root.join("deploy/crd-nodereport.yaml"));
        bg.api
            .create(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NS}}),
            )
            .expect("namespace");
        Cluster {
            bg,
            kubeconfig,
            routes: Vec::new(),
        }
    }

    /// The namespaces, the pods (Running) and the Routes; returns each pod's uid.
    pub fn populate(&mut self, pods: &[Pod]) -> Vec<String> {
        let mut nss: Vec<&str> = pods.iter().map(|p| p.namespace.as_str()).collect();
        nss.dedup();
        for ns in nss {
            self.bg
                .api
                .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .expect("namespace");
        }
        let uids = pods
            .iter()
            .map(|p| {
                let stored = self.create_pod(p, &selected(p.i));
                self.run_pod(p, &stored);
                stored["metadata"]["uid"].as_str().expect("uid").to_owned()
            })
            .collect();
        for j in 0..ROUTES {
            let stored = self.bg.api.create(route_doc(j, 0)).expect("route");
            self.routes.push(stored);
        }
        uids
    }

    /// The pod object as the scheduler leaves it (Pending, annotated); returns it stored.
    pub fn create_pod(&self, p: &Pod, routes: &[usize]) -> Value {
        // A pod added later may be the first of its namespace (there already: fine).
        let _ = self.bg.api.create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": p.namespace}}),
        );
        let mut doc = p.document(None, routes, false);
        if let Some(o) = doc.as_object_mut() {
            o.remove("status");
        }
        self.bg.api.create(doc).expect("pod")
    }

    /// The kubelet's status update: Running.
    pub fn run_pod(&self, p: &Pod, stored: &Value) {
        let status = p.document(None, &[], true)["status"].clone();
        self.bg.api.set_status(stored, status).expect("status");
    }

    /// Route `j` with rule 0 at `variant` (a merge patch of its spec, as `kubectl apply`).
    pub fn edit_route(&self, j: usize, variant: usize) {
        let spec = route_doc(j, variant)["spec"].clone();
        self.bg
            .api
            .merge(&self.routes[j], json!({"spec": spec}))
            .expect("route edit");
    }

    /// Sets (`true`) or removes the label selecting pod `p` for Route `j`.
    pub fn label(&self, p: &Pod, j: usize, on: bool) {
        let obj = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": p.name, "namespace": p.namespace}});
        let value = if on { json!("y") } else { Value::Null };
        self.bg
            .api
            .merge(
                &obj,
                json!({"metadata": {"labels": {format!("r{j}"): value}}}),
            )
            .expect("label");
    }
}
