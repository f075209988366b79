//! The five [`NbRow`] impls: what differs between Address_Set, Port_Group, ACL,
//! Logical_Router_Policy and Logical_Router_Static_Route rows of ours (ovn-nb(5)).
use std::collections::BTreeSet;
use std::net::IpAddr;

use super::diff::{NbChange, RowChange};
use super::model;
use super::observed::{Observed, RouterInfo, Seen};
use super::row::{
    ACL, CheckContext, Family, NbRow, POLICY, ReadContext, RowProblem, STATIC_ROUTE, Verdict,
};
use crate::ovsdb::{Atom, Uuid};
use crate::plan::nb::{
    AclAction, AclDirection, DesiredNb, NbAcl, NbAddressSet, NbPolicy, NbPortGroup, NbStaticRoute,
    Owner, PolicyAction, RoutePolicy,
};

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

fn word<T>(
    table: &str,
    column: &str,
    s: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, String> {
    parse(s).ok_or_else(|| format!("{table}.{column}: {s:?} is not a value the schema lists"))
}

impl NbRow for NbAddressSet {
    type Model = model::AddressSet;
    const FAMILY: Family = Family::AddressSet;
    const WHAT: &'static str = "address set";
    const COLUMNS: &'static [&'static str] = &["name"];
    const SET_COLUMN: Option<&'static str> = Some("addresses");

    fn owner(&self) -> &Owner {
        &self.owner
    }
    fn key(&self) -> &str {
        &self.name
    }
    fn same_columns(&self, other: &Self) -> bool {
        self.owner == other.owner && self.name == other.name
    }
    fn set_atoms(
        &self,
        _port: &dyn Fn(&str) -> Option<Uuid>,
        _problems: &mut Vec<RowProblem>,
    ) -> BTreeSet<Atom> {
        strings(&self.addresses)
    }
    fn to_model(&self) -> model::AddressSet {
        model::AddressSet {
            name: self.name.clone(),
            addresses: self.addresses.clone(),
            external_ids: self.owner.external_ids(),
            ..Default::default()
        }
    }
    fn from_model(m: model::AddressSet, owner: Owner, _: &ReadContext<'_>) -> Result<Self, String> {
        Ok(NbAddressSet {
            owner,
            name: m.name,
            addresses: m.addresses,
        })
    }
    fn desired(d: &DesiredNb) -> &Vec<Self> {
        &d.address_sets
    }
    fn desired_mut(d: &mut DesiredNb) -> &mut Vec<Self> {
        &mut d.address_sets
    }
    fn observed(o: &Observed) -> &Vec<Seen<Self>> {
        &o.address_sets
    }
    fn observed_mut(o: &mut Observed) -> &mut Vec<Seen<Self>> {
        &mut o.address_sets
    }
    fn change(c: RowChange<Self>) -> NbChange {
        NbChange::AddressSet(c)
    }
}

impl NbRow for NbPortGroup {
    type Model = model::PortGroup;
    const FAMILY: Family = Family::PortGroup;
    const WHAT: &'static str = "port group";
    const COLUMNS: &'static [&'static str] = &["name"];
    const SET_COLUMN: Option<&'static str> = Some("ports");

    fn owner(&self) -> &Owner {
        &self.owner
    }
    fn key(&self) -> &str {
        &self.name
    }
    fn same_columns(&self, other: &Self) -> bool {
        self.owner == other.owner && self.name == other.name
    }
    fn set_atoms(
        &self,
        port: &dyn Fn(&str) -> Option<Uuid>,
        problems: &mut Vec<RowProblem>,
    ) -> BTreeSet<Atom> {
        let mut out = BTreeSet::new();
        for p in &self.ports {
            match port(p) {
                Some(u) => {
                    out.insert(Atom::Uuid(u));
                }
                None => problems.push((
                    "PortNotFound",
                    format!(
                        "logical switch port {p} does not exist (yet); its pod is left out of {}",
                        self.name
                    ),
                )),
            }
        }
        out
    }
    fn to_model(&self) -> model::PortGroup {
        // `ports` holds uuids, known only against a database: written from the change's
        // resolved set, never from here.
        model::PortGroup {
            name: self.name.clone(),
            external_ids: self.owner.external_ids(),
            ..Default::default()
        }
    }
    fn from_model(
        m: model::PortGroup,
        owner: Owner,
        ctx: &ReadContext<'_>,
    ) -> Result<Self, String> {
        Ok(NbPortGroup {
            owner,
            name: m.name,
            ports: m.ports.into_iter().filter_map(ctx.port_name).collect(),
        })
    }
    fn desired(d: &DesiredNb) -> &Vec<Self> {
        &d.port_groups
    }
    fn desired_mut(d: &mut DesiredNb) -> &mut Vec<Self> {
        &mut d.port_groups
    }
    fn observed(o: &Observed) -> &Vec<Seen<Self>> {
        &o.port_groups
    }
    fn observed_mut(o: &mut Observed) -> &mut Vec<Seen<Self>> {
        &mut o.port_groups
    }
    fn change(c: RowChange<Self>) -> NbChange {
        NbChange::PortGroup(c)
    }
}

