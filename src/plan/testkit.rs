//! Builders for planner tests: Routes, pods, Services, namespaces, worlds.
//! Pods get a Calico-like eth0 address (`192.168.x.y`, `status.podIPs`) and an OVN-like
//! `k8s.ovn.org/pod-networks` entry (`10.124.x.y/24`, gateway `10.124.x.1`).
use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, Time,
};

use crate::api::{Route, RouteRule, RouteSpec, SvcRule, Target};
use crate::cluster::{
    EndpointSliceInfo, LinkKind, NamespaceInfo, OvnInfo, OwnerRef, PodInfo, PodInterface, PodPhase,
    ServiceInfo, WorkloadLink, World, WorldObject,
};

use super::pod::{NextHop, PodKey, PodRoutes};
use super::{Plan, PlanConfig};

pub fn rr(dst: &str, dev: &str) -> RouteRule {
    RouteRule {
        dst: dst.into(),
        dev: dev.into(),
        via: None,
    }
}

pub fn rrv(dst: &str, dev: &str, via: &str) -> RouteRule {
    RouteRule {
        via: Some(via.into()),
        ..rr(dst, dev)
    }
}

pub fn sr(ns: &str, name: &str, dev: &str) -> SvcRule {
    SvcRule {
        namespace: ns.into(),
        name: name.into(),
        dev: dev.into(),
        via: None,
    }
}

pub fn target(kind: &str, ns: Option<&str>, name: &str) -> Target {
    Target {
        kind: kind.into(),
        namespace: ns.map(Into::into),
        name: name.into(),
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(pairs)),
        match_expressions: None,
    }
}

pub fn sel_expr(key: &str, op: &str, values: &[&str]) -> LabelSelector {
    LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|s| s.to_string()).collect()),
        }]),
    }
}

/// A Route with route rules and svc rules; everything else default.
pub fn mk_route(name: &str, routes: Vec<RouteRule>, svcs: Vec<SvcRule>) -> Route {
    Route::new(
        name,
        RouteSpec {
            route: routes,
            svc: svcs,
            ..RouteSpec::default()
        },
    )
}

/// Sets creationTimestamp to `secs` after the epoch.
pub fn created(mut r: Route, secs: i64) -> Route {
    let ts = k8s_openapi::jiff::Timestamp::from_second(secs).expect("valid test timestamp");
    r.metadata.creation_timestamp = Some(Time(ts));
    r
}

fn octets(i: u32) -> (u32, u32) {
    (i / 250 % 250, i % 250 + 2)
}

fn name_index(s: &str) -> u32 {
    s.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 60_000
}

/// A running pod on `node1` with eth0 (podIPs) and eth1 (pod-networks).
pub fn mk_pod(ns: &str, name: &str) -> PodInfo {
    mk_pod_n(ns, name, name_index(&format!("{ns}/{name}")))
}

/// Like [`mk_pod`] with addresses derived from `i` (unique for i < 62,500).
pub fn mk_pod_n(ns: &str, name: &str, i: u32) -> PodInfo {
    let (a, b) = octets(i);
    PodInfo {
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{ns}-{name}"),
        node: Some("node1".into()),
        labels: Default::default(),
        host_network: false,
        owner: None,
        phase: PodPhase::Running,
        pod_ips: vec![format!("192.168.{a}.{b}").parse().unwrap()],
        ovn: Some(OvnInfo {
            ips: vec![format!("10.124.{a}.{b}/24").parse().unwrap()],
            gateways: vec![format!("10.124.{a}.1").parse().unwrap()],
            mac: None,
        }),
        interfaces: Box::default(),
        ready: true,
        terminating: false,
    }
}

pub fn with_labels(mut p: PodInfo, pairs: &[(&str, &str)]) -> PodInfo {
    p.labels = labels(pairs).into();
    p
}

pub fn owned_by(mut p: PodInfo, kind: &str, name: &str) -> PodInfo {
    p.owner = Some(OwnerRef {
        kind: kind.into(),
        name: name.into(),
    });
    p
}

pub fn on_node(mut p: PodInfo, node: &str) -> PodInfo {
    p.node = Some(node.into());
    p
}

/// A pod with only the default network (no OVN interface).
pub fn calico_only(mut p: PodInfo) -> PodInfo {
    p.ovn = None;
    p
}

/// Adds a `network-status`-style interface list.
pub fn with_interfaces(mut p: PodInfo, ifs: &[(&str, &[&str], &[&str])]) -> PodInfo {
    p.interfaces = ifs
        .iter()
        .map(|(name, ips, gws)| PodInterface {
            name: name.to_string(),
            network: String::new(),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            gateways: gws.iter().map(|s| s.parse().unwrap()).collect(),
            default: *name == "eth0",
        })
        .collect();
    p
}

pub fn mk_svc(ns: &str, name: &str, ips: &[&str]) -> ServiceInfo {
    ServiceInfo {
        namespace: ns.into(),
        name: name.into(),
        cluster_ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
        headless: false,
    }
}

pub fn mk_headless(ns: &str, name: &str) -> ServiceInfo {
    ServiceInfo {
        headless: true,
        ..mk_svc(ns, name, &[])
    }
}

pub fn mk_slice(ns: &str, name: &str, svc: &str, ready: &[&str]) -> EndpointSliceInfo {
    EndpointSliceInfo {
        namespace: ns.into(),
        name: name.into(),
        service: Some(svc.into()),
        ready: ready.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

pub fn mk_ns(name: &str, pairs: &[(&str, &str)]) -> NamespaceInfo {
    NamespaceInfo {
        name: name.into(),
        labels: labels(pairs),
    }
}

pub fn mk_link(kind: LinkKind, ns: &str, name: &str, owner_kind: &str, owner: &str) -> WorldObject {
    WorldObject::Link(
        kind,
        WorkloadLink {
            namespace: ns.into(),
            name: name.into(),
            owner: Some((owner_kind.into(), owner.into())),
        },
    )
}

pub fn world(objs: impl IntoIterator<Item = WorldObject>) -> World {
    let mut w = World::new();
    for o in objs {
        w.apply(o);
    }
    w
}

pub fn cfg() -> PlanConfig {
    PlanConfig::default()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The planned routes of a pod, or none.
pub fn routes_of<'p>(plan: &'p Plan, ns: &str, name: &str) -> Option<&'p PodRoutes> {
    plan.pods
        .iter()
        .find(|(k, _): &(&PodKey, _)| k.namespace == ns && k.name == name)
        .map(|(_, v)| &**v)
}

/// `dst dev` pairs of a pod's routes, as strings, sorted.
pub fn dst_dev(plan: &Plan, ns: &str, name: &str) -> Vec<(String, String)> {
    routes_of(plan, ns, name)
        .map(|r| {
            r.routes
                .iter()
                .map(|x| (x.dst.to_string(), x.dev.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn via(s: &str) -> NextHop {
    NextHop::Via(ip(s))
}

/// Pod names (ns/name) with at least one route.
pub fn planned_pods(plan: &Plan) -> Vec<String> {
    plan.pods.keys().map(|k| k.to_string()).collect()
}

/// The seed's `demo` CR, verbatim.
pub const SEED_DEMO: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata:
  name: demo
spec:
  route:
    - dst: "172.16.10.0/24"
      dev: "eth1"
    - dst: "172.16.11.0/24"
      dev: "eth0"
  svc:
    - namespace: "default"
      name: "nginx"
      dev: "eth1"
    - namespace: "kube-system"
      name: "nginx1"
      dev: "eth0"
    - namespace: "kube-system"
      name: "nginx2"
      dev: "eth0"
"#;
