//! NB changes -> RFC 7047 `transact` operations (section 5.2), and their readable form.
//!
//! Every operation that touches an existing row of ours names it by uuid AND by ownership
//! (`external_ids includes {owner-controller, id}`), and its result must count exactly one
//! row; a delete (done by dropping the router's / port group's reference, since these tables
//! are not root tables) is guarded by a `wait` that the row is still ours. So a row that
//! changed hands or vanished since the replica was read fails the transaction instead of
//! being clobbered, and the next pass works from fresh data.
use std::collections::{BTreeMap, BTreeSet};

use super::bfd::BfdRef;
use super::diff::{ChangeVisitor, NbChange, Parent, RowChange};
use super::model;
use super::row::{BFD, NbRow, written_columns};
use crate::ovsdb::{
    Atom, Condition, Mutation, OpResult, Operation, Row, TypedRow, Uuid, Value, WaitUntil,
};
use crate::plan::nb::{ID_KEY, OWNER_CONTROLLER, OWNER_CONTROLLER_KEY, Owner};

/// What an operation's result must say for the transaction to count as applied as planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Any successful result.
    Ok,
    /// `{"count": n}` with exactly this n.
    Count(i64),
}

/// A transaction ready to send: operations and what each must return.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NbTxn {
    pub ops: Vec<Operation>,
    pub expect: Vec<Expect>,
}