impl NbRow for NbAcl {
    type Model = model::Acl;
    const FAMILY: Family = Family::Acl;
    const WHAT: &'static str = "ACL";
    const COLUMNS: &'static [&'static str] = &["direction", "priority", "match", "action"];

    fn owner(&self) -> &Owner {
        &self.owner
    }
    fn key(&self) -> &str {
        &self.port_group
    }
    fn same_columns(&self, other: &Self) -> bool {
        self == other
    }
    fn to_model(&self) -> model::Acl {
        model::Acl {
            direction: self.direction.as_str().to_owned(),
            priority: self.priority,
            r#match: self.match_.clone(),
            action: self.action.as_str().to_owned(),
            external_ids: self.owner.external_ids(),
            ..Default::default()
        }
    }
    fn from_model(m: model::Acl, owner: Owner, ctx: &ReadContext<'_>) -> Result<Self, String> {
        Ok(NbAcl {
            owner,
            port_group: ctx.parent.to_owned(),
            direction: word(ACL, "direction", &m.direction, AclDirection::parse)?,
            priority: m.priority,
            match_: m.r#match,
            action: word(ACL, "action", &m.action, AclAction::parse)?,
        })
    }
    fn desired(d: &DesiredNb) -> &Vec<Self> {
        &d.acls
    }
    fn desired_mut(d: &mut DesiredNb) -> &mut Vec<Self> {
        &mut d.acls
    }
    fn observed(o: &Observed) -> &Vec<Seen<Self>> {
        &o.acls
    }
    fn observed_mut(o: &mut Observed) -> &mut Vec<Seen<Self>> {
        &mut o.acls
    }
    fn change(c: RowChange<Self>) -> NbChange {
        NbChange::Acl(c)
    }
}

impl NbRow for NbPolicy {
    type Model = model::LogicalRouterPolicy;
    const FAMILY: Family = Family::Policy;
    const WHAT: &'static str = "policy";
    const COLUMNS: &'static [&'static str] = &["priority", "match", "action", "nexthops"];

    fn owner(&self) -> &Owner {
        &self.owner
    }
    fn key(&self) -> &str {
        &self.router
    }
    fn same_columns(&self, other: &Self) -> bool {
        self == other
    }
    fn check(&self, ctx: &CheckContext<'_>, problems: &mut Vec<RowProblem>) -> Verdict {
        // `$name` in a match is resolved by name: with a foreign set of that name the policy
        // would reroute addresses we never selected. Not written, and a row of ours for it
        // is removed for the same reason.
        let foreign = self
            .match_
            .split_whitespace()
            .filter_map(|t| t.strip_prefix('$'))
            .find(|n| ctx.foreign_sets.contains(*n));
        if let Some(set) = foreign {
            problems.push((
                "NameTaken",
                format!(
                    "policy {} not written: its match refers to Address_Set {set}, which is not owned by ovnkube-route",
                    self.owner.id
                ),
            ));
            return Verdict::Drop;
        }
        let hops = match self.action {
            PolicyAction::Reroute => {
                unreachable(ctx.router, self.nexthops.iter().map(String::as_str))
            }
            PolicyAction::Allow | PolicyAction::Drop => Vec::new(),
        };
        if hops.is_empty() {
            return Verdict::Write;
        }
        problems.push((
            "NextHopUnreachable",
            format!(
                "next hop {} is on no network of router {}'s ports; ovn-northd would ignore the {}",
                hops.join(","),
                self.router,
                Self::WHAT
            ),
        ));
        Verdict::Leave
    }
    fn to_model(&self) -> model::LogicalRouterPolicy {
        model::LogicalRouterPolicy {
            priority: self.priority,
            r#match: self.match_.clone(),
            action: self.action.as_str().to_owned(),
            nexthops: self.nexthops.clone(),
            external_ids: self.owner.external_ids(),
            ..Default::default()
        }
    }
    fn from_model(
        m: model::LogicalRouterPolicy,
        owner: Owner,
        ctx: &ReadContext<'_>,
    ) -> Result<Self, String> {
        Ok(NbPolicy {
            owner,
            router: ctx.parent.to_owned(),
            priority: m.priority,
            match_: m.r#match,
            action: word(POLICY, "action", &m.action, PolicyAction::parse)?,
            // `nexthop` is the column's older, single-valued form: count it as a next hop so
            // a row that uses it is rewritten into `nexthops`.
            nexthops: m.nexthops.into_iter().chain(m.nexthop).collect(),
        })
    }
    fn desired(d: &DesiredNb) -> &Vec<Self> {
        &d.policies
    }
    fn desired_mut(d: &mut DesiredNb) -> &mut Vec<Self> {
        &mut d.policies
    }
    fn observed(o: &Observed) -> &Vec<Seen<Self>> {
        &o.policies
    }
    fn observed_mut(o: &mut Observed) -> &mut Vec<Seen<Self>> {
        &mut o.policies
    }
    fn change(c: RowChange<Self>) -> NbChange {
        NbChange::Policy(c)
    }
}

