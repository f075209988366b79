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

    /// A src-ip route of `ovn.symmetricReply` (`<route>/symmetric/<pod ip>/<next hop>`):
    /// for a member pod, never for a rule, so no invalid rule can be what it stands for.
    pub fn is_per_pod(&self) -> bool {
        self.id
            .strip_prefix(self.route.as_str())
            .is_some_and(|rest| rest.starts_with("/symmetric/"))
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
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NbAddressSet {
    pub owner: Owner,
    /// Usable as `$name` in OVN match expressions.
    pub name: String,
    pub addresses: BTreeSet<String>,
}

/// Port_Group: one per Route, the selected pods' logical switch ports (`<namespace>_<pod>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NbPortGroup {
    pub owner: Owner,
    /// Usable as `@name` in OVN match expressions.
    pub name: String,
    /// Logical_Switch_Port names; the reconciler resolves them to row uuids.
    pub ports: BTreeSet<String>,
}

/// Column values the schema enumerates, as Rust enums: `as_str` is the schema's word,
/// `parse` its inverse (`None` for a word the schema does not list).
macro_rules! schema_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

schema_enum!(
    /// Logical_Router_Policy `action` (ovn-nb(5)).
    PolicyAction {
        Allow = "allow",
        Drop = "drop",
        /// To `nexthops` (one, or several for ECMP).
        Reroute = "reroute",
    }
);

schema_enum!(
    /// ACL `direction` (ovn-nb(5)).
    AclDirection {
        /// Traffic entering OVN from the port (sent by the pod).
        FromLport = "from-lport",
        ToLport = "to-lport",
    }
);

schema_enum!(
    /// ACL `action` (ovn-nb(5)).
    AclAction {
        Allow = "allow",
        AllowRelated = "allow-related",
        AllowStateless = "allow-stateless",
        Drop = "drop",
        Reject = "reject",
    }
);

schema_enum!(
    /// Logical_Router_Static_Route `policy` (ovn-nb(5)); absent means `dst-ip`.
    RoutePolicy {
        DstIp = "dst-ip",
        SrcIp = "src-ip",
    }
);

/// Logical_Router_Policy on `router` (ovn-nb(5)).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NbPolicy {
    pub owner: Owner,
    pub router: String,
    pub priority: i64,
    pub match_: String,
    pub action: PolicyAction,
    /// For `reroute`: one next hop, or several for ECMP.
    pub nexthops: BTreeSet<String>,
}

/// Logical_Router_Static_Route on `router` (used when a Route selects every pod).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NbStaticRoute {
    pub owner: Owner,
    pub router: String,
    pub ip_prefix: String,
    pub nexthop: String,
    /// `None` is `dst-ip`.
    pub policy: Option<RoutePolicy>,
    pub bfd: bool,
    /// `options:ecmp_symmetric_reply=true` (src-ip routes on gateway routers).
    pub symmetric: bool,
}

/// ACL on a Route's Port_Group (`ovn.enforce`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NbAcl {
    pub owner: Owner,
    pub port_group: String,
    pub direction: AclDirection,
    pub priority: i64,
    pub match_: String,
    pub action: AclAction,
}

/// Every NB row the planner wants, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DesiredNb {
    pub address_sets: Vec<NbAddressSet>,
    pub port_groups: Vec<NbPortGroup>,
    pub policies: Vec<NbPolicy>,
    pub static_routes: Vec<NbStaticRoute>,
    pub acls: Vec<NbAcl>,
    /// Route -> the timers of the BFD sessions it asks for (`ovn.bfd: {..}`), for the BFD
    /// rows of ours its static routes refer to.
    pub bfd_timers: std::collections::BTreeMap<String, crate::api::validate::BfdTimers>,
}

impl DesiredNb {
    /// Appends another set of rows (call [`DesiredNb::sort`] when done).
    pub fn extend(&mut self, other: DesiredNb) {
        self.address_sets.extend(other.address_sets);
        self.port_groups.extend(other.port_groups);
        self.policies.extend(other.policies);
        self.static_routes.extend(other.static_routes);
        self.acls.extend(other.acls);
        self.bfd_timers.extend(other.bfd_timers);
    }

    /// Puts every family in its stable order (by owner, then content).
    pub fn sort(&mut self) {
        self.address_sets.sort();
        self.port_groups.sort();
        self.policies.sort();
        self.static_routes.sort();
        self.acls.sort();
    }
}
