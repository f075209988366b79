//! One module per row family of ours (ovn-nb(5)): what differs between Address_Set,
//! Port_Group, ACL, Logical_Router_Policy and Logical_Router_Static_Route rows, as
//! [`crate::nb::row::NbRow`] impls. Column names come from the generated model
//! (`model::Acl::DIRECTION`): a column the schema does not have does not compile.
mod acl;
mod address_set;
mod policy;
mod port_group;
mod static_route;

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::nb::observed::RouterInfo;
use crate::ovsdb::Atom;
use crate::ovsdb::typed::{Column, TypedRow};

fn strings(items: &BTreeSet<String>) -> BTreeSet<Atom> {
    items.iter().map(|s| Atom::String(s.clone())).collect()
}

/// Next hops that are not on a network of the router's ports: ovn-northd ignores such a
/// row with only a log line ("No path for routing policy").
fn unreachable<'a>(
    router: Option<&RouterInfo>,
    hops: impl Iterator<Item = &'a str>,
) -> Vec<&'a str> {
    let Some(r) = router else {
        return Vec::new();
    };
    hops.filter(|h| !h.parse::<IpAddr>().is_ok_and(|ip| r.reaches(ip)))
        .collect()
}

/// The verdict on a row whose next hops `hops` are on no network of `router`'s ports
/// (none: written): ovn-northd would ignore the row, so it is reported and what exists for it
/// is left as it is (a router port may be on its way).
fn reachable(
    hops: &[&str],
    router: &str,
    what: &str,
    problems: &mut Vec<crate::nb::row::RowProblem>,
) -> crate::nb::row::Verdict {
    if hops.is_empty() {
        return crate::nb::row::Verdict::Write;
    }
    problems.push((
        "NextHopUnreachable",
        format!(
            "next hop {} is on no network of router {router}'s ports; ovn-northd would ignore the {what}",
            hops.join(",")
        ),
    ));
    crate::nb::row::Verdict::Leave
}

/// A column holding one of the words the schema lists, as its enum.
fn word<M: TypedRow, V, T>(
    column: &Column<M, V>,
    s: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, String> {
    parse(s).ok_or_else(|| {
        format!(
            "{}.{}: {s:?} is not a value the schema lists",
            M::TABLE,
            column.name()
        )
    })
}
