//! Leader election on a `coordination.k8s.io/v1` Lease, with the rules of client-go's
//! leader election:
//!
//! - Acquire or renew with an update carrying the Lease's `resourceVersion`: two candidates
//!   racing for one Lease cannot both win (the loser gets 409 Conflict).
//! - Another holder's Lease counts as expired only when its record has not changed for
//!   `lease_duration` as measured on *this* process's monotonic clock from when the record
//!   was first seen (never from the timestamps in it), so clock skew between nodes does not
//!   matter.
//! - The leader stops writing when it has not renewed for `renew_deadline`, which is shorter
//!   than `lease_duration`: writes stop (the [`Fence`] closes) before anyone else may take
//!   over, so there are never two writers, even when the API server is unreachable.
//! - On shutdown the leader releases the Lease (empty holder), so another instance takes over
//!   within one retry period instead of waiting out the lease.
//!
//! Why not a crate: kube-lease-manager 0.13 (the one that supports kube 5) keeps reporting
//! leadership while it cannot reach the API server (its watch loop only logs renew errors),
//! which would allow two writers during a partition; kube-leader-election does not support
//! kube 5. The algorithm is small; its tests run against the Kubernetes API test server.
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, Error as KubeClientError};
use tokio::sync::watch;

use crate::controller::role::Fence;

/// Election timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease is valid after its last renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// The leader stops writing when it has not renewed for this long (< lease_duration).
    pub renew_deadline: Duration,
    /// Attempts to acquire or renew happen this often.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timing {
    /// Checks the relations the safety argument needs.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_period.is_zero() || self.lease_duration.as_secs() == 0 {
            return Err(
                "lease duration and retry period must be positive (whole seconds for the lease)"
                    .into(),
            );
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "retry period ({:?}) must be shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }
}

/// What the elector last saw of someone else's record, and when.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew: Option<String>,
    resource_version: Option<String>,
    duration: Duration,
    at: Instant,
}

/// One candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Option<Observed>,
    /// When the last successful acquire / renew request was sent.
    last_renew: Option<Instant>,
    /// The Lease as our last successful write left it (its resourceVersion included): the
    /// next renewal writes on top of it without reading it first.
    held: Option<Lease>,
    fence: Fence,
    leader: watch::Sender<bool>,
}

/// The outcome of one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Leader,
    Follower,
    /// The API server could not be asked (unreachable, error): nothing learnt.
    Unknown,
}

