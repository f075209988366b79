//! Logical_Router_Policy rows of ours: reroutes of a Route's addresses to its next hops
//! (ovn-nb(5)). Judged before writing: a next hop on no network of the router is ignored by
//! ovn-northd, and a match naming an Address_Set someone else holds would reroute addresses
//! we never selected.
use crate::nb::diff::{NbChange, RowChange};
use crate::nb::model;
use crate::nb::observed::{Observed, Seen};
use crate::nb::row::{CheckContext, Family, NbRow, ReadContext, RowProblem, Verdict};
use crate::ovsdb::typed::Col;
use crate::plan::nb::{DesiredNb, NbPolicy, Owner, PolicyAction};

use super::{reachable, unreachable, word};

impl NbPolicy {
    fn unreachable_hops(&self, ctx: &CheckContext<'_>) -> Vec<&str> {
        match self.action {
            PolicyAction::Reroute => {
                unreachable(ctx.router, self.nexthops.iter().map(String::as_str))
            }
            PolicyAction::Allow | PolicyAction::Drop => Vec::new(),
        }
    }
}

impl NbRow for NbPolicy {
    type Model = model::LogicalRouterPolicy;
    const FAMILY: Family = Family::Policy;
    const WHAT: &'static str = "policy";
    const COLUMNS: &'static [Col<model::LogicalRouterPolicy>] = &[
        model::LogicalRouterPolicy::PRIORITY.erased(),
        model::LogicalRouterPolicy::MATCH.erased(),
        model::LogicalRouterPolicy::ACTION.erased(),
        model::LogicalRouterPolicy::NEXTHOPS.erased(),
    ];
    const IDS: Col<model::LogicalRouterPolicy> = model::LogicalRouterPolicy::EXTERNAL_IDS.erased();

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
            .find(|n| ctx.name_taken(Family::AddressSet, n));
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
        let hops = self.unreachable_hops(ctx);
        if !hops.is_empty() && hops.len() < self.nexthops.len() {
            // Some hops are usable: the policy is written with those (a live gateway whose
            // address is on no router network must not keep the rest from working).
            problems.push((
                "NextHopUnreachable",
                format!(
                    "next hop {} is on no network of router {}'s ports; the policy is written without it",
                    hops.join(","),
                    self.router
                ),
            ));
            return Verdict::Write;
        }
        reachable(&hops, &self.router, Self::WHAT, problems)
    }
    fn written(&self, ctx: &CheckContext<'_>) -> Option<Self> {
        let hops = self.unreachable_hops(ctx);
        (!hops.is_empty()).then(|| NbPolicy {
            nexthops: self
                .nexthops
                .iter()
                .filter(|h| !hops.contains(&h.as_str()))
                .cloned()
                .collect(),
            ..self.clone()
        })
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
            action: word(
                &model::LogicalRouterPolicy::ACTION,
                &m.action,
                PolicyAction::parse,
            )?,
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
