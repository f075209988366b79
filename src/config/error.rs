//! Errors of the file loader, each naming the file and where in it things went wrong.
use std::fmt;
use std::path::PathBuf;

use crate::api::crd::SchemaViolation;
use crate::api::quote::quote;

/// Where in the input a problem is: file, 1-based document number in a multi-document
/// file, 0-based item in a list, and the 1-based line / column when known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub document: Option<usize>,
    pub item: Option<usize>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl Location {
    pub(crate) fn file(file: PathBuf) -> Self {
        Location {
            file,
            ..Location::default()
        }
    }

    pub(crate) fn with_item(&self, item: usize) -> Self {
        let mut at = self.clone();
        // Items of a list nested in a list item are numbered from the outer list.
        if at.item.is_none() {
            at.item = Some(item);
        }
        at
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        match (self.document, self.item) {
            (Some(d), Some(i)) => write!(f, " (document {d}, item {i})"),
            (Some(d), None) => write!(f, " (document {d})"),
            (None, Some(i)) => write!(f, " (item {i})"),
            (None, None) => Ok(()),
        }
    }
}

fn join(v: &[SchemaViolation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn named(name: &Option<String>) -> String {
    name.as_deref()
        .map(|n| format!(" {}", quote(n)))
        .unwrap_or_default()
}

fn mib(bytes: &u64) -> String {
    format!("{:.1} MiB", *bytes as f64 / f64::from(1u32 << 20))
}

/// Everything that can go wrong reading Routes and world objects from files.
///
/// A per-document error never stops the rest of the input from loading; the caller gets
/// the good documents and the list of errors, and decides.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or directory could not be read (missing, permissions, not a file).
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a regular file (a FIFO, socket, device or directory found where a file was
    /// expected): never opened or read, so it cannot block or flood the loader.
    #[error("{path}: not a regular file: {kind}; skipped")]
    NotRegular { path: PathBuf, kind: &'static str },
    /// A file larger than the per-file limit (`--max-file-bytes`).
    #[error(
        "{path}: {size} bytes, more than the limit of {limit} ({}); skipped (raise --max-file-bytes to read it)",
        mib(limit)
    )]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// The files read before this one already add up to the whole-input limit
    /// (`--max-input-bytes`).
    #[error(
        "{path}: skipped: the input would exceed its limit of {limit} bytes ({}) with this file (raise --max-input-bytes to read it)",
        mib(limit)
    )]
    InputTooLarge { path: PathBuf, limit: u64 },
    /// The file is not UTF-8 text; `offset` is the first bad byte.
    #[error("{path}: not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { path: PathBuf, offset: usize },
    /// YAML or JSON syntax error (also: duplicate keys, nesting too deep, alias bombs).
    #[error("{at}: {format} syntax error: {message}")]
    Syntax {
        at: Location,
        format: &'static str,
        message: String,
    },
    /// A document that is neither a Kubernetes object (apiVersion + kind) nor a short-form
    /// rule, or a value this loader cannot represent (YAML tags, non-string keys, NaN).
    #[error("{at}: {message}")]
    Shape { at: Location, message: String },
    /// An apiVersion / kind this program does not read.
    #[error(
        "{at}: unsupported kind {} (apiVersion {}); expected Route \
         (k8s.ovn.org/v1), Pod, Service, Namespace (v1), EndpointSlice (discovery.k8s.io/v1), \
         Deployment, ReplicaSet, DaemonSet, StatefulSet (apps/v1), Job, CronJob (batch/v1) or a List",
        quote(kind),
        quote(api_version)
    )]
    UnknownKind {
        at: Location,
        api_version: String,
        kind: String,
    },
    /// A Route that does not fit the CRD schema: wrong types, missing or unknown fields.
    /// The whole Route is rejected: an unknown field is most often a misspelling (e.g.
    /// `podSelecter`), and dropping it would silently widen the Route to every pod.
    #[error("{at}: Route{}: {}", named(name), join(violations))]
    RouteSchema {
        at: Location,
        name: Option<String>,
        violations: Vec<SchemaViolation>,
    },
    /// An object that does not deserialize as its kind, or lacks `metadata.name`.
    #[error("{at}: {kind}{}: {message}", named(name))]
    Object {
        at: Location,
        kind: String,
        name: Option<String>,
        message: String,
    },
    /// A malformed short-form rule (`{"route": CIDR, "dev": IF}`, `{"svc": "ns/name", "dev": IF}`).
    #[error("{at}: rule: {message}")]
    Rule { at: Location, message: String },
    /// A second object with the same kind, namespace and name. For world objects the first
    /// one is kept; a Route defined twice is ambiguous, so neither version is used and what
    /// is programmed for it stays as it is until one definition is removed.
    #[error(
        "{at}: duplicate {kind} {}, already defined at {first}; {}",
        quote(name),
        if kind == "Route" {
            "neither definition is used: what is programmed for it stays as it is"
        } else {
            "keeping the first"
        }
    )]
    Duplicate {
        at: Location,
        kind: String,
        name: String,
        first: Location,
    },
}

