//! NB changes as `ovn-nbctl` command lines, for `plan` output and logs: each line runs when
//! pasted into a shell (with `OVN_NB_DB` set) and does what the reconciler's transaction
//! would do to that row, ownership `external_ids` included, so a pasted row is ours and not
//! a name in our way. Rows are named by uuid where a name could also match a row we do not
//! own (deletes and updates), as the reconciler does.
//!
//! Must not: decide anything; it only words [`NbChange`]s.
use std::collections::BTreeSet;

use crate::ovsdb::Atom;
use crate::plan::nb::{NbAcl, NbAddressSet, NbPolicy, NbPortGroup, NbStaticRoute, Owner};

use super::bfd::BfdRef;
use super::diff::{NbChange, RowChange};

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
        kv("action", p.action.as_str()),
        kv("nexthops", &set(&p.nexthops)),
    ]
    .join(" ")
}

fn route_cols(r: &NbStaticRoute) -> String {
    [
        kv("ip_prefix", &oq(&r.ip_prefix)),
        kv("nexthop", &oq(&r.nexthop)),
        kv(
            "policy",
            &set(r.policy.map(|p| p.as_str().to_owned()).iter()),
        ),
        if r.symmetric {
            kv("options:ecmp_symmetric_reply", "true")
        } else {
            kv("options", "{}")
        },
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
        kv("direction", a.direction.as_str()),
        kv("priority", &a.priority.to_string()),
        kv("match", &oq(&a.match_)),
        kv("action", a.action.as_str()),
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

/// A set element as an `ovn-nbctl` word: strings quoted for OVSDB, uuids as they are.
fn atom_word(a: &Atom) -> String {
    match a {
        Atom::String(s) => sh(&oq(s)),
        Atom::Uuid(u) => u.to_string(),
        other => format!("{other:?}"),
    }
}

fn each(verb: &str, table: &str, name: &str, col: &str, items: &BTreeSet<Atom>) -> Vec<String> {
    items
        .iter()
        .map(|x| format!("ovn-nbctl {verb} {table} {name} {col} {}", atom_word(x)))
        .collect()
}

/// One or more lines per change, in the words of `ovn-nbctl`.
pub fn describe(c: &NbChange) -> String {
    match c {
        NbChange::AddressSet(c) => address_set(c),
        NbChange::PortGroup(c) => port_group(c),
        NbChange::Acl(c) => acl(c),
        NbChange::Policy(c) => policy(c),
        NbChange::StaticRoute(c, bfd) => static_route(c, bfd.as_ref()),
        NbChange::CreateBfd {
            owner,
            logical_port,
            dst_ip,
            timers,
        } => format!(
            "ovn-nbctl create BFD {} {}{} {}",
            kv("logical_port", &oq(logical_port)),
            kv("dst_ip", &oq(dst_ip)),
            bfd_timers(timers, false),
            owned(owner)
        ),
        NbChange::UpdateBfd {
            uuid,
            logical_port,
            dst_ip,
            timers,
            ..
        } => format!(
            "ovn-nbctl set BFD {uuid}{}  # {logical_port} {dst_ip}",
            bfd_timers(timers, true)
        ),
        NbChange::DeleteBfd {
            uuid,
            logical_port,
            dst_ip,
            ..
        } => format!("ovn-nbctl destroy BFD {uuid}  # {logical_port} {dst_ip}"),
    }
}

/// ` min_tx=300 ...` for the timers given; with `all`, the others as `[]` (OVN's default).
fn bfd_timers(t: &crate::api::validate::BfdTimers, all: bool) -> String {
    let mut out = String::new();
    for (col, v) in [
        ("min_tx", t.min_tx),
        ("min_rx", t.min_rx),
        ("detect_mult", t.detect_mult),
    ] {
        match v {
            Some(n) => out.push_str(&format!(" {}", kv(col, &n.to_string()))),
            None if all => out.push_str(&format!(" {}", kv(col, "[]"))),
            None => {}
        }
    }
    out
}

fn address_set(c: &RowChange<NbAddressSet>) -> String {
    match c {
        RowChange::Create { row: a, .. } => format!(
            "ovn-nbctl create Address_Set {} {} {}",
            kv("name", &oq(&a.name)),
            kv("addresses", &set(&a.addresses)),
            owned(&a.owner)
        ),
        RowChange::Update {
            row, add, remove, ..
        } => {
            let mut v = each("add", "Address_Set", &row.name, "addresses", add);
            v.extend(each(
                "remove",
                "Address_Set",
                &row.name,
                "addresses",
                remove,
            ));
            v.join("\n")
        }
        RowChange::Delete { uuid, row, .. } => {
            format!("ovn-nbctl destroy Address_Set {uuid}  # {}", row.name)
        }
    }
}

fn port_group(c: &RowChange<NbPortGroup>) -> String {
    match c {
        RowChange::Create { row: group, .. } => format!(
            "ovn-nbctl pg-add {}{} -- set Port_Group {} {}",
            group.name,
            group
                .ports
                .iter()
                .map(|p| format!(" {}", sh(p)))
                .collect::<String>(),
            group.name,
            owned(&group.owner)
        ),
        RowChange::Update {
            row, add, remove, ..
        } => {
            // By port uuid: the Logical_Switch_Port rows the reconciler resolved.
            let mut v = each("add", "Port_Group", &row.name, "ports", add);
            v.extend(each("remove", "Port_Group", &row.name, "ports", remove));
            v.join("\n")
        }
        RowChange::Delete { row, .. } => format!("ovn-nbctl pg-del {}", row.name),
    }
}

fn acl(c: &RowChange<NbAcl>) -> String {
    match c {
        // A new port group's ACLs come after its `pg-add` line (families in parent order).
        RowChange::Create { row: acl, .. } => acl_create(acl, &acl.port_group),
        RowChange::Update { uuid, row: acl, .. } => {
            format!("ovn-nbctl set ACL {uuid} {}", acl_cols(acl))
        }
        RowChange::Delete { row: acl, uuid, .. } => format!(
            "ovn-nbctl remove Port_Group {} acls {uuid}  # {}",
            acl.port_group, acl.match_
        ),
    }
}

fn policy(c: &RowChange<NbPolicy>) -> String {
    match c {
        RowChange::Create { row: p, .. } => format!(
            "ovn-nbctl --id=@p create Logical_Router_Policy {} {} -- add Logical_Router {} policies @p",
            policy_cols(p),
            owned(&p.owner),
            p.router
        ),
        RowChange::Update { uuid, row: p, .. } => format!(
            "ovn-nbctl set Logical_Router_Policy {uuid} {}",
            policy_cols(p)
        ),
        RowChange::Delete { row: p, uuid, .. } => format!(
            "ovn-nbctl lr-policy-del {} {uuid}  # {} {}",
            p.router, p.priority, p.match_
        ),
    }
}

fn static_route(c: &RowChange<NbStaticRoute>, bfd: Option<&BfdRef>) -> String {
    match c {
        RowChange::Create { row: r, .. } => format!(
            "ovn-nbctl --id=@r create Logical_Router_Static_Route {} {} {} -- add Logical_Router {} static_routes @r",
            route_cols(r),
            bfd_col(bfd),
            owned(&r.owner),
            r.router
        ),
        RowChange::Update { uuid, row: r, .. } => format!(
            "ovn-nbctl set Logical_Router_Static_Route {uuid} {} {}",
            route_cols(r),
            bfd_col(bfd)
        ),
        RowChange::Delete { row: r, uuid, .. } => format!(
            "ovn-nbctl remove Logical_Router {} static_routes {uuid}  # {} via {}",
            r.router, r.ip_prefix, r.nexthop
        ),
    }
}

/// Every desired row as a creation (see [`super::diff::as_creates`]).
pub use super::diff::as_creates;

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
