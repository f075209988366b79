//! The OVN side of the plan: the Northbound rows that should exist, owned by us.
//! This is the contract between the planner (producer) and `nb` (the reconciler, consumer).
//!
//! Every row carries ownership `external_ids` (ovn-kubernetes' convention, see
//! [`Owner::external_ids`]); the reconciler matches desired and existing rows by table and
//! `k8s.ovn.org/id`, and never touches a row without `k8s.ovn.org/owner-controller=ovnkube-route`.
use std::collections::{BTreeMap, BTreeSet};

pub const OWNER_CONTROLLER_KEY: &str = "k8s.ovn.org/owner-controller";
pub const OWNER_TYPE_KEY: &str = "k8s.ovn.org/owner-type";
pub const NAME_KEY: &str = "k8s.ovn.org/name";
pub const ID_KEY: &str = "k8s.ovn.org/id";
pub const OWNER_CONTROLLER: &str = "ovnkube-route";
pub const OWNER_TYPE: &str = "Route";

/// Who owns a row: the Route CR's name and a stable id unique within the row's table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    pub route: String,
    pub id: String,
}

impl Owner {
    /// The destination (CIDR) a policy, static route or ACL row is for, read back from its
    /// id (`<route>/policy/<dst>`, `<route>/static-route/<dst>/<next hop>`,
    /// `<route>/acl/<dst>`); `None` for Address_Sets and Port_Groups.
    pub fn destination(&self) -> Option<&str> {
        let rest = self
            .id
            .strip_prefix(self.route.as_str())?
            .strip_prefix('/')?;
        let (kind, rest) = rest.split_once('/')?;
        match kind {
            "policy" | "acl" => Some(rest),
            "static-route" => rest.rsplit_once('/').map(|(dst, _hop)| dst),
            _ => None,
        }
    }

    pub fn external_ids(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (OWNER_CONTROLLER_KEY.to_owned(), OWNER_CONTROLLER.to_owned()),
            (OWNER_TYPE_KEY.to_owned(), OWNER_TYPE.to_owned()),
            (NAME_KEY.to_owned(), self.route.clone()),
            (ID_KEY.to_owned(), self.id.clone()),
        ])
    }
}

/// Address_Set: one per Route and IP family, the selected pods' OVN IPs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NbAddressSet {
    pub owner: Owner,
    /// Usable as `$name` in OVN match expressions.
    pub name: String,
    pub addresses: BTreeSet<String>,
}

/// Port_Group: one per Route, the selected pods' logical switch ports (`<namespace>_<pod>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NbPortGroup {
    pub owner: Owner,
    /// Usable as `@name` in OVN match expressions.
    pub name: String,
    /// Logical_Switch_Port names; the reconciler resolves them to row uuids.
    pub ports: BTreeSet<String>,
}

/// Logical_Router_Policy on `router` (ovn-nb(5)).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NbPolicy {
    pub owner: Owner,
    pub router: String,
    pub priority: i64,
    pub match_: String,
    /// `reroute`, `allow` or `drop`.
    pub action: String,
    /// For `reroute`: one next hop, or several for ECMP.
    pub nexthops: BTreeSet<String>,
}

/// Logical_Router_Static_Route on `router` (used when a Route selects every pod).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NbStaticRoute {
    pub owner: Owner,
    pub router: String,
    pub ip_prefix: String,
    pub nexthop: String,
    /// `dst-ip` (default) or `src-ip`.
    pub policy: Option<String>,
    pub bfd: bool,
}

/// ACL on a Route's Port_Group (`ovn.enforce`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NbAcl {
    pub owner: Owner,
    pub port_group: String,
    /// `from-lport` or `to-lport`.
    pub direction: String,
    pub priority: i64,
    pub match_: String,
    /// `drop`, `reject`, `allow`, `allow-related`, ...
    pub action: String,
}

/// Every NB row the planner wants, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DesiredNb {
    pub address_sets: Vec<NbAddressSet>,
    pub port_groups: Vec<NbPortGroup>,
    pub policies: Vec<NbPolicy>,
    pub static_routes: Vec<NbStaticRoute>,
    pub acls: Vec<NbAcl>,
}
