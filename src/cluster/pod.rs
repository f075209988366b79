//! The compact pod the planner needs, parsed from a Kubernetes Pod.
//!
//! Owns the reading of the two network annotations. A missing field or a garbage
//! annotation means "no information", never an error: the pod is still known, only that
//! detail is absent.
use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// `k8s.ovn.org/pod-networks`: OVN-Kubernetes' record of the pod's addresses per network.
pub const OVN_POD_NETWORKS: &str = "k8s.ovn.org/pod-networks";
/// `k8s.v1.cni.cncf.io/network-status`: Multus' list of the pod's interfaces.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// The OVN network's view of a pod (the `default` entry of `k8s.ovn.org/pod-networks`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OvnInfo {
    pub ips: Vec<IpNet>,
    pub gateways: Vec<IpAddr>,
    pub mac: Option<String>,
}

/// One interface from `k8s.v1.cni.cncf.io/network-status`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodInterface {
    pub name: String,
    /// The entry's `name`: the network (`namespace/name` of a NetworkAttachmentDefinition,
    /// or a bare name for the cluster's default network).
    pub network: String,
    pub ips: Vec<IpAddr>,
    pub gateways: Vec<IpAddr>,
    pub default: bool,
}

/// The controller (or first) owner reference: kind and name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
}

/// Pod phase, only as far as the planner cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    /// Succeeded or Failed: the pod's sandbox is gone or going; nothing to program.
    Finished,
    Unknown,
}

/// What the planner knows about one pod.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    pub labels: super::Labels,
    pub host_network: bool,
    pub owner: Option<OwnerRef>,
    pub phase: PodPhase,
    /// `status.podIPs` (the default network's addresses).
    pub pod_ips: Vec<IpAddr>,
    /// From `k8s.ovn.org/pod-networks`, when present and parseable.
    pub ovn: Option<OvnInfo>,
    /// From `k8s.v1.cni.cncf.io/network-status`, when present and parseable; else empty.
    pub interfaces: Box<[PodInterface]>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set: the pod is going.
    pub terminating: bool,
}

impl PodInfo {
    /// Equal but for `ready` and `terminating` (every other field listed, so a new field
    /// cannot be forgotten here).
    pub fn same_but_readiness(&self, other: &PodInfo) -> bool {
        let PodInfo {
            namespace,
            name,
            uid,
            node,
            labels,
            host_network,
            owner,
            phase,
            pod_ips,
            ovn,
            interfaces,
            ready: _,
            terminating: _,
        } = self;
        *namespace == other.namespace
            && *name == other.name
            && *uid == other.uid
            && *node == other.node
            && *labels == other.labels
            && *host_network == other.host_network
            && *owner == other.owner
            && *phase == other.phase
            && *pod_ips == other.pod_ips
            && *ovn == other.ovn
            && *interfaces == other.interfaces
    }

    /// The OVN logical switch port name ovn-kubernetes gives the pod.
    pub fn lsp_name(&self) -> String {
        format!("{}_{}", self.namespace, self.name)
    }
}

#[derive(Deserialize)]
struct RawPodNetwork {
    #[serde(default)]
    ip_addresses: Vec<String>,
    #[serde(default)]
    ip_address: Option<String>,
    #[serde(default)]
    gateway_ips: Vec<String>,
    #[serde(default)]
    gateway_ip: Option<String>,
    #[serde(default)]
    mac_address: Option<String>,
}

/// Parses the `default` network of a `k8s.ovn.org/pod-networks` value. Addresses that do
/// not parse are dropped; an entry with no address at all counts as no information.
pub fn parse_pod_networks(value: &str) -> Option<OvnInfo> {
    let nets: BTreeMap<String, RawPodNetwork> = serde_json::from_str(value).ok()?;
    let raw = nets.get("default")?;
    let mut ips: Vec<IpNet> = raw
        .ip_addresses
        .iter()
        .chain(raw.ip_address.iter())
        .filter_map(|s| parse_addr_or_cidr(s))
        .collect();
    dedup_keep_order(&mut ips);
    let mut gateways: Vec<IpAddr> = raw
        .gateway_ips
        .iter()
        .chain(raw.gateway_ip.iter())
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    dedup_keep_order(&mut gateways);
    if ips.is_empty() {
        return None;
    }
    Some(OvnInfo {
        ips,
        gateways,
        mac: raw.mac_address.clone().filter(|m| !m.is_empty()),
    })
}

#[derive(Deserialize)]
struct RawNetworkStatus {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    gateway: Vec<String>,
    #[serde(default)]
    default: bool,
}

