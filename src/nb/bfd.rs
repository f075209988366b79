//! BFD for our static routes' next hops (`ovn.bfd`). OVN 23.03 (schema 7.0.0) has BFD on
//! Logical_Router_Static_Route only (`bfd`, a weak reference to a BFD row); ovn-northd leaves
//! a route out of the logical flows while its session is `down` (docs/ovn-facts.md).
//!
//! BFD rows are keyed by (`logical_port`, `dst_ip`) and may be ovn-kubernetes'. Owns: the
//! choice, per static route, of the session it refers to: an existing row for the same port
//! and peer (ours or not) is reused as it is; only when none exists is one created, owned by
//! us; ours that no route needs any more are deleted. Must not: modify or delete a BFD row
//! we do not own (a foreign row is only ever referred to).
use std::collections::{BTreeMap, BTreeSet};

use crate::ovsdb::Uuid;
use crate::plan::nb::{DesiredNb, NbStaticRoute, Owner};

use super::diff::{NbChange, NbDiff, NbProblem, RowChange};
use super::observed::Observed;
use crate::api::validate::BfdTimers;

/// The session a static route refers to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BfdRef {
    /// A row that exists (ours or not).
    Existing(Uuid),
    /// A row created in the same transaction.
    New {
        logical_port: String,
        dst_ip: String,
    },
}

/// Owner id of the BFD row we create for a session.
fn bfd_id(port: &str, ip: &str) -> String {
    format!("bfd/{port}/{ip}")
}

/// The session each of `wanted` (static routes with `bfd`) refers to, keyed by the route's
/// owner id; adds the BFD rows to create and ours to delete to `changes`. A route whose next
/// hop is on no port of its router gets none (it is reported unreachable elsewhere). Ours
/// that a route this pass does not diff refers to (`Observed::bfd_held`) are kept.
pub fn plan_sessions(
    wanted: &[NbStaticRoute],
    timers: &BTreeMap<String, BfdTimers>,
    observed: &Observed,
    changes: &mut Vec<NbChange>,
    problems: &mut Vec<NbProblem>,
) -> BTreeMap<String, BfdRef> {
    let mut refs = BTreeMap::new();
    let mut needed: BTreeSet<(String, String)> = BTreeSet::new();
    let mut create: BTreeMap<(String, String), Owner> = BTreeMap::new();
    // Per session, the Routes of this pass that refer to it.
    let mut users: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
    for r in wanted.iter().filter(|r| r.bfd) {
        let Some(port) = observed
            .routers
            .get(&r.router)
            .and_then(|info| info.port_towards(r.nexthop.parse().ok()?))
        else {
            continue;
        };
        let key = (port.to_owned(), r.nexthop.clone());
        needed.insert(key.clone());
        users.entry(key.clone()).or_default().insert(&r.owner.route);
        // Ours first when there are several rows for one session (a foreign one is
        // equally fine to refer to, but ours is the one we answer for).
        let existing = observed
            .bfds
            .iter()
            .filter(|b| b.logical_port == key.0 && b.dst_ip == key.1)
            .min_by_key(|b| (b.owner.is_none(), b.uuid));
        let reference = match existing {
            Some(b) => BfdRef::Existing(b.uuid),
            None => {
                create.entry(key.clone()).or_insert_with(|| Owner {
                    route: r.owner.route.clone(),
                    id: bfd_id(&key.0, &key.1),
                });
                BfdRef::New {
                    logical_port: key.0.clone(),
                    dst_ip: key.1.clone(),
                }
            }
        };
        refs.insert(r.owner.id.clone(), reference);
    }
    let asked = |key: &(String, String), held: Option<&Uuid>| -> Option<(String, BfdTimers)> {
        let outside = held.and_then(|u| observed.bfd_users.get(u));
        let first = users
            .get(key)
            .into_iter()
            .flatten()
            .map(|r| r.to_string())
            .chain(outside.into_iter().flatten().cloned())
            .min()?;
        let t = timers.get(&first).copied().unwrap_or_default();
        Some((first, t))
    };
    for ((logical_port, dst_ip), owner) in create {
        let timers = asked(&(logical_port.clone(), dst_ip.clone()), None)
            .map(|a| a.1)
            .unwrap_or_default();
        changes.push(NbChange::CreateBfd {
            owner,
            logical_port,
            dst_ip,
            timers,
        });
    }
    retime(observed, &asked, timers, changes, problems);
    for b in &observed.bfds {
        let Some(owner) = &b.owner else { continue };
        if !needed.contains(&(b.logical_port.clone(), b.dst_ip.clone()))
            && !observed.bfd_held.contains(&b.uuid)
        {
            changes.push(NbChange::DeleteBfd {
                uuid: b.uuid,
                owner: owner.clone(),
                logical_port: b.logical_port.clone(),
                dst_ip: b.dst_ip.clone(),
            });
        }
    }
    refs
}

