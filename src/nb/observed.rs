//! What the Northbound database holds that the NB reconciler cares about: our own rows (those
//! whose `external_ids` carry `k8s.ovn.org/owner-controller=ovnkube-route`), the routers and
//! switch ports they hang off, and the facts needed to judge desired rows (router port
//! networks for next-hop checks, load balancer VIPs for svc rules, names taken by others).
//!
//! Read from a snapshot of the monitored replica (`scoped`). Read-only: it never decides
//! anything; `diff` does.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::model;
use super::row::{EXTERNAL_IDS, FamilyVisitor, NbRow, each_family};
use crate::ovsdb::replica::ColumnRef;
use crate::ovsdb::typed::{Column, ColumnValue, TypedRow};
use crate::ovsdb::{ColumnSource, ReplicaRow, Snapshot, Uuid};
use crate::plan::nb::{
    ID_KEY, NAME_KEY, NbAcl, NbAddressSet, NbPolicy, NbPortGroup, NbStaticRoute,
};
use crate::plan::nb::{OWNER_CONTROLLER, OWNER_CONTROLLER_KEY, Owner};

pub use super::row::{
    ACL, ADDRESS_SET, BFD, LOAD_BALANCER, POLICY, PORT_GROUP, ROUTER, ROUTER_PORT, STATIC_ROUTE,
    SWITCH_PORT,
};

/// A typed column read, a missing or ill-typed value said loudly and read as empty: the
/// server enforces the schema, so this takes a server that does not.
pub(crate) fn read<T: TypedRow, V: ColumnValue + Default>(
    column: Column<T, V>,
    row: &ReplicaRow,
) -> V {
    column.read(row).unwrap_or_else(|e| {
        tracing::warn!(table = T::TABLE, uuid = %row.uuid(), "unreadable column: {e}");
        V::default()
    })
}

/// The owner of a row, if it is ours. A row of ours without an id is still ours (and will be
/// removed as garbage); its owner gets an empty id.
///
/// Called for every row of the big tables on every full pass, so it reads the three keys in
/// place instead of copying the whole `external_ids` map.
pub(crate) fn owner_of(row: &ReplicaRow) -> Option<Owner> {
    let ids = row.column(EXTERNAL_IDS)?;
    let (mut ours, mut route, mut id) = (false, None, None);
    for (k, v) in ids.map_iter()? {
        let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
            continue;
        };
        match k {
            OWNER_CONTROLLER_KEY => ours = v == OWNER_CONTROLLER,
            NAME_KEY => route = Some(v),
            ID_KEY => id = Some(v),
            _ => {}
        }
    }
    ours.then(|| Owner {
        route: route.unwrap_or_default().to_owned(),
        id: id.unwrap_or_default().to_owned(),
    })
}

/// A logical router: its row and its ports' networks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterInfo {
    pub uuid: Option<Uuid>,
    pub networks: Vec<IpNet>,
    /// Port name and its networks (for a BFD session's `logical_port`).
    pub ports: Vec<(String, Vec<IpNet>)>,
    /// `options:chassis` is set: a gateway router (where symmetric replies work).
    pub gateway: bool,
}

impl RouterInfo {
    /// Whether `nexthop` lies on a network of one of the router's ports: ovn-northd ignores
    /// a reroute policy whose next hop does not ("No path for routing policy").
    pub fn reaches(&self, nexthop: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&nexthop))
    }

    /// The router port whose network holds `nexthop`: where OVN sends the route's traffic,
    /// and the `logical_port` of a BFD session to that next hop.
    pub fn port_towards(&self, nexthop: IpAddr) -> Option<&str> {
        self.ports
            .iter()
            .find(|(_, nets)| nets.iter().any(|n| n.contains(&nexthop)))
            .map(|(name, _)| name.as_str())
    }
}

/// An observed row of ours: its uuid, the row referencing it (router / port group; `None`
/// for root tables and for rows nobody references, which are being garbage-collected), and
/// its content in desired-row terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen<T> {
    pub uuid: Uuid,
    pub parent: Option<Uuid>,
    pub row: T,
}

