//! Desired NB rows vs observed rows -> the smallest set of changes. Pure: no I/O. Written
//! once for every row family ([`NbRow`]).
//!
//! Rules (DESIGN.md section 4):
//! - Rows are matched by table and `k8s.ovn.org/id`; only rows of ours are ever changed or
//!   deleted. When two rows of ours share an id (a crash between insert and bookkeeping in
//!   an older version, or a concurrent writer), the lowest uuid is kept and the rest removed.
//! - Sets that can be large (address set addresses, port group ports, router policy and
//!   static route references) change by `mutate` insert/delete, never by rewriting the set.
//! - A row whose key changed (a root row's name, a child row's parent) is replaced.
//! - A desired row that cannot work is not written and is reported instead: its router does
//!   not exist, a reroute next hop is on no network of the router's ports (ovn-northd would
//!   ignore the policy silently), its name is taken by a row that is not ours, or (a policy)
//!   its match names an address set whose name a row that is not ours holds.
//! - A child row whose parent is deleted in the same pass goes with it (non-root tables are
//!   garbage-collected at commit): no operation of its own.
//! - Nothing desired and nothing to remove => no change at all (a restart writes nothing).
//!
//! The diff works on whatever the observed rows are: every row of ours (a full pass) or only
//! those of some Routes (a scoped pass, with the desired rows of the same Routes).
use std::collections::{BTreeMap, BTreeSet};

use super::bfd::BfdRef;
use super::observed::{Observed, Seen};
use super::row::{
    CheckContext, Family, FamilyVisitor, NbRow, ParentLink, RowProblem, Verdict, each_family,
};
use crate::api::validate::BfdTimers;
use crate::ovsdb::{Atom, Uuid};
use crate::plan::nb::{
    DesiredNb, NbAcl, NbAddressSet, NbPolicy, NbPortGroup, NbStaticRoute, Owner,
};

/// Where a row hangs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parent {
    /// A root table row.
    None,
    /// Referenced by this existing row.
    Row(Uuid),
    /// Referenced by the row of this name created in the same transaction.
    New(String),
}

/// One change to one row of family `T`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowChange<T> {
    /// `set`: the set column's elements, resolved (switch port uuids for port groups).
    Create {
        parent: Parent,
        row: T,
        set: BTreeSet<Atom>,
    },
    /// `columns`: the written columns differ and are rewritten; `add` / `remove`: the set
    /// column's elements to insert / delete.
    Update {
        uuid: Uuid,
        row: T,
        columns: bool,
        add: BTreeSet<Atom>,
        remove: BTreeSet<Atom>,
    },
    /// A child row is deleted by dropping its parent's reference.
    Delete { parent: Parent, uuid: Uuid, row: T },
}

impl<T: NbRow> RowChange<T> {
    pub fn row(&self) -> &T {
        match self {
            RowChange::Create { row, .. }
            | RowChange::Update { row, .. }
            | RowChange::Delete { row, .. } => row,
        }
    }
}

/// One change to the NB database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NbChange {
    AddressSet(RowChange<NbAddressSet>),
    PortGroup(RowChange<NbPortGroup>),
    Acl(RowChange<NbAcl>),
    Policy(RowChange<NbPolicy>),
    /// With the BFD session a created or updated route refers to (`row.bfd` set and a
    /// session chosen, see `nb::bfd`), else none.
    StaticRoute(RowChange<NbStaticRoute>, Option<BfdRef>),
    /// A BFD session to a next hop that had none (see `nb::bfd`); not a family of ours:
    /// BFD rows are shared with ovn-kubernetes by (port, peer).
    CreateBfd {
        owner: Owner,
        logical_port: String,
        dst_ip: String,
        timers: BfdTimers,
    },
    /// One of our BFD rows whose timers are not the ones its Route asks for.
    UpdateBfd {
        uuid: Uuid,
        owner: Owner,
        logical_port: String,
        dst_ip: String,
        timers: BfdTimers,
    },
    /// One of our BFD rows no route refers to any more.
    DeleteBfd {
        uuid: Uuid,
        owner: Owner,
        logical_port: String,
        dst_ip: String,
    },
}

impl<T: NbRow> RowChange<T> {
    /// `create`, `update` or `delete`.
    pub fn kind(&self) -> &'static str {
        match self {
            RowChange::Create { .. } => "create",
            RowChange::Update { .. } => "update",
            RowChange::Delete { .. } => "delete",
        }
    }

    fn summary(&self) -> (&'static str, &Owner, &'static str) {
        (T::FAMILY.table(), self.row().owner(), self.kind())
    }
}

