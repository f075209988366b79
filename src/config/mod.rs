//! Routes and world objects from JSON / YAML files: the file-mode source.
//!
//! Owns reading files and directories and shaping their documents into typed objects:
//! whole `Route` CRs, the short-form rule lists of the original design
//! (`{"svc": "default/nginx1", "dev": "eth0"}`, `{"route": "172.16.0.0/16", "dev": "eth1"}`),
//! and Pods, Services, Namespaces, EndpointSlices and workloads as `kubectl get -o yaml`
//! prints them. Must not judge rule contents (CIDRs, devices, targets, conflicts): that
//! is `api::validate`, run by the caller on what loaded.
//!
//! Bad input never panics and never hides good input: each document that fails is
//! reported as a [`ConfigError`] naming the file, the document and what is wrong, and the
//! other documents (and files) still load. The caller decides whether any error is fatal.
//!
//! Formats, per file:
//! - `.json`: exactly one JSON value (trailing garbage is an error); any other extension
//!   (`.yaml`, `.yml`, none): a YAML stream of `---`-separated documents.
//! - A document is an object, a list (JSON array / YAML sequence) of objects and rules,
//!   a `kind: List` (or `RouteList`, `PodList`, ...) with `items`, or a single rule.
//! - All the short-form rules of one file make one Route that applies to every pod,
//!   named by [`route_name_for_file`] and annotated with [`SOURCE_ANNOTATION`].
//! - Namespaced objects without a namespace go to `default`, as `kubectl apply` does.
//! - A second object with the same kind / namespace / name is reported; the first stays.
mod error;
mod parse;
mod read;
mod shape;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::api::Route;
pub use error::{ConfigError, Location};
pub use read::{DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_INPUT_BYTES, Limits};
pub use shape::{SOURCE_ANNOTATION, route_name_for_file};

/// Everything the input files describe, in file order then document order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Documents {
    pub routes: Vec<Route>,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub namespaces: Vec<Namespace>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub deployments: Vec<Deployment>,
    pub replica_sets: Vec<ReplicaSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub stateful_sets: Vec<StatefulSet>,
    pub jobs: Vec<Job>,
    pub cron_jobs: Vec<CronJob>,
}

impl Documents {
    /// Number of objects of every kind.
    pub fn len(&self) -> usize {
        self.routes.len()
            + self.pods.len()
            + self.services.len()
            + self.namespaces.len()
            + self.endpoint_slices.len()
            + self.deployments.len()
            + self.replica_sets.len()
            + self.daemon_sets.len()
            + self.stateful_sets.len()
            + self.jobs.len()
            + self.cron_jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The result of loading: what loaded, what did not, and which files were read (for a
/// caller that watches them).
#[derive(Debug, Default)]
pub struct Loaded {
    pub documents: Documents,
    pub errors: Vec<ConfigError>,
    pub files: Vec<PathBuf>,
}

impl Loaded {
    /// The documents if nothing went wrong, else every error (for one-shot commands that
    /// refuse partial input).
    pub fn into_result(self) -> Result<Documents, Vec<ConfigError>> {
        if self.errors.is_empty() {
            Ok(self.documents)
        } else {
            Err(self.errors)
        }
    }
}

/// File names a directory load picks up.
fn is_config_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["yaml", "yml", "json"].contains(&e.to_ascii_lowercase().as_str()))
}

/// Loads one file, or every `*.yaml`, `*.yml`, `*.json` file directly in a directory
/// (not recursive; sorted by name; hidden files skipped), within the default [`Limits`].
/// A file given by name loads whatever its extension (JSON for `.json`, YAML otherwise).
///
/// `Err` only when `path` itself cannot be read; problems inside files (including a file
/// in the directory that cannot be read) are in [`Loaded::errors`].
#[allow(
    clippy::result_large_err,
    reason = "called once per load; the error carries its location inline"
)]
pub fn load_path(path: &Path) -> Result<Loaded, ConfigError> {
    load_paths(&[path.to_path_buf()])
}

/// [`load_path`] for several paths, as one input: duplicates are detected across all of
/// them and short-form rules still make one Route per file.
#[allow(
    clippy::result_large_err,
    reason = "called once per load; the error carries its location inline"
)]
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, ConfigError> {
    load_paths_with(paths, &Limits::default())
}

