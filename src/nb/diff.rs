//! Desired NB rows vs observed rows -> the smallest set of changes. Pure: no I/O.
//!
//! Rules (DESIGN.md section 4):
//! - Rows are matched by table and `k8s.ovn.org/id`; only rows of ours are ever changed or
//!   deleted. When two rows of ours share an id (a crash between insert and bookkeeping in
//!   an older version, or a concurrent writer), the lowest uuid is kept and the rest removed.
//! - Sets that can be large (address set addresses, port group ports, router policy and
//!   static route references) change by `mutate` insert/delete, never by rewriting the set.
//! - A desired row that cannot work is not written and is reported instead: its router does
//!   not exist, a reroute next hop is on no network of the router's ports (ovn-northd would
//!   ignore the policy silently), its name is taken by a row that is not ours, or (a policy)
//!   its match names an address set whose name a row that is not ours holds.
//! - Nothing desired and nothing to remove => no change at all (a restart writes nothing).
use std::collections::{BTreeMap, BTreeSet};

use super::bfd::BfdRef;
use super::observed::{ADDRESS_SET, Observed, PORT_GROUP, Seen};
use crate::ovsdb::Uuid;
use crate::plan::nb::{
    DesiredNb, NbAcl, NbAddressSet, NbPolicy, NbPortGroup, NbStaticRoute, Owner,
};

/// One change to the NB database. Rows to create are carried whole; updates carry the row's
/// uuid and the new content (only differing columns are written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NbChange {
    CreateAddressSet(NbAddressSet),
    UpdateAddressSet {
        uuid: Uuid,
        name: String,
        add: BTreeSet<String>,
        remove: BTreeSet<String>,
    },
    DeleteAddressSet {
        uuid: Uuid,
        name: String,
    },
    CreatePortGroup {
        group: NbPortGroup,
        ports: BTreeSet<Uuid>,
        acls: Vec<NbAcl>,
    },
    UpdatePortGroup {
        uuid: Uuid,
        name: String,
        add: BTreeSet<Uuid>,
        remove: BTreeSet<Uuid>,
    },
    DeletePortGroup {
        uuid: Uuid,
        name: String,
    },
    CreatePolicy {
        router: Uuid,
        policy: NbPolicy,
    },
    UpdatePolicy {
        uuid: Uuid,
        policy: NbPolicy,
    },
    /// Removing the router's reference is enough: the table is not a root table, so the row
    /// is garbage-collected at commit (ovsdb-server(7), RFC 7047 section 3.2 isRoot).
    DeletePolicy {
        router: Uuid,
        uuid: Uuid,
        policy: NbPolicy,
    },
    /// `bfd`: the session the route refers to (`route.bfd` set), else none.
    CreateStaticRoute {
        router: Uuid,
        route: NbStaticRoute,
        bfd: Option<BfdRef>,
    },
    UpdateStaticRoute {
        uuid: Uuid,
        route: NbStaticRoute,
        bfd: Option<BfdRef>,
    },
    /// A BFD session to a next hop that had none (see `nb::bfd`).
    CreateBfd {
        owner: Owner,
        logical_port: String,
        dst_ip: String,
    },
    /// One of our BFD rows no route refers to any more.
    DeleteBfd {
        uuid: Uuid,
        logical_port: String,
        dst_ip: String,
    },
    DeleteStaticRoute {
        router: Uuid,
        uuid: Uuid,
        route: NbStaticRoute,
    },
    /// `port_group` is the group's uuid when it exists already.
    CreateAcl {
        port_group: Uuid,
        acl: NbAcl,
    },
    UpdateAcl {
        uuid: Uuid,
        acl: NbAcl,
    },
    DeleteAcl {
        port_group: Uuid,
        uuid: Uuid,
        acl: NbAcl,
    },
}

/// Why a desired row was not written.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NbProblem {
    /// The Route CR concerned.
    pub route: String,
    /// CamelCase reason: RouterNotFound, NextHopUnreachable, NameTaken, PortNotFound.
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NbDiff {
    pub changes: Vec<NbChange>,
    pub problems: Vec<NbProblem>,
}

fn problem(d: &mut NbDiff, route: &str, reason: &str, message: String) {
    d.problems.push(NbProblem {
        route: route.to_owned(),
        reason: reason.to_owned(),
        message,
    });
}

/// Group observed rows by id; the first (lowest uuid) is the keeper, the rest duplicates.
///
/// Borrows: a pass over ~10k rows of ours would otherwise copy every one of them just to
/// find that almost all are unchanged.
fn by_id<'a, T>(
    seen: &'a [Seen<T>],
    id: impl Fn(&'a T) -> &'a str,
) -> BTreeMap<&'a str, Vec<&'a Seen<T>>> {
    let mut m: BTreeMap<&'a str, Vec<&'a Seen<T>>> = BTreeMap::new();
    for s in seen {
        m.entry(id(&s.row)).or_default().push(s);
    }
    for v in m.values_mut() {
        v.sort_by_key(|s| s.uuid);
    }
    m
}

