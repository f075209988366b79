//! What the Northbound database holds that the NB reconciler cares about: our own rows (those
//! whose `external_ids` carry `k8s.ovn.org/owner-controller=ovnkube-route`), the routers and
//! switch ports they hang off, and the facts needed to judge desired rows (router port
//! networks for next-hop checks, load balancer VIPs for svc rules, names taken by others).
//!
//! Built from any [`NbView`] (the monitored replica in production, a plain map in tests).
//! Read-only: it never decides anything; `diff` does.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::ovsdb::replica::ColumnRef;
use crate::ovsdb::{Atom, Row, Snapshot, Uuid};
use crate::plan::nb::{
    ID_KEY, NAME_KEY, NbAcl, NbAddressSet, NbPolicy, NbPortGroup, NbStaticRoute, OWNER_CONTROLLER,
    OWNER_CONTROLLER_KEY, Owner,
};

pub const ADDRESS_SET: &str = "Address_Set";
pub const PORT_GROUP: &str = "Port_Group";
pub const POLICY: &str = "Logical_Router_Policy";
pub const STATIC_ROUTE: &str = "Logical_Router_Static_Route";
pub const ACL: &str = "ACL";
pub const ROUTER: &str = "Logical_Router";
pub const ROUTER_PORT: &str = "Logical_Router_Port";
pub const SWITCH_PORT: &str = "Logical_Switch_Port";
pub const LOAD_BALANCER: &str = "Load_Balancer";
pub const BFD: &str = "BFD";

/// Column access on one row, whatever the storage behind it.
pub trait RowView {
    fn column(&self, name: &str) -> Option<ColumnRef<'_>>;
}

impl RowView for Row {
    fn column(&self, name: &str) -> Option<ColumnRef<'_>> {
        self.get(name).map(ColumnRef::from_value)
    }
}

impl RowView for crate::ovsdb::ReplicaRow {
    fn column(&self, name: &str) -> Option<ColumnRef<'_>> {
        crate::ovsdb::ReplicaRow::column(self, name)
    }
}

/// The monitored replica, as the controller reads it.
impl NbView for Snapshot {
    fn scan(&self, table: &str, f: &mut dyn FnMut(Uuid, &dyn RowView)) {
        for row in self.iter(table) {
            f(row.uuid(), &row);
        }
    }
}

/// Read access to (a snapshot of) the NB database.
pub trait NbView {
    /// Calls `f` for every row of `table`.
    fn scan(&self, table: &str, f: &mut dyn FnMut(Uuid, &dyn RowView));
}

/// A plain in-memory image: table -> uuid -> row. Used by tests and by one-shot `plan`.
pub type NbImage = BTreeMap<String, BTreeMap<Uuid, Row>>;

impl NbView for NbImage {
    fn scan(&self, table: &str, f: &mut dyn FnMut(Uuid, &dyn RowView)) {
        if let Some(rows) = self.get(table) {
            for (uuid, row) in rows {
                f(*uuid, row);
            }
        }
    }
}

