//! What a batch of replica changes means for our rows, in NB terms: rows of ours edited or
//! deleted (by someone, or our own write echoed back otherwise than it was sent: see
//! `echo`), names of ours taken or freed by others, routers and their ports, switch ports
//! and load balancers. The controller maps these to the Routes they concern.
//!
//! Owns: reading the changed replica rows. Must not: know about Routes beyond the names
//! our rows carry.
use std::collections::BTreeSet;

use super::echo::Echoes;
use super::model::{AddressSet, LogicalRouter, LogicalSwitchPort, PortGroup};
use super::observed::owner_of;
use super::row::{
    ADDRESS_SET, Family, LOAD_BALANCER, PORT_GROUP, ROUTER, ROUTER_PORT, SWITCH_PORT,
};
use crate::ovsdb::{ReplicaEvent, ReplicaRow};

/// What changed, as far as our rows are concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NbDrift {
    /// Every row may have changed: the subscriber fell behind, or the replica was reloaded
    /// after a reconnect. A full pass is due.
    pub everything: bool,
    /// Routes whose rows of ours, or whose names (`ovnkube_route_<name>...`), changed.
    pub routes: BTreeSet<String>,
    /// Routers that appeared or went, or whose name or ports changed.
    pub routers: BTreeSet<String>,
    /// Some router port changed (its networks decide whether next hops are reachable; a
    /// port does not name its router).
    pub router_ports: bool,
    /// Logical switch ports that appeared, went or changed, by name.
    pub switch_ports: BTreeSet<String>,
    /// Some load balancer changed (VIPs decide whether ClusterIPs work over OVN).
    pub load_balancers: bool,
    /// Some BFD session changed (ours may need repair; its state is in the status).
    pub bfd: bool,
}

impl NbDrift {
    pub fn is_empty(&self) -> bool {
        *self == NbDrift::default()
    }
}

/// The Route whose Address_Set / Port_Group name this is (`ovnkube_route_<name>[_v4|_v6]`,
/// `-` written as `_`; Kubernetes names never hold `_`, so the mapping is one to one).
fn route_of_name(name: &str) -> Option<String> {
    let ident = name.strip_prefix("ovnkube_route_")?;
    let ident = ident
        .strip_suffix("_v4")
        .or_else(|| ident.strip_suffix("_v6"))
        .unwrap_or(ident);
    Some(ident.replace('_', "-"))
}

/// A row's `name` (routers, switch ports, address sets and port groups all have one).
fn name(row: &ReplicaRow) -> Option<String> {
    let name = match row.table() {
        ROUTER => LogicalRouter::NAME.read(row),
        SWITCH_PORT => LogicalSwitchPort::NAME.read(row),
        ADDRESS_SET => AddressSet::NAME.read(row),
        PORT_GROUP => PortGroup::NAME.read(row),
        _ => return None,
    };
    name.ok()
}

/// Whether a router row changed in a way the Routes on it depend on: it appeared or went,
/// or its name, ports or gateway chassis changed (`options:chassis` makes it a gateway
/// router, where symmetric replies work). Its `policies` / `static_routes` sets change with
/// every row added or removed on it (ours come as their own row changes).
fn router_moved(old: Option<&ReplicaRow>, new: Option<&ReplicaRow>) -> bool {
    let (Some(old), Some(new)) = (old, new) else {
        return true;
    };
    let ports = |r: &ReplicaRow| LogicalRouter::PORTS.read(r).ok();
    let chassis = |r: &ReplicaRow| {
        LogicalRouter::OPTIONS
            .read(r)
            .ok()
            .map(|o| o.get("chassis").cloned())
    };
    name(old) != name(new) || ports(old) != ports(new) || chassis(old) != chassis(new)
}

/// Reads a batch of replica events. Changes to rows of ours that are exactly what one of
/// our own recent transactions did (`echoes`) are not drift.
pub fn drift(events: &[ReplicaEvent], echoes: &mut Echoes) -> NbDrift {
    let mut d = NbDrift::default();
    for ev in events {
        let ReplicaEvent::Changes(cs) = ev else {
            d.everything = true;
            echoes.clear();
            continue;
        };
        if cs.reset {
            d.everything = true;
            echoes.clear();
            continue;
        }
        for c in &cs.changes {
            let rows = || c.old.iter().chain(c.new.iter());
            let table = c.table.as_str();
            if Family::ALL.iter().any(|f| f.table() == table) {
                if echoes.explains(c) {
                    continue;
                }
                for row in rows() {
                    match owner_of(row) {
                        Some(o) => {
                            d.routes.insert(o.route);
                        }
                        None => d
                            .routes
                            .extend(name(row).as_deref().and_then(route_of_name)),
                    }
                }
            } else if table == ROUTER {
                if router_moved(c.old.as_ref(), c.new.as_ref()) {
                    d.routers.extend(rows().filter_map(name));
                }
            } else if table == SWITCH_PORT {
                d.switch_ports.extend(rows().filter_map(name));
            } else if table == LOAD_BALANCER {
                d.load_balancers = true;
            } else if table == ROUTER_PORT {
                d.router_ports = true;
            } else if table == super::row::BFD && !echoes.explains(c) {
                d.bfd = true;
            }
        }
        echoes.end_update();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_back_to_routes() {
        assert_eq!(
            route_of_name("ovnkube_route_web_app_v4").as_deref(),
            Some("web-app")
        );
        assert_eq!(route_of_name("ovnkube_route_db").as_deref(), Some("db"));
        assert_eq!(route_of_name("a1234"), None);
    }
}