/// Computes the changes that take `observed` to `desired`.
pub fn diff(desired: &DesiredNb, observed: &Observed) -> NbDiff {
    let mut d = NbDiff::default();
    let blocked = address_sets(desired, observed, &mut d);
    port_groups_and_acls(desired, observed, &mut d);
    policies(desired, observed, &blocked, &mut d);
    super::bfd::static_routes(desired, observed, &mut d);
    d.problems.sort();
    d.problems.dedup();
    d
}

fn name_taken(observed: &Observed, table: &str, name: &str) -> bool {
    observed
        .foreign_names
        .contains(&(table.to_owned(), name.to_owned()))
}

/// Returns the names of the sets not written because a foreign row holds the name.
fn address_sets(desired: &DesiredNb, observed: &Observed, d: &mut NbDiff) -> BTreeSet<String> {
    let mut blocked = BTreeSet::new();
    let mut seen = by_id(&observed.address_sets, |r| &r.owner.id);
    for want in &desired.address_sets {
        match seen.remove(want.owner.id.as_str()) {
            Some(rows) if rows[0].row.name == want.name => {
                let have = &rows[0];
                let add: BTreeSet<_> = want
                    .addresses
                    .difference(&have.row.addresses)
                    .cloned()
                    .collect();
                let remove: BTreeSet<_> = have
                    .row
                    .addresses
                    .difference(&want.addresses)
                    .cloned()
                    .collect();
                if !add.is_empty() || !remove.is_empty() {
                    d.changes.push(NbChange::UpdateAddressSet {
                        uuid: have.uuid,
                        name: want.name.clone(),
                        add,
                        remove,
                    });
                }
                for dup in &rows[1..] {
                    d.changes.push(NbChange::DeleteAddressSet {
                        uuid: dup.uuid,
                        name: dup.row.name.clone(),
                    });
                }
            }
            other => {
                // A renamed set is replaced: its name is what matches refer to.
                for old in other.into_iter().flatten() {
                    d.changes.push(NbChange::DeleteAddressSet {
                        uuid: old.uuid,
                        name: old.row.name.clone(),
                    });
                }
                if name_taken(observed, ADDRESS_SET, &want.name) {
                    problem(
                        d,
                        &want.owner.route,
                        "NameTaken",
                        format!(
                            "Address_Set {} exists and is not owned by ovnkube-route",
                            want.name
                        ),
                    );
                    blocked.insert(want.name.clone());
                } else {
                    d.changes.push(NbChange::CreateAddressSet(want.clone()));
                }
            }
        }
    }
    for rows in seen.into_values() {
        for old in rows {
            d.changes.push(NbChange::DeleteAddressSet {
                uuid: old.uuid,
                name: old.row.name.clone(),
            });
        }
    }
    blocked
}

fn resolve_ports(group: &NbPortGroup, observed: &Observed, d: &mut NbDiff) -> BTreeSet<Uuid> {
    let mut out = BTreeSet::new();
    for p in &group.ports {
        match observed.switch_ports.get(p) {
            Some(u) => {
                out.insert(*u);
            }
            None => problem(
                d,
                &group.owner.route,
                "PortNotFound",
                format!(
                    "logical switch port {p} does not exist (yet); its pod is left out of {}",
                    group.name
                ),
            ),
        }
    }
    out
}

