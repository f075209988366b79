//! What to leave alone when input is bad. The rule (DESIGN.md section 2): nothing already
//! programmed is torn down because a later edit was invalid or unreadable.
//!
//! - A Route whose document could not be read, or whose new version is invalid as a whole,
//!   keeps its NB rows exactly as they are (and in `run`, its last good version keeps being
//!   planned, so its pods keep their routes too).
//! - A Route with some invalid rules gets its valid rules applied, and keeps only the rows
//!   that may be its invalid rules' (rows for a destination none of its valid rules has)
//!   until it is fixed or deleted. A row for a destination a valid rule has is deleted
//!   when not desired: the valid rule replaced it (e.g. narrowed from every pod, a static
//!   route becomes a policy).
//! - When a file could not be read at all, Routes it may have held are unknown: no row of a
//!   Route absent from the input is deleted.
use std::collections::BTreeSet;

use crate::api::Route;
use crate::api::validate::{Destination, validate};
use crate::config::ConfigError;
use crate::nb::reconcile::Keep;
use crate::nb::row::{FamilyVisitor, NbRow, each_family};
use crate::plan::incremental::Engine;
use crate::plan::nb::DesiredNb;
use crate::plan::{Plan, Summary};

/// Keep rules from load errors and the plan's per-Route verdicts.
pub fn keep_for(errors: &[ConfigError], routes: &[Route], plan: &Plan) -> Keep {
    let mut keep = Keep::default();
    for e in errors {
        match e.route_name() {
            Some(name) => {
                keep.routes.insert(name.to_owned());
            }
            None => keep.absent = true,
        }
    }
    for (name, report) in &plan.reports {
        if report.summary == Summary::Invalid {
            keep.routes.insert(name.clone());
        }
    }
    let loaded: BTreeSet<&str> = routes
        .iter()
        .filter_map(|r| r.metadata.name.as_deref())
        .collect();
    for r in routes {
        let v = validate(r);
        if !v.problems.is_empty()
            && !keep.routes.contains(&v.name)
            && loaded.contains(v.name.as_str())
        {
            let dsts = v
                .rules
                .iter()
                .filter_map(|rule| match &rule.dst {
                    Destination::Net(net) => Some(net.to_string()),
                    Destination::Service { .. } => None,
                })
                .collect();
            keep.valid_dsts.insert(v.name.clone(), dsts);
            keep.no_delete.insert(v.name);
        }
    }
    keep
}

/// Keep rules for a pass over some Routes only, from the planner's state (no Route is
/// validated again: the planner holds each one validated).
pub fn keep_for_routes(errors: &[ConfigError], engine: &Engine, routes: &BTreeSet<String>) -> Keep {
    let mut keep = Keep::default();
    for e in errors {
        match e.route_name() {
            Some(name) => {
                keep.routes.insert(name.to_owned());
            }
            None => keep.absent = true,
        }
    }
    for name in routes {
        if engine
            .report(name)
            .is_some_and(|r| r.summary == Summary::Invalid)
        {
            keep.routes.insert(name.clone());
        } else if engine
            .validated(name)
            .is_some_and(|v| !v.problems.is_empty())
            && !keep.routes.contains(name)
        {
            keep.no_delete.insert(name.clone());
        }
    }
    keep
}

/// The plan's NB rows without those of Routes kept as they are.
pub fn without_kept(plan: &mut Plan, keep: &Keep) {
    drop_kept(&mut plan.nb, keep);
}

/// Desired rows without those of Routes kept as they are.
pub fn drop_kept(nb: &mut DesiredNb, keep: &Keep) {
    struct Drop<'a> {
        nb: &'a mut DesiredNb,
        keep: &'a Keep,
    }
    impl FamilyVisitor for Drop<'_> {
        fn visit<T: NbRow>(&mut self) {
            T::desired_mut(self.nb).retain(|r| !self.keep.routes.contains(&r.owner().route));
        }
    }
    each_family(&mut Drop { nb, keep });
}
