//! The `Route` custom resource (group `k8s.ovn.org`, version `v1`, cluster-scoped).
//!
//! Every CR that validates under the original (seed) CRD keeps validating and meaning the
//! same thing: `spec.route[] {dst, dev, via?}`, `spec.svc[] {namespace, name, dev, via?}`,
//! `spec.feature_gate`, `status.status`. Everything added here is optional.
//!
//! Fields hold what the user wrote (strings, not parsed addresses) so that one bad rule is
//! reported with its path while the valid rest of the CR still applies; parsing and checks
//! live in `api::validate`.
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::limits;

/// Desired routing for the pods a Route selects.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "k8s.ovn.org",
    version = "v1",
    kind = "Route",
    plural = "routes",
    singular = "route",
    shortname = "route",
    status = "RouteStatus",
    derive = "PartialEq",
    doc = "Route decides, per workload, which pod interface (and OVN next hop) traffic to given destinations and Services uses.",
    printcolumn = r#"{"name":"Route Status","type":"string","jsonPath":".status.status"}"#,
    printcolumn = r#"{"name":"Selected","type":"integer","jsonPath":".status.selectedPods","priority":1}"#,
    printcolumn = r#"{"name":"Programmed","type":"integer","jsonPath":".status.programmedPods","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// Destination CIDRs and the pod interface that reaches them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ROUTE_RULES))]
    pub route: Vec<RouteRule>,
    /// Services whose ClusterIP(s) (or ready endpoints, when headless) are reached over `dev`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::SVC_RULES))]
    pub svc: Vec<SvcRule>,
    /// Free-form switches kept from the original API for extensibility.
    #[serde(
        rename = "feature_gate",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub feature_gate: BTreeMap<String, String>,
    /// Selects pods by label. With no selection at all, the Route applies to every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::pod_selector")]
    pub pod_selector: Option<LabelSelector>,
    /// Selects the namespaces whose pods the Route applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::namespace_selector")]
    pub namespace_selector: Option<LabelSelector>,
    /// Selects pods by name or by the workload that owns them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::TARGETS))]
    pub targets: Vec<Target>,
    /// Pods and namespaces never touched by this Route, whatever selects them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Exclude>,
    /// Replace the selected pods' default route; the original is restored when removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<DefaultRouteRule>,
    /// Resolves conflicts between Routes for the same pod and destination: higher wins;
    /// ties go to the older Route, then to the name that sorts first.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = i32::MIN, max = i32::MAX))]
    pub priority: i32,
    /// OVN-side behaviour: logical router policies, next hops, enforcement ACLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovn: Option<OvnSpec>,
}

fn is_zero(i: &i32) -> bool {
    *i == 0
}

/// `dst via <via or the dev's gateway> dev <dev>` in each selected pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = crate::api::rules::ROUTE_FAMILY)]
pub struct RouteRule {
    /// Destination network, an IPv4 or IPv6 CIDR (a bare address means a host route).
    #[schemars(length(max = limits::ADDRESS_CHARS))]
    #[x_kube(validation = crate::api::rules::DST_NOT_EMPTY)]
    #[x_kube(validation = crate::api::rules::DST_IS_CIDR)]
    #[x_kube(validation = crate::api::rules::DST_NOT_DEFAULT)]
    #[x_kube(validation = crate::api::rules::DST_NO_HOST_BITS)]
    pub dst: String,
    /// Pod interface name, e.g. `eth0` (Calico) or `eth1` (OVN-Kubernetes).
    #[schemars(length(max = limits::DEV_CHARS))]
    #[x_kube(validation = crate::api::rules::ROUTE_DEV[0])]
    #[x_kube(validation = crate::api::rules::ROUTE_DEV[1])]
    #[x_kube(validation = crate::api::rules::ROUTE_DEV[2])]
    pub dev: String,
    /// Gateway address; empty or absent means the interface's gateway, else a link route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::ADDRESS_CHARS))]
    #[x_kube(validation = crate::api::rules::ROUTE_VIA)]
    pub via: Option<String>,
}

/// The Service's ClusterIP(s) as host routes over `dev`; follows the Service live.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct SvcRule {
    #[schemars(length(max = limits::NAME_CHARS))]
    #[x_kube(validation = crate::api::rules::SVC_NAMESPACE)]
    pub namespace: String,
    #[schemars(length(max = limits::NAME_CHARS))]
    #[x_kube(validation = crate::api::rules::SVC_NAME)]
    pub name: String,
    #[schemars(length(max = limits::DEV_CHARS))]
    #[x_kube(validation = crate::api::rules::SVC_DEV[0])]
    #[x_kube(validation = crate::api::rules::SVC_DEV[1])]
    #[x_kube(validation = crate::api::rules::SVC_DEV[2])]
    pub dev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::ADDRESS_CHARS))]
    #[x_kube(validation = crate::api::rules::SVC_VIA)]
    pub via: Option<String>,
}

/// A pod, a namespace, or the pods of a workload.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = crate::api::rules::TARGET_NEEDS_NAMESPACE)]
pub struct Target {
    /// One of Pod, Deployment, DaemonSet, StatefulSet, ReplicaSet, Job, CronJob, Namespace.
    #[schemars(length(max = limits::TARGET_KIND_CHARS))]
    #[schemars(extend("enum" = ["Pod", "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob", "Namespace"]))]
    pub kind: String,
    /// Required for every kind but Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::NAME_CHARS))]
    #[x_kube(validation = crate::api::rules::TARGET_NAMESPACE)]
    pub namespace: Option<String>,
    #[schemars(length(max = limits::NAME_CHARS))]
    #[x_kube(validation = crate::api::rules::TARGET_NAME)]
    pub name: String,
}