fn port_groups_and_acls(desired: &DesiredNb, observed: &Observed, d: &mut NbDiff) {
    let mut seen = by_id(&observed.port_groups, |r| &r.0.owner.id);
    let mut acls_seen = by_id(&observed.acls, |r| &r.owner.id);
    let mut acls_wanted: BTreeMap<&str, Vec<&NbAcl>> = BTreeMap::new();
    for a in &desired.acls {
        acls_wanted
            .entry(a.port_group.as_str())
            .or_default()
            .push(a);
    }
    for want in &desired.port_groups {
        let ports = resolve_ports(want, observed, d);
        let wanted_acls = acls_wanted.remove(want.name.as_str()).unwrap_or_default();
        match seen.remove(want.owner.id.as_str()) {
            Some(rows) if rows[0].row.0.name == want.name => {
                let have = &rows[0];
                let have_ports: BTreeSet<Uuid> = have
                    .row
                    .0
                    .ports
                    .iter()
                    .filter_map(|p| observed.switch_ports.get(p).copied())
                    .collect();
                let add: BTreeSet<_> = ports.difference(&have_ports).copied().collect();
                let remove: BTreeSet<_> = have_ports.difference(&ports).copied().collect();
                if !add.is_empty() || !remove.is_empty() {
                    d.changes.push(NbChange::UpdatePortGroup {
                        uuid: have.uuid,
                        name: want.name.clone(),
                        add,
                        remove,
                    });
                }
                for dup in &rows[1..] {
                    d.changes.push(NbChange::DeletePortGroup {
                        uuid: dup.uuid,
                        name: dup.row.0.name.clone(),
                    });
                }
                for acl in wanted_acls {
                    match acls_seen.remove(acl.owner.id.as_str()) {
                        Some(rows) if rows[0].row.port_group == want.name => {
                            if rows[0].row != *acl {
                                d.changes.push(NbChange::UpdateAcl {
                                    uuid: rows[0].uuid,
                                    acl: acl.clone(),
                                });
                            }
                            for dup in &rows[1..] {
                                d.changes.push(NbChange::DeleteAcl {
                                    port_group: have.uuid,
                                    uuid: dup.uuid,
                                    acl: dup.row.clone(),
                                });
                            }
                        }
                        other => {
                            for old in other.into_iter().flatten() {
                                delete_acl(observed, old, d);
                            }
                            d.changes.push(NbChange::CreateAcl {
                                port_group: have.uuid,
                                acl: acl.clone(),
                            });
                        }
                    }
                }
            }
            other => {
                for old in other.into_iter().flatten() {
                    d.changes.push(NbChange::DeletePortGroup {
                        uuid: old.uuid,
                        name: old.row.0.name.clone(),
                    });
                }
                if name_taken(observed, PORT_GROUP, &want.name) {
                    problem(
                        d,
                        &want.owner.route,
                        "NameTaken",
                        format!(
                            "Port_Group {} exists and is not owned by ovnkube-route",
                            want.name
                        ),
                    );
                    continue;
                }
                // Deleting the old group (if any) drops its ACLs with it (strong references).
                for acl in &wanted_acls {
                    acls_seen.remove(acl.owner.id.as_str());
                }
                d.changes.push(NbChange::CreatePortGroup {
                    group: want.clone(),
                    ports,
                    acls: wanted_acls.into_iter().cloned().collect(),
                });
            }
        }
    }
    for (pg, acls) in acls_wanted {
        for acl in acls {
            problem(
                d,
                &acl.owner.route,
                "PortGroupNotPlanned",
                format!(
                    "ACL {} refers to port group {pg}, which is not planned",
                    acl.owner.id
                ),
            );
        }
    }
    let deleted_groups: BTreeSet<String> = seen
        .values()
        .flatten()
        .map(|s| s.row.0.name.clone())
        .collect();
    for rows in seen.into_values() {
        for old in rows {
            d.changes.push(NbChange::DeletePortGroup {
                uuid: old.uuid,
                name: old.row.0.name.clone(),
            });
        }
    }
    for rows in acls_seen.into_values() {
        for old in rows {
            if !deleted_groups.contains(&old.row.port_group) {
                delete_acl(observed, old, d);
            }
        }
    }
}

fn delete_acl(observed: &Observed, old: &Seen<NbAcl>, d: &mut NbDiff) {
    let pg = observed
        .port_groups
        .iter()
        .find(|p| p.row.1.contains(&old.uuid));
    if let Some(pg) = pg {
        d.changes.push(NbChange::DeleteAcl {
            port_group: pg.uuid,
            uuid: old.uuid,
            acl: old.row.clone(),
        });
    }
    // An ACL no port group references is already being garbage-collected.
}

/// A row hanging off a logical router (policies and static routes): same matching, router
/// and next-hop checks, and create / update / delete shapes.
pub(super) trait RouterRow: Clone + PartialEq {
    const WHAT: &'static str;
    fn owner(&self) -> &Owner;
    fn router(&self) -> &str;
    /// Next hops that must lie on a network of the router's ports.
    fn nexthops_to_check(&self) -> Vec<&str>;
    fn create(router: Uuid, row: Self) -> NbChange;
    fn update(uuid: Uuid, row: Self) -> NbChange;
    fn delete(router: Uuid, uuid: Uuid, row: Self) -> NbChange;
}

