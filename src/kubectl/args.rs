//! The plugin's command line (`kubectl route ...`) and the [`Options`] it builds. The
//! planner flags mirror `ovnkube-route`'s so that a what-if plans what the DaemonSet plans;
//! pass the same values as in `deploy/kustomization.yaml` where they differ from the
//! defaults.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::cli::Output;
use crate::cli::{NbArgs, PlannerArgs, PodArgs};
use crate::controller::Options;

use super::KubectlError;

#[derive(Parser)]
#[command(
    name = "kubectl-route",
    bin_name = "kubectl route",
    version,
    about = "ovnkube-route's kubectl plugin: Route status, explain, and what a Route would do before it is applied"
)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, global = true, env = "OVNKUBE_ROUTE_LOG", default_value = "warn")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Routes with their status, pod counts and problems (per node where a node reported
    /// them). One list call.
    Status {
        /// Only this Route.
        name: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: StatusOutput,
    },
    /// Why a pod reaches an address (or a Service `ns/name`) the way it does: the Route and
    /// rule that decided, and with --nb our OVN rows that apply. Reads the cluster once.
    Explain {
        /// The pod, `namespace/name`.
        #[arg(value_name = "NS/POD")]
        pod: String,
        /// An IP address, or a Service `namespace/name`.
        #[arg(value_name = "DST")]
        dst: String,
        #[command(flatten)]
        nb: NbFlag,
        #[command(flatten)]
        nb_opts: NbArgs,
        /// Run ovn-trace for the pod's first packet against this Southbound database.
        #[arg(long, value_name = "SB_ENDPOINT")]
        trace: Option<String>,
        #[command(flatten)]
        planner: PlannerArgs,
        #[command(flatten)]
        pods: PodArgs,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Output,
    },
    /// What applying these Routes would do, without applying them: pods selected, conflicts
    /// won and lost (against which Routes), rules refused by guard rails, other Routes'
    /// status, NB rows added / changed / removed (with --nb: against the NB itself) and pod
    /// routes per node. Reads the cluster once (one list per kind); writes nothing.
    Plan {
        /// Route file(s) or directories (YAML or JSON, as for kubectl apply -f).
        #[arg(short = 'f', long = "file", value_name = "ROUTE.yaml", required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        nb: NbFlag,
        #[command(flatten)]
        nb_opts: NbArgs,
        #[command(flatten)]
        planner: PlannerArgs,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StatusOutput {
    Table,
    Json,
}

/// The NB database, read only (its TLS and probe flags are `ovnkube-route`'s).
#[derive(Args)]
pub struct NbFlag {
    /// NB database: unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT (comma-separated for a cluster).
    #[arg(long, value_name = "ENDPOINT")]
    pub nb: Option<String>,
}

/// Options for the controller's read-only paths (explain, NB preview), from the same flags
/// and defaults as `ovnkube-route`'s, so that a what-if plans what the DaemonSet plans.
pub fn options(
    nb: &NbFlag,
    nb_opts: &NbArgs,
    planner: &PlannerArgs,
    pods: &PodArgs,
) -> Result<Options, KubectlError> {
    crate::cli::options(nb.nb.clone(), nb_opts, planner, pods)
        .map_err(|e| KubectlError::Usage(e.to_string()))
}
