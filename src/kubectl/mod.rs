//! kubectl: the binary as a kubectl plugin. Installed as `kubectl-route` (a symlink to
//! `ovnkube-route`; the name it is started under decides), it answers `kubectl route status`,
//! `kubectl route explain` and `kubectl route plan -f ROUTE.yaml`, the what-if.
//!
//! Owns the plugin's command line, its reading of the cluster (the list calls `run`'s RBAC
//! grants, one per kind) and its output. Must not: write anything, to the API server or to
//! the NB. What a Route would do is the planner's answer ([`whatif`]), not the plugin's.
pub mod args;
mod plan;
mod status;
pub mod whatif;

use std::process::ExitCode;

use clap::Parser;

use crate::config::ConfigError;
use crate::controller::ControllerError;
use crate::k8s::KubeError;

/// What the plugin can fail with.
#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    /// No client, or a client error (kubeconfig, API server).
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// A list call failed.
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// The controller's read-only paths failed (explain, the NB preview).
    #[error(transparent)]
    Controller(#[from] ControllerError),
    /// A -f path could not be read.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// Bad arguments or input.
    #[error("{0}")]
    Usage(String),
}

impl From<crate::nb::reconcile::NbError> for KubectlError {
    fn from(e: crate::nb::reconcile::NbError) -> Self {
        KubectlError::Controller(e.into())
    }
}

/// True when the process was started as `kubectl-route` (kubectl runs plugins by that name
/// from PATH; a symlink to `ovnkube-route` is enough).
pub fn invoked_as_plugin() -> bool {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "kubectl-route")
}

/// The plugin's `main`: parses `kubectl route ...`, runs it, and returns the exit code
/// (0 ok; 1 the answer is a problem: a Route not found, or a what-if that would leave a
/// Route Invalid or Degraded; 2 an error).
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    crate::cli::block_on(run(cli.command))
}

/// Output for stdout, then `error:` lines for stderr; `failed` makes the exit code 1.
pub(crate) struct Answer {
    pub out: String,
    pub errors: Vec<String>,
    pub failed: bool,
}

async fn run(command: args::Command) -> Result<ExitCode, KubectlError> {
    use args::Command;
    let answer = match command {
        Command::Status { name, output } => {
            let client = crate::k8s::run::client().await?;
            status::status(
                &client,
                name.as_deref(),
                matches!(output, args::StatusOutput::Json),
            )
            .await?
        }
        Command::Explain {
            pod,
            dst,
            nb,
            nb_opts,
            trace,
            planner,
            pods,
            output,
        } => {
            let opts = args::options(&nb, &nb_opts, &planner, &pods)?;
            let req = crate::controller::explain::ExplainRequest::parse(&pod, &dst, trace)?;
            let e = crate::k8s::explain_kubernetes(&req, &opts).await?;
            Answer {
                out: crate::controller::explain::render(&e, output.into()),
                errors: Vec::new(),
                failed: false,
            }
        }
        Command::Plan {
            files,
            nb,
            nb_opts,
            planner,
            output,
        } => {
            let pods = crate::cli::PodArgs {
                skip_pods: true,
                ..crate::cli::PodArgs::defaults()
            };
            let opts = args::options(&nb, &nb_opts, &planner, &pods)?;
            plan::plan(&files, &opts, output.into()).await?
        }
    };
    crate::cli::print_then_errors(&answer.out, &answer.errors);
    Ok(if answer.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
