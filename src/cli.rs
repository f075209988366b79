//! The command-line flags `ovnkube-route` and its kubectl plugin share, and what they
//! build ([`Options`], [`PlanConfig`]), so that a what-if plans exactly what the DaemonSet
//! plans. Also the runtime start and the error / output printing of both binaries.
//!
//! Owns: flag names, defaults, ranges and help texts. Must not: run anything itself.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::controller::{Options, OutputFormat, PodOptions};
use crate::plan::{NbScope, PlanConfig};

/// Flags whose values clap cannot check alone.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--priority-band` is not of the form `LOW-HIGH`.
    #[error("--priority-band must be LOW-HIGH, e.g. 200-299, got {0:?}")]
    BandForm(String),
    /// One end of `--priority-band` is not a number.
    #[error("--priority-band: {0} is not a number")]
    BandNumber(&'static str),
    /// `--priority-band` outside ovn-nb(5)'s priority range, or upside down.
    #[error("--priority-band {0}-{1}: need 0 <= LOW <= HIGH <= 32767 (ovn-nb(5) priority)")]
    BandRange(i64, i64),
}

/// Bounds of file input: anything larger is refused with an error naming the file.
#[derive(Args)]
pub struct InputArgs {
    /// Largest input file read, in bytes (default 4 MiB).
    #[arg(long, default_value_t = crate::config::DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
    /// Largest whole input (all files of one load), in bytes (default 64 MiB).
    #[arg(long, default_value_t = crate::config::DEFAULT_MAX_INPUT_BYTES)]
    pub max_input_bytes: u64,
}

impl InputArgs {
    pub fn limits(&self) -> crate::config::Limits {
        crate::config::Limits {
            max_file_bytes: self.max_file_bytes,
            max_input_bytes: self.max_input_bytes,
        }
    }
}

#[derive(Args)]
pub struct NbArgs {
    /// TLS private key for ssl: endpoints.
    #[arg(long, env = "OVNKUBE_ROUTE_NB_PRIVATE_KEY")]
    pub nb_private_key: Option<PathBuf>,
    /// TLS certificate for ssl: endpoints.
    #[arg(long, env = "OVNKUBE_ROUTE_NB_CERTIFICATE")]
    pub nb_certificate: Option<PathBuf>,
    /// CA certificate the NB server's certificate must chain to.
    #[arg(long, env = "OVNKUBE_ROUTE_NB_CA_CERT")]
    pub nb_ca_cert: Option<PathBuf>,
    /// Allow writing through a Raft follower instead of moving to the leader.
    #[arg(long)]
    pub nb_allow_follower: bool,
    /// Echo probe interval (seconds); a connection silent for two intervals is dropped.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub nb_probe_secs: u64,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Mode {
    /// OVN interconnect: each node has its own NB; plan this node's pods only.
    Ic,
    /// One NB for the cluster.
    Central,
}

#[derive(Args)]
pub struct PlannerArgs {
    /// This node's name: only its pods are programmed (pods carry spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node: Option<String>,
    #[arg(long, value_enum, default_value = "central")]
    pub mode: Mode,
    /// Router for policies and static routes when a Route names none.
    #[arg(long, default_value = "ovn_cluster_router")]
    pub router: String,
    /// Reserved Logical_Router_Policy priority band, `LOW-HIGH`.
    #[arg(long, default_value = "200-299")]
    pub priority_band: String,
    /// The pod interface attached to OVN-Kubernetes.
    #[arg(long, default_value = "eth1")]
    pub ovn_dev: String,
    /// The pod's default (Calico) interface.
    #[arg(long, default_value = "eth0")]
    pub default_dev: String,
    /// The cluster's pod network(s): a rule covering one whole is refused unless its Route
    /// sets feature_gate allowClusterNetworkCapture (comma-separated or repeated).
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub cluster_cidr: Vec<ipnet::IpNet>,
    /// The cluster's service network(s), guarded like --cluster-cidr.
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub service_cidr: Vec<ipnet::IpNet>,
    /// Gateway(s) of the default interface that pods' annotations may not state; a rule
    /// covering one is refused unless allowGatewayCapture [default: Calico's 169.254.1.1,
    /// fe80::ecee:eeff:feee:eeee].
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub default_dev_gateway: Vec<std::net::IpAddr>,
    /// Most routes one pod gets; the rest is reported (Routes of higher precedence first).
    #[arg(
        long,
        default_value_t = crate::plan::DEFAULT_MAX_ROUTES_PER_POD,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000)
    )]
    pub max_routes_per_pod: usize,
}