/// Something done with a change whatever its family.
pub trait ChangeVisitor {
    fn visit<T: NbRow>(&mut self, c: &RowChange<T>);
}

impl NbChange {
    /// The row's table, its owner, and `create` / `update` / `delete`.
    pub fn summary(&self) -> (&'static str, &Owner, &'static str) {
        match self {
            NbChange::AddressSet(c) => c.summary(),
            NbChange::PortGroup(c) => c.summary(),
            NbChange::Acl(c) => c.summary(),
            NbChange::Policy(c) => c.summary(),
            NbChange::StaticRoute(c, _) => c.summary(),
            NbChange::CreateBfd { owner, .. } => (super::row::BFD, owner, "create"),
            NbChange::DeleteBfd { owner, .. } => (super::row::BFD, owner, "delete"),
            NbChange::UpdateBfd { owner, .. } => (super::row::BFD, owner, "update"),
        }
    }

    pub fn visit(&self, v: &mut impl ChangeVisitor) {
        match self {
            NbChange::AddressSet(c) => v.visit(c),
            NbChange::PortGroup(c) => v.visit(c),
            NbChange::Acl(c) => v.visit(c),
            NbChange::Policy(c) => v.visit(c),
            NbChange::StaticRoute(c, _) => v.visit(c),
            NbChange::CreateBfd { .. }
            | NbChange::DeleteBfd { .. }
            | NbChange::UpdateBfd { .. } => {}
        }
    }
}

/// Why a desired row was not written.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NbProblem {
    /// The Route CR concerned.
    pub route: String,
    /// CamelCase reason: RouterNotFound, NextHopUnreachable, NameTaken, PortNotFound, ...
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NbDiff {
    pub changes: Vec<NbChange>,
    pub problems: Vec<NbProblem>,
}

impl NbDiff {
    /// Some change is a static route's or a BFD session's. Sessions are shared by Routes
    /// (one per port and peer) and chosen from what the replica shows, so such a diff is
    /// only right when no other transaction is on its way. Any static route change counts,
    /// not only one that names a session: deleting a route may leave a session of ours
    /// without users (static routes are rare: Routes that select every pod).
    pub fn touches_bfd(&self) -> bool {
        self.changes.iter().any(|c| {
            matches!(
                c,
                NbChange::StaticRoute(..)
                    | NbChange::CreateBfd { .. }
                    | NbChange::UpdateBfd { .. }
                    | NbChange::DeleteBfd { .. }
            )
        })
    }
}

/// What a child row's parent is, as far as this diff knows.
#[derive(Clone, Debug)]
enum ParentState {
    Row(Uuid),
    /// Created in this diff.
    New,
    /// Not available: `problem` is reported; `leave` keeps what exists for the child.
    Missing {
        problem: Option<&'static str>,
        leave: bool,
    },
}

/// State shared across families within one diff.
struct Diff<'o> {
    observed: &'o Observed,
    desired: &'o DesiredNb,
    out: NbDiff,
    /// (family, name) -> state, for parent rows of ours this diff decided (port groups).
    parents: BTreeMap<(Family, String), ParentState>,
    /// Rows this diff deletes: their children go with them.
    deleted: BTreeSet<Uuid>,
    /// Names of our families' rows held by rows that are not ours (a policy must not name
    /// such an address set).
    taken: BTreeSet<(Family, String)>,
}

/// Observed rows of one family by id, the keeper first.
type ById<'o, T> = BTreeMap<&'o str, Vec<&'o Seen<T>>>;

impl<'o> Diff<'o> {
    fn problem(&mut self, route: &str, (reason, message): RowProblem) {
        self.out.problems.push(NbProblem {
            route: route.to_owned(),
            reason: reason.to_owned(),
            message,
        });
    }

    fn problems(&mut self, route: &str, problems: &mut Vec<RowProblem>) {
        for p in problems.drain(..) {
            self.problem(route, p);
        }
    }

    fn name_taken(&self, table: &str, name: &str) -> bool {
        self.observed
            .foreign_names
            .contains(&(table.to_owned(), name.to_owned()))
    }

