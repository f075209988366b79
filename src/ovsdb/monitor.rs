//! Monitor sessions: what a consumer asked to watch, and how its stream of changes survives
//! reconnects (ovsdb-server(7) `monitor_cond_since`, RFC 7047 section 4.1.5).
//!
//! A session is re-established on every new connection. With `monitor_cond_since` it
//! resumes from the last transaction id delivered: when the server answers `found`, only
//! the delta is delivered; otherwise the full snapshot is delivered as
//! [`MonitorEvent::Reset`], so rows deleted while disconnected disappear. A consumer that
//! falls behind (its bounded channel is full) is never silently skipped: the session is
//! cancelled on the server and resumed the same way once the consumer has caught up.
//!
//! Owns session bookkeeping and the wire shape of monitor requests/results. It does not own
//! the connection (`client`) nor the copy of the data (the replica).
use std::collections::BTreeMap;

use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot};

use super::error::Error;
use super::ops::Condition;
use super::update::{Update, parse_table_updates, parse_table_updates2_owned};
use super::value::Uuid;

/// Which monitor method a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorKind {
    /// `monitor` (RFC 7047): `update` notifications, full snapshot on every reconnect.
    V1,
    /// `monitor_cond`: `update2` notifications, full snapshot on every reconnect.
    V2,
    /// `monitor_cond_since`: `update3` notifications, resumes with a delta when it can.
    V3,
}

/// What to watch in one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableMonitor {
    /// Columns to watch; `None` means all.
    pub columns: Option<Vec<String>>,
    /// Only rows matching all conditions (`monitor_cond`/`monitor_cond_since` only).
    pub conditions: Option<Vec<Condition>>,
}

/// A monitor request: database and per-table selection.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSpec {
    pub database: String,
    pub kind: MonitorKind,
    pub tables: BTreeMap<String, TableMonitor>,
    /// Resume point for the first establishment (`monitor_cond_since` only): the last
    /// transaction id the consumer already holds, e.g. from a replica kept across restarts
    /// of the session. `None` starts with a full snapshot.
    pub since: Option<Uuid>,
    /// Deliver large full snapshots of a `monitor_cond_since` session as their reply text
    /// ([`MonitorEvent::ResetText`]) instead of parsed rows, for consumers that load them
    /// without building a JSON tree (the replica). Deltas and notifications stay parsed.
    pub raw_snapshots: bool,
}

impl MonitorSpec {
    /// Watch all columns of `tables` with `monitor_cond_since`.
    pub fn new<S: Into<String>>(
        database: impl Into<String>,
        tables: impl IntoIterator<Item = S>,
    ) -> Self {
        MonitorSpec {
            database: database.into(),
            kind: MonitorKind::V3,
            tables: tables
                .into_iter()
                .map(|t| (t.into(), TableMonitor::default()))
                .collect(),
            since: None,
            raw_snapshots: false,
        }
    }

    pub fn with_kind(mut self, kind: MonitorKind) -> Self {
        self.kind = kind;
        self
    }

    fn requests_json(&self) -> Json {
        Json::Object(
            self.tables
                .iter()
                .map(|(t, m)| {
                    let mut o = serde_json::Map::new();
                    if let Some(c) = &m.columns {
                        o.insert("columns".into(), json!(c));
                    }
                    if let (Some(c), true) = (&m.conditions, self.kind != MonitorKind::V1) {
                        o.insert(
                            "where".into(),
                            Json::Array(c.iter().map(Condition::to_json).collect()),
                        );
                    }
                    (t.clone(), json!([Json::Object(o)]))
                })
                .collect(),
        )
    }

    /// Method and params to (re-)establish the monitor under `wire_id`.
    pub(crate) fn request(&self, wire_id: &str, since: Option<Uuid>) -> (&'static str, Json) {
        let base = json!([self.database, wire_id, self.requests_json()]);
        match self.kind {
            MonitorKind::V1 => ("monitor", base),
            MonitorKind::V2 => ("monitor_cond", base),
            MonitorKind::V3 => {
                let mut p = base;
                if let Some(a) = p.as_array_mut() {
                    a.push(json!(since.unwrap_or(Uuid::ZERO).to_string()));
                }
                ("monitor_cond_since", p)
            }
        }
    }
}

/// What a consumer receives.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorEvent {
    /// Replace everything held for this monitor with this content (initial snapshot, or a
    /// resync after a reconnect / after falling behind when no delta was available).
    Reset(Update),
    /// Like `Reset`, as the server's reply text (only with [`MonitorSpec::raw_snapshots`]).
    ResetText(RawSnapshot),
    /// Apply this change on top of what is held.
    Update(Update),
}

