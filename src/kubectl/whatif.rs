//! The what-if of `kubectl route plan -f ROUTE.yaml`: what adding (or replacing) Routes
//! would do to the live cluster, from three runs of the planner over the same world: the
//! live Routes (before), the live Routes with the new ones (after), and the new ones alone
//! (what they would claim uncontested). The differences are the answer: pods selected,
//! destinations won from or lost to other Routes, rules refused by guard rails, other
//! Routes whose status changes, desired NB rows added, changed or removed, and pod routes
//! per node.
//!
//! Pure: no I/O (the caller reads the cluster and, with `--nb`, the NB). Goes through the
//! public planner entry point [`plan`] only, so it follows whatever the planner decides.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::api::{Problem, Route};
use crate::cluster::World;
use crate::plan::guard::reason as guard;
use crate::plan::nb::DesiredNb;
use crate::plan::pod::{NextHop, PodKey, PodRoutes};
use crate::plan::{Plan, PlanConfig, plan};

/// Everything the what-if found.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatIf {
    /// One per Route of the file.
    pub routes: Vec<RouteOutcome>,
    /// Live Routes whose status or problems would change.
    pub other_routes: Vec<StatusChange>,
    /// Desired NB rows that would be added, changed or removed (the planner's rows; with
    /// `--nb` the caller replaces them with the NB's own diff).
    pub nb: Vec<NbRowChange>,
    /// Node -> pod route changes on that node (`-` for pods without a node).
    pub pods: BTreeMap<String, Vec<PodRouteChange>>,
}

/// What one Route of the file would get.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteOutcome {
    pub name: String,
    /// A live Route of that name exists: this is an edit.
    pub replaces: bool,
    /// Applied, Degraded, Invalid or Pending.
    pub status: String,
    /// Pods selected (hostNetwork and finished ones included).
    pub selected: usize,
    /// The selected pods that would carry its routes or be in its Port_Group.
    pub selected_pods: Vec<String>,
    /// Destinations it would take from other Routes, per pod.
    pub wins: Vec<Contest>,
    /// Destinations it wants and other Routes would keep, per pod.
    pub losses: Vec<Contest>,
    /// Rules a guard rail refuses (reason as in status).
    pub refused: Vec<Problem>,
    /// Its other problems, as its status would list them.
    pub problems: Vec<Problem>,
}

/// One destination in one pod contested with another Route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Contest {
    pub pod: String,
    pub dst: String,
    /// The other Route.
    pub route: String,
}

/// A live Route whose status would change.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub name: String,
    pub before: String,
    pub after: String,
    /// Problems it would have that it has not now.
    pub new_problems: Vec<Problem>,
}

/// Added, changed or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Add,
    Change,
    Remove,
}

/// One desired NB row that changes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NbRowChange {
    pub change: Change,
    pub table: &'static str,
    pub route: String,
    /// The row (after the change; before it for a removal).
    pub row: String,
    /// The row before a change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

/// One pod route that changes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PodRouteChange {
    pub pod: String,
    pub change: Change,
    /// A destination, or `default` / `default (IPv6)` for a replaced default route.
    pub dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The three plans the what-if compares.
pub struct Plans {
    pub before: Plan,
    pub after: Plan,
    /// The new Routes alone: what they claim when nobody contests it.
    pub alone: Plan,
    pub new: BTreeSet<String>,
    pub replaced: BTreeSet<String>,
}

/// Plans the live Routes, the live Routes with `new` (a new Route replaces a live one of
/// the same name), and `new` alone.
pub fn plans(world: &World, live: &[Route], new: &[Route], cfg: &PlanConfig) -> Plans {
    let names: BTreeSet<String> = new.iter().filter_map(|r| r.metadata.name.clone()).collect();
    let replaced = live
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .filter(|n| names.contains(n))
        .collect();
    let mut with: Vec<Route> = live
        .iter()
        .filter(|r| r.metadata.name.as_ref().is_none_or(|n| !names.contains(n)))
        .cloned()
        .collect();
    with.extend(new.iter().cloned());
    Plans {
        before: plan(world, live, cfg),
        after: plan(world, &with, cfg),
        alone: plan(world, new, cfg),
        new: names,
        replaced,
    }
}

/// The what-if of `p` over `world`.
pub fn what_if(world: &World, p: &Plans) -> WhatIf {
    let owners = route_owners(&p.before, &p.after);
    WhatIf {
        routes: p
            .new
            .iter()
            .map(|name| route_outcome(name, p, &owners))
            .collect(),
        other_routes: status_changes(p),
        nb: nb_changes(&p.before.nb, &p.after.nb),
        pods: pod_changes(world, &p.before, &p.after),
    }
}

/// Pod -> destination -> (Route before, Route after).
type Owners = BTreeMap<String, BTreeMap<String, (Option<String>, Option<String>)>>;

fn route_owners(before: &Plan, after: &Plan) -> Owners {
    let mut out = Owners::new();
    for (plan, after_side) in [(before, false), (after, true)] {
        for (key, routes) in &plan.pods {
            for (dst, owner) in claims(routes) {
                let e = out
                    .entry(key.to_string())
                    .or_default()
                    .entry(dst)
                    .or_default();
                if after_side {
                    e.1 = Some(owner);
                } else {
                    e.0 = Some(owner);
                }
            }
        }
    }
    out
}