/// Kinds whose objects the world holds or follows (a document of one of these kinds under an
/// apiVersion this program does not read may still be meant as one).
const WORLD_KINDS: [&str; 10] = [
    "Pod",
    "Namespace",
    "Service",
    "EndpointSlice",
    "ReplicaSet",
    "Job",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "CronJob",
];

impl ConfigError {
    /// A copy (an I/O error is not `Clone`: its kind and text are kept).
    pub fn copy(&self) -> ConfigError {
        match self {
            ConfigError::Read { path, source } => ConfigError::Read {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            ConfigError::NotRegular { path, kind } => ConfigError::NotRegular {
                path: path.clone(),
                kind,
            },
            ConfigError::TooLarge { path, size, limit } => ConfigError::TooLarge {
                path: path.clone(),
                size: *size,
                limit: *limit,
            },
            ConfigError::InputTooLarge { path, limit } => ConfigError::InputTooLarge {
                path: path.clone(),
                limit: *limit,
            },
            ConfigError::NotUtf8 { path, offset } => ConfigError::NotUtf8 {
                path: path.clone(),
                offset: *offset,
            },
            ConfigError::Syntax {
                at,
                format,
                message,
            } => ConfigError::Syntax {
                at: at.clone(),
                format,
                message: message.clone(),
            },
            ConfigError::Shape { at, message } => ConfigError::Shape {
                at: at.clone(),
                message: message.clone(),
            },
            ConfigError::UnknownKind {
                at,
                api_version,
                kind,
            } => ConfigError::UnknownKind {
                at: at.clone(),
                api_version: api_version.clone(),
                kind: kind.clone(),
            },
            ConfigError::RouteSchema {
                at,
                name,
                violations,
            } => ConfigError::RouteSchema {
                at: at.clone(),
                name: name.clone(),
                violations: violations.clone(),
            },
            ConfigError::Object {
                at,
                kind,
                name,
                message,
            } => ConfigError::Object {
                at: at.clone(),
                kind: kind.clone(),
                name: name.clone(),
                message: message.clone(),
            },
            ConfigError::Rule { at, message } => ConfigError::Rule {
                at: at.clone(),
                message: message.clone(),
            },
            ConfigError::Duplicate {
                at,
                kind,
                name,
                first,
            } => ConfigError::Duplicate {
                at: at.clone(),
                kind: kind.clone(),
                name: name.clone(),
                first: first.clone(),
            },
        }
    }

    /// The name of the Route this error is about, when the document was a Route whose name
    /// could be read: a caller that reloads files can keep that Route's last good version
    /// instead of treating it as deleted.
    pub fn route_name(&self) -> Option<&str> {
        match self {
            ConfigError::RouteSchema { name, .. } => name.as_deref(),
            ConfigError::Object { kind, name, .. } if kind == "Route" => name.as_deref(),
            ConfigError::Duplicate { kind, name, .. } if kind == "Route" => Some(name),
            _ => None,
        }
    }

    /// Whether what could not be read may have held world objects (pods, namespaces,
    /// Services, workloads): then which pods a Route selects is unknown, and rows that hold
    /// a selection must not shrink because of it. A whole file or document that could not be
    /// read may have held anything; a world object that does not decode is one; Route-level
    /// errors and duplicates (the first world object is kept) hide nothing, and neither
    /// does a FIFO, socket or device (never input: nothing is ever read from one, so it
    /// cannot have held what is programmed; in `run` a path that was a file keeps its
    /// last read anyway).
    pub fn may_hide_world(&self) -> bool {
        match self {
            ConfigError::Read { .. }
            | ConfigError::TooLarge { .. }
            | ConfigError::InputTooLarge { .. }
            | ConfigError::NotUtf8 { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::Shape { .. } => true,
            ConfigError::UnknownKind { kind, .. } => WORLD_KINDS.contains(&kind.as_str()),
            ConfigError::Object { kind, .. } => kind != "Route",
            ConfigError::NotRegular { .. }
            | ConfigError::RouteSchema { .. }
            | ConfigError::Rule { .. }
            | ConfigError::Duplicate { .. } => false,
        }
    }

    /// The location of the problem (for `Read`/`NotUtf8`, just the file).
    pub fn location(&self) -> Location {
        match self {
            ConfigError::Read { path, .. }
            | ConfigError::NotRegular { path, .. }
            | ConfigError::TooLarge { path, .. }
            | ConfigError::InputTooLarge { path, .. }
            | ConfigError::NotUtf8 { path, .. } => Location::file(path.clone()),
            ConfigError::Syntax { at, .. }
            | ConfigError::Shape { at, .. }
            | ConfigError::UnknownKind { at, .. }
            | ConfigError::RouteSchema { at, .. }
            | ConfigError::Object { at, .. }
            | ConfigError::Rule { at, .. }
            | ConfigError::Duplicate { at, .. } => at.clone(),
        }
    }
}