impl NbTxn {
    fn push(&mut self, op: Operation, expect: Expect) {
        self.ops.push(op);
        self.expect.push(expect);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The first operation whose result is not what the plan relied on: a row that changed
    /// hands or vanished since the replica was read. `None` when all is as expected.
    pub fn unexpected(&self, results: &[OpResult]) -> Option<(usize, String)> {
        self.expect
            .iter()
            .zip(results)
            .enumerate()
            .find_map(|(i, (e, r))| match (e, r) {
                (Expect::Count(n), r) if r.count() != Some(*n) => Some((
                    i,
                    format!(
                        "operation {i} ({}) matched {:?} row(s), expected {n}",
                        op_name(&self.ops[i]),
                        r.count()
                    ),
                )),
                _ => None,
            })
    }
}

fn op_name(op: &Operation) -> String {
    match op {
        Operation::Insert { table, .. } => format!("insert into {table}"),
        Operation::Update { table, .. } => format!("update {table}"),
        Operation::Mutate { table, .. } => format!("mutate {table}"),
        Operation::Delete { table, .. } => format!("delete from {table}"),
        other => format!("{other:?}"),
    }
}

/// The BFD timer columns (ovn-nb(5)); an unset timer is written as the empty set.
const BFD_TIMERS: [&str; 3] = [
    model::Bfd::MIN_TX.name(),
    model::Bfd::MIN_RX.name(),
    model::Bfd::DETECT_MULT.name(),
];

fn uuid_set(us: &BTreeSet<Uuid>) -> Value {
    Value::set(us.iter().map(|u| Atom::Uuid(*u)))
}

fn atom_set(atoms: &BTreeSet<Atom>) -> Value {
    Value::set(atoms.iter().cloned())
}

fn named(name: &str) -> Value {
    Value::set([Atom::NamedUuid(name.to_owned())])
}

/// `_uuid == u` and still ours (with this id, when the row had one: a row of ours without
/// an id is garbage and only ever deleted).
fn ours(u: Uuid, owner: &Owner) -> Vec<Condition> {
    let mut keys = vec![(OWNER_CONTROLLER_KEY, OWNER_CONTROLLER)];
    if !owner.id.is_empty() {
        keys.push((ID_KEY, owner.id.as_str()));
    }
    vec![
        Condition::uuid(u),
        Condition::includes("external_ids", Value::map(keys)),
    ]
}

/// Fails the whole transaction unless a row matches `conditions`. RFC 7047 section 5.2.6:
/// `until "!="` with no rows holds once the query matches something; timeout 0 fails at
/// once. An update or mutate that matches nothing is not an error (it would commit the rest
/// of the transaction), so every operation on an existing row is preceded by this guard and
/// the transaction is all or nothing.
fn guard(t: &mut NbTxn, table: &str, conditions: Vec<Condition>) {
    t.push(
        Operation::Wait {
            table: table.to_owned(),
            conditions,
            columns: vec!["_uuid".to_owned()],
            until: WaitUntil::NotEqual,
            rows: vec![],
            timeout_ms: Some(0),
        },
        Expect::Ok,
    );
}

fn mutate(t: &mut NbTxn, table: &str, conditions: Vec<Condition>, mutations: Vec<Mutation>) {
    guard(t, table, conditions.clone());
    t.push(
        Operation::Mutate {
            table: table.to_owned(),
            conditions,
            mutations,
        },
        Expect::Count(1),
    );
}

/// Every row is inserted with a UUID of our choosing (ovsdb-server(7) 5.2.1, Open vSwitch
/// 2.13+): what a transaction does is then known before its reply, so its update can be
/// recognised as ours (`echo`) even when it comes first.
fn insert(t: &mut NbTxn, table: &str, row: Row, uuid_name: Option<String>) {
    t.push(
        Operation::Insert {
            table: table.to_owned(),
            row,
            uuid_name,
            uuid: Some(Uuid(uuid::Uuid::new_v4())),
        },
        Expect::Ok,
    );
}

/// Builds the operations of one transaction, change by change (see [`transaction`]).
struct Builder {
    t: NbTxn,
    next_name: usize,
    /// (parent table, parent name) -> (reference column, named uuids) of rows inserted for
    /// a parent that this transaction creates too.
    pending: BTreeMap<(&'static str, String), Vec<(&'static str, String)>>,
    /// First round: only creations under a new parent. Second round: everything else.
    first_round: bool,
    /// The `bfd` column of the static route change being built (see `nb::bfd`).
    session: Option<Value>,
    /// References added to and removed from existing parents, one mutation per parent
    /// column for the whole transaction (see [`Builder::link_parents`]).
    parents: BTreeMap<ParentColumn, Links>,
}

/// (parent table, parent row, reference column).
type ParentColumn = (&'static str, Uuid, &'static str);

/// Children named in this transaction to add, existing children to remove.
#[derive(Default)]
struct Links {
    add: Vec<String>,
    remove: BTreeSet<Uuid>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            t: NbTxn::default(),
            next_name: 0,
            pending: BTreeMap::new(),
            first_round: true,
            session: None,
            parents: BTreeMap::new(),
        }
    }

    /// The written columns, with the BFD session of a static route.
    fn columns<T: NbRow>(&self, row: &T) -> Row {
        let mut cols = written_columns(row);
        // Set only while a static route change is being built.
        if let Some(v) = &self.session {
            cols.insert(
                model::LogicalRouterStaticRoute::BFD.name().to_owned(),
                v.clone(),
            );
        }
        cols
    }

    /// One guarded mutation per parent column: hundreds of policies added to one router
    /// are one set union for ovsdb-server, not hundreds of copies of a set that grows with
    /// the NB (each mutation rewrites the whole column).
    fn link_parents(&mut self) {
        for ((table, parent, column), links) in std::mem::take(&mut self.parents) {
            let mut m = Vec::new();
            if !links.remove.is_empty() {
                m.push(Mutation::delete(column, uuid_set(&links.remove)));
            }
            if !links.add.is_empty() {
                let names = links.add.iter().map(|n| Atom::NamedUuid(n.clone()));
                m.push(Mutation::insert(column, Value::set(names)));
            }
            mutate(&mut self.t, table, vec![Condition::uuid(parent)], m);
        }
    }

    fn name(&mut self) -> String {
        self.next_name += 1;
        format!("r{}", self.next_name - 1)
    }

    fn create<T: NbRow>(&mut self, parent: &Parent, row: &T, set: &BTreeSet<Atom>) {
        let table = T::FAMILY.table();
        let mut cols = self.columns(row);
        if let Some(c) = T::SET_COLUMN {
            cols.insert(c.name().to_owned(), atom_set(set));
        }
        // References to children inserted just before (a new port group lists its ACLs).
        let children = self
            .pending
            .remove(&(table, row.key().to_owned()))
            .unwrap_or_default();
        for (_, link) in T::FAMILY.children() {
            let names = children
                .iter()
                .filter(|(col, _)| *col == link.column)
                .map(|(_, n)| Atom::NamedUuid(n.clone()));
            cols.insert(link.column.to_owned(), Value::set(names));
        }
        let Some(link) = T::FAMILY.parent() else {
            insert(&mut self.t, table, cols, None);
            return;
        };
        let nm = self.name();
        insert(&mut self.t, table, cols, Some(nm.clone()));
        match parent {
            Parent::Row(p) => self
                .parents
                .entry((link.table, *p, link.column))
                .or_default()
                .add
                .push(nm),
            Parent::New(name) => self
                .pending
                .entry((link.table, name.clone()))
                .or_default()
                .push((link.column, nm)),
            // A child without a parent would be garbage-collected at commit.
            Parent::None => {}
        }
    }
}