fn string(row: &dyn RowView, col: &str) -> String {
    row.column(col)
        .and_then(|c| c.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn opt_string(row: &dyn RowView, col: &str) -> Option<String> {
    row.column(col)?
        .set_iter()
        .next()?
        .as_str()
        .map(str::to_owned)
}

fn integer(row: &dyn RowView, col: &str) -> i64 {
    row.column(col)
        .and_then(|c| c.as_atom().and_then(Atom::as_i64))
        .unwrap_or_default()
}

fn strings(row: &dyn RowView, col: &str) -> BTreeSet<String> {
    row.column(col)
        .map(|v| {
            v.set_iter()
                .filter_map(Atom::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn uuids(row: &dyn RowView, col: &str) -> BTreeSet<Uuid> {
    row.column(col)
        .map(|v| v.set_iter().filter_map(Atom::as_uuid).collect())
        .unwrap_or_default()
}

fn string_map(row: &dyn RowView, col: &str) -> BTreeMap<String, String> {
    row.column(col)
        .and_then(|c| {
            c.map_iter().map(|m| {
                m.filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The owner of a row, if it is ours. A row of ours without an id is still ours (and will be
/// removed as garbage); its owner gets an empty id.
///
/// Called for every row of the big tables on every pass, so it reads the three keys in place
/// instead of copying the whole `external_ids` map.
fn owner_of(row: &dyn RowView) -> Option<Owner> {
    let ids = row.column("external_ids")?;
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

/// A logical router: its row, the rows it references, and its ports' networks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterInfo {
    pub uuid: Option<Uuid>,
    pub policies: BTreeSet<Uuid>,
    pub static_routes: BTreeSet<Uuid>,
    pub networks: Vec<IpNet>,
    /// Port name and its networks (for a BFD session's `logical_port`).
    pub ports: Vec<(String, Vec<IpNet>)>,
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

/// An observed row of ours: its uuid and its content in desired-row terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen<T> {
    pub uuid: Uuid,
    pub row: T,
}

/// Our rows and their surroundings, as found in the NB database.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub address_sets: Vec<Seen<NbAddressSet>>,
    /// Port groups with their ports as LSP names (unknown uuids dropped) and their ACL uuids.
    pub port_groups: Vec<Seen<(NbPortGroup, BTreeSet<Uuid>)>>,
    /// Policies with `router` set to the router that references them.
    pub policies: Vec<Seen<NbPolicy>>,
    pub static_routes: Vec<Seen<NbStaticRoute>>,
    /// ACLs with `port_group` set to the port group that references them.
    pub acls: Vec<Seen<NbAcl>>,
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
}

/// One BFD row: its session key and, when we created it, our ownership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenBfd {
    pub uuid: Uuid,
    pub logical_port: String,
    pub dst_ip: String,
    pub owner: Option<Owner>,
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

impl Observed {
    pub fn collect(view: &dyn NbView) -> Observed {
        let mut o = Observed::default();
        let mut router_ports: BTreeMap<Uuid, (String, Vec<IpNet>)> = BTreeMap::new();
        view.scan(ROUTER_PORT, &mut |uuid, row| {
            let nets = strings(row, "networks")
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect();
            router_ports.insert(uuid, (string(row, "name"), nets));
        });
        view.scan(BFD, &mut |uuid, row| {
            o.bfds.push(SeenBfd {
                uuid,
                logical_port: string(row, "logical_port"),
                dst_ip: string(row, "dst_ip"),
                owner: owner_of(row),
            });
        });
        // Reverse references for our non-root rows: which router / port group holds them.
        let mut policy_router: BTreeMap<Uuid, String> = BTreeMap::new();
        let mut route_router: BTreeMap<Uuid, String> = BTreeMap::new();
        view.scan(ROUTER, &mut |uuid, row| {
            let name = string(row, "name");
            let info = RouterInfo {
                uuid: Some(uuid),
                policies: uuids(row, "policies"),
                static_routes: uuids(row, "static_routes"),
                networks: uuids(row, "ports")
                    .iter()
                    .filter_map(|p| router_ports.get(p))
                    .flat_map(|(_, nets)| nets.iter().copied())
                    .collect(),
                ports: uuids(row, "ports")
                    .iter()
                    .filter_map(|p| router_ports.get(p))
                    .cloned()
                    .collect(),
            };
            o.routers.insert(name, info);
        });
        let mut lsp_names: BTreeMap<Uuid, String> = BTreeMap::new();
        view.scan(SWITCH_PORT, &mut |uuid, row| {
            let name = string(row, "name");
            lsp_names.insert(uuid, name.clone());
            o.switch_ports.insert(name, uuid);
        });
        view.scan(LOAD_BALANCER, &mut |_, row| {
            o.lb_vips
                .extend(string_map(row, "vips").keys().filter_map(|k| vip_ip(k)));
        });
        view.scan(ADDRESS_SET, &mut |uuid, row| match owner_of(row) {
            Some(owner) => o.address_sets.push(Seen {
                uuid,
                row: NbAddressSet {
                    owner,
                    name: string(row, "name"),
                    addresses: strings(row, "addresses"),
                },
            }),
            None => {
                o.foreign_names
                    .insert((ADDRESS_SET.into(), string(row, "name")));
            }
        });
        let mut acl_pg: BTreeMap<Uuid, String> = BTreeMap::new();
        view.scan(PORT_GROUP, &mut |uuid, row| {
            let name = string(row, "name");
            let acls = uuids(row, "acls");
            for a in &acls {
                acl_pg.insert(*a, name.clone());
            }
            match owner_of(row) {
                Some(owner) => {
                    let ports = uuids(row, "ports")
                        .iter()
                        .filter_map(|p| lsp_names.get(p).cloned())
                        .collect();
                    o.port_groups.push(Seen {
                        uuid,
                        row: (NbPortGroup { owner, name, ports }, acls),
                    })
                }
                None => {
                    o.foreign_names.insert((PORT_GROUP.into(), name));
                }
            }
        });
        // Only rows of ours are looked at in the big non-root tables; reverse references are
        // needed just for those, so they are built lazily from the routers' sets.
        let mut owned_policies = Vec::new();
        view.scan(POLICY, &mut |uuid, row| {
            if let Some(owner) = owner_of(row) {
                owned_policies.push(Seen {
                    uuid,
                    row: NbPolicy {
                        owner,
                        router: String::new(),
                        priority: integer(row, "priority"),
                        match_: string(row, "match"),
                        action: string(row, "action"),
                        nexthops: strings(row, "nexthops")
                            .into_iter()
                            .chain(opt_string(row, "nexthop"))
                            .collect(),
                    },
                });
            }
        });
        let mut owned_routes = Vec::new();
        let mut route_bfds = Vec::new();
        view.scan(STATIC_ROUTE, &mut |uuid, row| {
            if let Some(owner) = owner_of(row) {
                if let Some(b) = uuids(row, "bfd").into_iter().next() {
                    route_bfds.push((uuid, b));
                }
                owned_routes.push(Seen {
                    uuid,
                    row: NbStaticRoute {
                        owner,
                        router: String::new(),
                        ip_prefix: string(row, "ip_prefix"),
                        nexthop: string(row, "nexthop"),
                        policy: opt_string(row, "policy"),
                        bfd: row
                            .column("bfd")
                            .is_some_and(|v| v.set_iter().next().is_some()),
                    },
                });
            }
        });
        if !owned_policies.is_empty() || !owned_routes.is_empty() {
            for (name, r) in &o.routers {
                for p in &r.policies {
                    policy_router.insert(*p, name.clone());
                }
                for s in &r.static_routes {
                    route_router.insert(*s, name.clone());
                }
            }
        }
        o.route_bfd.extend(route_bfds);
        for mut p in owned_policies {
            p.row.router = policy_router.get(&p.uuid).cloned().unwrap_or_default();
            o.policies.push(p);
        }
        for mut s in owned_routes {
            s.row.router = route_router.get(&s.uuid).cloned().unwrap_or_default();
            o.static_routes.push(s);
        }
        view.scan(ACL, &mut |uuid, row| {
            if let Some(owner) = owner_of(row) {
                o.acls.push(Seen {
                    uuid,
                    row: NbAcl {
                        owner,
                        port_group: acl_pg.get(&uuid).cloned().unwrap_or_default(),
                        direction: string(row, "direction"),
                        priority: integer(row, "priority"),
                        match_: string(row, "match"),
                        action: string(row, "action"),
                    },
                });
            }
        });
        o
    }
}

impl Observed {
    /// Forgets rows of ours for which `keep` says "leave as is": a diff then neither updates
    /// nor deletes them. Used to keep what was programmed for a Route whose new version is
    /// unreadable or invalid.
    pub fn leave_alone(&mut self, keep: impl Fn(&Owner) -> bool) {
        self.address_sets.retain(|s| !keep(&s.row.owner));
        self.port_groups.retain(|s| !keep(&s.row.0.owner));
        self.policies.retain(|s| !keep(&s.row.owner));
        self.static_routes.retain(|s| !keep(&s.row.owner));
        self.acls.retain(|s| !keep(&s.row.owner));
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
