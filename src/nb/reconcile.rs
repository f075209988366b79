//! The NB reconciler: the I/O edge between the plan and the Northbound database.
//!
//! One pass = snapshot the monitored replica, [`diff`] against the desired rows, send one
//! transaction ([`transaction`]) whose every result is checked. The pass returns when the
//! server has committed it; before the next pass reads anything, it waits until the replica
//! shows what the previous one wrote ([`NbReconciler::settle`]), so no pass works from data
//! older than its own write (which is how controllers end up inserting the same
//! non-indexed row twice), and no pass waits for its own echo when nothing follows.
//!
//! Drift repair is the caller's loop: [`NbReconciler::subscribe`] reports every replica change;
//! a change to a table of ours triggers a pass, which restores deleted or edited rows.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::diff::{NbDiff, NbProblem, diff};
use super::echo::Echoes;
use super::observed::{BFD, Observed};
use super::ops::transaction;
use super::row::{Family, desired_owners};
use crate::ovsdb::{
    Client, ClientConfig, DatabaseSchema, Error as OvsdbError, ReplicaFeed, Snapshot, Subscription,
    TableSpec, TypedSpec,
};
use crate::ovsdb::{Replica, ReplicaError, SchemaError, SentTxn, TxnErrorKind};
use crate::plan::nb::{DesiredNb, ID_KEY, NAME_KEY};

pub const DATABASE: &str = "OVN_Northbound";

