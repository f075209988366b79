//! k8s: the Kubernetes edge. Watches feed the loop's world ([`watch`]), a Lease elects the
//! writer ([`lease`]), node reports and Route status are written and aggregated
//! ([`status`], [`aggregate`]), and [`run`] wires them around the controller's loop.
//!
//! Owns: every Kubernetes API call the controller makes (listed in [`access`]). Must not:
//! plan, or touch the NB or pods directly; that is the loop's.
pub mod access;
pub mod aggregate;
pub mod client;
pub mod lease;
pub mod run;
pub mod snapshot;
pub mod status;
pub mod watch;

pub use run::{KubeOptions, Mode, run_kubernetes};
pub use snapshot::explain_kubernetes;

/// What the Kubernetes side can fail with as a whole.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No usable client configuration (no kubeconfig, not in a cluster, bad file).
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// The client could not be built from its configuration.
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The election timing does not leave the margin that prevents two writers.
    #[error("leader election timing: {0}")]
    Timing(String),
    /// The loop stopped with an error.
    #[error(transparent)]
    Controller(#[from] crate::controller::ControllerError),
}

impl KubeError {
    /// A short stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            KubeError::Config(_) => "config",
            KubeError::Client(_) => "client",
            KubeError::Timing(_) => "timing",
            KubeError::Controller(e) => e.label(),
        }
    }
}