impl ChangeVisitor for Builder {
    fn visit<T: NbRow>(&mut self, c: &RowChange<T>) {
        let under_new = matches!(
            c,
            RowChange::Create {
                parent: Parent::New(_),
                ..
            }
        );
        if self.first_round != under_new {
            return;
        }
        let table = T::FAMILY.table();
        match c {
            RowChange::Create { parent, row, set } => self.create(parent, row, set),
            RowChange::Update {
                uuid,
                row,
                columns,
                add,
                remove,
            } => {
                let cond = ours(*uuid, row.owner());
                if *columns {
                    guard(&mut self.t, table, cond.clone());
                    self.t.push(
                        Operation::Update {
                            table: table.to_owned(),
                            conditions: cond.clone(),
                            row: self.columns(row),
                        },
                        Expect::Count(1),
                    );
                }
                if let Some(col) = T::SET_COLUMN.map(|c| c.name())
                    && (!add.is_empty() || !remove.is_empty())
                {
                    let mut m = Vec::new();
                    if !remove.is_empty() {
                        m.push(Mutation::delete(col, atom_set(remove)));
                    }
                    if !add.is_empty() {
                        m.push(Mutation::insert(col, atom_set(add)));
                    }
                    mutate(&mut self.t, table, cond, m);
                }
            }
            RowChange::Delete { parent, uuid, row } => match (parent, T::FAMILY.parent()) {
                (Parent::Row(p), Some(link)) => {
                    // Removing the parent's reference is enough: the table is not a root
                    // table, so the row is garbage-collected at commit (ovsdb-server(7),
                    // RFC 7047 section 3.2 isRoot).
                    guard(&mut self.t, table, ours(*uuid, row.owner()));
                    self.parents
                        .entry((link.table, *p, link.column))
                        .or_default()
                        .remove
                        .insert(*uuid);
                }
                _ => self.t.push(
                    Operation::Delete {
                        table: table.to_owned(),
                        conditions: ours(*uuid, row.owner()),
                    },
                    Expect::Count(1),
                ),
            },
        }
    }
}

/// Builds one transaction for all changes. Named uuids are `r0`, `r1`, ... (RFC 7047
/// section 5.2.1 `uuid-name`, which must be an `<id>`). Rows whose parent is created in the
/// same transaction (the ACLs of a new port group) are inserted first, and the parent's
/// insert lists them.
pub fn transaction(changes: &[NbChange]) -> NbTxn {
    let mut b = Builder::new();
    // BFD rows first: static routes later in the transaction refer to them by name.
    let mut bfd_names: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for c in changes {
        match c {
            NbChange::CreateBfd {
                owner,
                logical_port,
                dst_ip,
                timers,
            } => {
                let nm = b.name();
                let row = model::Bfd {
                    logical_port: logical_port.clone(),
                    dst_ip: dst_ip.clone(),
                    external_ids: owner.external_ids(),
                    min_tx: timers.min_tx,
                    min_rx: timers.min_rx,
                    detect_mult: timers.detect_mult,
                    ..Default::default()
                }
                .to_row();
                let mut cols = row;
                cols.retain(|k, _| {
                    ["logical_port", "dst_ip", "external_ids"].contains(&k.as_str())
                        || BFD_TIMERS.contains(&k.as_str())
                });
                insert(&mut b.t, BFD, cols, Some(nm.clone()));
                bfd_names.insert((logical_port.as_str(), dst_ip.as_str()), nm);
            }
            NbChange::UpdateBfd {
                uuid,
                owner,
                timers,
                ..
            } => {
                let mut cols = model::Bfd {
                    min_tx: timers.min_tx,
                    min_rx: timers.min_rx,
                    detect_mult: timers.detect_mult,
                    ..Default::default()
                }
                .to_row();
                cols.retain(|k, _| BFD_TIMERS.contains(&k.as_str()));
                b.t.push(
                    Operation::Update {
                        table: BFD.to_owned(),
                        conditions: ours(*uuid, owner),
                        row: cols,
                    },
                    Expect::Count(1),
                );
            }
            NbChange::DeleteBfd { uuid, owner, .. } => b.t.push(
                Operation::Delete {
                    table: BFD.to_owned(),
                    conditions: ours(*uuid, owner),
                },
                Expect::Count(1),
            ),
            _ => {}
        }
    }
    for round in [true, false] {
        b.first_round = round;
        for c in changes {
            b.session = match c {
                NbChange::StaticRoute(_, bfd) => Some(match bfd {
                    Some(BfdRef::Existing(u)) => Value::set([Atom::Uuid(*u)]),
                    Some(BfdRef::New {
                        logical_port,
                        dst_ip,
                    }) => match bfd_names.get(&(logical_port.as_str(), dst_ip.as_str())) {
                        Some(n) => named(n),
                        None => Value::set([]),
                    },
                    None => Value::set([]),
                }),
                _ => None,
            };
            c.visit(&mut b);
        }
    }
    b.link_parents();
    let mut t = b.t;
    if !t.is_empty() {
        t.push(
            Operation::Comment(format!("ovnkube-route: {} change(s)", changes.len())),
            Expect::Ok,
        );
    }
    t
}

pub use super::describe::describe;
