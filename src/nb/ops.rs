//! NB changes -> RFC 7047 `transact` operations (section 5.2), and their readable form.
//!
//! Every operation that touches an existing row of ours names it by uuid AND by ownership
//! (`external_ids includes {owner-controller, id}`), and its result must count exactly one
//! row; a delete (done by dropping the router's / port group's reference, since these tables
//! are not root tables) is guarded by a `wait` that the row is still ours. So a row that
//! changed hands or vanished since the replica was read fails the transaction instead of
//! being clobbered, and the next pass works from fresh data.
use std::collections::{BTreeMap, BTreeSet};

use super::bfd::BfdRef;
use super::diff::NbChange;
use super::observed::{ACL, ADDRESS_SET, BFD, POLICY, PORT_GROUP, ROUTER, STATIC_ROUTE};
use crate::ovsdb::{Atom, Condition, Mutation, OpResult, Operation, Row, Uuid, Value, WaitUntil};
use crate::plan::nb::{
    ID_KEY, NbAcl, NbPolicy, NbStaticRoute, OWNER_CONTROLLER, OWNER_CONTROLLER_KEY, Owner,
};

/// What an operation's result must say for the transaction to count as applied as planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Any successful result.
    Ok,
    /// `{"count": n}` with exactly this n.
    Count(i64),
}

/// A transaction ready to send: operations and what each must return.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NbTxn {
    pub ops: Vec<Operation>,
    pub expect: Vec<Expect>,
}

impl NbTxn {
    fn push(&mut self, op: Operation, expect: Expect) {
        self.ops.push(op);
        self.expect.push(expect);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The first operation whose result is not what the plan relied on: a row that changed
    /// hands or vanished since the replica was read. `None` when all is as expected.
    pub fn unexpected(&self, results: &[OpResult]) -> Option<(usize, String)> {
        self.expect
            .iter()
            .zip(results)
            .enumerate()
            .find_map(|(i, (e, r))| match (e, r) {
                (Expect::Count(n), r) if r.count() != Some(*n) => Some((
                    i,
                    format!(
                        "operation {i} ({}) matched {:?} row(s), expected {n}",
                        op_name(&self.ops[i]),
                        r.count()
                    ),
                )),
                _ => None,
            })
    }
}

fn op_name(op: &Operation) -> String {
    match op {
        Operation::Insert { table, .. } => format!("insert into {table}"),
        Operation::Update { table, .. } => format!("update {table}"),
        Operation::Mutate { table, .. } => format!("mutate {table}"),
        Operation::Delete { table, .. } => format!("delete from {table}"),
        other => format!("{other:?}"),
    }
}

fn uuid_set(us: &BTreeSet<Uuid>) -> Value {
    Value::set(us.iter().map(|u| Atom::Uuid(*u)))
}

fn str_set<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::set(items.into_iter().map(|s| Atom::string(s.as_str())))
}

fn named(name: &str) -> Value {
    Value::set([Atom::NamedUuid(name.to_owned())])
}

fn ids(owner: &Owner) -> Value {
    Value::map(owner.external_ids())
}

/// `_uuid == u` and still ours with this id.
fn ours(u: Uuid, owner: &Owner) -> Vec<Condition> {
    vec![
        Condition::uuid(u),
        Condition::includes(
            "external_ids",
            Value::map([
                (OWNER_CONTROLLER_KEY, OWNER_CONTROLLER),
                (ID_KEY, owner.id.as_str()),
            ]),
        ),
    ]
}

/// Root-table rows of ours (address sets, port groups) are matched by uuid and ownership
/// marker; the id is not needed since the uuid was read from a row that carried it.
fn ours_any(u: Uuid) -> Vec<Condition> {
    vec![
        Condition::uuid(u),
        Condition::includes(
            "external_ids",
            Value::map([(OWNER_CONTROLLER_KEY, OWNER_CONTROLLER)]),
        ),
    ]
}

/// Fails the whole transaction unless a row matches `conditions`. RFC 7047 section 5.2.6:
/// `until "!="` with no rows holds once the query matches something; timeout 0 fails at
/// once. An update or mutate that matches nothing is not an error (it would commit the rest
/// of the transaction), so every operation on an existing row is preceded by this guard and
/// the transaction is all or nothing.
fn guard(t: &mut NbTxn, table: &str, conditions: Vec<Condition>) {
    t.push(
        Operation::Wait {
            table: table.to_owned(),
            conditions,
            columns: vec!["_uuid".to_owned()],
            until: WaitUntil::NotEqual,
            rows: vec![],
            timeout_ms: Some(0),
        },
        Expect::Ok,
    );
}

fn guard_still_ours(t: &mut NbTxn, table: &str, u: Uuid, owner: &Owner) {
    guard(t, table, ours(u, owner));
}

