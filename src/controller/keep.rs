//! What to leave alone when input is bad. The rule (DESIGN.md section 2): nothing already
//! programmed is torn down because a later edit was invalid or unreadable.
//!
//! - A Route whose document could not be read, that no longer decodes, or whose new version
//!   is invalid as a whole, keeps its NB rows exactly as they are (and in `run`, its last good
//!   version keeps being planned, so its pods keep their routes too).
//! - A Route with some invalid rules gets its valid rules applied, and keeps only the rows
//!   that may be its invalid rules' (rows for a destination none of its valid rules has)
//!   until it is fixed or deleted. A row for a destination a valid rule has is deleted
//!   when not desired: the valid rule replaced it (e.g. narrowed from every pod, a static
//!   route becomes a policy).
//! - A Route whose `ovn.nextHopPods` or `ovn.bfd` does not validate keeps its NB rows exactly
//!   as they are: its next hops are unknown, and a typo must not remove its reroutes or take
//!   BFD off its sessions.
//! - When a file could not be read at all, Routes it may have held are unknown: no row of a
//!   Route absent from the input is deleted.
//! - When what could not be read may have held world objects (a file, a document, a pod
//!   that does not decode) and their last known state is not held either (`apply`, or `run`
//!   before that file ever read well), which pods each Route selects is unknown: every Route
//!   that has rows in the NB keeps them exactly as they are ([`hold_selection`]), so no pod
//!   leaves an address set or a port group because its file could not be read. A Route
//!   without rows yet is written (that removes nothing).
//!
//! One function, [`keep`], for every pass (`plan`, `apply`, a `run` step over some Routes, a
//! full pass, the audit): the rules are read from the planner's state, never worked out again.
use crate::api::validate::Destination;
use crate::config::ConfigError;
use crate::nb::Scope;
use crate::nb::reconcile::Keep;
use crate::nb::row::{FamilyVisitor, NbRow, each_family};
use crate::plan::Summary;
use crate::plan::incremental::Engine;
use crate::plan::nb::DesiredNb;

/// The keep rules of a pass over `scope`, from the load errors, the Routes that no longer
/// decode (`undecodable`) and the planner's verdict on each Route.
pub fn keep<'a>(
    errors: &[ConfigError],
    undecodable: impl IntoIterator<Item = &'a String>,
    engine: &Engine,
    scope: Scope<'_>,
) -> Keep {
    let mut keep = Keep::default();
    for e in errors {
        match e.route_name() {
            Some(name) => {
                keep.routes.insert(name.to_owned());
            }
            None => keep.absent = true,
        }
    }
    keep.routes.extend(undecodable.into_iter().cloned());
    let names: Vec<&String> = match scope {
        Scope::All => engine.route_names().collect(),
        Scope::Routes(r) => r.iter().collect(),
    };
    for name in names {
        if keep.routes.contains(name) {
            continue;
        }
        if engine
            .report(name)
            .is_some_and(|r| r.summary == Summary::Invalid)
        {
            keep.routes.insert(name.clone());
            continue;
        }
        let Some(v) = engine.validated(name).filter(|v| !v.problems.is_empty()) else {
            continue;
        };
        // A bad `nextHopPods` or `bfd` is not one rule: what the Route's next hops are is
        // unknown, so its rows stay exactly as they are (a typo must not remove the reroutes
        // or take BFD off the sessions).
        if v.problems.iter().any(|p| {
            p.path.as_deref().is_some_and(|at| {
                at.starts_with("spec.ovn.nextHopPods") || at.starts_with("spec.ovn.bfd")
            })
        }) {
            keep.routes.insert(name.clone());
            continue;
        }
        let dsts = v
            .rules
            .iter()
            .filter_map(|rule| match &rule.dst {
                Destination::Net(net) => Some(net.to_string()),
                Destination::Service { .. } => None,
            })
            .collect();
        keep.valid_dsts.insert(name.clone(), dsts);
        keep.no_delete.insert(name.clone());
    }
    keep
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

/// Whether the world is incomplete in a way a one-shot load cannot make up for: some error
/// may hide world objects (see `ConfigError::may_hide_world`).
pub fn world_unknown(errors: &[ConfigError]) -> bool {
    errors.iter().any(ConfigError::may_hide_world)
}

/// The world is unknown: every Route with rows in the NB (`programmed`, read from the
/// replica) keeps them exactly as they are. Returns the Routes held that were not kept
/// already, for the report.
pub fn hold_selection(
    keep: &mut Keep,
    programmed: impl IntoIterator<Item = String>,
) -> Vec<String> {
    keep.absent = true;
    programmed
        .into_iter()
        .filter(|name| keep.routes.insert(name.clone()))
        .collect()
}