/// What can go wrong on the NB side.
#[derive(Debug, thiserror::Error)]
pub enum NbError {
    /// The OVSDB client failed (connection, protocol, or a refused transaction).
    #[error("OVN NB: {0}")]
    Ovsdb(#[from] OvsdbError),
    /// The server's schema could not be parsed.
    #[error("OVN NB schema: {0}")]
    Schema(#[from] SchemaError),
    /// The server's schema lacks a table or column we need (wrong database or OVN version).
    #[error("OVN NB replica: {0}")]
    Replica(#[from] ReplicaError),
    /// A row we planned to change was changed by someone else first (the guard fired);
    /// nothing was written. The next pass works from fresh data.
    #[error("NB changed under us: {0}")]
    Conflict(String),
    /// The write committed but the replica did not show it in time (monitor stalled).
    #[error("the NB replica did not show our transaction within {0:?}")]
    NotVisible(Duration),
    /// No usable NB server could be reached in time.
    #[error("cannot reach the NB database at {remotes} within {secs} s")]
    Unreachable { remotes: String, secs: u64 },
}

impl NbError {
    /// The pass failed because the connection went away (its write may or may not have
    /// committed): worth retrying as soon as the client has reconnected, rather than on
    /// the next periodic resync.
    pub fn retry_on_reconnect(&self) -> bool {
        matches!(
            self,
            NbError::Ovsdb(
                OvsdbError::OutcomeUnknown
                    | OvsdbError::NotConnected
                    | OvsdbError::ConnectionLost { .. }
                    | OvsdbError::Timeout { .. }
            ) | NbError::NotVisible(_)
                | NbError::Unreachable { .. }
        )
    }

    /// A short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            NbError::Ovsdb(e) => e.label(),
            NbError::Schema(_) => "schema",
            NbError::Replica(_) => "replica",
            NbError::Conflict(_) => "conflict",
            NbError::NotVisible(_) => "not_visible",
            NbError::Unreachable { .. } => "unreachable",
        }
    }
}

/// The tables and columns the reconciler reads. Only what is needed, so a large NB (many
/// switch ports, load balancers) costs little memory.
pub fn table_specs() -> Vec<TableSpec> {
    use super::model::{
        Acl, AddressSet, Bfd, LoadBalancer, LogicalRouter, LogicalRouterPolicy, LogicalRouterPort,
        LogicalRouterStaticRoute, LogicalSwitchPort, PortGroup,
    };
    let owned = [ID_KEY, NAME_KEY];
    vec![
        TypedSpec::<LogicalRouter>::all()
            .columns(&[
                LogicalRouter::NAME.erased(),
                LogicalRouter::PORTS.erased(),
                LogicalRouter::POLICIES.erased(),
                LogicalRouter::STATIC_ROUTES.erased(),
                LogicalRouter::OPTIONS.erased(),
            ])
            .index(&[LogicalRouter::NAME.erased()])
            .spec(),
        TypedSpec::<LogicalRouterPort>::all()
            .columns(&[
                LogicalRouterPort::NAME.erased(),
                LogicalRouterPort::NETWORKS.erased(),
            ])
            .spec(),
        // Every BFD row: a session to a next hop may already exist (ovn-kubernetes').
        TypedSpec::<Bfd>::all()
            .columns(&[
                Bfd::LOGICAL_PORT.erased(),
                Bfd::DST_IP.erased(),
                Bfd::EXTERNAL_IDS.erased(),
                Bfd::MIN_TX.erased(),
                Bfd::MIN_RX.erased(),
                Bfd::DETECT_MULT.erased(),
                Bfd::STATUS.erased(),
            ])
            .spec(),
        TypedSpec::<LogicalRouterPolicy>::all()
            .external_id_keys(&owned)
            .spec(),
        TypedSpec::<LogicalRouterStaticRoute>::all()
            .external_id_keys(&owned)
            .spec(),
        TypedSpec::<Acl>::all().external_id_keys(&owned).spec(),
        TypedSpec::<AddressSet>::all()
            .external_id_keys(&owned)
            .spec(),
        TypedSpec::<PortGroup>::all()
            .external_id_keys(&owned)
            .spec(),
        TypedSpec::<LogicalSwitchPort>::all()
            .columns(&[LogicalSwitchPort::NAME.erased()])
            .spec(),
        TypedSpec::<LoadBalancer>::all()
            .columns(&[LoadBalancer::NAME.erased(), LoadBalancer::VIPS.erased()])
            .spec(),
    ]
}

/// The result of one pass.
#[derive(Debug, Default)]
pub struct NbPass {
    /// Row changes written (0 when everything already matched).
    pub changes: usize,
    /// Operations in the transaction.
    pub operations: usize,
    /// Each row change written: table, owner, `create` / `update` / `delete`.
    pub changed: Vec<(&'static str, crate::plan::nb::Owner, &'static str)>,
    /// Desired rows that were not written, and why.
    pub problems: Vec<NbProblem>,
    pub elapsed: Duration,
}

/// Which existing rows of ours a pass must leave as they are, so that bad input never tears
/// down what was programmed.
#[derive(Clone, Debug, Default)]
pub struct Keep {
    /// Routes whose rows stay exactly as they are (their new version is unreadable or
    /// invalid as a whole).
    pub routes: BTreeSet<String>,
    /// Routes whose rows may be added or updated but not deleted (some rules are invalid:
    /// what they programmed before stays until they are fixed or the Route is deleted).
    pub no_delete: BTreeSet<String>,
    /// Leave rows of Routes absent from the input (part of the input could not be read, so
    /// absence does not mean deletion).
    pub absent: bool,
    /// Per `no_delete` Route, the destinations of its valid rules. A row of that Route for
    /// one of them was replaced by a valid rule (e.g. a static route that became a policy
    /// when the Route was narrowed), so it is deleted: only rows no valid rule speaks for
    /// can be an invalid rule's, and only those are kept.
    pub valid_dsts: BTreeMap<String, BTreeSet<String>>,
}

impl Keep {
    /// A row of `no_delete` Route that a valid rule of the same Route has replaced.
    pub fn replaced(&self, owner: &crate::plan::nb::Owner) -> bool {
        owner.is_per_pod()
            || owner.destination().is_some_and(|dst| {
                self.valid_dsts
                    .get(&owner.route)
                    .is_some_and(|set| set.contains(dst))
            })
    }
}

/// Which Routes a pass concerns.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Every Route: those with rows of ours in the NB (rows of Routes that no longer exist
    /// are swept) and those the intent wants rows for.
    All,
    /// These Routes only: their rows, read through the replica's name index.
    Routes(&'a BTreeSet<String>),
}

/// What a pass works towards.
#[derive(Clone, Copy, Debug)]
pub struct NbIntent<'a> {
    pub desired: &'a DesiredNb,
    /// Route -> ClusterIPs it sends over the OVN interface; each needs a Load_Balancer VIP.
    pub service_ips: &'a BTreeMap<String, BTreeSet<IpAddr>>,
    pub keep: &'a Keep,
}

