//! Connection attempts: how long to wait before the next one, and what a failed one leaves
//! behind (the TLS failure hook, the state callers wait on). Part of the connection task
//! (`connection`); owns no state of its own.
use std::time::Duration;

use super::connection::Supervisor;
use super::error::TlsFailure;
use super::transport::Endpoint;

impl Supervisor {
    /// No wait between remotes of one round; a growing wait after each full round.
    pub(super) fn round_backoff(&self, failures: u32, remotes: usize) -> Duration {
        let n = remotes.max(1) as u32;
        if !failures.is_multiple_of(n) {
            return Duration::ZERO;
        }
        self.backoff(failures / n)
    }

    /// The shared schedule (`crate::backoff`): `backoff_min` doubling to `backoff_max`,
    /// jitter up to half.
    fn backoff(&self, failures: u32) -> Duration {
        crate::backoff::Backoff::new(self.config.backoff_min, self.config.backoff_max, 0.5)
            .delay(failures)
    }

    /// Bookkeeping of a failed attempt: a TLS failure goes to the hook and into the state;
    /// a full round over the remotes without a usable connection is counted, so that
    /// [`super::Client::wait_usable`] can give up on a TLS failure after one round.
    pub(super) fn attempt_failed(
        &mut self,
        endpoint: &Endpoint,
        tls: Option<TlsFailure>,
        failures: u32,
        remotes: usize,
    ) {
        if let (Some(f), Some(hook)) = (&tls, &self.config.on_tls_failure) {
            (hook.0)(endpoint, f);
        }
        let round = failures.is_multiple_of(remotes.max(1) as u32);
        self.state.send_modify(|s| {
            if let Some(f) = tls {
                s.tls_failure = Some((endpoint.clone(), f));
            }
            if round {
                s.failed_rounds += 1;
            }
        });
    }
}
