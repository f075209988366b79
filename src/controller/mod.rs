//! controller: wires sources, the planner and both reconcilers; status, metrics, the audit.
//! Owns no policy of its own: what to program is the planner's, how is nb's and netlink's.
//! The only decision made here is what to leave alone when input is bad (see [`keep`]).
pub mod audit;
pub mod decoded;
mod driver;
pub mod explain;
pub mod files;
pub mod inputs;
pub mod keep;
pub mod metrics;
mod nb_side;
pub mod oneshot;
pub mod pod_diff;
mod pod_side;
pub mod pods;
pub mod render;
pub mod role;
pub mod run;
pub mod source;
pub mod status;
pub mod tls;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;
use crate::nb::reconcile::NbError;
use crate::netlink::NetlinkError;
use crate::ovsdb::{ClientConfig, TlsFiles, parse_remotes};
use crate::plan::PlanConfig;

pub use audit::AuditOutcome;
pub use oneshot::{ApplyOutcome, PlanOutcome, apply_once, plan_once};
pub use run::{Control, RunOptions, Wiring, run_files, run_loop};

/// Where pods' network namespaces are found and where node-local state lives.
#[derive(Clone, Debug)]
pub struct PodOptions {
    pub cni_results: PathBuf,
    pub netns_dir: PathBuf,
    pub proc_root: PathBuf,
    pub state_dir: PathBuf,
    /// NB side only: never touch pods.
    pub skip: bool,
    /// `run`: period of the pod side's safety-net re-check (zero: off). See docs/timers.md.
    pub recheck: Duration,
    /// Pods read or programmed at once (`--pod-threads`): the netns worker threads.
    pub threads: usize,
}

/// Everything a command needs besides its inputs.
#[derive(Clone, Debug)]
pub struct Options {
    /// NB endpoint list (`unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT`, comma-separated).
    pub nb: Option<String>,
    pub nb_private_key: Option<PathBuf>,
    pub nb_certificate: Option<PathBuf>,
    pub nb_ca_cert: Option<PathBuf>,
    pub nb_allow_follower: bool,
    pub nb_probe_interval: Duration,
    pub plan: PlanConfig,
    pub pods: PodOptions,
    /// Size bounds of file input.
    pub input: crate::config::Limits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

/// What the controller's commands can fail with as a whole (per-Route and per-pod
/// problems are reported, not raised).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// An input path could not be read at all.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// The NB side failed (unreachable, refused transaction, ...).
    #[error(transparent)]
    Nb(NbError),
    /// The TLS handshake with the NB failed for a reason retrying does not fix; `check`
    /// names the flag (or certificate) to look at.
    #[error("{source}; check {check}")]
    NbTls {
        source: NbError,
        check: &'static str,
    },
    /// The pod side could not start (state dir, worker threads).
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// TLS options were given partly: all three files are needed for ssl: endpoints.
    #[error("ssl: endpoints need --nb-private-key, --nb-certificate and --nb-ca-cert together")]
    PartialTls,
    /// The metrics endpoint could not be served.
    #[error("metrics endpoint: {0}")]
    Metrics(std::io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// The source stopped delivering updates (its task ended).
    #[error("the input source stopped")]
    SourceEnded,
    /// `explain` cannot answer: bad arguments, or the pod / Service is not in the input.
    #[error("{0}")]
    Explain(String),
}

impl From<NbError> for ControllerError {
    fn from(e: NbError) -> Self {
        match &e {
            NbError::Ovsdb(crate::ovsdb::Error::TlsHandshake { failure, .. }) => {
                ControllerError::NbTls {
                    check: tls::check(failure),
                    source: e,
                }
            }
            _ => ControllerError::Nb(e),
        }
    }
}

impl ControllerError {
    /// A short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            ControllerError::Config(_) => "config",
            ControllerError::Nb(e) => e.label(),
            ControllerError::NbTls { .. } => "nb_tls",
            ControllerError::Netlink(_) => "netlink",
            ControllerError::PartialTls => "partial_tls",
            ControllerError::Metrics(_) => "metrics",
            ControllerError::Signal(_) => "signal",
            ControllerError::SourceEnded => "source_ended",
            ControllerError::Explain(_) => "explain",
        }
    }
}

impl Options {
    /// The OVSDB client settings these options describe.
    pub fn client_config(&self, remotes: &str) -> Result<ClientConfig, ControllerError> {
        let endpoints = parse_remotes(remotes).map_err(|e| ControllerError::Nb(e.into()))?;
        let mut config = ClientConfig::new(endpoints, crate::nb::reconcile::DATABASE);
        config.leader_only = !self.nb_allow_follower;
        config.probe_interval = Some(self.nb_probe_interval);
        config.tls = match (&self.nb_private_key, &self.nb_certificate, &self.nb_ca_cert) {
            (Some(k), Some(c), Some(ca)) => Some(TlsFiles {
                private_key: k.clone(),
                certificate: c.clone(),
                ca_cert: ca.clone(),
            }),
            (None, None, None) => None,
            _ => return Err(ControllerError::PartialTls),
        };
        Ok(config)
    }
}

/// A Route's one-word status once the NB side has had its say: a Route the planner found fine
/// but some of whose rows could not be written (router missing, next hop unreachable, name
/// taken, no load balancer for a ClusterIP) is Degraded.
pub fn summary_with_nb(
    report: &crate::plan::RouteReport,
    route: &str,
    nb: &[crate::nb::diff::NbProblem],
) -> crate::plan::Summary {
    use crate::plan::Summary;
    if report.summary == Summary::Applied && nb.iter().any(|p| p.route == route) {
        Summary::Degraded
    } else {
        report.summary
    }
}

/// Whether a command's output should count as failed input: some Route is Invalid or
/// Degraded (Pending only waits for pods and is not a failure).
pub fn any_route_failed(
    plan: &crate::plan::Plan,
    nb: &[crate::nb::diff::NbProblem],
) -> Vec<(String, crate::plan::Summary)> {
    use crate::plan::Summary;
    plan.reports
        .iter()
        .map(|(name, r)| (name.clone(), summary_with_nb(r, name, nb)))
        .filter(|(_, s)| matches!(s, Summary::Invalid | Summary::Degraded))
        .collect()
}