/// Pods that a Route never applies to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exclude {
    /// `namespace/name` of pods to leave alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::exclude_pods")]
    pub pods: Vec<String>,
    /// Namespaces whose pods are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::exclude_namespaces")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::exclude_pod_selector")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::exclude_namespace_selector")]
    pub namespace_selector: Option<LabelSelector>,
}

/// The replacement default route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct DefaultRouteRule {
    #[schemars(length(max = limits::DEV_CHARS))]
    #[x_kube(validation = crate::api::rules::DEFAULT_ROUTE_DEV[0])]
    #[x_kube(validation = crate::api::rules::DEFAULT_ROUTE_DEV[1])]
    #[x_kube(validation = crate::api::rules::DEFAULT_ROUTE_DEV[2])]
    pub dev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::ADDRESS_CHARS))]
    #[x_kube(validation = crate::api::rules::DEFAULT_ROUTE_VIA)]
    pub via: Option<String>,
}

/// What the Route does inside OVN.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OvnSpec {
    /// Logical router for policies / static routes (default `ovn_cluster_router`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::ROUTER_CHARS))]
    #[x_kube(validation = crate::api::rules::OVN_ROUTER)]
    pub router: Option<String>,
    /// Reroute next hops for destinations sent over the OVN interface; several = ECMP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::next_hops")]
    pub next_hops: Vec<String>,
    /// Gateway pods whose addresses are next hops too: the Ready, not terminating pods the
    /// selectors pick. With `nextHops`, the union (sorted) is the ECMP set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_pods: Option<NextHopPods>,
    /// BFD to the next hops (static routes only): `true`, or the session timers
    /// `{minTx, minRx, detectMult}` (ms, ms, count) for the BFD rows this Route creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::bfd")]
    pub bfd: Option<serde_json::Value>,
    /// Replies to connections through the next hops come back through the hop that carried
    /// the request: per selected pod IP and hop, a `src-ip` static route with
    /// `options:ecmp_symmetric_reply` on the gateway router of the pod's node (`GR_<node>`).
    /// OVN has this for gateway routers only, and a src-ip route matches every destination of
    /// the pod: it needs `defaultRoute` over the OVN interface (see docs/semantics.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symmetric_reply: Option<bool>,
    /// Drop, in OVN, selected pods' traffic to destinations this Route sends over the other
    /// interface (fail closed when a pod's kernel route is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<bool>,
}

/// Gateway pods as next hops (`spec.ovn.nextHopPods`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NextHopPods {
    /// Namespaces of the gateway pods (required; `{}` is every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::hop_namespace_selector")]
    pub namespace_selector: Option<LabelSelector>,
    /// The gateway pods in those namespaces (required; `{}` is every pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::hop_pod_selector")]
    pub pod_selector: Option<LabelSelector>,
    /// `namespace/name` of the NetworkAttachmentDefinition whose address (from
    /// `k8s.v1.cni.cncf.io/network-status`) is the hop; absent: the pod's OVN address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::POD_REF_CHARS))]
    pub network: Option<String>,
}

/// One next hop as the controller sees it (`status.nextHops`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NextHopStatus {
    pub address: String,
    /// `namespace/name` of the gateway pod it is the address of; absent for `nextHops`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Whether it is in the ECMP set the controller writes.
    pub used: bool,
    /// Why not, when it is not (CamelCase, e.g. `NotReady`, `Terminating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The BFD session's state as ovn-northd copied it to the NB (`up`, `down`,
    /// `admin_down`), when the hop has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<String>,
}

/// Observed state. `status` is the one-word summary the original API printed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// Applied, Degraded, Invalid or Pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Degraded, Invalid (metav1.Condition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_pods: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programmed_pods: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_pods: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_pods: Option<i64>,
    /// Selected pods not programmable yet (starting, or no network namespace found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_pods: Option<i64>,
    /// (pod, rule) pairs skipped because a selected pod lacks the rule's interface or
    /// address family ("a pod without the named interface does not get that route").
    /// Not part of the pod counts: such a pod still counts as programmed when its other
    /// rules are in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_rules: Option<i64>,
    /// A bounded list of per-rule and per-pod problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    /// Problems beyond the bound of `problems`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems_omitted: Option<i64>,
    /// Nodes that report failed pods or node-side problems for this Route (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_nodes: Vec<String>,
    /// Failing nodes beyond the bound of `failingNodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_nodes_omitted: Option<i64>,
    /// The next hops (static and gateway pods), bounded like `problems`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_hops: Vec<NextHopStatus>,
}

/// One thing that is wrong with a rule or with a pod, in words an operator can act on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Problem {
    /// Where in the spec, e.g. `spec.route[2].dst`; absent for pod-level problems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `namespace/name` of the pod concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The node that reported it, for problems only that node sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// CamelCase machine-readable reason, e.g. `InvalidCIDR`, `Conflict`, `ServiceNotFound`.
    pub reason: String,
    pub message: String,
}