impl MonitorEvent {
    /// The parsed content (`None` for [`MonitorEvent::ResetText`]).
    pub fn update(&self) -> Option<&Update> {
        match self {
            MonitorEvent::Reset(u) | MonitorEvent::Update(u) => Some(u),
            MonitorEvent::ResetText(_) => None,
        }
    }

    /// True for the events that replace everything.
    pub fn is_reset(&self) -> bool {
        !matches!(self, MonitorEvent::Update(_))
    }
}

/// A full `monitor_cond_since` snapshot as the server sent it: the whole JSON-RPC reply
/// `{"id":..,"result":[false, last-txn-id, <table-updates2>],"error":null}`.
#[derive(Clone, PartialEq, Eq)]
pub struct RawSnapshot {
    pub last_txn_id: Uuid,
    pub text: Vec<u8>,
}

impl std::fmt::Debug for RawSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSnapshot")
            .field("last_txn_id", &self.last_txn_id)
            .field("bytes", &self.text.len())
            .finish()
    }
}

impl RawSnapshot {
    /// Feed the `<table-updates2>` of the reply to `seed` (e.g. the replica's
    /// `ResetBuilder::seed()`), streaming: no JSON tree of the whole reply is built.
    pub fn load<S>(&self, seed: S) -> Result<(), serde_json::Error>
    where
        S: for<'de> serde::de::DeserializeSeed<'de, Value = ()>,
    {
        let mut de = serde_json::Deserializer::from_slice(&self.text);
        serde::de::DeserializeSeed::deserialize(raw::ReplySeed(Some(seed)), &mut de)?;
        de.end()
    }
}

/// Walking a monitor reply down to its updates with serde seeds.
mod raw {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// The reply object: only `result` is looked into.
    pub(super) struct ReplySeed<S>(pub Option<S>);

    impl<'de, S: DeserializeSeed<'de, Value = ()>> DeserializeSeed<'de> for ReplySeed<S> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, S: DeserializeSeed<'de, Value = ()>> Visitor<'de> for ReplySeed<S> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a monitor_cond_since reply")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                match (key.as_str(), self.0.take()) {
                    ("result", Some(seed)) => map.next_value_seed(ResultSeed(Some(seed)))?,
                    (_, seed) => {
                        self.0 = seed;
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            match self.0 {
                None => Ok(()),
                Some(_) => Err(de::Error::missing_field("result")),
            }
        }
    }

    /// `[found, last-txn-id, <table-updates2>]`.
    struct ResultSeed<S>(Option<S>);

    impl<'de, S: DeserializeSeed<'de, Value = ()>> DeserializeSeed<'de> for ResultSeed<S> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de, S: DeserializeSeed<'de, Value = ()>> Visitor<'de> for ResultSeed<S> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("[found, last-txn-id, updates]")
        }
        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
            let missing = || de::Error::invalid_length(0, &"3 elements");
            seq.next_element::<bool>()?.ok_or_else(missing)?;
            seq.next_element::<IgnoredAny>()?.ok_or_else(missing)?;
            let seed = self.0.take().ok_or_else(missing)?;
            seq.next_element_seed(seed)?.ok_or_else(missing)?;
            if seq.next_element::<IgnoredAny>()?.is_some() {
                return Err(de::Error::invalid_length(4, &"3 elements"));
            }
            Ok(())
        }
    }
}

/// What the connection task reads from a large reply before deciding how to deliver it:
/// the id, and for a `monitor_cond_since` result its first two elements. Everything else is
/// skipped without building values.
#[derive(serde::Deserialize)]
pub(crate) struct ReplyHead {
    #[serde(default)]
    pub id: serde_json::Value,
    #[serde(default)]
    pub error: serde_json::Value,
    #[serde(default)]
    pub result: Option<(bool, String, serde::de::IgnoredAny)>,
}

/// The parsed reply to a monitor request: whether it is a delta, and its content. Takes
/// the JSON by value: a full snapshot is converted without a second complete copy.
pub(crate) fn parse_monitor_reply(
    kind: MonitorKind,
    result: Json,
) -> Result<(bool, Update), Error> {
    let bad = |reason: String| Error::BadReply {
        method: "monitor".into(),
        reason,
    };
    match kind {
        MonitorKind::V1 => Ok((false, Update::V1(parse_table_updates(&result)?))),
        MonitorKind::V2 => Ok((false, Update::V2(parse_table_updates2_owned(result)?))),
        MonitorKind::V3 => {
            let mut a = match result {
                Json::Array(a) if a.len() == 3 => a,
                other => {
                    return Err(bad(format!(
                        "monitor_cond_since result is not [found, id, updates]: {other}"
                    )));
                }
            };
            let found = a[0]
                .as_bool()
                .ok_or_else(|| bad(format!("found is not a boolean: {}", a[0])))?;
            let last_txn_id: Uuid = a[1]
                .as_str()
                .ok_or_else(|| bad(format!("last-txn-id is not a string: {}", a[1])))?
                .parse()?;
            let updates = parse_table_updates2_owned(std::mem::take(&mut a[2]))?;
            Ok((
                found,
                Update::V3 {
                    last_txn_id,
                    updates,
                },
            ))
        }
    }
}