impl PlannerArgs {
    /// The planner settings these flags describe.
    pub fn config(&self) -> Result<PlanConfig, CliError> {
        let (lo, hi) = self
            .priority_band
            .split_once('-')
            .ok_or_else(|| CliError::BandForm(self.priority_band.clone()))?;
        let lo: i64 = lo.trim().parse().map_err(|_| CliError::BandNumber("LOW"))?;
        let hi: i64 = hi
            .trim()
            .parse()
            .map_err(|_| CliError::BandNumber("HIGH"))?;
        if !(0..=32767).contains(&lo) || !(0..=32767).contains(&hi) || lo > hi {
            return Err(CliError::BandRange(lo, hi));
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
            default_gateways: if self.default_dev_gateway.is_empty() {
                crate::plan::calico_gateways()
            } else {
                self.default_dev_gateway.clone()
            },
            max_routes_per_pod: self.max_routes_per_pod,
            ..PlanConfig::default()
        })
    }
}

#[derive(Args)]
pub struct PodArgs {
    /// CNI result cache (the `*-lo` files give each pod's netns).
    #[arg(long, default_value = "/var/lib/cni/results")]
    pub cni_results: PathBuf,
    /// Named network namespaces.
    #[arg(long, default_value = "/var/run/netns")]
    pub netns_dir: PathBuf,
    /// procfs root for the /proc/<pid>/ns/net fallback.
    #[arg(long, default_value = "/proc")]
    pub proc_root: PathBuf,
    /// Node-local state (original default routes).
    #[arg(long, default_value = "/var/lib/ovnkube-route")]
    pub state_dir: PathBuf,
    /// Do not touch pods (NB side only).
    #[arg(long)]
    pub skip_pods: bool,
    /// Pods read or programmed at once, each on its own thread (default: the CPUs, at most 4).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub pod_threads: Option<u16>,
}

impl PodArgs {
    /// The flags' defaults, as clap gives them when no flag is set.
    pub fn defaults() -> PodArgs {
        use clap::FromArgMatches;
        let m =
            PodArgs::augment_args(clap::Command::new("defaults")).get_matches_from(["defaults"]);
        PodArgs::from_arg_matches(&m).unwrap_or_else(|e| e.exit())
    }

    pub fn options(&self) -> PodOptions {
        PodOptions {
            cni_results: self.cni_results.clone(),
            netns_dir: self.netns_dir.clone(),
            proc_root: self.proc_root.clone(),
            state_dir: self.state_dir.clone(),
            skip: self.skip_pods,
            recheck: Duration::ZERO,
            threads: self.pod_threads.map_or_else(
                || {
                    std::thread::available_parallelism()
                        .map_or(2, |n| n.get())
                        .min(4)
                },
                usize::from,
            ),
        }
    }
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

/// Everything a command needs besides its inputs, from its flags.
pub fn options(
    nb: Option<String>,
    nb_opts: &NbArgs,
    planner: &PlannerArgs,
    pods: &PodArgs,
) -> Result<Options, CliError> {
    Ok(Options {
        nb,
        nb_private_key: nb_opts.nb_private_key.clone(),
        nb_certificate: nb_opts.nb_certificate.clone(),
        nb_ca_cert: nb_opts.nb_ca_cert.clone(),
        nb_allow_follower: nb_opts.nb_allow_follower,
        nb_probe_interval: Duration::from_secs(nb_opts.nb_probe_secs.max(1)),
        plan: planner.config()?,
        pods: pods.options(),
        input: crate::config::Limits::default(),
    })
}

/// Runs `main` on a multi-threaded runtime; an error is printed as `error: ...` and exits
/// with 2.
pub fn block_on<E: std::fmt::Display>(
    main: impl std::future::Future<Output = Result<ExitCode, E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(main) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The rendered output, flushed, then the `error:` lines that point into it: in one file
/// (`2>&1`) they come after what they refer to.
pub fn print_then_errors(rendered: &str, errors: &[String]) {
    use std::io::Write as _;
    print!("{rendered}");
    let _ = std::io::stdout().flush();
    for e in errors {
        eprintln!("{e}");
    }
}