/// Destination -> owning Route of one pod's routes (default routes as `default`).
fn claims(routes: &PodRoutes) -> Vec<(String, String)> {
    routes
        .routes
        .iter()
        .map(|r| (r.dst.to_string(), r.owner.to_string()))
        .chain(
            routes
                .default_routes
                .iter()
                .map(|d| (default_name(d.family.is_v6()), d.owner.clone())),
        )
        .collect()
}

fn default_name(v6: bool) -> String {
    if v6 { "default (IPv6)" } else { "default" }.to_owned()
}

fn route_outcome(name: &str, p: &Plans, owners: &Owners) -> RouteOutcome {
    let report = p.after.reports.get(name).cloned().unwrap_or_default();
    let mut selected: BTreeSet<String> = p
        .after
        .nb
        .port_groups
        .iter()
        .filter(|g| g.owner.route == name)
        .flat_map(|g| g.ports.iter().map(|port| port.replacen('_', "/", 1)))
        .collect();
    let mut wins = BTreeSet::new();
    let mut losses = BTreeSet::new();
    for (key, routes) in &p.alone.pods {
        let pod = key.to_string();
        for (dst, owner) in claims(routes).into_iter().filter(|(_, o)| o == name) {
            selected.insert(pod.clone());
            let (before, after) = owners
                .get(&pod)
                .and_then(|m| m.get(&dst))
                .cloned()
                .unwrap_or_default();
            match after {
                Some(a) if a != owner => {
                    losses.insert(Contest {
                        pod: pod.clone(),
                        dst,
                        route: a,
                    });
                }
                Some(_) => {
                    if let Some(b) = before.filter(|b| b != name) {
                        wins.insert(Contest {
                            pod: pod.clone(),
                            dst,
                            route: b,
                        });
                    }
                }
                None => {}
            }
        }
    }
    let (refused, problems): (Vec<Problem>, Vec<Problem>) = report
        .problems
        .iter()
        .cloned()
        .partition(|pr| is_guard(&pr.reason));
    RouteOutcome {
        name: name.to_owned(),
        replaces: p.replaced.contains(name),
        status: report.summary.as_str().to_owned(),
        selected: report.selected,
        selected_pods: selected.into_iter().collect(),
        wins: wins.into_iter().collect(),
        losses: losses.into_iter().collect(),
        refused,
        problems,
    }
}

fn is_guard(reason: &str) -> bool {
    [
        guard::CAPTURES_CLUSTER_NETWORK,
        guard::CAPTURES_POD_SUBNET,
        guard::CAPTURES_GATEWAY,
        guard::TOO_MANY_ROUTES,
    ]
    .contains(&reason)
}

fn status_changes(p: &Plans) -> Vec<StatusChange> {
    let mut out = Vec::new();
    for (name, before) in &p.before.reports {
        if p.new.contains(name) {
            continue;
        }
        let Some(after) = p.after.reports.get(name) else {
            continue;
        };
        let new_problems: Vec<Problem> = after
            .problems
            .iter()
            .filter(|pr| !before.problems.contains(pr))
            .cloned()
            .collect();
        if before.summary != after.summary || !new_problems.is_empty() {
            out.push(StatusChange {
                name: name.clone(),
                before: before.summary.as_str().to_owned(),
                after: after.summary.as_str().to_owned(),
                new_problems,
            });
        }
    }
    out
}

/// (table, id) -> (Route, row line) of every desired row.
fn nb_rows(nb: &DesiredNb) -> BTreeMap<(&'static str, String), (String, String)> {
    let mut out = BTreeMap::new();
    let mut put = |table, owner: &crate::plan::nb::Owner, line: String| {
        out.insert((table, owner.id.clone()), (owner.route.clone(), line));
    };
    for a in &nb.address_sets {
        let addrs: Vec<&str> = a.addresses.iter().map(String::as_str).collect();
        put(
            "Address_Set",
            &a.owner,
            format!("{} addresses=[{}]", a.name, addrs.join(",")),
        );
    }
    for g in &nb.port_groups {
        let ports: Vec<&str> = g.ports.iter().map(String::as_str).collect();
        put(
            "Port_Group",
            &g.owner,
            format!("{} ports=[{}]", g.name, ports.join(",")),
        );
    }
    for x in &nb.policies {
        let hops: Vec<&str> = x.nexthops.iter().map(String::as_str).collect();
        put(
            "Logical_Router_Policy",
            &x.owner,
            format!(
                "{} priority={} match=\"{}\" action={} nexthops=[{}]",
                x.router,
                x.priority,
                x.match_,
                x.action,
                hops.join(",")
            ),
        );
    }
    for s in &nb.static_routes {
        let policy = s.policy.map(|p| format!(" policy={p}")).unwrap_or_default();
        put(
            "Logical_Router_Static_Route",
            &s.owner,
            format!(
                "{} {} via {}{policy}{}",
                s.router,
                s.ip_prefix,
                s.nexthop,
                if s.bfd { " bfd" } else { "" }
            ),
        );
    }
    for a in &nb.acls {
        put(
            "ACL",
            &a.owner,
            format!(
                "{} {} priority={} match=\"{}\" action={}",
                a.port_group, a.direction, a.priority, a.match_, a.action
            ),
        );
    }
    out
}

