//! The OVSDB layer's error enum, and the typed transaction failures of RFC 7047 section 5.2.
//!
//! Owns the classification of what went wrong; it must not decide what callers do about it,
//! except to say clearly when a transaction's outcome is unknown (re-read, don't retry blindly).
use serde_json::Value as Json;

use super::value::ValueError;

/// Everything the OVSDB client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A remote string (`unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT`) could not be parsed.
    #[error("bad OVSDB remote {remote:?}: {reason}")]
    BadRemote { remote: String, reason: String },
    /// The TLS material (private key, certificate, CA certificate) could not be loaded or used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The TLS handshake with an `ssl:` remote failed for a reason retrying does not fix:
    /// a certificate problem on either side, or a server that does not speak TLS.
    #[error("TLS with {remote} failed: {failure}")]
    TlsHandshake { remote: String, failure: TlsFailure },
    /// Connecting to, reading from or writing to the server failed at the socket level.
    #[error("I/O error talking to {remote}: {source}")]
    Io {
        remote: String,
        #[source]
        source: std::io::Error,
    },
    /// The byte stream from the server was not valid JSON-RPC (the connection is dropped).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A single message from the server exceeded the configured maximum size.
    #[error("message larger than the {limit}-byte limit")]
    MessageTooLarge { limit: usize },
    /// No connection to a usable server right now; the request was not sent, so it is safe
    /// to retry once the client has reconnected.
    #[error("not connected to an OVSDB server")]
    NotConnected,
    /// The connection dropped after a transaction was sent and before its reply arrived: the
    /// transaction may or may not have been committed. Re-read the database before retrying.
    #[error("connection lost before the transaction's reply: outcome unknown")]
    OutcomeUnknown,
    /// The connection dropped before the reply to a read-only request; safe to retry.
    #[error("connection lost before the reply to {method}")]
    ConnectionLost { method: String },
    /// A request could not be encoded as JSON (a value JSON cannot represent).
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// The client was shut down.
    #[error("client closed")]
    Closed,
    /// No reply within the request timeout (the request may still be in flight).
    #[error("no reply to {method} within {secs} s")]
    Timeout { method: String, secs: u64 },
    /// The server answered a request with a JSON-RPC error (for example `unknown database`).
    #[error("{method} failed: {error}")]
    Rpc { method: String, error: Json },
    /// The server's reply did not have the shape RFC 7047 gives it.
    #[error("unexpected reply to {method}: {reason}")]
    BadReply { method: String, reason: String },
    /// A value in a reply or notification did not decode.
    #[error("bad value from the server: {0}")]
    Value(#[from] ValueError),
    /// The replica refused a snapshot (it does not match the replica's schema/tables).
    #[error("replica: {0}")]
    Replica(#[from] super::replica::ReplicaError),
    /// A transaction was refused or one of its operations failed.
    #[error(transparent)]
    Transaction(#[from] TxnError),
}

impl Error {
    /// A short stable label (for metrics and logs).
    pub fn label(&self) -> &'static str {
        match self {
            Error::BadRemote { .. } => "bad_remote",
            Error::Tls(_) => "tls",
            Error::TlsHandshake { .. } => "tls_handshake",
            Error::Io { .. } => "io",
            Error::Protocol(_) => "protocol",
            Error::MessageTooLarge { .. } => "message_too_large",
            Error::NotConnected => "not_connected",
            Error::OutcomeUnknown => "outcome_unknown",
            Error::ConnectionLost { .. } => "connection_lost",
            Error::Encode(_) => "encode",
            Error::Closed => "closed",
            Error::Timeout { .. } => "timeout",
            Error::Rpc { .. } => "rpc",
            Error::BadReply { .. } => "bad_reply",
            Error::Value(_) => "value",
            Error::Replica(_) => "replica",
            Error::Transaction(t) => t.kind.label(),
        }
    }

    /// True when the request surely had no effect and can be sent again as is.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NotConnected | Error::ConnectionLost { .. } | Error::Io { .. }
        )
    }
}

/// Why a TLS handshake failed, when it is not the network: each is a configuration problem
/// that stays until someone fixes a certificate, a CA file or an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// The server's certificate does not chain to the CA we trust.
    #[error("the server's certificate is not signed by the CA we trust ({0})")]
    UnknownIssuer(String),
    /// The server's certificate chains to our CA but is not acceptable (expired, not yet
    /// valid, bad signature, wrong key usage, revoked).
    #[error("the server's certificate is not acceptable ({0})")]
    BadCertificate(String),
    /// What answered on the port is not a TLS server (e.g. a plain `ptcp:` ovsdb-server
    /// behind an `ssl:` remote).
    #[error("the server does not speak TLS on this port ({0})")]
    NotTls(String),
    /// The server refused our client certificate (it does not trust the CA that signed it).
    #[error("the server refused our client certificate ({0})")]
    CertificateRefused(String),
}

impl TlsFailure {
    /// Every value of [`TlsFailure::label`].
    pub const LABELS: [&'static str; 4] = [
        "unknown_issuer",
        "bad_certificate",
        "not_tls",
        "certificate_refused",
    ];

