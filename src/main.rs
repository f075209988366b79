//! The `ovnkube-route` binary: argument parsing, logging set-up and the exit code. Everything
//! else lives in the library; this is the only place `anyhow` is used.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use ovnkube_route::controller::{self, Options, OutputFormat, PodOptions, RunOptions};
use ovnkube_route::k8s::KubeOptions;
use ovnkube_route::k8s::lease::Timing;
use ovnkube_route::k8s::status::PodIdentity;
use ovnkube_route::plan::{NbScope, PlanConfig};

#[derive(Parser)]
#[command(
    name = "ovnkube-route",
    version,
    about = "Live per-workload routing for dual-CNI pods, kept consistent with OVN"
)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `ovnkube_route=debug`.
    #[arg(long, global = true, env = "OVNKUBE_ROUTE_LOG", default_value = "info")]
    log: String,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Route CustomResourceDefinition (deploy/crd.yaml is this output).
    Crd {
        /// Print the RouteNodeReport CRD instead (deploy/crd-nodereport.yaml).
        #[arg(long)]
        node_report: bool,
    },
    /// Show what would change: NB rows (as ovn-nbctl lines) and pod routes (as ip lines).
    Plan {
        #[command(flatten)]
        files: Files,
        /// Diff against this NB database instead of showing every row as new.
        #[arg(long, value_name = "ENDPOINT")]
        nb: Option<String>,
        #[command(flatten)]
        nb_opts: NbArgs,
        #[command(flatten)]
        planner: PlannerArgs,
        #[command(flatten)]
        pods: PodArgs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Apply once: write the NB changes and program the pods of --node, then exit.
    ///
    /// Pods are programmed only for the node named by --node (or $NODE_NAME): the pods of
    /// the input whose spec.nodeName is that node and whose netns is found on this machine.
    /// Without --node, apply refuses to run unless --skip-pods is given (NB side only), so a
    /// file listing pods of several nodes never has them programmed on the wrong machine.
    Apply {
        #[command(flatten)]
        files: Files,
        /// NB database: unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT; comma-separated for a cluster.
        #[arg(long, value_name = "ENDPOINT")]
        nb: String,
        #[command(flatten)]
        nb_opts: NbArgs,
        #[command(flatten)]
        planner: PlannerArgs,
        #[command(flatten)]
        pods: PodArgs,
    },
    /// Explain one pod's route to one destination: the Route and rule that decided (or why
    /// each covering rule did not), the route the pod's kernel picks (`ip route get` in its
    /// netns), and with --nb which of our OVN rows apply (--trace: the ovn-trace verdict).
    Explain {
        /// The pod, `namespace/name`.
        #[arg(value_name = "POD")]
        pod: String,
        /// An IP address, or a Service `namespace/name` (each of its addresses is explained).
        #[arg(value_name = "DST")]
        dst: String,
        /// Route / world files or directories, as for `plan` (JSON or YAML; repeatable).
        #[arg(short = 'f', long = "file", value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// `kubernetes`: read the Routes and the world from the API server once (kubeconfig
        /// from $KUBECONFIG or the in-cluster service account) instead of -f files.
        #[arg(long, value_name = "SOURCE")]
        source: Option<String>,
        /// NB database to read our rows from: unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT.
        #[arg(long, value_name = "ENDPOINT")]
        nb: Option<String>,
        #[command(flatten)]
        nb_opts: NbArgs,
        /// Run ovn-trace for the pod's first packet against this Southbound database
        /// (needs ovn-trace, from ovn-central).
        #[arg(long, value_name = "SB_ENDPOINT")]
        trace: Option<String>,
        #[command(flatten)]
        planner: PlannerArgs,
        #[command(flatten)]
        pods: PodArgs,
        #[command(flatten)]
        limits: InputArgs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Keep reconciling: watch the source and the NB database, repair drift.
    Run {
        /// `file:PATH[,PATH...]` (files or directories, watched for changes) or `kubernetes`
        /// (Route CRs and the world from the API server; kubeconfig from $KUBECONFIG or the
        /// in-cluster service account).
        #[arg(long, value_name = "SOURCE")]
        source: String,
        /// NB database: unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT; comma-separated for a cluster.
        #[arg(long, value_name = "ENDPOINT")]
        nb: String,
        #[command(flatten)]
        nb_opts: NbArgs,
        #[command(flatten)]
        planner: PlannerArgs,
        #[command(flatten)]
        pods: PodArgs,
        /// Address of /metrics, /healthz and /readyz.
        #[arg(long, default_value = "0.0.0.0:9476")]
        metrics_addr: SocketAddr,
        /// Full NB pass at least this often (seconds). Every timer of `run` is listed in
        /// docs/timers.md.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        resync_secs: u64,
        /// Pod side safety net: every watched pod is re-dumped once per this many minutes,
        /// a few pods at a time spread over the period (0 = off). Route, link and address
        /// changes inside pods and netns appearing are handled from events at once.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=10_080))]
        pod_recheck_mins: u64,
        /// /healthz fails when the loop has not come round for this long (seconds).
        #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        watchdog_secs: u64,
        #[command(flatten)]
        kube: KubeArgs,
        #[command(flatten)]
        limits: InputArgs,
    },
}

/// Kubernetes mode (`--source kubernetes`).
#[derive(Args)]
struct KubeArgs {
    /// This instance's name in the Lease and in Events (default: $POD_NAME, else the node).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// UID of this instance's Pod, owner of its RouteNodeReport (garbage-collected with it).
    #[arg(long, env = "POD_UID")]
    pod_uid: Option<String>,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else ovn-kubernetes).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ovn-kubernetes")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "ovnkube-route")]
    lease_name: String,
    /// Lease validity after a renewal (seconds).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    lease_duration_secs: u64,
    /// The leader stops writing when it could not renew for this long (seconds; < lease).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    renew_deadline_secs: u64,
    /// How often the Lease is tried or renewed (seconds).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    retry_period_secs: u64,
    /// Node reports and Route status are written at most once per this interval (ms).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    status_interval_ms: u64,
}