/// Diff with the `keep` rules and the load balancer check applied. Pure.
pub fn plan_changes(intent: NbIntent<'_>, mut observed: Observed) -> NbDiff {
    let owners = desired_owners(intent.desired);
    let desired_routes: BTreeSet<&str> = owners
        .iter()
        .map(|o| o.route.as_str())
        .chain(intent.service_ips.keys().map(String::as_str))
        .collect();
    let desired_ids: BTreeSet<&str> = owners.iter().map(|o| o.id.as_str()).collect();
    let keep = intent.keep;
    observed.leave_alone(|o| {
        keep.routes.contains(&o.route)
            || (keep.absent && !desired_routes.contains(o.route.as_str()))
            || (keep.no_delete.contains(&o.route)
                && !desired_ids.contains(o.id.as_str())
                && !keep.replaced(o))
    });
    let mut d = diff(intent.desired, &observed);
    for (route, ips) in intent.service_ips {
        for ip in ips.iter().filter(|ip| !observed.lb_vips.contains(ip)) {
            d.problems.push(NbProblem {
                route: route.clone(),
                reason: "NoLoadBalancer".into(),
                message: format!(
                    "no OVN Load_Balancer has VIP {ip}: traffic to it sent over the OVN interface is dropped inside OVN"
                ),
            });
        }
    }
    d.problems.sort();
    d.problems.dedup();
    d
}

/// Keeps the NB rows of ours equal to the plan.
pub struct NbReconciler {
    client: Client,
    replica: Arc<Replica>,
    feed: ReplicaFeed,
    visible_timeout: Duration,
    /// Our last writes, until the replica shows them.
    unseen: std::sync::Mutex<Vec<Unseen>>,
    /// Our recent transactions as the replica will show them (not drift when it does).
    echoes: std::sync::Mutex<Echoes>,
    /// Names the writer in every transaction's comment (`ovsdb-tool show-log -m`), so the
    /// NB's own log shows which instance wrote what.
    writer: Option<String>,
}

