//! Compact Services, EndpointSlices, Namespaces and workload ownership links, parsed from
//! their Kubernetes objects. Missing fields mean "not known", never an error.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Label on an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service: its ClusterIPs, or headless.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    /// All families (`spec.clusterIPs`, else `spec.clusterIP`); empty when headless or
    /// ExternalName.
    pub cluster_ips: Vec<IpAddr>,
    /// `clusterIP: None`: traffic goes to the ready endpoints directly.
    pub headless: bool,
}

impl From<&Service> for ServiceInfo {
    fn from(svc: &Service) -> Self {
        let spec = svc.spec.as_ref();
        let raw: Vec<String> = spec
            .and_then(|s| s.cluster_ips.clone())
            .filter(|v| !v.is_empty())
            .or_else(|| spec.and_then(|s| s.cluster_ip.clone()).map(|ip| vec![ip]))
            .unwrap_or_default();
        let headless = raw.iter().any(|s| s == "None");
        let mut cluster_ips: Vec<IpAddr> =
            raw.iter().filter_map(|s| s.trim().parse().ok()).collect();
        cluster_ips.dedup();
        ServiceInfo {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name: svc.metadata.name.clone().unwrap_or_default(),
            cluster_ips,
            headless,
        }
    }
}

/// One EndpointSlice's ready addresses.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EndpointSliceInfo {
    pub namespace: String,
    pub name: String,
    /// From the `kubernetes.io/service-name` label; a slice without it is kept but unused.
    pub service: Option<String>,
    /// Addresses of endpoints whose `ready` condition is true or unknown (Kubernetes
    /// treats an absent `ready` as ready).
    pub ready: BTreeSet<IpAddr>,
}

impl From<&EndpointSlice> for EndpointSliceInfo {
    fn from(s: &EndpointSlice) -> Self {
        let ready = s
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .flat_map(|e| e.addresses.iter())
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        EndpointSliceInfo {
            namespace: s.metadata.namespace.clone().unwrap_or_default(),
            name: s.metadata.name.clone().unwrap_or_default(),
            service: label(&s.metadata, SERVICE_NAME_LABEL),
            ready,
        }
    }
}

fn label(meta: &ObjectMeta, key: &str) -> Option<String> {
    meta.labels.as_ref().and_then(|l| l.get(key)).cloned()
}

/// A namespace and its labels (for namespace selectors).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl NamespaceInfo {
    /// From a namespace's metadata alone (what a metadata-only watch delivers).
    pub fn from_meta(meta: &ObjectMeta) -> Self {
        NamespaceInfo {
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
        }
    }
}

impl From<&Namespace> for NamespaceInfo {
    fn from(ns: &Namespace) -> Self {
        NamespaceInfo::from_meta(&ns.metadata)
    }
}

/// Kinds of intermediate workloads whose owner the planner follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkKind {
    /// A ReplicaSet, usually owned by a Deployment.
    ReplicaSet,
    /// A Job, possibly owned by a CronJob.
    Job,
}

/// "This ReplicaSet / Job belongs to that Deployment / CronJob".
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WorkloadLink {
    pub namespace: String,
    pub name: String,
    /// Controller owner (kind, name), e.g. `("Deployment", "web")`.
    pub owner: Option<(String, String)>,
}

fn controller_owner(meta: &ObjectMeta) -> Option<(String, String)> {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    refs.iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| refs.first())
        .map(|o| (o.kind.clone(), o.name.clone()))
}

impl WorkloadLink {
    /// From a ReplicaSet's or Job's metadata alone (what a metadata-only watch delivers).
    pub fn from_meta(meta: &ObjectMeta) -> Self {
        WorkloadLink {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            owner: controller_owner(meta),
        }
    }
}

impl From<&ReplicaSet> for WorkloadLink {
    fn from(rs: &ReplicaSet) -> Self {
        WorkloadLink::from_meta(&rs.metadata)
    }
}

impl From<&Job> for WorkloadLink {
    fn from(job: &Job) -> Self {
        WorkloadLink::from_meta(&job.metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_headless_dual_stack_and_garbage() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": "nginx"},
            "spec": {"clusterIP": "10.86.205.109", "clusterIPs": ["10.86.205.109", "fd00::10", "junk"]}
        }))
        .unwrap();
        let s = ServiceInfo::from(&svc);
        assert_eq!(s.cluster_ips.len(), 2);
        assert!(!s.headless);
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": "db"}, "spec": {"clusterIP": "None"}
        }))
        .unwrap();
        let h = ServiceInfo::from(&headless);
        assert!(h.headless && h.cluster_ips.is_empty());
        let empty = ServiceInfo::from(&Service::default());
        assert!(!empty.headless && empty.cluster_ips.is_empty());
    }

    #[test]
    fn endpoint_slices_keep_ready_or_unknown_only() {
        let es: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": "db-abc", "labels": {SERVICE_NAME_LABEL: "db"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.124.1.5"], "conditions": {"ready": true}},
                {"addresses": ["10.124.1.6"], "conditions": {"ready": false}},
                {"addresses": ["10.124.1.7", "bad"]}
            ]
        }))
        .unwrap();
        let s = EndpointSliceInfo::from(&es);
        assert_eq!(s.service.as_deref(), Some("db"));
        let got: Vec<String> = s.ready.iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["10.124.1.5", "10.124.1.7"]);
    }

    #[test]
    fn workload_links_follow_controller_owner() {
        let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": "web-5d9f", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "1", "controller": true}]}
        }))
        .unwrap();
        let l = WorkloadLink::from(&rs);
        assert_eq!(l.owner, Some(("Deployment".into(), "web".into())));
        assert_eq!(WorkloadLink::from(&Job::default()).owner, None);
    }
}
