//! NB changes -> RFC 7047 `transact` operations (section 5.2), and their readable form.
//!
//! Every operation that touches an existing row of ours names it by uuid AND by ownership
//! (`external_ids includes {owner-controller, id}`), and its result must count exactly one
//! row; a delete (done by dropping the router's / port group's reference, since these tables
//! are not root tables) is guarded by a `wait` that the row is still ours. So a row that
//! changed hands or vanished since the replica was read fails the transaction instead of
//! being clobbered, and the next pass works from fresh data.
use std::collections::BTreeSet;

use serde_json::{Value as Json, json};

use super::diff::NbChange;
use super::observed::{ACL, ADDRESS_SET, POLICY, PORT_GROUP, ROUTER, STATIC_ROUTE};
use crate::ovsdb::{Uuid, Value};
use crate::plan::nb::{
    ID_KEY, NbAcl, NbPolicy, NbStaticRoute, OWNER_CONTROLLER, OWNER_CONTROLLER_KEY, Owner,
};

/// What an operation's result must say for the transaction to count as applied as planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Any successful result.
    Ok,
    /// `{"count": n}` with exactly this n.
    Count(u64),
}

/// A transaction ready to send: operations and what each must return.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NbTxn {
    pub ops: Vec<Json>,
    pub expect: Vec<Expect>,
}

