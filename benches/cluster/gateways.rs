//! Gateway churn (issue 18): a Route whose next hops are gateway pods (`nextHopPods`, their
//! address on NetworkAttachmentDefinition `gw/ext`, in the join network the router reaches),
//! added to the running cluster; then each kind of gateway change is made through the API
//! server and timed until the NB's policy carries the new ECMP set: readiness lost and
//! regained, termination (a finalizer holds the deleted pod), deletion and re-creation,
//! address change, relabel out and back.
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::figures::{LIMIT, Samples};
use super::kube_api::ApiServer;
use super::nb::{Conn, Wait};

pub const GATEWAYS: usize = 4;
const NS: &str = "gw";
const DST: &str = "198.51.100.0/24";

/// The gateway figures, per kind of change.
#[derive(Clone, Debug, Default)]
pub struct GatewayFigures {
    pub kinds: Vec<(&'static str, Samples)>,
}

impl GatewayFigures {
    /// Every sample of every kind.
    pub fn all(&self) -> Samples {
        Samples(self.kinds.iter().flat_map(|(_, s)| s.0.clone()).collect())
    }
}

fn addr(g: usize, moved: bool) -> String {
    format!("100.64.{}.{}", if moved { 2 } else { 1 }, 10 + g)
}

fn pod(g: usize, moved: bool, finalizer: bool) -> Value {
    let status =
        json!([{"name": "gw/ext", "interface": "net1", "ips": [addr(g, moved)]}]).to_string();
    let mut meta = json!({"name": format!("g{g}"), "namespace": NS, "labels": {"role": "gw"},
        "annotations": {"k8s.v1.cni.cncf.io/network-status": status}});
    if finalizer {
        meta["finalizers"] = json!(["bench.example.com/drain"]);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": "node-0", "containers": [{"name": "gw", "image": "gw"}]}})
}

fn status(ready: bool) -> Value {
    json!({"phase": "Running", "conditions": [{"type": "Ready",
        "status": if ready { "True" } else { "False" }}]})
}

fn route(group: usize) -> Value {
    json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "gw"},
        "spec": {"podSelector": {"matchLabels": {"app": format!("a{group}")}},
            "route": [{"dst": DST, "dev": "eth1"}],
            "ovn": {"nextHopPods": {"namespaceSelector": {"matchLabels": {"tier": "gw"}},
                "podSelector": {"matchLabels": {"role": "gw"}}, "network": "gw/ext"}}}})
}

/// The policy's match and next hops once the set is `hops`.
fn holds(hops: &[String]) -> Wait {
    let mut h = hops.to_vec();
    h.sort();
    Wait::Row(
        "Logical_Router_Policy",
        vec![
            (
                "match",
                json!(format!(
                    "ip4.src == $ovnkube_route_gw_v4 && ip4.dst == {DST}"
                )),
            ),
            ("nexthops", json!(["set", h])),
        ],
    )
}

struct Bench<'a> {
    api: Arc<ApiServer>,
    waiter: &'a mut Conn,
    /// Gateway -> (address moved, ready, selected).
    state: Vec<(bool, bool, bool)>,
}

impl Bench<'_> {
    fn hops(&self) -> Vec<String> {
        self.state
            .iter()
            .enumerate()
            .filter(|(_, s)| s.1 && s.2)
            .map(|(g, s)| addr(g, s.0))
            .collect()
    }

    /// Makes the change, then waits for the NB to hold the set the new state gives.
    fn timed(&mut self, change: impl FnOnce(&ApiServer)) -> Option<Duration> {
        let id = self.waiter.start_wait(&[holds(&self.hops())], LIMIT);
        std::thread::sleep(Duration::from_millis(2));
        let t = Instant::now();
        change(&self.api);
        let ok = self.waiter.waited(id);
        let d = t.elapsed();
        std::thread::sleep(Duration::from_millis(20));
        ok.then_some(d)
    }

    fn obj(g: usize) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("g{g}"), "namespace": NS}})
    }

    fn create(api: &ApiServer, g: usize, moved: bool, finalizer: bool, ready: bool) {
        let stored = api.create(pod(g, moved, finalizer)).unwrap();
        api.set_status(&stored, status(ready)).unwrap();
    }
}

