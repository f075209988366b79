//! The plugin's command line (`kubectl route ...`) and the [`Options`] it builds. The
//! planner flags mirror `ovnkube-route`'s so that a what-if plans what the DaemonSet plans;
//! pass the same values as in `deploy/kustomization.yaml` where they differ from the
//! defaults.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::controller::{Options, OutputFormat, PodOptions};
use crate::plan::{NbScope, PlanConfig};

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
        nb: NbFlags,
        /// Run ovn-trace for the pod's first packet against this Southbound database.
        #[arg(long, value_name = "SB_ENDPOINT")]
        trace: Option<String>,
        #[command(flatten)]
        planner: PlannerFlags,
        /// Do not look into the pod's network namespace (only possible on its node).
        #[arg(long)]
        skip_pods: bool,
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
        nb: NbFlags,
        #[command(flatten)]
        planner: PlannerFlags,
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StatusOutput {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl From<Output> for OutputFormat {
    fn from(o: Output) -> Self {
        match o {
            Output::Text => OutputFormat::Text,
            Output::Json => OutputFormat::Json,
        }
    }
}

/// The NB database, read only.
#[derive(Args)]
pub struct NbFlags {
    /// NB database: unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT (comma-separated for a cluster).
    #[arg(long, value_name = "ENDPOINT")]
    pub nb: Option<String>,
    /// TLS private key for ssl: endpoints.
    #[arg(long, env = "OVNKUBE_ROUTE_NB_PRIVATE_KEY")]
    pub nb_private_key: Option<PathBuf>,
    /// TLS certificate for ssl: endpoints.
    #[arg(long, env = "OVNKUBE_ROUTE_NB_CERTIFICATE")]
    pub nb_certificate: Option<PathBuf>,
    /// CA certificate the NB server's certificate must chain to.
    #[arg(long, env = "OVNKUBE_ROUTE_NB_CA_CERT")]
    pub nb_ca_cert: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Mode {
    Ic,
    Central,
}

/// The planner settings of the DaemonSet (same flags and defaults as `ovnkube-route`).
#[derive(Args)]
pub struct PlannerFlags {
    /// Plan as this node's instance (`ic` mode: only its pods in the NB rows). Default: every
    /// node's pods.
    #[arg(long)]
    pub node: Option<String>,
    #[arg(long, value_enum, default_value = "central")]
    pub mode: Mode,
    /// Router for policies and static routes when a Route names none.
    #[arg(long, default_value = "ovn_cluster_router")]
    pub router: String,
    /// Reserved Logical_Router_Policy priority band, `LOW-HIGH`.
    #[arg(long, default_value = "200-299")]
    pub priority_band: String,
    #[arg(long, default_value = "eth1")]
    pub ovn_dev: String,
    #[arg(long, default_value = "eth0")]
    pub default_dev: String,
    /// The cluster's pod network(s), for the guard rails.
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub cluster_cidr: Vec<ipnet::IpNet>,
    /// The cluster's service network(s), for the guard rails.
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub service_cidr: Vec<ipnet::IpNet>,
}

impl PlannerFlags {
    fn config(&self) -> Result<PlanConfig, KubectlError> {
        let bad = || {
            KubectlError::Usage(format!(
                "--priority-band {:?}: need LOW-HIGH with 0 <= LOW <= HIGH <= 32767",
                self.priority_band
            ))
        };
        let (lo, hi) = self.priority_band.split_once('-').ok_or_else(bad)?;
        let lo: i64 = lo.trim().parse().map_err(|_| bad())?;
        let hi: i64 = hi.trim().parse().map_err(|_| bad())?;
        if !(0..=32767).contains(&lo) || !(0..=32767).contains(&hi) || lo > hi {
            return Err(bad());
        }
        Ok(PlanConfig {
            node: self.node.clone(),
            nb_scope: match self.mode {
                Mode::Ic => NbScope::Node,
                Mode::Central => NbScope::Cluster,
            },
            default_router: self.router.clone(),
            priority_min: lo,
            priority_max: hi,
            ovn_dev: self.ovn_dev.clone(),
            default_dev: self.default_dev.clone(),
            cluster_networks: self.cluster_cidr.clone(),
            service_networks: self.service_cidr.clone(),
            ..PlanConfig::default()
        })
    }
}

/// Options for the controller's read-only paths (explain, NB preview).
pub fn options(
    nb: &NbFlags,
    planner: &PlannerFlags,
    skip_pods: bool,
) -> Result<Options, KubectlError> {
    Ok(Options {
        nb: nb.nb.clone(),
        nb_private_key: nb.nb_private_key.clone(),
        nb_certificate: nb.nb_certificate.clone(),
        nb_ca_cert: nb.nb_ca_cert.clone(),
        nb_allow_follower: false,
        nb_probe_interval: Duration::from_secs(5),
        plan: planner.config()?,
        pods: PodOptions {
            cni_results: "/var/lib/cni/results".into(),
            netns_dir: "/var/run/netns".into(),
            proc_root: "/proc".into(),
            state_dir: "/var/lib/ovnkube-route".into(),
            skip: skip_pods,
            recheck: crate::netlink::DEFAULT_RECHECK,
        },
        input: crate::config::Limits::default(),
    })
}