    /// What the parent row named `name` over `link` is.
    fn parent_state(&self, link: ParentLink, name: &str) -> ParentState {
        match link.family {
            // Not ours (routers): it exists or not.
            None => match self.observed.routers.get(name).and_then(|r| r.uuid) {
                Some(u) => ParentState::Row(u),
                None => ParentState::Missing {
                    problem: Some("RouterNotFound"),
                    leave: true,
                },
            },
            Some(f) => {
                self.parents
                    .get(&(f, name.to_owned()))
                    .cloned()
                    .unwrap_or(ParentState::Missing {
                        problem: Some("ParentNotPlanned"),
                        leave: false,
                    })
            }
        }
    }

    fn delete<T: NbRow>(&mut self, old: &Seen<T>) {
        let parent = match T::FAMILY.parent() {
            None => Parent::None,
            // Unreferenced (already being garbage-collected) or its parent goes now.
            Some(_) => match old.parent {
                Some(p) if !self.deleted.contains(&p) => Parent::Row(p),
                _ => return,
            },
        };
        self.deleted.insert(old.uuid);
        self.out.changes.push(T::change(RowChange::Delete {
            parent,
            uuid: old.uuid,
            row: old.row.clone(),
        }));
    }

    /// Judges one desired row: its family's checks, then its parent. `None` when it is not
    /// written (what exists for it is left alone when the verdict says so); otherwise the
    /// row to write (the family may adjust it) and where it hangs.
    fn judge<'w, T: NbRow>(
        &mut self,
        want: &'w T,
        seen: &mut ById<'o, T>,
    ) -> Option<(std::borrow::Cow<'w, T>, Parent)> {
        let id = want.owner().id.as_str();
        let route = want.owner().route.as_str();
        let link = T::FAMILY.parent();
        let mut problems = Vec::new();
        let observed = self.observed;
        let router = link
            .filter(|l| l.family.is_none())
            .and_then(|_| observed.routers.get(want.key()));
        let ctx = CheckContext {
            router,
            taken: &self.taken,
        };
        // The desired row is checked (it says what cannot be written); the adjusted one is
        // what is compared and written.
        let verdict = want.check(&ctx, &mut problems);
        let written = (verdict == Verdict::Write)
            .then(|| want.written(&ctx))
            .flatten();
        self.problems(route, &mut problems);
        match verdict {
            Verdict::Write => {}
            Verdict::Leave => {
                seen.remove(id);
                return None;
            }
            Verdict::Drop => return None,
        }
        let row = match written {
            Some(r) => std::borrow::Cow::Owned(r),
            None => std::borrow::Cow::Borrowed(want),
        };
        let Some(l) = link else {
            return Some((row, Parent::None));
        };
        match self.parent_state(l, want.key()) {
            ParentState::Row(u) => Some((row, Parent::Row(u))),
            ParentState::New => Some((row, Parent::New(want.key().to_owned()))),
            ParentState::Missing { problem, leave } => {
                if let Some(reason) = problem {
                    let what = match l.family {
                        None => format!(
                            "logical router {} does not exist; {} {id} waits for it",
                            want.key(),
                            T::WHAT
                        ),
                        Some(f) => format!(
                            "{} {id} refers to {f} {}, which is not planned",
                            T::WHAT,
                            want.key()
                        ),
                    };
                    self.problem(route, (reason, what));
                }
                if leave {
                    seen.remove(id);
                }
                None
            }
        }
    }

    /// Writes one judged row: an update of the row of ours with its id (duplicates
    /// removed), or a creation in place of rows whose key differs.
    fn write<T: NbRow>(&mut self, row: &T, parent: Parent, seen: &mut ById<'o, T>) {
        let observed = self.observed;
        let ports = |name: &str| observed.switch_ports.get(name).copied();
        let route = row.owner().route.as_str();
        let mut problems = Vec::new();
        let set = row.set_atoms(&ports, &mut problems);
        self.problems(route, &mut problems);
        match seen.remove(row.owner().id.as_str()) {
            Some(rows) if rows[0].row.key() == row.key() => {
                let have = rows[0];
                let have_set = have.row.set_atoms(&ports, &mut Vec::new());
                let add: BTreeSet<Atom> = set.difference(&have_set).cloned().collect();
                let remove: BTreeSet<Atom> = have_set.difference(&set).cloned().collect();
                let columns = !row.same_columns(&have.row);
                self.child_parent::<T>(row.key(), ParentState::Row(have.uuid));
                if columns || !add.is_empty() || !remove.is_empty() {
                    self.out.changes.push(T::change(RowChange::Update {
                        uuid: have.uuid,
                        row: row.clone(),
                        columns,
                        add,
                        remove,
                    }));
                }
                for dup in &rows[1..] {
                    self.delete(dup);
                }
            }
            other => {
                for old in other.into_iter().flatten() {
                    self.delete(old);
                }
                if T::FAMILY.named() && self.name_taken(T::FAMILY.table(), row.key()) {
                    let what = format!(
                        "{} {} exists and is not owned by ovnkube-route",
                        T::FAMILY.table(),
                        row.key()
                    );
                    self.problem(route, ("NameTaken", what));
                    self.taken.insert((T::FAMILY, row.key().to_owned()));
                    self.child_parent::<T>(
                        row.key(),
                        ParentState::Missing {
                            problem: None,
                            leave: false,
                        },
                    );
                    return;
                }
                self.child_parent::<T>(row.key(), ParentState::New);
                self.out.changes.push(T::change(RowChange::Create {
                    parent,
                    row: row.clone(),
                    set,
                }));
            }
        }
    }

    fn family<T: NbRow>(&mut self) {
        let mut seen = by_id(T::observed(self.observed));
        for want in T::desired(self.desired) {
            if let Some((row, parent)) = self.judge(want, &mut seen) {
                self.write::<T>(&row, parent, &mut seen);
            }
        }
        for rows in seen.into_values() {
            for old in rows {
                self.delete(old);
            }
        }
    }

    /// Records what a row of a family others hang off (port groups) is, for its children.
    fn child_parent<T: NbRow>(&mut self, name: &str, state: ParentState) {
        if T::FAMILY.children().next().is_some() {
            self.parents.insert((T::FAMILY, name.to_owned()), state);
        }
    }
}

