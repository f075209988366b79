//! NB changes as `ovn-nbctl` command lines, for `plan` output and logs: each line runs when
//! pasted into a shell (with `OVN_NB_DB` set) and does what the reconciler's transaction
//! would do to that row, ownership `external_ids` included, so a pasted row is ours and not
//! a name in our way. Rows are named by uuid where a name could also match a row we do not
//! own (deletes and updates), as the reconciler does.
//!
//! Must not: decide anything; it only words [`NbChange`]s.
use std::collections::BTreeSet;

use crate::ovsdb::Uuid;
use crate::plan::nb::{DesiredNb, NbAcl, NbPolicy, NbStaticRoute, Owner};

use super::bfd::BfdRef;
use super::diff::NbChange;

/// A shell word: single-quoted.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// An OVSDB string in ovn-nbctl's syntax: double-quoted, with `"` and `\` escaped (an
/// unquoted IPv6 address would parse as a map key).
fn oq(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A set of strings: `[]` when empty (ovn-nbctl refuses an empty value).
fn set<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let v: Vec<String> = items.into_iter().map(|x| oq(x)).collect();
    if v.is_empty() {
        "[]".into()
    } else {
        v.join(",")
    }
}

/// `col=value` as one shell word.
fn kv(col: &str, value: &str) -> String {
    sh(&format!("{col}={value}"))
}

fn owned(o: &Owner) -> String {
    o.external_ids()
        .iter()
        .map(|(k, v)| sh(&format!("external_ids:{}={}", oq(k), oq(v))))
        .collect::<Vec<_>>()
        .join(" ")
}

fn policy_cols(p: &NbPolicy) -> String {
    [
        kv("priority", &p.priority.to_string()),
        kv("match", &oq(&p.match_)),
        kv("action", &p.action),
        kv("nexthops", &set(&p.nexthops)),
    ]
    .join(" ")
}

fn route_cols(r: &NbStaticRoute) -> String {
    [
        kv("ip_prefix", &oq(&r.ip_prefix)),
        kv("nexthop", &oq(&r.nexthop)),
        kv("policy", &set(r.policy.iter())),
    ]
    .join(" ")
}

/// The `bfd` column: an existing session by uuid; one created by an earlier line is looked
/// up by its key when the line runs (a shell substitution, unquoted on purpose).
fn bfd_col(bfd: Option<&BfdRef>) -> String {
    match bfd {
        None => kv("bfd", "[]"),
        Some(BfdRef::Existing(u)) => kv("bfd", &u.to_string()),
        Some(BfdRef::New {
            logical_port,
            dst_ip,
        }) => format!(
            "bfd=\"$(ovn-nbctl --bare --columns=_uuid find BFD {} {})\"",
            sh(&format!("logical_port={}", oq(logical_port))),
            sh(&format!("dst_ip={}", oq(dst_ip)))
        ),
    }
}

fn acl_cols(a: &NbAcl) -> String {
    [
        kv("direction", &a.direction),
        kv("priority", &a.priority.to_string()),
        kv("match", &oq(&a.match_)),
        kv("action", &a.action),
    ]
    .join(" ")
}

fn acl_create(a: &NbAcl, port_group: &str) -> String {
    format!(
        "ovn-nbctl --id=@a create ACL {} {} -- add Port_Group {port_group} acls @a",
        acl_cols(a),
        owned(&a.owner)
    )
}

fn each(verb: &str, table: &str, name: &str, col: &str, items: &BTreeSet<String>) -> Vec<String> {
    items
        .iter()
        .map(|x| format!("ovn-nbctl {verb} {table} {name} {col} {x}"))
        .collect()
}

