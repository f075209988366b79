//! Reading what a pass needs: the rows of ours of the Routes it concerns, found by the
//! replica's `k8s.ovn.org/name` index, and the surroundings those rows and the desired ones
//! mention (routers, switch ports, names held by others, load balancer VIPs), each found by
//! an index or a lookup by uuid. A pass over some Routes costs what their rows cost, not what
//! the whole NB costs; a full pass is the same read over every Route that has rows or wants
//! some ([`Observed::collect_all`]), which also sweeps rows of Routes that no longer exist.
use std::collections::{BTreeMap, BTreeSet};

use super::model::{
    AddressSet, Bfd, LogicalRouter, LogicalRouterPort, LogicalRouterStaticRoute, LogicalSwitchPort,
    PortGroup,
};
use super::observed::{Observed, RouterInfo, Seen, SeenBfd, WithoutIds, owner_of, read};
use super::row::{
    BFD, FamilyVisitor, NbRow, PORT_GROUP, ROUTER, ROUTER_PORT, ReadContext, STATIC_ROUTE,
    SWITCH_PORT, each_family,
};
use crate::ovsdb::{Atom, ReplicaRow, Snapshot, TypedRow, Uuid, Value};
use crate::plan::nb::{DesiredNb, NAME_KEY};

struct ScopedRead<'a> {
    snap: &'a Snapshot,
    routes: &'a BTreeSet<String>,
    o: &'a mut Observed,
}

fn port_name(snap: &Snapshot, u: Uuid) -> Option<String> {
    Some(read(LogicalSwitchPort::NAME, &snap.get(SWITCH_PORT, u)?))
}

impl FamilyVisitor for ScopedRead<'_> {
    fn visit<T: NbRow>(&mut self) {
        let table = T::FAMILY.table();
        let link = T::FAMILY.parent();
        // Rows that may reference rows of this family: every router (a small table), or
        // the port groups of these Routes.
        let parents: Vec<ReplicaRow> = match link {
            None => Vec::new(),
            Some(l) if l.table == ROUTER => self.snap.iter(ROUTER).collect(),
            Some(l) => self
                .routes
                .iter()
                .flat_map(|r| self.snap.find_by_external_id(l.table, NAME_KEY, r))
                .collect(),
        };
        let snap = self.snap;
        let names = |u: Uuid| port_name(snap, u);
        let parent_of = ParentOf::new(link.map(|l| l.column), &parents, self.routes.len());
        for route in self.routes {
            for row in rows_of(snap, table, route) {
                let Some(owner) = owner_of(&row) else {
                    continue;
                };
                let uuid = row.uuid();
                let model = match T::Model::from_source(uuid, &WithoutIds(&row)) {
                    Ok(m) => m,
                    Err(e) => {
                        super::observed::unreadable(table, uuid, &e.to_string());
                        continue;
                    }
                };
                let parent = parent_of.get(uuid);
                let pname = match (parent, link) {
                    (Some(p), Some(l)) => p
                        .column(l.name)
                        .and_then(|c| c.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                let ctx = ReadContext {
                    parent: &pname,
                    port_name: &names,
                };
                match T::from_model(model, owner, &ctx) {
                    Ok(r) => T::observed_mut(self.o).push(Seen {
                        uuid,
                        parent: parent.map(ReplicaRow::uuid),
                        row: r,
                    }),
                    Err(e) => super::observed::unreadable(table, uuid, &e),
                }
            }
        }
    }
}

/// Rows of ours of `route` in `table`; `""` stands for rows of ours that name no Route
/// (garbage a full pass sweeps).
fn rows_of(snap: &Snapshot, table: &str, route: &str) -> Vec<ReplicaRow> {
    if route.is_empty() {
        return snap
            .iter(table)
            .filter(|r| owner_of(r).is_some_and(|o| o.route.is_empty()))
            .collect();
    }
    snap.find_by_external_id(table, NAME_KEY, route)
}

/// Which parent row references a child row: a linear look through the parents for a few
/// Routes' rows, a reverse map built once for many.
enum ParentOf<'a> {
    None,
    Scan(&'static str, &'a [ReplicaRow]),
    Map(BTreeMap<Uuid, &'a ReplicaRow>),
}

impl<'a> ParentOf<'a> {
    fn new(column: Option<&'static str>, parents: &'a [ReplicaRow], routes: usize) -> Self {
        let Some(column) = column else {
            return ParentOf::None;
        };
        if routes <= 16 {
            return ParentOf::Scan(column, parents);
        }
        let mut map = BTreeMap::new();
        for p in parents {
            for child in p.column(column).iter().flat_map(|c| c.set_iter()) {
                if let Some(u) = child.as_uuid() {
                    map.insert(u, p);
                }
            }
        }
        ParentOf::Map(map)
    }

    fn get(&self, child: Uuid) -> Option<&'a ReplicaRow> {
        match self {
            ParentOf::None => None,
            ParentOf::Scan(column, parents) => {
                let me = Atom::Uuid(child);
                parents
                    .iter()
                    .find(|p| p.column(column).is_some_and(|c| c.contains(&me)))
            }
            ParentOf::Map(m) => m.get(&child).copied(),
        }
    }
}

/// Every Route with rows of ours in the NB (`""` when some row of ours names none).
pub fn route_names(snap: &Snapshot) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in super::row::Family::ALL {
        for row in snap.iter(f.table()) {
            if let Some(o) = owner_of(&row) {
                out.insert(o.route);
            }
        }
    }
    for row in snap.iter(BFD) {
        if let Some(o) = owner_of(&row) {
            out.insert(o.route);
        }
    }
    out
}