impl NbTxn {
    fn push(&mut self, op: Json, expect: Expect) {
        self.ops.push(op);
        self.expect.push(expect);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

fn uuid(u: Uuid) -> Json {
    json!(["uuid", u.to_string()])
}

fn uuid_set(us: &BTreeSet<Uuid>) -> Json {
    json!(["set", us.iter().map(|u| uuid(*u)).collect::<Vec<_>>()])
}

fn str_set<'a>(items: impl IntoIterator<Item = &'a String>) -> Json {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

fn ids(owner: &Owner) -> Json {
    Value::map(owner.external_ids()).to_json()
}

/// `_uuid == u` and still ours with this id.
fn ours(u: Uuid, owner: &Owner) -> Json {
    json!([
        ["_uuid", "==", uuid(u)],
        [
            "external_ids",
            "includes",
            [
                "map",
                [[OWNER_CONTROLLER_KEY, OWNER_CONTROLLER], [ID_KEY, owner.id]]
            ]
        ]
    ])
}

fn guard_still_ours(t: &mut NbTxn, table: &str, u: Uuid, owner: &Owner) {
    t.push(
        json!({"op": "wait", "table": table, "where": ours(u, owner), "columns": ["_uuid"],
               "until": "!=", "rows": [], "timeout": 0}),
        Expect::Ok,
    );
}

fn mutate_ref(t: &mut NbTxn, table: &str, row: Uuid, column: &str, mutator: &str, value: Json) {
    t.push(
        json!({"op": "mutate", "table": table, "where": [["_uuid", "==", uuid(row)]],
               "mutations": [[column, mutator, value]]}),
        Expect::Count(1),
    );
}

fn policy_row(p: &NbPolicy) -> Json {
    json!({"priority": p.priority, "match": p.match_, "action": p.action,
           "nexthops": str_set(&p.nexthops), "external_ids": ids(&p.owner)})
}

fn route_row(r: &NbStaticRoute) -> Json {
    let policy = match &r.policy {
        Some(p) => json!(["set", [p]]),
        None => json!(["set", []]),
    };
    json!({"ip_prefix": r.ip_prefix, "nexthop": r.nexthop, "policy": policy,
           "external_ids": ids(&r.owner)})
}

fn acl_row(a: &NbAcl) -> Json {
    json!({"direction": a.direction, "priority": a.priority, "match": a.match_,
           "action": a.action, "external_ids": ids(&a.owner)})
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
    for c in changes {
        match c {
            NbChange::CreateAddressSet(a) => t.push(
                json!({"op": "insert", "table": ADDRESS_SET, "row": {"name": a.name,
                       "addresses": str_set(&a.addresses), "external_ids": ids(&a.owner)}}),
                Expect::Ok,
            ),
            NbChange::UpdateAddressSet { uuid: u, add, remove, .. } => {
                let mut muts = Vec::new();
                if !remove.is_empty() {
                    muts.push(json!(["addresses", "delete", str_set(remove)]));
                }
                if !add.is_empty() {
                    muts.push(json!(["addresses", "insert", str_set(add)]));
                }
                t.push(
                    json!({"op": "mutate", "table": ADDRESS_SET, "where": ours_any(*u), "mutations": muts}),
                    Expect::Count(1),
                );
            }
            NbChange::DeleteAddressSet { uuid: u, .. } => t.push(
                json!({"op": "delete", "table": ADDRESS_SET, "where": ours_any(*u)}),
                Expect::Count(1),
            ),
            NbChange::CreatePortGroup { group, ports, acls } => {
                let mut acl_names = Vec::new();
                for a in acls {
                    let nm = name();
                    t.push(
                        json!({"op": "insert", "table": ACL, "row": acl_row(a), "uuid-name": nm}),
                        Expect::Ok,
                    );
                    acl_names.push(json!(["named-uuid", nm]));
                }
                t.push(
                    json!({"op": "insert", "table": PORT_GROUP, "row": {"name": group.name,
                           "ports": uuid_set(ports), "acls": ["set", acl_names],
                           "external_ids": ids(&group.owner)}}),
                    Expect::Ok,
                );
            }
            NbChange::UpdatePortGroup { uuid: u, add, remove, .. } => {
                let mut muts = Vec::new();
                if !remove.is_empty() {
                    muts.push(json!(["ports", "delete", uuid_set(remove)]));
                }
                if !add.is_empty() {
                    muts.push(json!(["ports", "insert", uuid_set(add)]));
                }
                t.push(
                    json!({"op": "mutate", "table": PORT_GROUP, "where": ours_any(*u), "mutations": muts}),
                    Expect::Count(1),
                );
            }
            NbChange::DeletePortGroup { uuid: u, .. } => t.push(
                json!({"op": "delete", "table": PORT_GROUP, "where": ours_any(*u)}),
                Expect::Count(1),
            ),
            NbChange::CreatePolicy { router, policy } => {
                let nm = name();
                t.push(
                    json!({"op": "insert", "table": POLICY, "row": policy_row(policy), "uuid-name": nm}),
                    Expect::Ok,
                );
                mutate_ref(&mut t, ROUTER, *router, "policies", "insert", json!(["named-uuid", nm]));
            }
            NbChange::UpdatePolicy { uuid: u, policy } => t.push(
                json!({"op": "update", "table": POLICY, "where": ours(*u, &policy.owner), "row": policy_row(policy)}),
                Expect::Count(1),
            ),
            NbChange::DeletePolicy { router, uuid: u, policy } => {
                guard_still_ours(&mut t, POLICY, *u, &policy.owner);
                mutate_ref(&mut t, ROUTER, *router, "policies", "delete", uuid(*u));
            }
            NbChange::CreateStaticRoute { router, route } => {
                let nm = name();
                t.push(
                    json!({"op": "insert", "table": STATIC_ROUTE, "row": route_row(route), "uuid-name": nm}),
                    Expect::Ok,
                );
                mutate_ref(&mut t, ROUTER, *router, "static_routes", "insert", json!(["named-uuid", nm]));
            }
            NbChange::UpdateStaticRoute { uuid: u, route } => t.push(
                json!({"op": "update", "table": STATIC_ROUTE, "where": ours(*u, &route.owner), "row": route_row(route)}),
                Expect::Count(1),
            ),
            NbChange::DeleteStaticRoute { router, uuid: u, route } => {
                guard_still_ours(&mut t, STATIC_ROUTE, *u, &route.owner);
                mutate_ref(&mut t, ROUTER, *router, "static_routes", "delete", uuid(*u));
            }
            NbChange::CreateAcl { port_group, acl } => {
                let nm = name();
                t.push(
                    json!({"op": "insert", "table": ACL, "row": acl_row(acl), "uuid-name": nm}),
                    Expect::Ok,
                );
                mutate_ref(&mut t, PORT_GROUP, *port_group, "acls", "insert", json!(["named-uuid", nm]));
            }
            NbChange::UpdateAcl { uuid: u, acl } => t.push(
                json!({"op": "update", "table": ACL, "where": ours(*u, &acl.owner), "row": acl_row(acl)}),
                Expect::Count(1),
            ),
            NbChange::DeleteAcl { port_group, uuid: u, acl } => {
                guard_still_ours(&mut t, ACL, *u, &acl.owner);
                mutate_ref(&mut t, PORT_GROUP, *port_group, "acls", "delete", uuid(*u));
            }
        }
    }
    if !t.is_empty() {
        t.push(json!({"op": "comment", "comment": format!("ovnkube-route: {} change(s)", changes.len())}), Expect::Ok);
    }
    t
}

/// Root-table rows of ours (address sets, port groups) are matched by uuid and ownership
/// marker; the id is not needed since the uuid was read from a row that carried it.
fn ours_any(u: Uuid) -> Json {
    json!([
        ["_uuid", "==", uuid(u)],
        [
            "external_ids",
            "includes",
            ["map", [[OWNER_CONTROLLER_KEY, OWNER_CONTROLLER]]]
        ]
    ])
}

/// One line per change, in the words of `ovn-nbctl`, for `plan` output and logs.
pub fn describe(c: &NbChange) -> String {
    fn q(s: &str) -> String {
        format!("'{s}'")
    }
    fn hops(h: &BTreeSet<String>) -> String {
        h.iter().cloned().collect::<Vec<_>>().join(",")
    }
    match c {
        NbChange::CreateAddressSet(a) => format!(
            "ovn-nbctl create Address_Set name={} addresses={} # {}",
            a.name,
            q(&a.addresses.iter().cloned().collect::<Vec<_>>().join(",")),
            a.owner.id
        ),
        NbChange::UpdateAddressSet {
            name, add, remove, ..
        } => {
            let mut parts = Vec::new();
            for a in add {
                parts.push(format!("ovn-nbctl add Address_Set {name} addresses {a}"));
            }
            for r in remove {
                parts.push(format!("ovn-nbctl remove Address_Set {name} addresses {r}"));
            }
            parts.join("\n")
        }
        NbChange::DeleteAddressSet { name, .. } => format!("ovn-nbctl destroy Address_Set {name}"),
        NbChange::CreatePortGroup { group, acls, .. } => {
            let mut s = format!(
                "ovn-nbctl pg-add {} {}",
                group.name,
                group.ports.iter().cloned().collect::<Vec<_>>().join(" ")
            );
            for a in acls {
                s.push_str(&format!("\n{}", describe_acl_add(a)));
            }
            s
        }
        NbChange::UpdatePortGroup {
            name, add, remove, ..
        } => format!(
            "ovn-nbctl pg-set-ports {name} # +{} -{} port(s)",
            add.len(),
            remove.len()
        ),
        NbChange::DeletePortGroup { name, .. } => format!("ovn-nbctl pg-del {name}"),
        NbChange::CreatePolicy { policy: p, .. } | NbChange::UpdatePolicy { policy: p, .. } => {
            let verb = if matches!(c, NbChange::CreatePolicy { .. }) {
                ""
            } else {
                "# update: "
            };
            format!(
                "{verb}ovn-nbctl lr-policy-add {} {} {} {} {}",
                p.router,
                p.priority,
                q(&p.match_),
                p.action,
                hops(&p.nexthops)
            )
        }
        NbChange::DeletePolicy {
            policy: p, uuid, ..
        } => {
            format!(
                "ovn-nbctl lr-policy-del {} {uuid} # {} {}",
                p.router,
                p.priority,
                q(&p.match_)
            )
        }
        NbChange::CreateStaticRoute { route: r, .. }
        | NbChange::UpdateStaticRoute { route: r, .. } => {
            let verb = if matches!(c, NbChange::CreateStaticRoute { .. }) {
                ""
            } else {
                "# update: "
            };
            let pol = r
                .policy
                .as_deref()
                .map(|p| format!("--policy={p} "))
                .unwrap_or_default();
            format!(
                "{verb}ovn-nbctl {pol}lr-route-add {} {} {}",
                r.router, r.ip_prefix, r.nexthop
            )
        }
        NbChange::DeleteStaticRoute { route: r, .. } => {
            format!(
                "ovn-nbctl lr-route-del {} {} {}",
                r.router, r.ip_prefix, r.nexthop
            )
        }
        NbChange::CreateAcl { acl, .. } => describe_acl_add(acl),
        NbChange::UpdateAcl { acl, .. } => format!("# update: {}", describe_acl_add(acl)),
        NbChange::DeleteAcl { acl, .. } => format!(
            "ovn-nbctl acl-del {} {} {} {}",
            acl.port_group,
            acl.direction,
            acl.priority,
            q(&acl.match_)
        ),
    }
}

fn describe_acl_add(a: &NbAcl) -> String {
    format!(
        "ovn-nbctl --type=port-group acl-add {} {} {} '{}' {}",
        a.port_group, a.direction, a.priority, a.match_, a.action
    )
}