impl RouterRow for NbPolicy {
    const WHAT: &'static str = "policy";
    fn owner(&self) -> &Owner {
        &self.owner
    }
    fn router(&self) -> &str {
        &self.router
    }
    fn nexthops_to_check(&self) -> Vec<&str> {
        if self.action == "reroute" {
            self.nexthops.iter().map(String::as_str).collect()
        } else {
            Vec::new()
        }
    }
    fn create(router: Uuid, policy: Self) -> NbChange {
        NbChange::CreatePolicy { router, policy }
    }
    fn update(uuid: Uuid, policy: Self) -> NbChange {
        NbChange::UpdatePolicy { uuid, policy }
    }
    fn delete(router: Uuid, uuid: Uuid, policy: Self) -> NbChange {
        NbChange::DeletePolicy {
            router,
            uuid,
            policy,
        }
    }
}

impl RouterRow for NbStaticRoute {
    const WHAT: &'static str = "static route";
    fn owner(&self) -> &Owner {
        &self.owner
    }
    fn router(&self) -> &str {
        &self.router
    }
    fn nexthops_to_check(&self) -> Vec<&str> {
        vec![self.nexthop.as_str()]
    }
    fn create(router: Uuid, route: Self) -> NbChange {
        NbChange::CreateStaticRoute {
            router,
            route,
            bfd: None,
        }
    }
    fn update(uuid: Uuid, route: Self) -> NbChange {
        NbChange::UpdateStaticRoute {
            uuid,
            route,
            bfd: None,
        }
    }
    fn delete(router: Uuid, uuid: Uuid, route: Self) -> NbChange {
        NbChange::DeleteStaticRoute {
            router,
            uuid,
            route,
        }
    }
}

fn policies(desired: &DesiredNb, observed: &Observed, blocked: &BTreeSet<String>, d: &mut NbDiff) {
    // `$name` in a match is resolved by name: with a foreign set of that name the policy
    // would reroute addresses we never selected. Not written; a row of ours for it is
    // deleted (it is left out of the wanted rows) for the same reason.
    let mut wanted = Vec::with_capacity(desired.policies.len());
    for want in &desired.policies {
        let foreign_set = want
            .match_
            .split_whitespace()
            .filter_map(|t| t.strip_prefix('$'))
            .find(|n| blocked.contains(*n));
        match foreign_set {
            Some(set) => problem(
                d,
                &want.owner.route,
                "NameTaken",
                format!(
                    "policy {} not written: its match refers to Address_Set {set}, which is not owned by ovnkube-route",
                    want.owner.id
                ),
            ),
            None => wanted.push(want.clone()),
        }
    }
    router_rows(&wanted, &observed.policies, observed, d);
}

pub(super) fn router_rows<T: RouterRow>(
    wanted: &[T],
    seen: &[Seen<T>],
    observed: &Observed,
    d: &mut NbDiff,
) {
    let mut seen = by_id(seen, |r| r.owner().id.as_str());
    for want in wanted {
        let id = want.owner().id.as_str();
        let Some((router, info)) = observed
            .routers
            .get(want.router())
            .and_then(|r| r.uuid.map(|u| (u, r)))
        else {
            problem(
                d,
                &want.owner().route,
                "RouterNotFound",
                format!(
                    "logical router {} does not exist; {} {id} waits for it",
                    want.router(),
                    T::WHAT
                ),
            );
            // Leave what exists for it alone.
            seen.remove(id);
            continue;
        };
        let unreachable: Vec<&str> = want
            .nexthops_to_check()
            .into_iter()
            .filter(|h| !h.parse().is_ok_and(|ip| info.reaches(ip)))
            .collect();
        if !unreachable.is_empty() {
            problem(
                d,
                &want.owner().route,
                "NextHopUnreachable",
                format!(
                    "next hop {} is on no network of router {}'s ports; ovn-northd would ignore the {}",
                    unreachable.join(","),
                    want.router(),
                    T::WHAT
                ),
            );
            // Leave an existing row alone rather than tear down what was programmed.
            seen.remove(id);
            continue;
        }
        match seen.remove(id) {
            Some(rows) if rows[0].row.router() == want.router() => {
                if rows[0].row != *want {
                    d.changes.push(T::update(rows[0].uuid, want.clone()));
                }
                for dup in &rows[1..] {
                    d.changes.push(T::delete(router, dup.uuid, dup.row.clone()));
                }
            }
            other => {
                for old in other.into_iter().flatten() {
                    delete_router_row(observed, old, d);
                }
                d.changes.push(T::create(router, want.clone()));
            }
        }
    }
    for old in seen.into_values().flatten() {
        delete_router_row(observed, old, d);
    }
}

fn delete_router_row<T: RouterRow>(observed: &Observed, old: &Seen<T>, d: &mut NbDiff) {
    // A row whose router is gone went with it (non-root table): nothing to do.
    if let Some(router) = observed.routers.get(old.row.router()).and_then(|r| r.uuid) {
        d.changes.push(T::delete(router, old.uuid, old.row.clone()));
    }
}