impl Observed {
    /// Everything a full pass reads: the rows of every Route that has rows of ours or wants
    /// some (the Routes of `desired`, and `more`), Load_Balancer VIPs included.
    pub fn collect_all<'a>(
        snap: &Snapshot,
        desired: &DesiredNb,
        more: impl IntoIterator<Item = &'a String>,
    ) -> Observed {
        let mut names = route_names(snap);
        names.extend(
            super::row::desired_owners(desired)
                .into_iter()
                .map(|o| o.route.clone()),
        );
        names.extend(more.into_iter().cloned());
        Observed::collect_routes(snap, &names, desired, true)
    }

    /// Rows of ours of `routes` and the surroundings that they and `desired` (the desired
    /// rows of the same Routes) mention. `vips`: also read the load balancers' VIPs.
    pub fn collect_routes(
        snap: &Snapshot,
        routes: &BTreeSet<String>,
        desired: &DesiredNb,
        vips: bool,
    ) -> Observed {
        let mut o = Observed::default();
        each_family(&mut ScopedRead {
            snap,
            routes,
            o: &mut o,
        });

        let routers: BTreeSet<&str> = desired
            .policies
            .iter()
            .map(|p| p.router.as_str())
            .chain(desired.static_routes.iter().map(|r| r.router.as_str()))
            .chain(o.policies.iter().map(|p| p.row.router.as_str()))
            .chain(o.static_routes.iter().map(|r| r.row.router.as_str()))
            .filter(|n| !n.is_empty())
            .collect();
        let mut found = Vec::new();
        for name in routers {
            if let Some(r) = snap.find_by(LogicalRouter::NAME, &Value::from(name)) {
                let ports: Vec<(String, Vec<ipnet::IpNet>)> = read(LogicalRouter::PORTS, &r)
                    .into_iter()
                    .filter_map(|p| snap.get(ROUTER_PORT, p))
                    .map(|p| {
                        let nets = read(LogicalRouterPort::NETWORKS, &p)
                            .iter()
                            .filter_map(|n| n.parse().ok())
                            .collect();
                        (read(LogicalRouterPort::NAME, &p), nets)
                    })
                    .collect();
                let info = RouterInfo {
                    gateway: read(LogicalRouter::OPTIONS, &r).contains_key("chassis"),
                    uuid: Some(r.uuid()),
                    networks: ports.iter().flat_map(|(_, n)| n.iter().copied()).collect(),
                    ports,
                };
                found.push((name.to_owned(), info));
            }
        }
        o.routers.extend(found);

        let ports: BTreeSet<&String> = desired
            .port_groups
            .iter()
            .chain(o.port_groups.iter().map(|s| &s.row))
            .flat_map(|g| g.ports.iter())
            .collect();
        let mut switch_ports = Vec::new();
        for p in ports {
            if let Some(r) = snap.find_by(LogicalSwitchPort::NAME, &Value::from(p.as_str())) {
                switch_ports.push((p.clone(), r.uuid()));
            }
        }
        o.switch_ports.extend(switch_ports);

        let sets = desired.address_sets.iter().map(|a| {
            let row = snap.find_by(AddressSet::NAME, &Value::from(a.name.as_str()));
            (row, super::row::ADDRESS_SET, &a.name)
        });
        let groups = desired.port_groups.iter().map(|g| {
            let row = snap.find_by(PortGroup::NAME, &Value::from(g.name.as_str()));
            (row, PORT_GROUP, &g.name)
        });
        let mut foreign = Vec::new();
        for (row, table, name) in sets.chain(groups) {
            if row.is_some_and(|r| owner_of(&r).is_none()) {
                foreign.push((table.to_owned(), name.clone()));
            }
        }
        o.foreign_names.extend(foreign);

        if vips {
            o.lb_vips = super::observed::lb_vips(snap);
        }
        bfd_sessions(snap, routes, &mut o);
        o
    }
}

/// Every BFD row (a small table; sessions are shared by port and peer), the sessions these
/// Routes' static routes refer to, and those that static routes of other Routes of ours
/// refer to (which this pass must not delete).
fn bfd_sessions(snap: &Snapshot, routes: &BTreeSet<String>, o: &mut Observed) {
    o.bfds = snap
        .iter(BFD)
        .map(|row| SeenBfd {
            uuid: row.uuid(),
            logical_port: read(Bfd::LOGICAL_PORT, &row),
            dst_ip: read(Bfd::DST_IP, &row),
            owner: owner_of(&row),
            timers: crate::api::validate::BfdTimers {
                min_tx: read(Bfd::MIN_TX, &row),
                min_rx: read(Bfd::MIN_RX, &row),
                detect_mult: read(Bfd::DETECT_MULT, &row),
            },
            status: read(Bfd::STATUS, &row),
        })
        .collect();
    let refs: Vec<(Uuid, Uuid)> = o
        .static_routes
        .iter()
        .filter_map(|s| {
            let row = snap.get(STATIC_ROUTE, s.uuid)?;
            read(LogicalRouterStaticRoute::BFD, &row).map(|b| (s.uuid, b))
        })
        .collect();
    o.route_bfd.extend(refs);
    if o.bfds.iter().any(|b| b.owner.is_some()) {
        for row in snap.iter(STATIC_ROUTE) {
            if let Some(w) = owner_of(&row).filter(|w| !routes.contains(&w.route))
                && let Some(b) = read(LogicalRouterStaticRoute::BFD, &row)
            {
                o.bfd_held.insert(b);
                o.bfd_users.entry(b).or_default().insert(w.route);
            }
        }
    }
}