/// Parses `k8s.v1.cni.cncf.io/network-status`. Entries without an interface name (Multus
/// writes them for some plugins) are dropped; garbage gives an empty list.
pub fn parse_network_status(value: &str) -> Vec<PodInterface> {
    let Ok(raw) = serde_json::from_str::<Vec<serde_json::Value>>(value) else {
        return Vec::new();
    };
    raw.into_iter()
        .filter_map(|v| serde_json::from_value::<RawNetworkStatus>(v).ok())
        .filter_map(|r| {
            let name = r.interface.filter(|n| !n.is_empty())?;
            Some(PodInterface {
                name,
                network: r.name.unwrap_or_default(),
                ips: exact(
                    r.ips
                        .iter()
                        .filter_map(|s| parse_addr_or_cidr(s).map(|n| n.addr()))
                        .collect(),
                ),
                gateways: exact(
                    r.gateway
                        .iter()
                        .filter_map(|s| s.trim().parse().ok())
                        .collect(),
                ),
                default: r.default,
            })
        })
        .collect()
}

/// `v` without spare capacity (a collected `filter_map` starts at four elements; these
/// lists are held for every pod for the process lifetime).
fn exact<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

fn parse_addr_or_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn dedup_keep_order<T: PartialEq + Clone>(v: &mut Vec<T>) {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v.drain(..) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    *v = out;
}

/// The fields of a Kubernetes Pod the world reads, and nothing more: a list of pods
/// decoded into this skips the containers, volumes and container statuses that a full
/// `Pod` decodes (about half of each object; at 50,000 pods the decoding is most of a
/// list's cost on the client).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PodFields {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<PodSpecFields>,
    #[serde(default)]
    pub status: Option<PodStatusFields>,
}

/// `spec`: where the pod runs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecFields {
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub host_network: Option<bool>,
}

