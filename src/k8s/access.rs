//! Every Kubernetes API call this controller makes, as (group, resource, verbs): the one list
//! `deploy/rbac.yaml` must grant exactly (a test compares them), and that the scenario tests
//! check every request the controller sends against.
//!
//! Keep it next to the calls: a new call without its line here fails those tests.

/// One resource and the verbs used on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// Plural resource name, with `/subresource` where one is used.
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// Why the controller needs it.
    pub why: &'static str,
}

pub const ACCESS: &[Access] = &[
    Access {
        group: "k8s.ovn.org",
        resource: "routes",
        verbs: &["list", "watch"],
        why: "the Routes to program (watch.rs)",
    },
    Access {
        group: "k8s.ovn.org",
        resource: "routes/status",
        verbs: &["patch"],
        why: "Route status, server-side apply by the status writer (status.rs)",
    },
    Access {
        group: "k8s.ovn.org",
        resource: "routenodereports",
        // get: compare before the first write (no write when unchanged); patch and create:
        // server-side apply creates the report when it does not exist yet.
        verbs: &["get", "list", "watch", "create", "patch"],
        why: "each node's report, written by that node, read by the status writer (status.rs)",
    },
    Access {
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
        why: "this node's pods (field selector), every pod for the central NB writer",
    },
    Access {
        group: "",
        resource: "services",
        verbs: &["list", "watch"],
        why: "svc rules follow ClusterIPs",
    },
    Access {
        group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
        why: "namespaceSelector (metadata only)",
    },
    Access {
        group: "discovery.k8s.io",
        resource: "endpointslices",
        verbs: &["list", "watch"],
        why: "headless Services' ready endpoints (label selector: headless only)",
    },
    Access {
        group: "apps",
        resource: "replicasets",
        verbs: &["list", "watch"],
        why: "Deployment targets: pod -> ReplicaSet -> Deployment (metadata only)",
    },
    Access {
        group: "batch",
        resource: "jobs",
        verbs: &["list", "watch"],
        why: "CronJob targets: pod -> Job -> CronJob (metadata only)",
    },
    Access {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        why: "leader election: one Lease in the controller's namespace (lease.rs)",
    },
    Access {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        why: "Events on Routes that fail (status.rs, kube's recorder)",
    },
];

/// Whether a request with this verb on this resource is in [`ACCESS`].
pub fn allowed(group: &str, resource: &str, verb: &str) -> bool {
    ACCESS
        .iter()
        .any(|a| a.group == group && a.resource == resource && a.verbs.contains(&verb))
}
