//! The `ovnkube-route` binary: argument parsing, logging set-up and the exit code. Everything
//! else lives in the library; this is the only place `anyhow` is used.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};

use ovnkube_route::cli::{
    InputArgs, Mode, NbArgs, Output, PlannerArgs, PodArgs, block_on, print_then_errors,
};
use ovnkube_route::controller::{self, Options, RunOptions};
use ovnkube_route::k8s::KubeOptions;
use ovnkube_route::k8s::lease::Timing;
use ovnkube_route::k8s::status::PodIdentity;

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

/// Kubernetes versions `crd --compat` prints a CRD for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum CrdCompat {
    /// Before 1.31: CRD rules cannot use the CEL IP/CIDR library.
    #[value(name = "pre-1.31")]
    Pre131,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Route CustomResourceDefinition (deploy/crd.yaml is this output).
    Crd {
        /// Print the RouteNodeReport CRD instead (deploy/crd-nodereport.yaml).
        #[arg(long)]
        node_report: bool,
        /// Print the Route CRD for an older cluster: `pre-1.31` (no CEL IP/CIDR library:
        /// lengths and patterns only; docs/install.md).
        #[arg(long, value_name = "KUBERNETES", conflicts_with = "node_report")]
        compat: Option<CrdCompat>,
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
        /// The audit, every this many minutes (0 = off): plans everything again from
        /// scratch, compares with the NB and every pod's table, repairs, and counts each
        /// difference in ovnkube_route_audit_repairs_total (a bug: every change is handled
        /// from its own event). Every timer of `run` is listed in docs/timers.md.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=10_080))]
        audit_mins: u64,
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
    /// Client-side limit on requests to the API server, per second on average (as
    /// client-go's QPS; 0 = no limit).
    #[arg(long, default_value_t = ovnkube_route::k8s::client::DEFAULT_QPS)]
    kube_api_qps: f32,
    /// Requests allowed at once above --kube-api-qps after a quiet time (client-go's burst).
    #[arg(long, default_value_t = ovnkube_route::k8s::client::DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    kube_api_burst: u32,
    /// Objects per page of a list (the first list and every relist; `limit` / `continue`).
    #[arg(long, default_value_t = ovnkube_route::k8s::client::DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    kube_page_size: u32,
}

#[derive(Args)]
struct Files {
    /// Route / world files or directories (JSON or YAML; repeatable).
    #[arg(short = 'f', long = "file", value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    limits: InputArgs,
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Crd {
            node_report,
            compat,
        } => {
            // print!, not println!: deploy/crd*.yaml are this output byte for byte.
            if node_report {
                print!("{}", ovnkube_route::api::node_report_crd_yaml());
            } else if let Some(CrdCompat::Pre131) = compat {
                print!("{}", ovnkube_route::api::crd_compat_yaml());
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
            let mut opts = ovnkube_route::cli::options(nb, &nb_opts, &planner, &pods)?;
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
        } => apply(files, nb, &nb_opts, &planner, &pods).await,
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
            let mut opts = ovnkube_route::cli::options(nb, &nb_opts, &planner, &pods)?;
            opts.input = limits.limits();
            let req = controller::explain::ExplainRequest::parse(&pod, &dst, trace)?;
            explain(&req, &paths, source.as_deref(), &opts, output).await
        }
        Command::Run {
            source,
            nb,
            nb_opts,
            planner,
            pods,
            metrics_addr,
            audit_mins,
            watchdog_secs,
            kube,
            limits,
        } => {
            let mut opts = ovnkube_route::cli::options(Some(nb), &nb_opts, &planner, &pods)?;
            opts.input = limits.limits();
            let run = RunOptions {
                metrics_addr,
                audit: (audit_mins > 0).then(|| Duration::from_secs(audit_mins * 60)),
                watchdog: Duration::from_secs(watchdog_secs.max(1)),
                instance: kube
                    .identity
                    .clone()
                    .or_else(|| planner.node.clone())
                    .unwrap_or_else(|| "ovnkube-route".into()),
            };
            run_source(&source, opts, run, &kube, &planner).await
        }
    }
}

async fn apply(
    files: Files,
    nb: String,
    nb_opts: &NbArgs,
    planner: &PlannerArgs,
    pods: &PodArgs,
) -> anyhow::Result<ExitCode> {
    if planner.node.as_deref().is_none_or(str::is_empty) && !pods.skip_pods {
        bail!(
            "apply programs the pods of one node: pass --node NAME (or set $NODE_NAME), \
             or --skip-pods to write the NB side only"
        );
    }
    let mut opts = ovnkube_route::cli::options(Some(nb), nb_opts, planner, pods)?;
    opts.input = files.limits.limits();
    let outcome = controller::apply_once(&files.paths, &opts).await?;
    print_then_errors(&outcome.rendered, &outcome.route_errors);
    Ok(if outcome.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn explain(
    req: &controller::explain::ExplainRequest,
    paths: &[PathBuf],
    source: Option<&str>,
    opts: &Options,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let e = match source {
        None | Some("file") => {
            if paths.is_empty() {
                bail!("explain needs -f FILE... (or --source kubernetes)");
            }
            controller::explain::explain_files(paths, req, opts).await?
        }
        Some("kubernetes") => {
            if !paths.is_empty() {
                bail!("explain: -f and --source kubernetes exclude each other");
            }
            ovnkube_route::k8s::explain_kubernetes(req, opts).await?
        }
        Some(other) => bail!("explain: --source must be kubernetes, got {other:?}"),
    };
    print!("{}", controller::explain::render(&e, output.into()));
    Ok(ExitCode::SUCCESS)
}

/// `run` with the source `--source` names.
async fn run_source(
    source: &str,
    mut opts: Options,
    run: RunOptions,
    kube: &KubeArgs,
    planner: &PlannerArgs,
) -> anyhow::Result<ExitCode> {
    // The pod side's tables are re-read by the audit only.
    opts.pods.recheck = Duration::ZERO;
    match source.split_once(':') {
        Some(("file", list)) if !list.is_empty() => {
            let paths = list.split(',').map(PathBuf::from).collect::<Vec<_>>();
            controller::run_files(paths, opts, run).await?;
        }
        _ if source == "kubernetes" => {
            let k = kube_options(kube, planner)?;
            ovnkube_route::k8s::run_kubernetes(opts, run, k).await?;
        }
        _ => bail!("--source must be file:PATH[,PATH...] or kubernetes, got {source:?}"),
    }
    Ok(ExitCode::SUCCESS)
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
        api: ovnkube_route::k8s::client::ApiLimits {
            qps: k.kube_api_qps.max(0.0),
            burst: k.kube_api_burst,
            page_size: k.kube_page_size,
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

/// One malloc arena for glibc's heap (only what is not allocated through Rust's global
/// allocator, which is mimalloc, lands there). glibc gives every thread that allocates its own
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

/// mimalloc instead of glibc's malloc (docs/benchmarks.md "Cluster scale, fourth round"):
/// with hundreds of thousands of small objects held (50,000 pods), glibc's free lists made
/// later small allocations walk and consolidate them (a third of the idle CPU at 50k was
/// inside malloc). Built without transparent huge pages (`no_thp`): with them a node agent's
/// RSS was 40% higher.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    one_malloc_arena();
    ovnkube_route::heap::purge_at_once();
    // Started as `kubectl-route` (a symlink, found by kubectl on PATH): the plugin.
    if ovnkube_route::kubectl::invoked_as_plugin() {
        return ovnkube_route::kubectl::main();
    }
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
    block_on(async { run(cli).await.map_err(|e| chain(&e)) })
}
