//! Our OVSDB client (RFC 7047 plus the ovsdb-server(7) extensions: monitor_cond,
//! monitor_cond_since, update2/update3). Owns the wire format, connections, the monitored
//! replica and transactions. Knows nothing of OVN or Kubernetes.
pub mod modelgen;
pub mod replica;
pub mod schema;
pub mod typed;
pub mod update;
pub mod value;

pub use replica::{
    ChangeKind, ChangeSet, ColumnRef, Replica, ReplicaError, ReplicaEvent, ReplicaRow,
    ResetBuilder, RowChange, Snapshot, SnapshotSeed, Subscription, TableSpec,
};
pub use schema::{ColumnKind, ColumnType, DatabaseSchema, SchemaError, TableSchema};
pub use typed::{ColumnSource, ModelError, TypedRow};
pub use update::{RowUpdate1, RowUpdate2, TableUpdates, TableUpdates2, Update};
pub use value::{Atom, Row, Uuid, Value, ValueError};