/// `status`: phase, addresses and conditions.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusFields {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIpField>>,
    #[serde(default)]
    pub conditions: Option<Vec<PodConditionFields>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PodIpField {
    #[serde(default)]
    pub ip: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PodConditionFields {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
}

impl From<&Pod> for PodFields {
    fn from(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        PodFields {
            metadata: pod.metadata.clone(),
            spec: spec.map(|s| PodSpecFields {
                node_name: s.node_name.clone(),
                host_network: s.host_network,
            }),
            status: status.map(|s| PodStatusFields {
                phase: s.phase.clone(),
                pod_ip: s.pod_ip.clone(),
                pod_ips: s.pod_ips.as_ref().map(|ips| {
                    ips.iter()
                        .map(|p| PodIpField { ip: p.ip.clone() })
                        .collect()
                }),
                conditions: s.conditions.as_ref().map(|cs| {
                    cs.iter()
                        .map(|c| PodConditionFields {
                            type_: c.type_.clone(),
                            status: c.status.clone(),
                        })
                        .collect()
                }),
            }),
        }
    }
}

impl From<&Pod> for PodInfo {
    fn from(pod: &Pod) -> Self {
        PodInfo::from(&PodFields::from(pod))
    }
}

impl From<&PodFields> for PodInfo {
    fn from(pod: &PodFields) -> Self {
        let meta = &pod.metadata;
        let annotations = meta.annotations.as_ref();
        let ann = |k: &str| annotations.and_then(|a| a.get(k));
        let owners = meta.owner_references.as_deref().unwrap_or_default();
        let owner = owners
            .iter()
            .find(|o| o.controller == Some(true))
            .or_else(|| owners.first())
            .map(|o| OwnerRef {
                kind: o.kind.clone(),
                name: o.name.clone(),
            });
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Running") => PodPhase::Running,
            Some("Succeeded") | Some("Failed") => PodPhase::Finished,
            Some("Pending") | None => PodPhase::Pending,
            Some(_) => PodPhase::Unknown,
        };
        let mut pod_ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| p.ip.trim().parse().ok())
            .collect();
        if pod_ips.is_empty()
            && let Some(ip) = status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|s| s.trim().parse().ok())
        {
            pod_ips.push(ip);
        }
        let pod_ips = exact(pod_ips);
        PodInfo {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            node: spec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            labels: meta
                .labels
                .as_ref()
                .map(super::Labels::from)
                .unwrap_or_default(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            owner,
            phase,
            pod_ips,
            ovn: ann(OVN_POD_NETWORKS).and_then(|v| parse_pod_networks(v)),
            interfaces: ann(NETWORK_STATUS)
                .map(|v| parse_network_status(v).into_boxed_slice())
                .unwrap_or_default(),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            terminating: meta.deletion_timestamp.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_PN: &str = r#"{"default":{"ip_addresses":["10.124.0.3/24"],"mac_address":"0a:58:0a:7c:00:03","gateway_ips":["10.124.0.1"],"ip_address":"10.124.0.3/24","gateway_ip":"10.124.0.1"}}"#;

    #[test]
    fn seed_pod_networks_annotation_parses() {
        let info = parse_pod_networks(SEED_PN).unwrap();
        assert_eq!(info.ips, vec!["10.124.0.3/24".parse::<IpNet>().unwrap()]);
        assert_eq!(info.gateways, vec!["10.124.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(info.mac.as_deref(), Some("0a:58:0a:7c:00:03"));
    }

    #[test]
    fn garbage_annotations_mean_no_information() {
        for bad in [
            "",
            "{",
            "[]",
            "null",
            r#"{"other":{"ip_addresses":["10.0.0.1/24"]}}"#,
            r#"{"default":{"ip_addresses":["nope"]}}"#,
            r#"{"default":{"ip_addresses":5}}"#,
        ] {
            assert_eq!(parse_pod_networks(bad), None, "{bad}");
        }
        for bad in ["", "{}", "[1,2]", r#"[{"ips":["10.0.0.1"]}]"#, "garbage"] {
            assert!(parse_network_status(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn network_status_lists_interfaces_with_gateways() {
        let v = r#"[{"name":"k8s-pod-network","interface":"eth0","ips":["192.168.1.5"],"default":true,"dns":{}},
                    {"name":"default/ovn","interface":"eth1","ips":["10.124.2.5","fd00::5"],"gateway":["10.124.2.1","bad"],"mac":"x"},
                    "junk"]"#;
        let ifs = parse_network_status(v);
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[0].name, "eth0");
        assert_eq!(ifs[1].network, "default/ovn");
        assert!(ifs[0].default);
        assert_eq!(ifs[1].ips.len(), 2);
        assert_eq!(
            ifs[1].gateways,
            vec!["10.124.2.1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn pod_conversion_tolerates_missing_fields() {
        let p = PodInfo::from(&Pod::default());
        assert_eq!(p.name, "");
        assert_eq!(p.phase, PodPhase::Pending);
        assert!(p.ovn.is_none() && p.interfaces.is_empty() && p.owner.is_none());

        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": "web-7d4f9c-abcde", "uid": "u1",
                "labels": {"app": "web"},
                "annotations": {OVN_POD_NETWORKS: SEED_PN, NETWORK_STATUS: "not json"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "1"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4f9c", "uid": "2", "controller": true}]},
            "spec": {"nodeName": "node1", "containers": []},
            "status": {"phase": "Running", "podIP": "192.168.1.5"}
        }))
        .unwrap();
        let p = PodInfo::from(&pod);
        assert_eq!(p.owner.as_ref().unwrap().kind, "ReplicaSet");
        assert_eq!(p.node.as_deref(), Some("node1"));
        assert_eq!(p.phase, PodPhase::Running);
        assert_eq!(p.pod_ips, vec!["192.168.1.5".parse::<IpAddr>().unwrap()]);
        assert!(p.ovn.is_some());
        assert!(p.interfaces.is_empty());
        assert_eq!(p.lsp_name(), "default_web-7d4f9c-abcde");
        assert!(!p.ready && !p.terminating);

        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "gw", "name": "g1", "deletionTimestamp": "2026-12-07T10:00:00Z"},
            "status": {"phase": "Running", "conditions": [
                {"type": "ContainersReady", "status": "False"},
                {"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let p = PodInfo::from(&pod);
        assert!(p.ready && p.terminating);
    }

    #[test]
    fn the_fields_read_from_a_list_are_those_of_the_full_pod() {
        let j = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "ns-1", "name": "p-1", "uid": "u1",
                "labels": {"app": "a1", "tier": "t1"},
                "annotations": {OVN_POD_NETWORKS: SEED_PN,
                    NETWORK_STATUS: r#"[{"name":"ovn","interface":"eth1","ips":["10.124.0.3"]}]"#},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "d1-5d9f7c", "uid": "rs1", "controller": true}],
                "managedFields": [{"manager": "kubelet", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:phase": {}}}}]},
            "spec": {"nodeName": "node-7", "hostNetwork": false, "restartPolicy": "Always",
                "containers": [{"name": "app", "image": "r/app:1",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "MODE", "value": "x"}],
                    "resources": {"requests": {"cpu": "100m"}}}],
                "volumes": [{"name": "v", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]},
            "status": {"phase": "Running", "podIP": "192.168.0.9",
                "podIPs": [{"ip": "192.168.0.9"}, {"ip": "fd00::9"}],
                "conditions": [{"type": "Ready", "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:05Z"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                    "image": "r/app:1", "imageID": "r/app@sha256:01",
                    "state": {"running": {"startedAt": "2026-01-01T00:00:04Z"}}}]}
        });
        let full: Pod = serde_json::from_value(j.clone()).unwrap();
        let fields: PodFields = serde_json::from_value(j).unwrap();
        let (a, b) = (PodInfo::from(&full), PodInfo::from(&fields));
        assert_eq!(a, b);
        assert_eq!(b.node.as_deref(), Some("node-7"));
        assert_eq!(b.pod_ips.len(), 2);
        assert!(b.ready && b.ovn.is_some() && b.interfaces.len() == 1);
        // Nulls and missing sections mean no information, as for a full Pod.
        let empty: PodFields = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x"}, "spec": null,
            "status": {"podIPs": null, "conditions": null}
        }))
        .unwrap();
        let p = PodInfo::from(&empty);
        assert!(p.pod_ips.is_empty() && !p.ready && p.node.is_none());
    }
}