#[derive(Args)]
struct Files {
    /// Route / world files or directories (JSON or YAML; repeatable).
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    limits: InputArgs,
}

/// Bounds of file input: anything larger is refused with an error naming the file.
#[derive(Args)]
struct InputArgs {
    /// Largest input file read, in bytes (default 4 MiB).
    #[arg(long, default_value_t = ovnkube_route::config::DEFAULT_MAX_FILE_BYTES)]
    max_file_bytes: u64,
    /// Largest whole input (all files of one load), in bytes (default 64 MiB).
    #[arg(long, default_value_t = ovnkube_route::config::DEFAULT_MAX_INPUT_BYTES)]
    max_input_bytes: u64,
}

impl InputArgs {
    fn limits(&self) -> ovnkube_route::config::Limits {
        ovnkube_route::config::Limits {
            max_file_bytes: self.max_file_bytes,
            max_input_bytes: self.max_input_bytes,
        }
    }
}

#[derive(Args)]
struct NbArgs {
    /// TLS private key for ssl: endpoints.
    #[arg(long, env = "OVNKUBE_ROUTE_NB_PRIVATE_KEY")]
    nb_private_key: Option<PathBuf>,
    /// TLS certificate for ssl: endpoints.
    #[arg(long, env = "OVNKUBE_ROUTE_NB_CERTIFICATE")]
    nb_certificate: Option<PathBuf>,
    /// CA certificate the NB server's certificate must chain to.
    #[arg(long, env = "OVNKUBE_ROUTE_NB_CA_CERT")]
    nb_ca_cert: Option<PathBuf>,
    /// Allow writing through a Raft follower instead of moving to the leader.
    #[arg(long)]
    nb_allow_follower: bool,
    /// Echo probe interval (seconds); a connection silent for two intervals is dropped.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    nb_probe_secs: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// OVN interconnect: each node has its own NB; plan this node's pods only.
    Ic,
    /// One NB for the cluster.
    Central,
}

#[derive(Args)]
struct PlannerArgs {
    /// This node's name: only its pods are programmed (pods carry spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node: Option<String>,
    #[arg(long, value_enum, default_value = "central")]
    mode: Mode,
    /// Router for policies and static routes when a Route names none.
    #[arg(long, default_value = "ovn_cluster_router")]
    router: String,
    /// Reserved Logical_Router_Policy priority band, `LOW-HIGH`.
    #[arg(long, default_value = "200-299")]
    priority_band: String,
    /// The pod interface attached to OVN-Kubernetes.
    #[arg(long, default_value = "eth1")]
    ovn_dev: String,
    /// The pod's default (Calico) interface.
    #[arg(long, default_value = "eth0")]
    default_dev: String,
    /// The cluster's pod network(s): a rule covering one whole is refused unless its Route
    /// sets feature_gate allowClusterNetworkCapture (comma-separated or repeated).
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    cluster_cidr: Vec<ipnet::IpNet>,
    /// The cluster's service network(s), guarded like --cluster-cidr.
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    service_cidr: Vec<ipnet::IpNet>,
    /// Gateway(s) of the default interface that pods' annotations may not state; a rule
    /// covering one is refused unless allowGatewayCapture [default: Calico's 169.254.1.1,
    /// fe80::ecee:eeff:feee:eeee].
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    default_dev_gateway: Vec<std::net::IpAddr>,
    /// Most routes one pod gets; the rest is reported (Routes of higher precedence first).
    #[arg(
        long,
        default_value_t = ovnkube_route::plan::DEFAULT_MAX_ROUTES_PER_POD,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000)
    )]
    max_routes_per_pod: usize,
}