/// Our rows and their surroundings, as found in the NB database.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub address_sets: Vec<Seen<NbAddressSet>>,
    /// Port groups with their ports as LSP names (unknown uuids dropped).
    pub port_groups: Vec<Seen<NbPortGroup>>,
    /// ACLs with `port_group` set to the port group that references them.
    pub acls: Vec<Seen<NbAcl>>,
    /// Policies with `router` set to the router that references them.
    pub policies: Vec<Seen<NbPolicy>>,
    pub static_routes: Vec<Seen<NbStaticRoute>>,
    pub routers: BTreeMap<String, RouterInfo>,
    /// Logical_Switch_Port name -> uuid.
    pub switch_ports: BTreeMap<String, Uuid>,
    /// Address_Set / Port_Group names held by rows that are not ours.
    pub foreign_names: BTreeSet<(String, String)>,
    /// Every IP that appears as a VIP of some Load_Balancer.
    pub lb_vips: BTreeSet<IpAddr>,
    /// Every BFD row (ours and ovn-kubernetes'): sessions are shared by (port, peer).
    pub bfds: Vec<SeenBfd>,
    /// Our static routes' `bfd` references, by route uuid.
    pub route_bfd: BTreeMap<Uuid, Uuid>,
    /// BFD rows referred to by static routes of ours that this pass does not diff (rows it
    /// leaves alone, or Routes outside a scoped pass): never deleted by it, whatever the
    /// desired rows it sees need.
    pub bfd_held: BTreeSet<Uuid>,
    /// For those rows, the Routes outside this pass whose static routes refer to them.
    pub bfd_users: BTreeMap<Uuid, BTreeSet<String>>,
}

/// One BFD row: its session key and, when we created it, our ownership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenBfd {
    pub uuid: Uuid,
    pub logical_port: String,
    pub dst_ip: String,
    pub owner: Option<Owner>,
    /// `min_tx`, `min_rx`, `detect_mult` as the row holds them.
    pub timers: crate::api::validate::BfdTimers,
    /// `status` as ovn-northd copied it (`up`, `down`, `init`, `admin_down`).
    pub status: Option<String>,
}

/// `10.96.0.10:80` -> 10.96.0.10, `[fd00::1]:80` -> fd00::1, `10.96.0.10` -> itself.
fn vip_ip(vip: &str) -> Option<IpAddr> {
    if let Ok(ip) = vip.parse() {
        return Some(ip);
    }
    if let Some(rest) = vip.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    vip.rsplit_once(':')?.0.parse().ok()
}

/// Every IP that is a VIP of some Load_Balancer.
pub(crate) fn lb_vips(snap: &Snapshot) -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    for row in snap.iter(LOAD_BALANCER) {
        out.extend(
            read(model::LoadBalancer::VIPS, &row)
                .keys()
                .filter_map(|k| vip_ip(k)),
        );
    }
    out
}

/// A row as the typed model reads it, minus its `external_ids` (read apart by
/// [`owner_of`]): a full pass reads every row of ours, and copying each one's map would
/// cost more than the rest of the row.
pub(crate) struct WithoutIds<'a>(pub(crate) &'a ReplicaRow);

static NO_IDS: std::sync::LazyLock<crate::ovsdb::Value> =
    std::sync::LazyLock::new(|| crate::ovsdb::Value::Map(BTreeMap::new()));

impl ColumnSource for WithoutIds<'_> {
    fn column_ref(&self, name: &str) -> Option<ColumnRef<'_>> {
        if name == EXTERNAL_IDS {
            return Some(ColumnRef::from_value(&NO_IDS));
        }
        self.0.column(name)
    }
}

/// A row of ours the schema's types do not describe cannot be compared, so it is left as it
/// is (never rewritten blind) and said loudly. ovsdb-server enforces the schema, so this
/// takes a server that does not.
pub(crate) fn unreadable(table: &str, uuid: Uuid, why: &str) {
    tracing::warn!(%table, %uuid, "row of ours left alone, it cannot be read: {why}");
}

impl Observed {
    /// Forgets rows of ours for which `keep` says "leave as is": a diff then neither updates
    /// nor deletes them. Used to keep what was programmed for a Route whose new version is
    /// unreadable or invalid.
    pub fn leave_alone(&mut self, keep: impl Fn(&Owner) -> bool) {
        struct Forget<'a, F> {
            o: &'a mut Observed,
            keep: F,
        }
        impl<F: Fn(&Owner) -> bool> FamilyVisitor for Forget<'_, F> {
            fn visit<T: NbRow>(&mut self) {
                T::observed_mut(self.o).retain(|s| !(self.keep)(s.row.owner()));
            }
        }
        // The sessions the routes left alone refer to stay with them.
        let held: Vec<Uuid> = self
            .static_routes
            .iter()
            .filter(|s| keep(&s.row.owner))
            .filter_map(|s| self.route_bfd.get(&s.uuid).copied())
            .collect();
        self.bfd_held.extend(held);
        each_family(&mut Forget { o: self, keep });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_forms() {
        assert_eq!(vip_ip("10.96.0.10:80"), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(vip_ip("[fd00::10]:80"), Some("fd00::10".parse().unwrap()));
        assert_eq!(vip_ip("10.96.0.10"), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(vip_ip("garbage"), None);
    }
}