/// Parse an `update` / `update2` / `update3` notification into (wire id, update).
pub(crate) fn parse_notification(method: &str, params: Json) -> Result<(String, Update), Error> {
    let bad = |reason: String| Error::Protocol(format!("{method} notification: {reason}"));
    let mut a = match params {
        Json::Array(a) => a,
        _ => return Err(bad("params not an array".into())),
    };
    let id = match a.first() {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err(bad("no monitor id".into())),
    };
    let update = match (method, a.len()) {
        ("update", 2) => Update::V1(parse_table_updates(&a[1])?),
        ("update2", 2) => Update::V2(parse_table_updates2_owned(std::mem::take(&mut a[1]))?),
        ("update3", 3) => Update::V3 {
            last_txn_id: a[1]
                .as_str()
                .ok_or_else(|| bad("last-txn-id not a string".into()))?
                .parse()?,
            updates: parse_table_updates2_owned(std::mem::take(&mut a[2]))?,
        },
        _ => return Err(bad(format!("unexpected params {}", Json::Array(a)))),
    };
    Ok((id, update))
}

/// A session as the connection task keeps it.
pub(crate) struct Session {
    pub spec: MonitorSpec,
    pub events: mpsc::Sender<MonitorEvent>,
    /// The last transaction id the consumer has received (resume point).
    pub last_txn_id: Option<Uuid>,
    /// Bumped on every (re-)establishment; part of the wire id so late notifications of a
    /// cancelled incarnation are recognised and ignored.
    pub generation: u64,
    /// The wire id on the current connection, when established.
    pub wire_id: Option<String>,
    /// Set when the consumer fell behind; cleared when it has room again.
    pub lagged: bool,
    /// Told about the first establishment (success or refusal).
    pub ack: Option<oneshot::Sender<Result<(), Error>>>,
}

/// Result of handing an event to the consumer.
pub(crate) enum Delivery {
    Sent,
    /// Channel full: the session must be cancelled and resumed later.
    Lagged,
    /// The consumer is gone: drop the session.
    Closed,
}

impl Session {
    pub fn deliver(&mut self, event: MonitorEvent) -> Delivery {
        let txn = match &event {
            MonitorEvent::ResetText(raw) => Some(raw.last_txn_id),
            MonitorEvent::Reset(Update::V3 { last_txn_id, .. })
            | MonitorEvent::Update(Update::V3 { last_txn_id, .. }) => Some(*last_txn_id),
            _ => None,
        };
        match self.events.try_send(event) {
            Ok(()) => {
                if txn.is_some() {
                    self.last_txn_id = txn;
                }
                Delivery::Sent
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged = true;
                Delivery::Lagged
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_requests_for_each_kind() {
        let mut spec = MonitorSpec::new("OVN_Northbound", ["ACL"]);
        spec.tables.get_mut("ACL").unwrap().columns = Some(vec!["priority".into()]);
        let (m, p) = spec.request("m1.0", None);
        assert_eq!(m, "monitor_cond_since");
        assert_eq!(
            p,
            json!(["OVN_Northbound", "m1.0", {"ACL": [{"columns": ["priority"]}]},
                   "00000000-0000-0000-0000-000000000000"])
        );
        let (m, p) = spec.clone().with_kind(MonitorKind::V1).request("x", None);
        assert_eq!((m, p.as_array().unwrap().len()), ("monitor", 3));
    }

    #[test]
    fn parses_replies_and_notifications() {
        let u = "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab";
        let (found, upd) = parse_monitor_reply(
            MonitorKind::V3,
            json!([true, u, {"ACL": {u: {"insert": {"priority": 1}}}}]),
        )
        .unwrap();
        assert!(found);
        assert!(matches!(upd, Update::V3 { .. }));
        assert!(parse_monitor_reply(MonitorKind::V3, json!([1, u, {}])).is_err());
        let (id, upd) = parse_notification(
            "update3",
            json!(["m1.0", u, {"ACL": {u: {"delete": null}}}]),
        )
        .unwrap();
        assert_eq!(id, "m1.0");
        assert!(matches!(upd, Update::V3 { .. }));
        assert!(parse_notification("update2", json!(["m"])).is_err());
    }
}