fn mutate(t: &mut NbTxn, table: &str, conditions: Vec<Condition>, mutations: Vec<Mutation>) {
    guard(t, table, conditions.clone());
    t.push(
        Operation::Mutate {
            table: table.to_owned(),
            conditions,
            mutations,
        },
        Expect::Count(1),
    );
}

fn row(cols: Vec<(&str, Value)>) -> Row {
    cols.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn policy_row(p: &NbPolicy) -> Row {
    row(vec![
        ("priority", p.priority.into()),
        ("match", p.match_.clone().into()),
        ("action", p.action.clone().into()),
        ("nexthops", str_set(&p.nexthops)),
        ("external_ids", ids(&p.owner)),
    ])
}

/// `bfd_names`: the named uuids of BFD rows created in the same transaction.
fn route_row(
    r: &NbStaticRoute,
    bfd: Option<&BfdRef>,
    bfd_names: &BTreeMap<(String, String), String>,
) -> Row {
    let session = match bfd {
        Some(BfdRef::Existing(u)) => Value::set([Atom::Uuid(*u)]),
        Some(BfdRef::New {
            logical_port,
            dst_ip,
        }) => match bfd_names.get(&(logical_port.clone(), dst_ip.clone())) {
            Some(n) => named(n),
            None => Value::set([]),
        },
        None => Value::set([]),
    };
    row(vec![
        ("ip_prefix", r.ip_prefix.clone().into()),
        ("nexthop", r.nexthop.clone().into()),
        ("policy", str_set(r.policy.iter())),
        ("bfd", session),
        ("external_ids", ids(&r.owner)),
    ])
}

fn acl_row(a: &NbAcl) -> Row {
    row(vec![
        ("direction", a.direction.clone().into()),
        ("priority", a.priority.into()),
        ("match", a.match_.clone().into()),
        ("action", a.action.clone().into()),
        ("external_ids", ids(&a.owner)),
    ])
}

fn insert(t: &mut NbTxn, table: &str, row: Row, uuid_name: Option<String>) {
    t.push(
        Operation::Insert {
            table: table.to_owned(),
            row,
            uuid_name,
        },
        Expect::Ok,
    );
}

fn update(t: &mut NbTxn, table: &str, conditions: Vec<Condition>, row: Row) {
    guard(t, table, conditions.clone());
    t.push(
        Operation::Update {
            table: table.to_owned(),
            conditions,
            row,
        },
        Expect::Count(1),
    );
}

fn set_mutations(
    column: &str,
    add: Value,
    remove: Value,
    any_add: bool,
    any_remove: bool,
) -> Vec<Mutation> {
    let mut m = Vec::new();
    if any_remove {
        m.push(Mutation::delete(column, remove));
    }
    if any_add {
        m.push(Mutation::insert(column, add));
    }
    m
}

/// Builds one transaction for all changes. Named uuids are `r0`, `r1`, ... (RFC 7047
/// section 5.2.1 `uuid-name`, which must be an `<id>`).
pub fn transaction(changes: &[NbChange]) -> NbTxn {
    let mut t = NbTxn::default();
    let mut n = 0usize;
    let mut name = || {
        n += 1;
        format!("r{}", n - 1)
    };
    // BFD rows first: static routes later in the transaction refer to them by name.
    let mut bfd_names: BTreeMap<(String, String), String> = BTreeMap::new();
    for c in changes {
        if let NbChange::CreateBfd {
            owner,
            logical_port,
            dst_ip,
        } = c
        {
            let nm = name();
            insert(
                &mut t,
                BFD,
                row(vec![
                    ("logical_port", logical_port.clone().into()),
                    ("dst_ip", dst_ip.clone().into()),
                    ("external_ids", ids(owner)),
                ]),
                Some(nm.clone()),
            );
            bfd_names.insert((logical_port.clone(), dst_ip.clone()), nm);
        }
    }
    for c in changes {
        match c {
            NbChange::CreateBfd { .. } => {}
            NbChange::DeleteBfd { uuid: u, .. } => t.push(
                Operation::Delete {
                    table: BFD.to_owned(),
                    conditions: ours_any(*u),
                },
                Expect::Count(1),
            ),
            NbChange::CreateAddressSet(a) => insert(
                &mut t,
                ADDRESS_SET,
                row(vec![
                    ("name", a.name.clone().into()),
                    ("addresses", str_set(&a.addresses)),
                    ("external_ids", ids(&a.owner)),
                ]),
                None,
            ),
            NbChange::UpdateAddressSet {
                uuid: u,
                add,
                remove,
                ..
            } => {
                let m = set_mutations(
                    "addresses",
                    str_set(add),
                    str_set(remove),
                    !add.is_empty(),
                    !remove.is_empty(),
                );
                mutate(&mut t, ADDRESS_SET, ours_any(*u), m);
            }
            NbChange::DeleteAddressSet { uuid: u, .. } => t.push(
                Operation::Delete {
                    table: ADDRESS_SET.to_owned(),
                    conditions: ours_any(*u),
                },
                Expect::Count(1),
            ),
            NbChange::CreatePortGroup { group, ports, acls } => {
                let mut acl_names = Vec::new();
                for a in acls {
                    let nm = name();
                    insert(&mut t, ACL, acl_row(a), Some(nm.clone()));
                    acl_names.push(Atom::NamedUuid(nm));
                }
                insert(
                    &mut t,
                    PORT_GROUP,
                    row(vec![
                        ("name", group.name.clone().into()),
                        ("ports", uuid_set(ports)),
                        ("acls", Value::set(acl_names)),
                        ("external_ids", ids(&group.owner)),
                    ]),
                    None,
                );
            }
            NbChange::UpdatePortGroup {
                uuid: u,
                add,
                remove,
                ..
            } => {
                let m = set_mutations(
                    "ports",
                    uuid_set(add),
                    uuid_set(remove),
                    !add.is_empty(),
                    !remove.is_empty(),
                );
                mutate(&mut t, PORT_GROUP, ours_any(*u), m);
            }
            NbChange::DeletePortGroup { uuid: u, .. } => t.push(
                Operation::Delete {
                    table: PORT_GROUP.to_owned(),
                    conditions: ours_any(*u),
                },
                Expect::Count(1),
            ),
            NbChange::CreatePolicy { router, policy } => {
                let nm = name();
                insert(&mut t, POLICY, policy_row(policy), Some(nm.clone()));
                mutate(
                    &mut t,
                    ROUTER,
                    vec![Condition::uuid(*router)],
                    vec![Mutation::insert("policies", named(&nm))],
                );
            }
            NbChange::UpdatePolicy { uuid: u, policy } => {
                update(&mut t, POLICY, ours(*u, &policy.owner), policy_row(policy))
            }
            NbChange::DeletePolicy {
                router,
                uuid: u,
                policy,
            } => {
                guard_still_ours(&mut t, POLICY, *u, &policy.owner);
                mutate(
                    &mut t,
                    ROUTER,
                    vec![Condition::uuid(*router)],
                    vec![Mutation::delete(
                        "policies",
                        uuid_set(&BTreeSet::from([*u])),
                    )],
                );
            }
            NbChange::CreateStaticRoute { router, route, bfd } => {
                let nm = name();
                insert(
                    &mut t,
                    STATIC_ROUTE,
                    route_row(route, bfd.as_ref(), &bfd_names),
                    Some(nm.clone()),
                );
                mutate(
                    &mut t,
                    ROUTER,
                    vec![Condition::uuid(*router)],
                    vec![Mutation::insert("static_routes", named(&nm))],
                );
            }
            NbChange::UpdateStaticRoute {
                uuid: u,
                route,
                bfd,
            } => update(
                &mut t,
                STATIC_ROUTE,
                ours(*u, &route.owner),
                route_row(route, bfd.as_ref(), &bfd_names),
            ),
            NbChange::DeleteStaticRoute {
                router,
                uuid: u,
                route,
            } => {
                guard_still_ours(&mut t, STATIC_ROUTE, *u, &route.owner);
                mutate(
                    &mut t,
                    ROUTER,
                    vec![Condition::uuid(*router)],
                    vec![Mutation::delete(
                        "static_routes",
                        uuid_set(&BTreeSet::from([*u])),
                    )],
                );
            }
            NbChange::CreateAcl { port_group, acl } => {
                let nm = name();
                insert(&mut t, ACL, acl_row(acl), Some(nm.clone()));
                mutate(
                    &mut t,
                    PORT_GROUP,
                    vec![Condition::uuid(*port_group)],
                    vec![Mutation::insert("acls", named(&nm))],
                );
            }
            NbChange::UpdateAcl { uuid: u, acl } => {
                update(&mut t, ACL, ours(*u, &acl.owner), acl_row(acl))
            }
            NbChange::DeleteAcl {
                port_group,
                uuid: u,
                acl,
            } => {
                guard_still_ours(&mut t, ACL, *u, &acl.owner);
                mutate(
                    &mut t,
                    PORT_GROUP,
                    vec![Condition::uuid(*port_group)],
                    vec![Mutation::delete("acls", uuid_set(&BTreeSet::from([*u])))],
                );
            }
        }
    }
    if !t.is_empty() {
        t.push(
            Operation::Comment(format!("ovnkube-route: {} change(s)", changes.len())),
            Expect::Ok,
        );
    }
    t
}

pub use super::describe::describe;