#[derive(Args)]
struct PodArgs {
    /// CNI result cache (the `*-lo` files give each pod's netns).
    #[arg(long, default_value = "/var/lib/cni/results")]
    cni_results: PathBuf,
    /// Named network namespaces.
    #[arg(long, default_value = "/var/run/netns")]
    netns_dir: PathBuf,
    /// procfs root for the /proc/<pid>/ns/net fallback.
    #[arg(long, default_value = "/proc")]
    proc_root: PathBuf,
    /// Node-local state (original default routes).
    #[arg(long, default_value = "/var/lib/ovnkube-route")]
    state_dir: PathBuf,
    /// Do not touch pods (NB side only).
    #[arg(long)]
    skip_pods: bool,
    /// Pods read or programmed at once, each on its own thread (default: the CPUs, at most 4).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pod_threads: Option<u16>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
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

fn planner_config(p: &PlannerArgs) -> anyhow::Result<PlanConfig> {
    let (lo, hi) = p
        .priority_band
        .split_once('-')
        .context("--priority-band must be LOW-HIGH, e.g. 200-299")?;
    let lo: i64 = lo
        .trim()
        .parse()
        .context("--priority-band: LOW is not a number")?;
    let hi: i64 = hi
        .trim()
        .parse()
        .context("--priority-band: HIGH is not a number")?;
    if !(0..=32767).contains(&lo) || !(0..=32767).contains(&hi) || lo > hi {
        bail!("--priority-band {lo}-{hi}: need 0 <= LOW <= HIGH <= 32767 (ovn-nb(5) priority)");
    }
    Ok(PlanConfig {
        node: p.node.clone(),
        nb_scope: match p.mode {
            Mode::Ic => NbScope::Node,
            Mode::Central => NbScope::Cluster,
        },
        default_router: p.router.clone(),
        priority_min: lo,
        priority_max: hi,
        ovn_dev: p.ovn_dev.clone(),
        default_dev: p.default_dev.clone(),
        cluster_networks: p.cluster_cidr.clone(),
        service_networks: p.service_cidr.clone(),
        default_gateways: if p.default_dev_gateway.is_empty() {
            ovnkube_route::plan::calico_gateways()
        } else {
            p.default_dev_gateway.clone()
        },
        max_routes_per_pod: p.max_routes_per_pod,
        ..PlanConfig::default()
    })
}

fn pod_options(p: &PodArgs) -> PodOptions {
    PodOptions {
        cni_results: p.cni_results.clone(),
        netns_dir: p.netns_dir.clone(),
        proc_root: p.proc_root.clone(),
        state_dir: p.state_dir.clone(),
        skip: p.skip_pods,
        recheck: ovnkube_route::netlink::DEFAULT_RECHECK,
        threads: p.pod_threads.map_or_else(
            || {
                std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .min(4)
            },
            usize::from,
        ),
    }
}

fn options(
    nb: Option<String>,
    nb_opts: &NbArgs,
    planner: &PlannerArgs,
    pods: &PodArgs,
) -> anyhow::Result<Options> {
    Ok(Options {
        nb,
        nb_private_key: nb_opts.nb_private_key.clone(),
        nb_certificate: nb_opts.nb_certificate.clone(),
        nb_ca_cert: nb_opts.nb_ca_cert.clone(),
        nb_allow_follower: nb_opts.nb_allow_follower,
        nb_probe_interval: Duration::from_secs(nb_opts.nb_probe_secs.max(1)),
        plan: planner_config(planner)?,
        pods: pod_options(pods),
        input: ovnkube_route::config::Limits::default(),
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crd { node_report } => {
            // print!, not println!: deploy/crd*.yaml are this output byte for byte.
            if node_report {
                print!("{}", ovnkube_route::api::node_report_crd_yaml());
            } else {
                print!("{}", ovnkube_route::api::crd_yaml());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            files,
            nb,
            nb_opts,
            planner,
            pods,
            output,
        } => {
            let mut opts = options(nb, &nb_opts, &planner, &pods)?;
            opts.input = files.limits.limits();
            let outcome = controller::plan_once(&files.paths, &opts, output.into()).await?;
            print_then_errors(&outcome.rendered, &outcome.route_errors);
            Ok(if outcome.input_errors {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Apply {
            files,
            nb,
            nb_opts,
            planner,
            pods,
        } => {
            if planner.node.as_deref().is_none_or(str::is_empty) && !pods.skip_pods {
                bail!(
                    "apply programs the pods of one node: pass --node NAME (or set $NODE_NAME), \
                     or --skip-pods to write the NB side only"
                );
            }
            let mut opts = options(Some(nb), &nb_opts, &planner, &pods)?;
            opts.input = files.limits.limits();
            let outcome = controller::apply_once(&files.paths, &opts).await?;
            print_then_errors(&outcome.rendered, &outcome.route_errors);
            Ok(if outcome.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Explain {
            pod,
            dst,
            paths,
            source,
            nb,
            nb_opts,
            trace,
            planner,
            pods,
            limits,
            output,
        } => {
            let mut opts = options(nb, &nb_opts, &planner, &pods)?;
            opts.input = limits.limits();
            let req = controller::explain::ExplainRequest::parse(&pod, &dst, trace)?;
            let e = match source.as_deref() {
                None | Some("file") => {
                    if paths.is_empty() {
                        bail!("explain needs -f FILE... (or --source kubernetes)");
                    }
                    controller::explain::explain_files(&paths, &req, &opts).await?
                }
                Some("kubernetes") => {
                    if !paths.is_empty() {
                        bail!("explain: -f and --source kubernetes exclude each other");
                    }
                    ovnkube_route::k8s::explain_kubernetes(&req, &opts).await?
                }
                Some(other) => bail!("explain: --source must be kubernetes, got {other:?}"),
            };
            print!("{}", controller::explain::render(&e, output.into()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            source,
            nb,
            nb_opts,
            planner,
            pods,
            metrics_addr,
            resync_secs,
            pod_recheck_mins,
            watchdog_secs,
            kube,
            limits,
        } => {
            let mut opts = options(Some(nb), &nb_opts, &planner, &pods)?;
            opts.input = limits.limits();
            opts.pods.recheck = Duration::from_secs(pod_recheck_mins.saturating_mul(60));
            let run = RunOptions {
                metrics_addr,
                resync: Duration::from_secs(resync_secs.max(1)),
                watchdog: Duration::from_secs(watchdog_secs.max(1)),
                instance: kube
                    .identity
                    .clone()
                    .or_else(|| planner.node.clone())
                    .unwrap_or_else(|| "ovnkube-route".into()),
            };
            match source.split_once(':') {
                Some(("file", list)) if !list.is_empty() => {
                    let paths = list.split(',').map(PathBuf::from).collect::<Vec<_>>();
                    controller::run_files(paths, opts, run).await?;
                }
                _ if source == "kubernetes" => {
                    let k = kube_options(&kube, &planner)?;
                    ovnkube_route::k8s::run_kubernetes(opts, run, k).await?;
                }
                _ => bail!("--source must be file:PATH[,PATH...] or kubernetes, got {source:?}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The rendered output, flushed, then the `error:` lines that point into it: in one file
/// (`2>&1`) they come after what they refer to.
fn print_then_errors(rendered: &str, errors: &[String]) {
    use std::io::Write as _;
    print!("{rendered}");
    let _ = std::io::stdout().flush();
    for e in errors {
        eprintln!("{e}");
    }
}

fn kube_options(k: &KubeArgs, planner: &PlannerArgs) -> anyhow::Result<KubeOptions> {
    let Some(node) = planner.node.clone().filter(|n| !n.is_empty()) else {
        bail!("--source kubernetes needs --node (or $NODE_NAME): pods are programmed per node");
    };
    Ok(KubeOptions {
        mode: match planner.mode {
            Mode::Ic => ovnkube_route::k8s::Mode::Ic,
            Mode::Central => ovnkube_route::k8s::Mode::Central,
        },
        identity: k.identity.clone().unwrap_or_else(|| node.clone()),
        node,
        lease_namespace: k.lease_namespace.clone(),
        lease_name: k.lease_name.clone(),
        timing: Timing {
            lease_duration: Duration::from_secs(k.lease_duration_secs),
            renew_deadline: Duration::from_secs(k.renew_deadline_secs),
            retry_period: Duration::from_secs(k.retry_period_secs),
        },
        status_interval: Duration::from_millis(k.status_interval_ms.max(10)),
        pod: PodIdentity {
            name: k.identity.clone(),
            namespace: Some(k.lease_namespace.clone()),
            uid: k.pod_uid.clone(),
        },
    })
}

/// The error and its causes, skipping a cause whose text the message already carries (most
/// of our error types print their source inline).
fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// One malloc arena for the whole process. glibc gives every thread that allocates its own
/// arena and keeps what was freed in it; with the pod side's worker threads that is several
/// MB of resident memory holding nothing (measured at 500 pods x 250 routes after Route
/// edits: 43 MB resident with the default, 39 MB with one arena; docs/benchmarks.md). The
/// node agent's threads allocate little at a time, so sharing one arena costs nothing visible.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn one_malloc_arena() {
    // SAFETY: mallopt only sets an allocator parameter and takes no pointers; it runs first
    // thing in main, before any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal; files and log collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
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
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::from(2)
        }
    }
}