fn micro_now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
        fence: Fence,
    ) -> (Self, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (
            Elector {
                api: Api::namespaced(client, namespace),
                name: name.to_owned(),
                identity: identity.to_owned(),
                timing,
                observed: None,
                last_renew: None,
                held: None,
                fence,
                leader: tx,
            },
            rx,
        )
    }

    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    fn set_leader(&self, leader: bool) {
        if self.is_leader() != leader {
            tracing::info!(identity = %self.identity, lease = %self.name, leader, "leadership changed");
        }
        self.leader.send_if_modified(|l| {
            let changed = *l != leader;
            *l = leader;
            changed
        });
    }

    /// Tries once to become or stay the leader.
    async fn attempt(&mut self) -> Attempt {
        let sent = Instant::now();
        if let Some(held) = self.held.take()
            && let Some(done) = self.renew(held, sent).await
        {
            return done;
        }
        let current = match self.api.get_opt(&self.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "lease read failed");
                return Attempt::Unknown;
            }
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.claim(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(l) => {
                    self.last_renew = Some(sent);
                    self.held = Some(l);
                    Attempt::Leader
                }
                Err(KubeClientError::Api(s)) if s.code == 409 => Attempt::Follower,
                Err(e) => {
                    tracing::debug!(error = %e, "lease create failed");
                    Attempt::Unknown
                }
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.identity.as_str());
        if !ours && holder.is_some() && !self.expired(&lease) {
            return Attempt::Follower;
        }
        let previous = if ours { Some(&spec) } else { None };
        lease.spec = Some(self.claim_from(&spec, previous.is_some()));
        // The resourceVersion read above makes this update conditional: if anyone wrote the
        // Lease since, it fails with 409 and we stay a follower.
        self.write(&lease, sent).await.unwrap_or(Attempt::Follower)
    }

    /// Renews the Lease as our last write left it, in one request: the update carries that
    /// write's resourceVersion, so it fails with 409 when anyone wrote the Lease since (the
    /// same guarantee as reading it first, at half the requests every `retry_period`).
    /// `None` on that conflict: the caller reads the Lease and decides from what it holds.
    async fn renew(&mut self, mut lease: Lease, sent: Instant) -> Option<Attempt> {
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return None;
        }
        lease.spec = Some(self.claim_from(&spec, true));
        self.write(&lease, sent).await
    }

    /// Replaces the Lease with `lease`, conditional on its resourceVersion: `Leader` when
    /// written, `None` on a conflict (someone wrote it since), `Unknown` when the API server
    /// could not be asked.
    async fn write(&mut self, lease: &Lease, sent: Instant) -> Option<Attempt> {
        match self
            .api
            .replace(&self.name, &PostParams::default(), lease)
            .await
        {
            Ok(l) => {
                self.last_renew = Some(sent);
                self.held = Some(l);
                Some(Attempt::Leader)
            }
            Err(KubeClientError::Api(s)) if s.code == 409 => None,
            Err(e) => {
                tracing::debug!(error = %e, "lease update failed");
                Some(Attempt::Unknown)
            }
        }
    }

    /// A fresh claim on the Lease.
    fn claim(&self, transitions: Option<i32>) -> LeaseSpec {
        let now = micro_now();
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_duration.as_secs() as i32),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: transitions,
            ..LeaseSpec::default()
        }
    }

    /// A renewal (when `ours`) or a takeover of an existing Lease.
    fn claim_from(&self, old: &LeaseSpec, ours: bool) -> LeaseSpec {
        if ours {
            LeaseSpec {
                renew_time: Some(micro_now()),
                lease_duration_seconds: Some(self.timing.lease_duration.as_secs() as i32),
                ..old.clone()
            }
        } else {
            self.claim(Some(old.lease_transitions.unwrap_or(0) + 1))
        }
    }

    /// Whether another holder's Lease has gone unrenewed for its duration, by our clock.
    fn expired(&mut self, lease: &Lease) -> bool {
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Observed {
            holder: spec.holder_identity.clone(),
            renew: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            resource_version: lease.metadata.resource_version.clone(),
            duration: Duration::from_secs(
                spec.lease_duration_seconds
                    .unwrap_or(self.timing.lease_duration.as_secs() as i32)
                    .max(1) as u64,
            ),
            at: Instant::now(),
        };
        let same = self.observed.as_ref().is_some_and(|o| {
            o.holder == record.holder
                && o.renew == record.renew
                && o.resource_version == record.resource_version
        });
        if !same {
            self.observed = Some(record);
            return false;
        }
        self.observed
            .as_ref()
            .is_some_and(|o| o.at.elapsed() >= o.duration)
    }

    /// Runs until `stop` says so; then releases the Lease if held.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            match self.attempt().await {
                Attempt::Leader => {
                    if let Some(t) = self.last_renew {
                        // Writes may go on until the renew deadline counted from when this
                        // renewal was *sent*: the Lease may have been written at any moment
                        // after that.
                        self.fence.extend(t + self.timing.renew_deadline);
                    }
                    self.set_leader(true);
                }
                Attempt::Follower => {
                    self.fence.close();
                    self.set_leader(false);
                }
                Attempt::Unknown => {}
            }
            if self.is_leader()
                && self
                    .last_renew
                    .is_none_or(|t| t.elapsed() >= self.timing.renew_deadline)
            {
                tracing::warn!(identity = %self.identity, "could not renew the lease in time; stepping down");
                self.fence.close();
                self.set_leader(false);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.retry_period) => {}
                _ = stop.changed() => {}
            }
        }
        self.fence.close();
        if self.is_leader() {
            self.release().await;
        }
        self.set_leader(false);
    }

    /// Gives the Lease up so another instance can take over at once.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(micro_now()),
            ..spec
        });
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "lease released"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release the lease; it expires on its own")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_must_leave_a_margin() {
        assert!(Timing::default().check().is_ok());
        let bad = Timing {
            renew_deadline: Duration::from_secs(15),
            ..Timing::default()
        };
        assert!(bad.check().unwrap_err().contains("renew deadline"));
        let bad = Timing {
            retry_period: Duration::from_secs(10),
            ..Timing::default()
        };
        assert!(bad.check().unwrap_err().contains("retry period"));
    }
}
