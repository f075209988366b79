//! Logical_Router_Static_Route rows of ours (Routes that select every pod), with their
//! BFD session reference (`nb::bfd` chooses it; ovn-nb(5)).
use crate::nb::diff::{NbChange, RowChange};
use crate::nb::model;
use crate::nb::observed::{Observed, Seen};
use crate::nb::row::{CheckContext, Family, NbRow, ReadContext, RowProblem, Verdict};
use crate::ovsdb::typed::Col;
use crate::plan::nb::{DesiredNb, NbStaticRoute, Owner, RoutePolicy};

use super::{reachable, unreachable, word};

/// The static route option that keeps replies on the hop of the request (ovn-nb(5)).
const SYMMETRIC_REPLY: &str = "ecmp_symmetric_reply";
/// The reason for a src-ip route with symmetric replies that has no gateway router.
pub const SYMMETRIC_REPLY_NEEDS_GATEWAY_ROUTER: &str = "SymmetricReplyNeedsGatewayRouter";

impl NbRow for NbStaticRoute {
    type Model = model::LogicalRouterStaticRoute;
    const FAMILY: Family = Family::StaticRoute;
    const WHAT: &'static str = "static route";
    // `bfd` is written: the session `nb::bfd` chose, or empty (a row someone attached a
    // session to without asking for BFD is put back).
    const COLUMNS: &'static [Col<model::LogicalRouterStaticRoute>] = &[
        model::LogicalRouterStaticRoute::IP_PREFIX.erased(),
        model::LogicalRouterStaticRoute::NEXTHOP.erased(),
        model::LogicalRouterStaticRoute::POLICY.erased(),
        model::LogicalRouterStaticRoute::BFD.erased(),
        model::LogicalRouterStaticRoute::OPTIONS.erased(),
    ];
    const IDS: Col<model::LogicalRouterStaticRoute> =
        model::LogicalRouterStaticRoute::EXTERNAL_IDS.erased();

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
        if self.symmetric && ctx.router.is_some_and(|r| !r.gateway) {
            problems.push((
                SYMMETRIC_REPLY_NEEDS_GATEWAY_ROUTER,
                format!(
                    "{} has no options:chassis: it is not a gateway router, and OVN ignores \
                     ecmp_symmetric_reply elsewhere; the src-ip route for {} is not written",
                    self.router, self.ip_prefix
                ),
            ));
            return Verdict::Drop;
        }
        let hops = unreachable(ctx.router, std::iter::once(self.nexthop.as_str()));
        reachable(&hops, &self.router, Self::WHAT, problems)
    }
    fn to_model(&self) -> model::LogicalRouterStaticRoute {
        model::LogicalRouterStaticRoute {
            ip_prefix: self.ip_prefix.clone(),
            nexthop: self.nexthop.clone(),
            policy: self.policy.map(|p| p.as_str().to_owned()),
            options: if self.symmetric {
                [(SYMMETRIC_REPLY.to_owned(), "true".to_owned())].into()
            } else {
                Default::default()
            },
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
                .map(|p| {
                    word(
                        &model::LogicalRouterStaticRoute::POLICY,
                        &p,
                        RoutePolicy::parse,
                    )
                })
                .transpose()?,
            bfd: m.bfd.is_some(),
            symmetric: m.options.get(SYMMETRIC_REPLY).is_some_and(|v| v == "true"),
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
