//! echo: our own transactions as the replica will show them, so that the update a write
//! brings back is not taken for drift.
//!
//! Every row change the replica reports on a table of ours makes the Routes it names be
//! diffed again (drift repair, `drift`). Our own write comes back that way too: without
//! this, every transaction was followed by a second pass over the same Routes that read
//! their rows, rebuilt their desired rows and found nothing to do (at 5,000 Routes, a
//! third of the controller's time while it wrote the NB at start).
//!
//! Before a transaction is sent (its inserts carry UUIDs of our choosing, so its update may
//! come before its reply, or while the next transaction is on its way), [`Echoes::expect`]
//! records, row by row, what it will do: the columns of each inserted row, the columns set
//! and the set elements inserted or deleted on each updated row, the rows deleted (and the
//! child rows whose reference went, with the parent's reference or with the parent, which
//! ovsdb-server garbage-collects). A changed row is our echo ([`Echoes::explains`]) only
//! when the change is exactly that: an insert whose written columns hold what we wrote, an
//! update whose old and new rows differ by exactly our columns and elements and nothing
//! else, a delete. Anything more (another client's change to the same row folded into the
//! same update, a column we did not write) and it is drift, as before. A transaction's
//! expectations go once an update has shown any of its rows (ovsdb-server reports a
//! transaction in one update), when it fails ([`Echoes::forget`]), or when the replica is
//! reloaded.
//!
//! Owns: the expected rows of recent transactions. Must not: decide what to do about a
//! change (`drift` and the controller do).
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use crate::ovsdb::{Atom, Condition, Function, Mutator, OpResult, Operation, ReplicaRow, Value};
use crate::ovsdb::{Row, RowChange, Snapshot, Uuid};

/// Transactions whose update may still be on its way. More are not kept: the oldest's
/// rows are then taken for drift, which costs a pass, never a missed repair.
const PENDING: usize = 16;

/// What one transaction did to one row.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// Inserted with these columns (the others hold their defaults or whatever another
    /// client set; a pass would not look at them either).
    Inserted {
        table: String,
        row: Row,
    },
    /// Columns set to these values, and set columns mutated (in order).
    Updated {
        table: String,
        set: Row,
        mutations: BTreeMap<String, Vec<(Mutator, BTreeSet<Atom>)>>,
    },
    Deleted {
        table: String,
    },
    /// Changed in a way this module does not predict (never explains a change).
    Unknown,
}

/// One transaction's expected rows (recorded before it is sent, or once it has committed).
#[derive(Debug, Default)]
struct Txn {
    /// Names the record for [`Echoes::forget`].
    ticket: u64,
    rows: HashMap<Uuid, Expect>,
    /// Rows whose last reference the transaction removed: garbage-collected at commit,
    /// unless something else still refers to them.
    collected: HashSet<Uuid>,
    /// An update has shown some of its rows.
    seen: bool,
}

/// The expected echoes of our recent transactions (see the module comment).
#[derive(Debug, Default)]
pub struct Echoes {
    txns: VecDeque<Txn>,
    next_ticket: u64,
}

