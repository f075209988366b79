//! Our OVSDB client (RFC 7047 plus the ovsdb-server(7) extensions: monitor_cond,
//! monitor_cond_since, update2/update3). Owns the wire format, connections, the monitored
//! replica and transactions. Knows nothing of OVN or Kubernetes.
mod attempts;
pub mod client;
pub mod codec;
mod connection;
mod dispatch;
pub mod error;
pub mod follow;
pub mod modelgen;
pub mod monitor;
pub mod ops;
mod peers;
pub mod replica;
pub mod rpc;
pub mod schema;
pub mod transport;
pub mod typed;
pub mod update;
pub mod value;

pub use client::{Client, ClientConfig, ConnState, Monitor, SentTxn, TlsHook};
pub use error::{Error, TlsFailure, TxnError, TxnErrorKind};
pub use follow::{ReplicaFeed, replica_spec};
pub use monitor::{MonitorEvent, MonitorKind, MonitorSpec, TableMonitor};
pub use ops::{Condition, Function, Mutation, Mutator, OpResult, Operation, WaitUntil};
pub use replica::{
    ChangeKind, ChangeSet, ColumnRef, Replica, ReplicaError, ReplicaEvent, ReplicaRow,
    ResetBuilder, RowChange, Snapshot, SnapshotSeed, Subscription, TableSpec, TypedSpec,
};
pub use schema::{ColumnKind, ColumnType, DatabaseSchema, SchemaError, TableSchema};
pub use transport::{Endpoint, TcpOptions, TlsFiles, parse_remotes};
pub use typed::{ColumnSource, ModelError, TypedRow};
pub use update::{RowUpdate1, RowUpdate2, TableUpdates, TableUpdates2, Update};
pub use value::{Atom, Row, Uuid, Value, ValueError};