    /// A short stable label (for metrics and logs).
    pub fn label(&self) -> &'static str {
        match self {
            TlsFailure::UnknownIssuer(_) => "unknown_issuer",
            TlsFailure::BadCertificate(_) => "bad_certificate",
            TlsFailure::NotTls(_) => "not_tls",
            TlsFailure::CertificateRefused(_) => "certificate_refused",
        }
    }

    /// The failure an I/O error of a TLS stream carries, if it is one of ours: rustls
    /// reports its errors inside `std::io::Error`.
    pub fn of_io(e: &std::io::Error) -> Option<TlsFailure> {
        use rustls::{AlertDescription as A, CertificateError as C, Error as R};
        let r = e.get_ref()?.downcast_ref::<R>()?;
        let text = r.to_string();
        Some(match r {
            R::InvalidCertificate(C::UnknownIssuer) => TlsFailure::UnknownIssuer(text),
            R::InvalidCertificate(_) => TlsFailure::BadCertificate(text),
            R::InvalidMessage(_) | R::InappropriateHandshakeMessage { .. } => {
                TlsFailure::NotTls(text)
            }
            R::AlertReceived(
                A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::CertificateRequired
                | A::AccessDenied
                | A::DecryptError,
            ) => TlsFailure::CertificateRefused(text),
            _ => return None,
        })
    }
}

/// The error strings of RFC 7047 section 4.1.3 / 5.2 and ovsdb-server(7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnErrorKind {
    /// "constraint violation": a column constraint or a table index would be violated.
    ConstraintViolation,
    /// "referential integrity violation": a strong reference would dangle (e.g. deleting a
    /// row that is still referenced).
    ReferentialIntegrityViolation,
    /// "timed out": a `wait` operation's condition did not hold within its timeout.
    TimedOut,
    /// "not owner": the session does not own a lock a write requires.
    NotOwner,
    /// "aborted": the transaction contained an `abort` operation.
    Aborted,
    /// "resources exhausted": the server ran out of memory or another resource.
    ResourcesExhausted,
    /// "not supported": e.g. `commit` with `durable: true` on a server that cannot.
    NotSupported,
    /// "domain error": a mutation produced an invalid value (e.g. division by zero).
    DomainError,
    /// "range error": a mutation overflowed the column's integer range.
    RangeError,
    /// "object too large": a value exceeded what the server accepts.
    ObjectTooLarge,
    /// "duplicate uuid-name": two inserts in one transaction used the same uuid-name.
    DuplicateUuidName,
    /// "syntax error" / "unknown column" / "unknown table" and similar: the request was
    /// malformed for this schema. The details say which part.
    Syntax(String),
    /// "I/O error": the server could not write its database.
    IoError,
    /// Any other error string the server sent.
    Other(String),
}

impl TxnErrorKind {
    pub fn from_wire(s: &str) -> TxnErrorKind {
        match s {
            "constraint violation" => TxnErrorKind::ConstraintViolation,
            "referential integrity violation" => TxnErrorKind::ReferentialIntegrityViolation,
            "timed out" => TxnErrorKind::TimedOut,
            "not owner" => TxnErrorKind::NotOwner,
            "aborted" => TxnErrorKind::Aborted,
            "resources exhausted" => TxnErrorKind::ResourcesExhausted,
            "not supported" => TxnErrorKind::NotSupported,
            "domain error" => TxnErrorKind::DomainError,
            "range error" => TxnErrorKind::RangeError,
            "object too large" => TxnErrorKind::ObjectTooLarge,
            "duplicate uuid-name" => TxnErrorKind::DuplicateUuidName,
            "I/O error" => TxnErrorKind::IoError,
            "syntax error" | "unknown column" | "unknown table" | "unknown database"
            | "type mismatch" | "unknown operator" => TxnErrorKind::Syntax(s.to_owned()),
            other => TxnErrorKind::Other(other.to_owned()),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            TxnErrorKind::ConstraintViolation => "constraint_violation",
            TxnErrorKind::ReferentialIntegrityViolation => "referential_integrity_violation",
            TxnErrorKind::TimedOut => "timed_out",
            TxnErrorKind::NotOwner => "not_owner",
            TxnErrorKind::Aborted => "aborted",
            TxnErrorKind::ResourcesExhausted => "resources_exhausted",
            TxnErrorKind::NotSupported => "not_supported",
            TxnErrorKind::DomainError => "domain_error",
            TxnErrorKind::RangeError => "range_error",
            TxnErrorKind::ObjectTooLarge => "object_too_large",
            TxnErrorKind::DuplicateUuidName => "duplicate_uuid_name",
            TxnErrorKind::Syntax(_) => "syntax_error",
            TxnErrorKind::IoError => "io_error",
            TxnErrorKind::Other(_) => "other",
        }
    }
}

/// A failed transaction: which kind of failure, the server's details, and which operation
/// (index into the operations sent) failed. `op_index` is `None` for a commit-time error,
/// which the server reports as an extra element after the operations' results.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction failed: {kind:?}{}{}",
    .op_index.map(|i| format!(" at operation {i}")).unwrap_or_default(),
    .details.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct TxnError {
    pub kind: TxnErrorKind,
    pub details: Option<String>,
    pub op_index: Option<usize>,
}