/// One or more lines per change, in the words of `ovn-nbctl`.
pub fn describe(c: &NbChange) -> String {
    match c {
        NbChange::CreateAddressSet(a) => format!(
            "ovn-nbctl create Address_Set {} {} {}",
            kv("name", &oq(&a.name)),
            kv("addresses", &set(&a.addresses)),
            owned(&a.owner)
        ),
        NbChange::UpdateAddressSet {
            name, add, remove, ..
        } => {
            let q = |s: &BTreeSet<String>| s.iter().map(|x| sh(&oq(x))).collect();
            let mut v = each("add", "Address_Set", name, "addresses", &q(add));
            v.extend(each("remove", "Address_Set", name, "addresses", &q(remove)));
            v.join("\n")
        }
        NbChange::DeleteAddressSet { uuid, name } => {
            format!("ovn-nbctl destroy Address_Set {uuid}  # {name}")
        }
        NbChange::CreatePortGroup { group, acls, .. } => {
            let mut s = format!(
                "ovn-nbctl pg-add {}{} -- set Port_Group {} {}",
                group.name,
                group
                    .ports
                    .iter()
                    .map(|p| format!(" {}", sh(p)))
                    .collect::<String>(),
                group.name,
                owned(&group.owner)
            );
            for a in acls {
                s.push('\n');
                s.push_str(&acl_create(a, &group.name));
            }
            s
        }
        NbChange::UpdatePortGroup {
            name, add, remove, ..
        } => {
            // By port uuid: the Logical_Switch_Port rows the reconciler resolved.
            let u = |s: &BTreeSet<crate::ovsdb::Uuid>| s.iter().map(|x| x.to_string()).collect();
            let mut v = each("add", "Port_Group", name, "ports", &u(add));
            v.extend(each("remove", "Port_Group", name, "ports", &u(remove)));
            v.join("\n")
        }
        NbChange::DeletePortGroup { name, .. } => format!("ovn-nbctl pg-del {name}"),
        NbChange::CreatePolicy { policy: p, .. } => format!(
            "ovn-nbctl --id=@p create Logical_Router_Policy {} {} -- add Logical_Router {} policies @p",
            policy_cols(p),
            owned(&p.owner),
            p.router
        ),
        NbChange::UpdatePolicy { uuid, policy: p } => format!(
            "ovn-nbctl set Logical_Router_Policy {uuid} {}",
            policy_cols(p)
        ),
        NbChange::DeletePolicy {
            policy: p, uuid, ..
        } => format!(
            "ovn-nbctl lr-policy-del {} {uuid}  # {} {}",
            p.router, p.priority, p.match_
        ),
        NbChange::CreateStaticRoute { route: r, bfd, .. } => format!(
            "ovn-nbctl --id=@r create Logical_Router_Static_Route {} {} {} -- add Logical_Router {} static_routes @r",
            route_cols(r),
            bfd_col(bfd.as_ref()),
            owned(&r.owner),
            r.router
        ),
        NbChange::UpdateStaticRoute {
            uuid,
            route: r,
            bfd,
        } => format!(
            "ovn-nbctl set Logical_Router_Static_Route {uuid} {} {}",
            route_cols(r),
            bfd_col(bfd.as_ref())
        ),
        NbChange::CreateBfd {
            owner,
            logical_port,
            dst_ip,
        } => format!(
            "ovn-nbctl create BFD {} {} {}",
            kv("logical_port", &oq(logical_port)),
            kv("dst_ip", &oq(dst_ip)),
            owned(owner)
        ),
        NbChange::DeleteBfd {
            uuid,
            logical_port,
            dst_ip,
        } => format!("ovn-nbctl destroy BFD {uuid}  # {logical_port} {dst_ip}"),
        NbChange::DeleteStaticRoute { route: r, uuid, .. } => format!(
            "ovn-nbctl remove Logical_Router {} static_routes {uuid}  # {} via {}",
            r.router, r.ip_prefix, r.nexthop
        ),
        NbChange::CreateAcl { acl, .. } => acl_create(acl, &acl.port_group),
        NbChange::UpdateAcl { uuid, acl } => {
            format!("ovn-nbctl set ACL {uuid} {}", acl_cols(acl))
        }
        NbChange::DeleteAcl { acl, uuid, .. } => format!(
            "ovn-nbctl remove Port_Group {} acls {uuid}  # {}",
            acl.port_group, acl.match_
        ),
    }
}

/// Every desired row as a creation, for showing a plan without a database to diff against
/// (router and port uuids are unknown and left nil; such changes are for display only).
pub fn as_creates(desired: &DesiredNb) -> Vec<NbChange> {
    let nil = Uuid(uuid::Uuid::nil());
    let mut out: Vec<NbChange> = desired
        .address_sets
        .iter()
        .cloned()
        .map(NbChange::CreateAddressSet)
        .collect();
    for g in &desired.port_groups {
        let acls = desired
            .acls
            .iter()
            .filter(|a| a.port_group == g.name)
            .cloned()
            .collect();
        out.push(NbChange::CreatePortGroup {
            group: g.clone(),
            ports: BTreeSet::new(),
            acls,
        });
    }
    for p in &desired.policies {
        out.push(NbChange::CreatePolicy {
            router: nil,
            policy: p.clone(),
        });
    }
    for r in &desired.static_routes {
        out.push(NbChange::CreateStaticRoute {
            router: nil,
            route: r.clone(),
            bfd: r.bfd.then(|| BfdRef::New {
                logical_port: "<router port towards the next hop>".into(),
                dst_ip: r.nexthop.clone(),
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_the_shell_and_for_ovsdb() {
        assert_eq!(sh("a'b"), "'a'\\''b'");
        assert_eq!(oq("say \"x\" \\"), "\"say \\\"x\\\" \\\\\"");
        assert_eq!(set(&BTreeSet::new()), "[]");
        let s: BTreeSet<String> = ["fd00::1".to_owned(), "10.0.0.1".to_owned()].into();
        assert_eq!(set(&s), "\"10.0.0.1\",\"fd00::1\"");
    }
}