impl NbRow for NbStaticRoute {
    type Model = model::LogicalRouterStaticRoute;
    const FAMILY: Family = Family::StaticRoute;
    const WHAT: &'static str = "static route";
    // `bfd` is written: the session `nb::bfd` chose, or empty (a row someone attached a
    // session to without asking for BFD is put back).
    const COLUMNS: &'static [&'static str] = &["ip_prefix", "nexthop", "policy", "bfd"];

    fn owner(&self) -> &Owner {
        &self.owner
    }
    fn key(&self) -> &str {
        &self.router
    }
    fn same_columns(&self, other: &Self) -> bool {
        self == other
    }
    fn check(&self, ctx: &CheckContext<'_>, problems: &mut Vec<RowProblem>) -> Verdict {
        let hops = unreachable(ctx.router, std::iter::once(self.nexthop.as_str()));
        if hops.is_empty() {
            return Verdict::Write;
        }
        problems.push((
            "NextHopUnreachable",
            format!(
                "next hop {} is on no network of router {}'s ports; ovn-northd would ignore the {}",
                hops.join(","),
                self.router,
                Self::WHAT
            ),
        ));
        Verdict::Leave
    }
    fn to_model(&self) -> model::LogicalRouterStaticRoute {
        model::LogicalRouterStaticRoute {
            ip_prefix: self.ip_prefix.clone(),
            nexthop: self.nexthop.clone(),
            policy: self.policy.map(|p| p.as_str().to_owned()),
            external_ids: self.owner.external_ids(),
            ..Default::default()
        }
    }
    fn from_model(
        m: model::LogicalRouterStaticRoute,
        owner: Owner,
        ctx: &ReadContext<'_>,
    ) -> Result<Self, String> {
        Ok(NbStaticRoute {
            owner,
            router: ctx.parent.to_owned(),
            ip_prefix: m.ip_prefix,
            nexthop: m.nexthop,
            policy: m
                .policy
                .map(|p| word(STATIC_ROUTE, "policy", &p, RoutePolicy::parse))
                .transpose()?,
            bfd: m.bfd.is_some(),
        })
    }
    fn desired(d: &DesiredNb) -> &Vec<Self> {
        &d.static_routes
    }
    fn desired_mut(d: &mut DesiredNb) -> &mut Vec<Self> {
        &mut d.static_routes
    }
    fn observed(o: &Observed) -> &Vec<Seen<Self>> {
        &o.static_routes
    }
    fn observed_mut(o: &mut Observed) -> &mut Vec<Seen<Self>> {
        &mut o.static_routes
    }
    fn change(c: RowChange<Self>) -> NbChange {
        NbChange::StaticRoute(c, None)
    }
}