/// The planner's desired rows, before vs after.
pub fn nb_changes(before: &DesiredNb, after: &DesiredNb) -> Vec<NbRowChange> {
    let b = nb_rows(before);
    let a = nb_rows(after);
    let mut out = Vec::new();
    for (key, (route, row)) in &a {
        match b.get(key) {
            None => out.push(NbRowChange {
                change: Change::Add,
                table: key.0,
                route: route.clone(),
                row: row.clone(),
                before: None,
            }),
            Some((_, old)) if old != row => out.push(NbRowChange {
                change: Change::Change,
                table: key.0,
                route: route.clone(),
                row: row.clone(),
                before: Some(old.clone()),
            }),
            Some(_) => {}
        }
    }
    for (key, (route, row)) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
        out.push(NbRowChange {
            change: Change::Remove,
            table: key.0,
            route: route.clone(),
            row: row.clone(),
            before: None,
        });
    }
    out.sort();
    out
}

/// `dev D via G (Route R)`.
fn route_text(dev: &str, hop: &NextHop, owner: &str) -> String {
    let via = match hop {
        NextHop::Via(ip) => format!("via {ip}"),
        NextHop::DevGateway => format!("via {dev}'s gateway"),
    };
    format!("dev {dev} {via} (Route {owner})")
}

/// Destination -> route text of one pod.
fn pod_table(routes: Option<&PodRoutes>) -> BTreeMap<String, String> {
    let Some(routes) = routes else {
        return BTreeMap::new();
    };
    routes
        .routes
        .iter()
        .map(|r| (r.dst.to_string(), route_text(&r.dev, &r.next_hop, &r.owner)))
        .chain(routes.default_routes.iter().map(|d| {
            (
                default_name(d.family.is_v6()),
                route_text(&d.dev, &d.next_hop, &d.owner),
            )
        }))
        .collect()
}

fn pod_changes(
    world: &World,
    before: &Plan,
    after: &Plan,
) -> BTreeMap<String, Vec<PodRouteChange>> {
    let keys: BTreeSet<&PodKey> = before.pods.keys().chain(after.pods.keys()).collect();
    let mut out: BTreeMap<String, Vec<PodRouteChange>> = BTreeMap::new();
    for key in keys {
        let b = pod_table(before.pods.get(key).map(|a| a.as_ref()));
        let a = pod_table(after.pods.get(key).map(|a| a.as_ref()));
        let dsts: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        let node = world
            .pod(&key.namespace, &key.name)
            .and_then(|p| p.node.clone())
            .unwrap_or_else(|| "-".into());
        for dst in dsts {
            let (old, new) = (b.get(dst), a.get(dst));
            let change = match (old, new) {
                (None, Some(_)) => Change::Add,
                (Some(_), None) => Change::Remove,
                (Some(o), Some(n)) if o != n => Change::Change,
                _ => continue,
            };
            out.entry(node.clone()).or_default().push(PodRouteChange {
                pod: key.to_string(),
                change,
                dst: dst.clone(),
                before: old.cloned(),
                after: new.cloned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::nb::{NbAddressSet, Owner};

    fn set(route: &str, addrs: &[&str]) -> NbAddressSet {
        NbAddressSet {
            owner: Owner {
                route: route.into(),
                id: format!("{route}/address-set/ip4"),
            },
            name: format!("ovnkube_route_{route}_v4"),
            addresses: addrs.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn desired_rows_are_added_changed_and_removed_by_table_and_id() {
        let before = DesiredNb {
            address_sets: vec![
                set("a", &["10.0.0.1"]),
                set("b", &["10.0.0.2"]),
                set("c", &[]),
            ],
            ..DesiredNb::default()
        };
        let after = DesiredNb {
            address_sets: vec![
                set("a", &["10.0.0.1", "10.0.0.3"]),
                set("c", &[]),
                set("d", &["10.0.0.4"]),
            ],
            ..DesiredNb::default()
        };
        let got: Vec<(Change, String, Option<String>)> = nb_changes(&before, &after)
            .into_iter()
            .map(|c| (c.change, c.row, c.before))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Change::Add,
                    "ovnkube_route_d_v4 addresses=[10.0.0.4]".to_owned(),
                    None
                ),
                (
                    Change::Change,
                    "ovnkube_route_a_v4 addresses=[10.0.0.1,10.0.0.3]".to_owned(),
                    Some("ovnkube_route_a_v4 addresses=[10.0.0.1]".to_owned())
                ),
                (
                    Change::Remove,
                    "ovnkube_route_b_v4 addresses=[10.0.0.2]".to_owned(),
                    None
                ),
            ]
        );
        assert!(nb_changes(&after, &after).is_empty());
    }
}
