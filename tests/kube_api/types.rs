//! The resource types the server serves: a set of built-in types (enough for the controller,
//! kubectl and `deploy/`) and every CustomResourceDefinition created at runtime.
use serde_json::{Value, json};

use super::errors::ApiError;
use super::store::TypeKey;

/// A printer column (`additionalPrinterColumns`).
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub type_: String,
    pub json_path: String,
    pub priority: i64,
    pub description: String,
}

#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    pub short_names: Vec<String>,
    /// Besides `Name` (and `Age` for built-ins).
    pub columns: Vec<Column>,
    /// `openAPIV3Schema` of a custom resource: pruning, defaulting, type checks. Shared:
    /// every request resolves its type by copy.
    pub schema: Option<std::sync::Arc<Value>>,
    /// Defined by a CRD: strategic merge patch is refused, updates need a resourceVersion.
    pub custom: bool,
    /// Field selectors supported besides `metadata.name` and `metadata.namespace`.
    pub field_labels: Vec<&'static str>,
}

impl ResourceType {
    pub fn key(&self) -> TypeKey {
        (self.group.clone(), self.plural.clone())
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn group_or_core(&self) -> &str {
        if self.group.is_empty() {
            ""
        } else {
            &self.group
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Updates without a resourceVersion are refused for custom resources (their strategy
    /// does not allow unconditional updates); built-ins here allow them.
    pub fn unconditional_update(&self) -> bool {
        !self.custom
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create", "delete", "get", "list", "patch", "update", "watch",
        ]
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
    short: &[&str],
    fields: &[&'static str],
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        status_subresource: status,
        short_names: short.iter().map(|s| (*s).to_owned()).collect(),
        columns: Vec::new(),
        schema: None,
        custom: false,
        field_labels: fields.to_vec(),
    }
}

pub fn builtins() -> Vec<ResourceType> {
    let mut pods = builtin(
        "",
        "v1",
        "pods",
        "Pod",
        true,
        true,
        &["po"],
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    );
    pods.columns = vec![
        Column {
            name: "Status".into(),
            type_: "string".into(),
            json_path: ".status.phase".into(),
            priority: 0,
            description: "The pod's phase".into(),
        },
        Column {
            name: "Node".into(),
            type_: "string".into(),
            json_path: ".spec.nodeName".into(),
            priority: 1,
            description: "The node it runs on".into(),
        },
    ];
    vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            true,
            &["ns"],
            &["status.phase"],
        ),
        pods,
        builtin("", "v1", "services", "Service", true, true, &["svc"], &[]),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            false,
            &["cm"],
            &[],
        ),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            false,
            &["sa"],
            &[],
        ),
        builtin(
            "",
            "v1",
            "nodes",
            "Node",
            false,
            true,
            &["no"],
            &["spec.unschedulable"],
        ),
        builtin(
            "",
            "v1",
            "events",
            "Event",
            true,
            false,
            &["ev"],
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "reason",
                "type",
            ],
        ),
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            true,
            &["deploy"],
            &[],
        ),
        builtin(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            true,
            true,
            &["rs"],
            &[],
        ),
        builtin(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            true,
            true,
            &["ds"],
            &[],
        ),
        builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            true,
            &["sts"],
            &[],
        ),
        builtin("batch", "v1", "jobs", "Job", true, true, &[], &[]),
        builtin(
            "batch",
            "v1",
            "cronjobs",
            "CronJob",
            true,
            true,
            &["cj"],
            &[],
        ),
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            false,
            &[],
            &["addressType"],
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            false,
            &[],
            &[],
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            false,
            &["ev"],
            &[
                "regarding.kind",
                "regarding.name",
                "regarding.namespace",
                "reason",
                "type",
            ],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            false,
            &[],
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            false,
            &[],
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            false,
            &[],
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            false,
            &[],
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
            &["crd", "crds"],
            &[],
        ),
    ]
}

/// The served, storage version of a CRD as a resource type; an error names what is wrong.
pub fn from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = crd.get("spec").ok_or("spec: Required value")?;
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let group = s(spec, "/group").ok_or("spec.group: Required value")?;
    let plural = s(spec, "/names/plural").ok_or("spec.names.plural: Required value")?;
    let kind = s(spec, "/names/kind").ok_or("spec.names.kind: Required value")?;
    let scope = s(spec, "/scope").ok_or("spec.scope: Required value")?;
    let want_name = format!("{plural}.{group}");
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name != want_name {
        return Err(format!(
            "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group ({want_name})"
        ));
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions: Required value")?;
    let version = versions
        .iter()
        .find(|v| v.get("storage") == Some(&json!(true)))
        .or_else(|| versions.first())
        .ok_or("spec.versions: must have exactly one storage version")?;
    let columns = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| Column {
                    name: s(c, "/name").unwrap_or_default(),
                    type_: s(c, "/type").unwrap_or_else(|| "string".into()),
                    json_path: s(c, "/jsonPath").unwrap_or_default(),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    description: s(c, "/description").unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ResourceType {
        group,
        version: s(version, "/name").ok_or("spec.versions[0].name: Required value")?,
        singular: s(spec, "/names/singular").unwrap_or_else(|| kind.to_lowercase()),
        plural,
        kind,
        namespaced: scope == "Namespaced",
        status_subresource: version.pointer("/subresources/status").is_some(),
        short_names: spec
            .pointer("/names/shortNames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        columns,
        schema: version
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .map(std::sync::Arc::new),
        custom: true,
        field_labels: Vec::new(),
    })
}

/// Object names: DNS subdomains (namespaces: DNS labels).
pub fn check_name(kind: &str, name: &str) -> Option<ApiError> {
    let label = kind == "Namespace";
    let max = if label { 63 } else { 253 };
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label && c == '.');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = !name.is_empty()
        && name.len() <= max
        && name.chars().all(ok_char)
        && edge(name.chars().next())
        && edge(name.chars().last());
    (!valid).then(|| {
        ApiError::invalid(
            kind,
            name,
            &format!(
                "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-'{}, and must start and end with an alphanumeric character",
                if label { "label" } else { "subdomain" },
                if label { "" } else { " or '.'" }
            ),
        )
    })
}