impl NbReconciler {
    /// Connects (waiting at most `timeout`), reads the schema and starts the monitored
    /// replica; returns once the replica holds the initial snapshot.
    pub async fn connect(config: ClientConfig, timeout: Duration) -> Result<Self, NbError> {
        let remotes = config
            .remotes
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let client = Client::start(config)?;
        // A TLS failure (wrong CA, plain TCP behind ssl:) ends the wait at once.
        tokio::time::timeout(timeout, client.wait_usable())
            .await
            .map_err(|_| NbError::Unreachable {
                remotes,
                secs: timeout.as_secs(),
            })??;
        let schema = DatabaseSchema::from_json(&client.get_schema(DATABASE).await?)?;
        let replica = Arc::new(Replica::new(&schema, &table_specs())?);
        let feed = client.monitor_replica(DATABASE, replica.clone()).await?;
        Ok(NbReconciler {
            client,
            replica,
            feed,
            visible_timeout: Duration::from_secs(10),
            unseen: std::sync::Mutex::new(Vec::new()),
            echoes: std::sync::Mutex::new(Echoes::default()),
            writer: None,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Names this writer in the comment of every transaction it sends.
    pub fn set_writer(&mut self, writer: impl Into<String>) {
        self.writer = Some(writer.into());
    }

    /// A consistent view of the monitored tables.
    pub fn snapshot(&self) -> Snapshot {
        self.replica.snapshot()
    }

    /// Every change the replica applies (ours and others'), for drift repair.
    pub fn subscribe(&self) -> Subscription {
        self.replica.subscribe()
    }

    /// What a pass over `scope` would do now, without writing. The desired rows of
    /// `intent` should be those of the Routes in scope (rows of other Routes are ignored).
    pub fn preview(&self, intent: NbIntent<'_>, scope: Scope<'_>) -> NbDiff {
        let snap = self.replica.snapshot();
        let observed = match scope {
            Scope::All => Observed::collect_all(&snap, intent.desired, intent.service_ips.keys()),
            Scope::Routes(routes) => {
                let vips = intent.service_ips.keys().any(|r| routes.contains(r));
                Observed::collect_routes(&snap, routes, intent.desired, vips)
            }
        };
        plan_changes(intent, observed)
    }

    /// One pass over `scope` (see [`NbReconciler::preview`]): diff, one transaction, wait
    /// until the replica shows it. A pass over some Routes costs what their rows cost,
    /// whatever the size of the NB; a full pass is the same over every Route.
    pub async fn reconcile(
        &self,
        intent: NbIntent<'_>,
        scope: Scope<'_>,
    ) -> Result<NbPass, NbError> {
        let start = Instant::now();
        self.settle().await?;
        let settled = start.elapsed();
        let d = self.preview(intent, scope);
        tracing::debug!(
            settle_ms = settled.as_secs_f64() * 1e3,
            diff_ms = (start.elapsed() - settled).as_secs_f64() * 1e3,
            changes = d.changes.len(),
            "NB pass diffed"
        );
        match self.send(d, start)? {
            Begun::Done(pass) => Ok(pass),
            Begun::Sent(sent) => self.finish(sent).await,
        }
    }

    /// Sends the transaction of a diff (from [`NbReconciler::preview`]) without waiting for
    /// its reply; [`NbReconciler::finish`] reads it. Its update is recognised as ours from
    /// now on (`echo`). Several may be on their way at once when they concern different
    /// Routes and no BFD session ([`Sent::bfd`]): each was diffed against a replica that
    /// need not show the others. `start` is when the pass began (for its duration).
    pub fn send(&self, d: NbDiff, start: Instant) -> Result<Begun, NbError> {
        if d.changes.is_empty() {
            return Ok(Begun::Done(NbPass {
                problems: d.problems,
                elapsed: start.elapsed(),
                ..NbPass::default()
            }));
        }
        let bfd = d.touches_bfd();
        let mut txn = transaction(&d.changes);
        if let (Some(w), Some(crate::ovsdb::Operation::Comment(c))) =
            (&self.writer, txn.ops.last_mut())
        {
            c.push_str(" by ");
            c.push_str(w);
        }
        let before = self.feed.applied();
        let before_rows = self.replica.snapshot();
        let ticket = self
            .echoes
            .lock()
            .ok()
            .and_then(|mut e| e.expect(&txn.ops, &[], &before_rows));
        let inserted = txn
            .ops
            .iter()
            .filter_map(|op| match op {
                crate::ovsdb::Operation::Insert { uuid, .. } => *uuid,
                _ => None,
            })
            .collect();
        let unseen = Unseen {
            inserted,
            before,
            reloads: before_rows.reloads(),
        };
        let sent = Instant::now();
        let reply = match self.client.send_transact(DATABASE, &txn.ops) {
            Ok(r) => r,
            Err(e) => {
                self.forget(ticket);
                return Err(e.into());
            }
        };
        Ok(Begun::Sent(Sent {
            d,
            txn,
            reply,
            ticket,
            unseen,
            start,
            sent,
            bfd,
        }))
    }

    /// Waits for the reply of a transaction sent by [`NbReconciler::send`]; what it did.
    pub async fn finish(&self, s: Sent) -> Result<NbPass, NbError> {
        let Sent {
            d,
            txn,
            reply,
            ticket,
            unseen,
            start,
            sent,
            bfd: _,
        } = s;
        let results = match reply.reply(&txn.ops).await {
            Ok(r) => r,
            Err(e) => {
                self.forget(ticket);
                // A guard fired: a row we planned to change changed hands or vanished.
                return Err(match e {
                    OvsdbError::Transaction(e) if e.kind == TxnErrorKind::TimedOut => {
                        NbError::Conflict(e.to_string())
                    }
                    e => e.into(),
                });
            }
        };
        if let Some((_, why)) = txn.unexpected(&results) {
            // Every operation on an existing row sits behind a `wait` guard, so this is a
            // should-not-happen; say so rather than carry on from a wrong assumption (and
            // take what comes back for drift).
            self.forget(ticket);
            return Err(NbError::Conflict(why));
        }
        for c in &d.changes {
            let (table, owner, kind) = c.summary();
            tracing::trace!(table, route = %owner.route, id = %owner.id, kind, "NB row");
        }
        // Usually the update has come already (ovsdb-server tends to send it before the
        // reply): then nothing is left to wait for, even if the rows go again later.
        if !self.shown(&unseen)
            && let Ok(mut u) = self.unseen.lock()
        {
            u.push(unseen);
        }
        tracing::info!(
            changes = d.changes.len(),
            operations = txn.ops.len(),
            elapsed_ms = start.elapsed().as_secs_f64() * 1e3,
            transaction_ms = sent.elapsed().as_secs_f64() * 1e3,
            "NB updated"
        );
        Ok(NbPass {
            changes: d.changes.len(),
            operations: txn.ops.len(),
            changed: d
                .changes
                .iter()
                .map(|c| {
                    let (table, owner, kind) = c.summary();
                    (table, owner.clone(), kind)
                })
                .collect(),
            problems: d.problems,
            elapsed: start.elapsed(),
        })
    }

    fn forget(&self, ticket: Option<u64>) {
        if let (Some(t), Ok(mut e)) = (ticket, self.echoes.lock()) {
            e.forget(t);
        }
    }

    /// What replica events mean for our rows, our own writes coming back as sent left out
    /// (`drift`, `echo`).
    pub fn drift(&self, events: &[crate::ovsdb::ReplicaEvent]) -> super::drift::NbDrift {
        let d = match self.echoes.lock() {
            Ok(mut e) => super::drift::drift(events, &mut e),
            Err(_) => super::drift::drift(events, &mut Echoes::default()),
        };
        // The update of our last writes may be among these: once the replica has shown one,
        // a pass need not wait for its rows (someone may delete them before the next one).
        if let Ok(mut u) = self.unseen.lock() {
            u.retain(|u| !self.shown(u));
        }
        d
    }

    /// Whether the replica shows a write: every row it inserted is there and some update
    /// came since it was sent, or the replica was loaded again since.
    fn shown(&self, u: &Unseen) -> bool {
        let applied = self.feed.applied();
        let snap = self.replica.snapshot();
        snap.reloads() > u.reloads || (applied > u.before && rows_visible(&u.inserted, &snap))
    }

    /// Waits until the replica shows our last writes (nothing to wait for when it does, or
    /// when nothing was written). Every pass does this before reading; call it before
    /// [`NbReconciler::preview`] or [`NbReconciler::snapshot`] right after a pass.
    pub async fn settle(&self) -> Result<(), NbError> {
        let unseen = self
            .unseen
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        for u in unseen {
            self.wait_visible(&u.inserted, u.before, u.reloads).await?;
        }
        Ok(())
    }

    /// Waits until every inserted row is in the replica (our own update notification came),
    /// and until the replica has applied some update since `before` (the feed's count when
    /// the transaction was sent): a transaction that only updates or deletes rows must be
    /// visible too, or the next pass (an event on the same Route a moment later) would read
    /// the old rows and redo the change.
    async fn wait_visible(
        &self,
        inserted: &[crate::ovsdb::Uuid],
        before: u64,
        reloads: u64,
    ) -> Result<(), NbError> {
        let deadline = Instant::now() + self.visible_timeout;
        // A transaction that changed nothing the server sees (rewriting equal values) gets
        // no update: do not wait for one longer than this.
        let update_deadline = Instant::now() + UPDATE_WAIT;
        loop {
            let applied = self.feed.applied();
            let snap = self.replica.snapshot();
            if snap.reloads() > reloads {
                // Loaded again since (a reconnect, maybe to a database that never saw the
                // write): what it shows is the server's content now, whatever became of
                // the write; the next pass reads that.
                return Ok(());
            }
            let rows_visible = rows_visible(inserted, &snap);
            if rows_visible && (applied > before || Instant::now() >= update_deadline) {
                return Ok(());
            }
            let until = if rows_visible {
                update_deadline
            } else {
                deadline
            };
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() && !rows_visible {
                return Err(NbError::NotVisible(self.visible_timeout));
            }
            let _ = tokio::time::timeout(left, self.feed.wait_applied(applied)).await;
        }
    }
}

/// Whether every inserted row is in the replica (BFD rows are ours too: sessions created
/// for our static routes).
fn rows_visible(inserted: &[crate::ovsdb::Uuid], snap: &crate::ovsdb::Snapshot) -> bool {
    inserted.iter().all(|u| {
        Family::ALL
            .iter()
            .map(|f| f.table())
            .chain([BFD])
            .any(|t| snap.get(t, *u).is_some())
    })
}

/// A write the replica may not show yet: the rows it inserted, and the feed's count when it
/// was sent.
struct Unseen {
    inserted: Vec<crate::ovsdb::Uuid>,
    before: u64,
    /// The replica's reload count when the transaction was sent.
    reloads: u64,
}

/// A pass begun by [`NbReconciler::send`].
pub enum Begun {
    /// Nothing to write: the pass is done.
    Done(NbPass),
    /// Its transaction is on its way.
    Sent(Sent),
}

/// A transaction on its way ([`NbReconciler::send`], [`NbReconciler::finish`]).
pub struct Sent {
    d: NbDiff,
    txn: super::ops::NbTxn,
    reply: SentTxn,
    /// Its expected update (`echo`).
    ticket: Option<u64>,
    unseen: Unseen,
    start: Instant,
    sent: Instant,
    bfd: bool,
}

impl Sent {
    /// It creates, changes, deletes or refers to a BFD session: sessions are shared by
    /// Routes (one per port and peer), so no other transaction may be diffed while this
    /// one is on its way, nor this one sent while another is.
    pub fn bfd(&self) -> bool {
        self.bfd
    }
}

/// How long a pass waits for the update of a transaction that inserted nothing.
const UPDATE_WAIT: Duration = Duration::from_millis(200);