impl Echoes {
    /// Records a transaction: its operations and, once it has committed, their results, in
    /// order. An insert's row is known by the UUID the operation gives it, else by its
    /// result: a transaction whose inserts all carry their UUID can be recorded before it
    /// is sent (then `results` is empty), so that its update is known whenever it comes;
    /// [`Echoes::forget`] drops it if it then fails. `before` is the replica as the
    /// transaction found it: the rows a deleted row refers to go with it when nothing else
    /// refers to them. Returns the record's ticket (`None`: nothing to expect).
    pub fn expect(
        &mut self,
        ops: &[Operation],
        results: &[OpResult],
        before: &Snapshot,
    ) -> Option<u64> {
        let inserted = |i: usize, op: &Operation| match op {
            Operation::Insert { uuid: Some(u), .. } => Some(*u),
            _ => results.get(i).and_then(OpResult::uuid),
        };
        let names: HashMap<&str, Uuid> = ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| match op {
                Operation::Insert {
                    uuid_name: Some(n), ..
                } => Some((n.as_str(), inserted(i, op)?)),
                _ => None,
            })
            .collect();
        self.next_ticket += 1;
        let mut t = Txn {
            ticket: self.next_ticket,
            ..Txn::default()
        };
        for (i, op) in ops.iter().enumerate() {
            match op {
                Operation::Insert { table, row, .. } => {
                    let Some(u) = inserted(i, op) else {
                        continue;
                    };
                    let e =
                        resolve_row(row, &names).map_or(Expect::Unknown, |row| Expect::Inserted {
                            table: table.clone(),
                            row,
                        });
                    // An insert is the first thing a transaction does to a row.
                    t.rows.insert(u, e);
                }
                Operation::Update {
                    table,
                    conditions,
                    row,
                } => {
                    let Some(u) = target(conditions) else {
                        continue;
                    };
                    let e = t.rows.entry(u).or_insert_with(|| updated(table));
                    match (e, resolve_row(row, &names)) {
                        (Expect::Updated { set, mutations, .. }, Some(row))
                            if row.keys().all(|c| !mutations.contains_key(c)) =>
                        {
                            set.extend(row);
                        }
                        (e, _) => *e = Expect::Unknown,
                    }
                }
                Operation::Mutate {
                    table,
                    conditions,
                    mutations,
                } => {
                    let Some(u) = target(conditions) else {
                        continue;
                    };
                    let e = t.rows.entry(u).or_insert_with(|| updated(table));
                    for m in mutations {
                        let elements = resolve(&m.value, &names).map(Value::into_set);
                        match (&mut *e, &m.mutator, elements) {
                            (
                                Expect::Updated { set, mutations, .. },
                                Mutator::Insert | Mutator::Delete,
                                Some(elements),
                            ) if !set.contains_key(&m.column)
                                && !matches!(m.value, Value::Map(_)) =>
                            {
                                if m.mutator == Mutator::Delete {
                                    t.collected
                                        .extend(elements.iter().filter_map(Atom::as_uuid));
                                }
                                mutations
                                    .entry(m.column.clone())
                                    .or_default()
                                    .push((m.mutator, elements));
                            }
                            (e, _, _) => *e = Expect::Unknown,
                        }
                    }
                }
                Operation::Delete { table, conditions } => {
                    let Some(u) = target(conditions) else {
                        continue;
                    };
                    if let Some(row) = before.get(table, u) {
                        t.collected.extend(
                            row.column_names()
                                .filter_map(|c| row.get(c))
                                .flat_map(|v| v.into_set())
                                .filter_map(|a| a.as_uuid()),
                        );
                    }
                    let e = t.rows.entry(u).or_insert(Expect::Unknown);
                    *e = match e {
                        Expect::Updated { .. } | Expect::Unknown => Expect::Deleted {
                            table: table.clone(),
                        },
                        _ => Expect::Unknown,
                    };
                }
                // Guards, reads and comments change nothing.
                _ => {}
            }
        }
        if t.rows.is_empty() && t.collected.is_empty() {
            return None;
        }
        if self.txns.len() == PENDING {
            self.txns.pop_front();
        }
        self.txns.push_back(t);
        Some(self.next_ticket)
    }

    /// Drops a recorded transaction that did not commit (its update never comes).
    pub fn forget(&mut self, ticket: u64) {
        self.txns.retain(|t| t.ticket != ticket);
    }

    /// Whether `c` is exactly what one of our recorded transactions did to that row. The
    /// row's expectation is used up either way once the row was found.
    pub fn explains(&mut self, c: &RowChange) -> bool {
        for t in &mut self.txns {
            if let Some(e) = t.rows.remove(&c.uuid) {
                t.seen = true;
                return matches(&e, c);
            }
            if t.collected.remove(&c.uuid) {
                t.seen = true;
                return c.old.is_some() && c.new.is_none();
            }
        }
        false
    }

    /// The end of one update: the transactions it showed are done with (what is left of
    /// them did not come, or came otherwise than expected).
    pub fn end_update(&mut self) {
        self.txns.retain(|t| !t.seen);
    }

    /// Forgets every expectation (the replica was reloaded or fell behind).
    pub fn clear(&mut self) {
        self.txns.clear();
    }

    /// Transactions whose update has not been seen yet.
    pub fn pending(&self) -> usize {
        self.txns.len()
    }
}

fn updated(table: &str) -> Expect {
    Expect::Updated {
        table: table.to_owned(),
        set: Row::new(),
        mutations: BTreeMap::new(),
    }
}

/// The row an operation is about, when its conditions name it by uuid.
fn target(conditions: &[Condition]) -> Option<Uuid> {
    conditions
        .iter()
        .find(|c| c.column == "_uuid" && c.function == Function::Eq)
        .and_then(|c| match &c.value {
            Value::Atom(a) => a.as_uuid(),
            Value::Set(s) if s.len() == 1 => s.iter().next()?.as_uuid(),
            _ => None,
        })
}

/// `v` with the transaction's named uuids replaced by the uuids they got; `None` when a
/// name is not one of its inserts.
fn resolve(v: &Value, names: &HashMap<&str, Uuid>) -> Option<Value> {
    let atom = |a: &Atom| match a {
        Atom::NamedUuid(n) => names.get(n.as_str()).map(|u| Atom::Uuid(*u)),
        a => Some(a.clone()),
    };
    Some(match v {
        Value::Atom(a) => Value::Atom(atom(a)?),
        Value::Set(s) => Value::Set(s.iter().map(atom).collect::<Option<_>>()?),
        Value::Map(m) => Value::Map(
            m.iter()
                .map(|(k, v)| Some((atom(k)?, atom(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

fn resolve_row(row: &Row, names: &HashMap<&str, Uuid>) -> Option<Row> {
    row.iter()
        .map(|(k, v)| Some((k.clone(), resolve(v, names)?)))
        .collect()
}

fn matches(e: &Expect, c: &RowChange) -> bool {
    match (e, c.old.as_ref(), c.new.as_ref()) {
        (Expect::Inserted { table, row }, None, Some(new)) => {
            new.table() == table && row.iter().all(|(k, v)| new.holds(k, v))
        }
        (
            Expect::Updated {
                table,
                set,
                mutations,
            },
            Some(old),
            Some(new),
        ) => {
            new.table() == table
                && new.column_names().all(|col| {
                    if let Some(v) = set.get(col) {
                        new.holds(col, v)
                    } else if let Some(ms) = mutations.get(col) {
                        mutated(old, col, ms).is_some_and(|v| new.holds(col, &v))
                    } else {
                        old.same_column(new, col)
                    }
                })
        }
        (Expect::Deleted { table }, Some(old), None) => old.table() == table,
        _ => false,
    }
}

/// A set column's value after the mutations, from the row before them.
fn mutated(old: &ReplicaRow, col: &str, ms: &[(Mutator, BTreeSet<Atom>)]) -> Option<Value> {
    let mut s = old.get(col)?.into_set();
    for (m, elements) in ms {
        match m {
            Mutator::Insert => s.extend(elements.iter().cloned()),
            Mutator::Delete => s.retain(|a| !elements.contains(a)),
            _ => return None,
        }
    }
    Some(Value::Set(s))
}

#[cfg(test)]
mod tests;