impl FamilyVisitor for Diff<'_> {
    fn visit<T: NbRow>(&mut self) {
        self.family::<T>();
    }
}

/// Group observed rows by id; the first (lowest uuid) is the keeper, the rest duplicates.
///
/// Borrows: a pass over ~10k rows of ours would otherwise copy every one of them just to
/// find that almost all are unchanged.
fn by_id<T: NbRow>(seen: &[Seen<T>]) -> BTreeMap<&str, Vec<&Seen<T>>> {
    let mut m: BTreeMap<&str, Vec<&Seen<T>>> = BTreeMap::new();
    for s in seen {
        m.entry(s.row.owner().id.as_str()).or_default().push(s);
    }
    for v in m.values_mut() {
        v.sort_by_key(|s| s.uuid);
    }
    m
}

/// Computes the changes that take `observed` to `desired`, row family by row family (the
/// one generic row diff), then gives the static routes their BFD sessions (`nb::bfd`).
pub fn diff(desired: &DesiredNb, observed: &Observed) -> NbDiff {
    let mut out = rows(desired, observed);
    super::bfd::sessions(desired, observed, &mut out);
    out.problems.sort();
    out.problems.dedup();
    out
}

/// The generic row diff over every family of ours.
fn rows(desired: &DesiredNb, observed: &Observed) -> NbDiff {
    let mut d = Diff {
        observed,
        desired,
        out: NbDiff::default(),
        parents: BTreeMap::new(),
        deleted: BTreeSet::new(),
        taken: BTreeSet::new(),
    };
    each_family(&mut d);
    d.out
}

/// Every desired row as a creation, for showing a plan without a database to diff against
/// (router and port uuids are unknown and left nil; such changes are for display only).
pub fn as_creates(desired: &DesiredNb) -> Vec<NbChange> {
    struct Creates<'a> {
        desired: &'a DesiredNb,
        out: Vec<NbChange>,
    }
    impl FamilyVisitor for Creates<'_> {
        fn visit<T: NbRow>(&mut self) {
            let nil = Uuid(uuid::Uuid::nil());
            for row in T::desired(self.desired) {
                let parent = match T::FAMILY.parent() {
                    None => Parent::None,
                    Some(l) if l.family.is_none() => Parent::Row(nil),
                    Some(_) => Parent::New(row.key().to_owned()),
                };
                let set = row.set_atoms(&|_| Some(nil), &mut Vec::new());
                self.out.push(T::change(RowChange::Create {
                    parent,
                    row: row.clone(),
                    set,
                }));
            }
        }
    }
    let mut c = Creates {
        desired,
        out: Vec::new(),
    };
    each_family(&mut c);
    for change in &mut c.out {
        if let NbChange::StaticRoute(RowChange::Create { row, .. }, bfd) = change
            && row.bfd
        {
            *bfd = Some(BfdRef::New {
                logical_port: "<router port towards the next hop>".into(),
                dst_ip: row.nexthop.clone(),
            });
        }
    }
    c.out
}