/// The files a load of `paths` reads, in order: a path that is a directory stands for its
/// config files. `Err` only when a path itself cannot be read.
#[allow(
    clippy::result_large_err,
    reason = "called once per load; the error carries its location inline"
)]
pub fn input_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                is_config_file(p)
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// [`load_paths`] within `limits`. Only regular files are read (symlinks to them too);
/// FIFOs, sockets, devices and directories where a file is expected are skipped and
/// reported by name, as are files over the limits.
#[allow(
    clippy::result_large_err,
    reason = "called once per load; the error carries its location inline"
)]
pub fn load_paths_with(paths: &[PathBuf], limits: &Limits) -> Result<Loaded, ConfigError> {
    let files = input_files(paths)?;
    let mut shaper = shape::Shaper::new();
    let mut read_files = Vec::new();
    let mut total: u64 = 0;
    for file in files {
        match read_within(&file, limits, total) {
            Ok(bytes) => {
                total += bytes.len() as u64;
                load_into(&mut shaper, &file, &bytes);
                read_files.push(file);
            }
            Err(e) => shaper.errors.push(e),
        }
    }
    Ok(finish(shaper, read_files))
}

/// The bytes of one input file, when it is a regular file within `--max-file-bytes` and
/// within what is left of `--max-input-bytes` after `total` bytes read before it (files are
/// taken in load order). Every command reads its input through this, so `plan`, `apply` and
/// `run` refuse the same files.
#[allow(
    clippy::result_large_err,
    reason = "once per file; the error carries its path inline, like the loader's"
)]
pub fn read_within(file: &Path, limits: &Limits, total: u64) -> Result<Vec<u8>, ConfigError> {
    let left = limits.max_input_bytes.saturating_sub(total);
    let size = read::check_regular(file)?;
    if size > limits.max_file_bytes {
        read::read_bounded(file, limits.max_file_bytes)
    } else if size > left {
        Err(ConfigError::InputTooLarge {
            path: file.to_path_buf(),
            limit: limits.max_input_bytes,
        })
    } else {
        read::read_bounded(file, limits.max_file_bytes.min(left))
    }
}

/// One file loaded on its own (the file source of `run` reads a file only when it changed):
/// its objects, its errors (duplicates inside it included), and where each object is first
/// defined in it, so that the caller finds duplicates across files as a whole load does.
#[derive(Debug, Default)]
pub struct FileLoad {
    pub documents: Documents,
    pub errors: Vec<ConfigError>,
    /// `(kind, namespace, name)` -> where it is defined (namespace empty when cluster-scoped).
    pub defined: BTreeMap<(String, String, String), Location>,
}

/// Loads one file's bytes on its own (see [`FileLoad`]).
pub fn load_file(file: &Path, bytes: &[u8]) -> FileLoad {
    let mut shaper = shape::Shaper::new();
    load_into(&mut shaper, file, bytes);
    FileLoad {
        documents: shaper.documents,
        errors: shaper.errors,
        defined: shaper.seen,
    }
}

/// Loads the content of one file already in memory (stdin, tests, a watcher's read).
/// `file` names it in errors, picks the format by its extension and names the Route made
/// of its short-form rules.
pub fn load_bytes(file: &Path, bytes: &[u8]) -> Loaded {
    let mut shaper = shape::Shaper::new();
    load_into(&mut shaper, file, bytes);
    finish(shaper, vec![file.to_path_buf()])
}

fn load_into(shaper: &mut shape::Shaper, file: &Path, bytes: &[u8]) {
    let before = shaper.documents.len();
    let errors_before = shaper.errors.len();
    let docs = parse::parse_file(file, bytes, &mut shaper.errors);
    let mut rules = shape::FileRules::default();
    for doc in docs {
        shaper.document(doc.value, &doc.at, &mut rules);
    }
    shaper.file_rules(rules, route_name_for_file(file));
    tracing::debug!(
        file = %file.display(),
        objects = shaper.documents.len() - before,
        errors = shaper.errors.len() - errors_before,
        "loaded config file"
    );
}

fn finish(shaper: shape::Shaper, files: Vec<PathBuf>) -> Loaded {
    for e in &shaper.errors {
        tracing::warn!(error = %e, "config input rejected");
    }
    Loaded {
        documents: shaper.documents,
        errors: shaper.errors,
        files,
    }
}