/// Sessions that exist with other timers than asked: ours are set to what their first Route
/// asks (OVN's defaults when it gives none); a shared session (not ours) is left alone and
/// reported `BfdSharedTimers` to each Route that gave timers.
fn retime(
    observed: &Observed,
    asked: &Asked<'_>,
    timers: &BTreeMap<String, BfdTimers>,
    changes: &mut Vec<NbChange>,
    problems: &mut Vec<NbProblem>,
) {
    for b in &observed.bfds {
        let key = (b.logical_port.clone(), b.dst_ip.clone());
        // Only sessions a Route of this pass refers to: the others are not its business.
        let Some((mine, my_timers)) = asked(&key, None) else {
            continue;
        };
        match &b.owner {
            Some(owner) => {
                // Ours: the first of every Route using it decides, in or out of the pass.
                let want = asked(&key, Some(&b.uuid)).map_or(my_timers, |a| a.1);
                if b.timers != want {
                    changes.push(NbChange::UpdateBfd {
                        uuid: b.uuid,
                        owner: owner.clone(),
                        logical_port: b.logical_port.clone(),
                        dst_ip: b.dst_ip.clone(),
                        timers: want,
                    });
                }
            }
            None if timers.contains_key(&mine) && b.timers != my_timers => {
                problems.push(NbProblem {
                    route: mine,
                    reason: BFD_SHARED_TIMERS.into(),
                    message: format!(
                        "the BFD session to {} on port {} is shared with a row ovnkube-route \
                         does not own, whose timers ({}) are not the ones asked ({}); it is used \
                         as it is",
                        b.dst_ip,
                        b.logical_port,
                        show(&b.timers),
                        show(&my_timers)
                    ),
                })
            }
            None => {}
        }
    }
}

/// The Route whose timers a session gets, and those timers: the first by name of the Routes
/// of the pass that refer to it and, given the row, of the Routes outside the pass whose
/// static routes refer to it.
type Asked<'a> = dyn Fn(&(String, String), Option<&Uuid>) -> Option<(String, BfdTimers)> + 'a;

/// `BfdSharedTimers`: a shared session keeps timers other than a Route asks for.
pub const BFD_SHARED_TIMERS: &str = "BfdSharedTimers";

fn show(t: &BfdTimers) -> String {
    let v = |x: Option<i64>| x.map_or("default".to_owned(), |n| n.to_string());
    format!(
        "minTx {}, minRx {}, detectMult {}",
        v(t.min_tx),
        v(t.min_rx),
        v(t.detect_mult)
    )
}

/// Gives the static route changes of `d` (the generic row diff's) the BFD session each
/// refers to (see [`plan_sessions`]), and adds the BFD rows to create and delete just
/// before the first static route change (a pasted `plan` line looks a new session up).
pub(super) fn sessions(desired: &DesiredNb, observed: &Observed, d: &mut NbDiff) {
    let wanted = &desired.static_routes;
    let mut bfd_changes = Vec::new();
    let refs = plan_sessions(
        wanted,
        &desired.bfd_timers,
        observed,
        &mut bfd_changes,
        &mut d.problems,
    );
    let mut touched = BTreeSet::new();
    for c in &mut d.changes {
        if let NbChange::StaticRoute(
            RowChange::Create { row, .. } | RowChange::Update { row, .. },
            bfd,
        ) = c
        {
            *bfd = refs.get(&row.owner.id).cloned().filter(|_| row.bfd);
            touched.insert(row.owner.id.clone());
        }
    }
    // Unchanged rows whose reference is not the session chosen now (a weak reference that
    // OVN cleared, or a row of ours that replaced a foreign one): point them at it.
    for want in wanted
        .iter()
        .filter(|w| w.bfd && !touched.contains(&w.owner.id))
    {
        let Some(seen) = observed
            .static_routes
            .iter()
            .find(|s| s.row.owner.id == want.owner.id && s.row == *want)
        else {
            continue;
        };
        let r = refs.get(&want.owner.id);
        if r.is_some() && !same_session(observed, seen.uuid, r) {
            d.changes.push(NbChange::StaticRoute(
                RowChange::Update {
                    uuid: seen.uuid,
                    row: want.clone(),
                    columns: true,
                    add: BTreeSet::new(),
                    remove: BTreeSet::new(),
                },
                r.cloned(),
            ));
        }
    }
    let at = d
        .changes
        .iter()
        .position(|c| matches!(c, NbChange::StaticRoute(..)))
        .unwrap_or(d.changes.len());
    d.changes.splice(at..at, bfd_changes);
}

/// Every BFD session's state as ovn-northd copied it to the NB, by peer address (`dst_ip`);
/// of several sessions to one peer, the worst (`down` before `init` before `admin_down`
/// before `up`): a hop is as good as its worst session.
pub fn states(snap: &crate::ovsdb::Snapshot) -> BTreeMap<String, String> {
    use super::model::Bfd;
    use super::observed::read;
    worst(snap.iter(super::row::BFD).filter_map(|row| {
        let status: Option<String> = read(Bfd::STATUS, &row);
        Some((read(Bfd::DST_IP, &row), status?))
    }))
}

/// [`states`] of the BFD rows a pass read.
pub fn observed_states(observed: &Observed) -> BTreeMap<String, String> {
    worst(
        observed
            .bfds
            .iter()
            .filter_map(|b| Some((b.dst_ip.clone(), b.status.clone()?))),
    )
}

/// Per peer address, the worst of its sessions' states.
fn worst(sessions: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
    let rank = |s: &str| match s {
        "down" => 0,
        "init" => 1,
        "admin_down" => 2,
        _ => 3,
    };
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (ip, status) in sessions {
        match out.get(&ip) {
            Some(have) if rank(have) <= rank(&status) => {}
            _ => {
                out.insert(ip, status);
            }
        }
    }
    out
}

/// Whether an observed route's reference is the session `want` should refer to.
pub fn same_session(observed: &Observed, route_uuid: Uuid, want: Option<&BfdRef>) -> bool {
    match (observed.route_bfd.get(&route_uuid), want) {
        (None, None) => true,
        (Some(have), Some(BfdRef::Existing(w))) => have == w,
        _ => false,
    }
}