/// Runs `n` samples of each kind; `member_group` is the label group the Route selects.
pub fn churn(
    api: &Arc<ApiServer>,
    waiter: &mut Conn,
    member_group: usize,
    n: usize,
) -> GatewayFigures {
    api.create(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "labels": {"tier": "gw"}}}))
        .unwrap();
    for g in 0..GATEWAYS {
        Bench::create(api, g, false, false, true);
    }
    let mut b = Bench {
        api: api.clone(),
        waiter,
        state: vec![(false, true, true); GATEWAYS],
    };
    let ready = b.timed(|api| {
        api.create(route(member_group)).unwrap();
    });
    assert!(ready.is_some(), "the gateway Route never reached the NB");
    let mut kinds: Vec<(&'static str, Samples)> = [
        "not ready",
        "ready",
        "terminating",
        "deleted",
        "added",
        "address change",
        "relabel out",
        "relabel in",
    ]
    .iter()
    .map(|k| (*k, Samples::default()))
    .collect();
    for k in 0..n {
        let g = k % GATEWAYS;
        let obj = Bench::obj(g);
        let mut push = |i: usize, d| kinds[i].1.0.push(d);
        b.state[g].1 = false;
        let o = obj.clone();
        push(
            0,
            b.timed(move |api| {
                api.set_status(&api_get(api, &o), status(false)).unwrap();
            }),
        );
        b.state[g].1 = true;
        let o = obj.clone();
        push(
            1,
            b.timed(move |api| {
                api.set_status(&api_get(api, &o), status(true)).unwrap();
            }),
        );
        // Terminating: the pod is re-created with a finalizer (not timed), then deleted.
        api.delete(&obj).unwrap();
        b.state[g].1 = false;
        let _ = b.timed(|_| {});
        b.state[g].1 = true;
        let _ = b.timed(|api| Bench::create(api, g, false, true, true));
        b.state[g].1 = false;
        let o = obj.clone();
        push(2, b.timed(move |api| api.delete(&o).unwrap()));
        api.merge(&obj, json!({"metadata": {"finalizers": null}}))
            .unwrap();
        b.state[g].1 = true;
        let _ = b.timed(|api| Bench::create(api, g, false, false, true));
        // Deleted, then added.
        b.state[g].1 = false;
        let o = obj.clone();
        push(3, b.timed(move |api| api.delete(&o).unwrap()));
        b.state[g].1 = true;
        push(4, b.timed(|api| Bench::create(api, g, false, false, true)));
        // A new address (and back, not timed).
        b.state[g].0 = true;
        let o = obj.clone();
        push(
            5,
            b.timed(move |api| {
                api.merge(&o, pod(g, true, false)).unwrap();
            }),
        );
        b.state[g].0 = false;
        let o = obj.clone();
        let _ = b.timed(move |api| {
            api.merge(&o, pod(g, false, false)).unwrap();
        });
        // Relabelled out of the selection and back.
        b.state[g].2 = false;
        let o = obj.clone();
        push(
            6,
            b.timed(move |api| {
                api.merge(&o, json!({"metadata": {"labels": {"role": "off"}}}))
                    .unwrap();
            }),
        );
        b.state[g].2 = true;
        let o = obj.clone();
        push(
            7,
            b.timed(move |api| {
                api.merge(&o, json!({"metadata": {"labels": {"role": "gw"}}}))
                    .unwrap();
            }),
        );
    }
    GatewayFigures { kinds }
}

fn api_get(api: &ApiServer, obj: &Value) -> Value {
    let m = &obj["metadata"];
    api.get(
        "v1",
        "Pod",
        m["namespace"].as_str(),
        m["name"].as_str().unwrap(),
    )
    .unwrap()
}
