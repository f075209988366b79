//! Learning a Raft cluster's leadership from the other members' `_Server` databases.
//!
//! A hung leader (SIGSTOP, a stalled disk) keeps its TCP connections open and answers
//! nothing: the echo probe notices only after two probe intervals (10 s by default), and
//! shortening the probe would drop a busy but healthy leader. The other members know
//! sooner: they elect a new leader (about 1-3 s on 127.0.0.1) and their `_Server`
//! `Database` row says `leader=true`. A client in leader-only mode therefore keeps one
//! light connection per other member (its `_Server` monitor only) and moves to a member as
//! soon as that member *becomes* leader while the client is connected elsewhere. Only a
//! transition counts, so a stale flag of a hung member is never followed; a leader that is
//! merely slow is never left, since no other member claims leadership.
//!
//! Owns the peer connections; must not send anything but `_Server` monitoring on them.
use futures::future::select_all;
use tokio::sync::watch;

use super::client::{Client, ClientConfig, ConnState};
use super::transport::Endpoint;

/// One light client per member of the cluster.
pub(crate) struct Peers {
    members: Vec<(Endpoint, Client, watch::Receiver<ConnState>)>,
    /// The leader flag last seen per member (transitions are what count).
    last: Vec<bool>,
}

impl Peers {
    /// Peer clients for every remote of `config` (the current one is ignored when it is
    /// compared). `None` when there is no other member to learn from.
    pub fn start(config: &ClientConfig) -> Option<Peers> {
        if config.remotes.len() < 2 || !config.leader_only {
            return None;
        }
        let mut members = Vec::new();
        for remote in &config.remotes {
            let mut c = config.clone();
            c.remotes = vec![remote.clone()];
            c.leader_only = false;
            c.peers = false;
            match Client::start(c) {
                Ok(client) => {
                    let rx = client.state_changes();
                    members.push((remote.clone(), client, rx));
                }
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "no leadership watch on this member")
                }
            }
        }
        let last = vec![false; members.len()];
        Some(Peers { members, last })
    }

    /// Takes the members' current flags as the baseline: only a later change to
    /// `leader=true` makes [`Peers::new_leader`] return.
    pub fn baseline(&mut self) {
        for (i, (_, _, rx)) in self.members.iter_mut().enumerate() {
            let s = rx.borrow_and_update();
            self.last[i] = s.connected && s.leader == Some(true);
        }
    }

    /// Resolves with a member other than `current` that has just become the leader.
    /// Cancel-safe: a change is consumed only in the poll that handles it.
    pub async fn new_leader(&mut self, current: &Endpoint) -> Endpoint {
        loop {
            if self.members.is_empty() {
                return std::future::pending().await;
            }
            let changes = self
                .members
                .iter_mut()
                .map(|(_, _, rx)| Box::pin(rx.changed()));
            let (result, i, _) = select_all(changes).await;
            if result.is_err() {
                // That member's client stopped: forget it.
                self.members.remove(i);
                self.last.remove(i);
                continue;
            }
            let (endpoint, _, rx) = &mut self.members[i];
            let s = rx.borrow_and_update();
            let leader = s.connected && s.leader == Some(true);
            let became = leader && !self.last[i];
            self.last[i] = leader;
            if became && endpoint != current {
                return endpoint.clone();
            }
        }
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for (_, client, _) in &self.members {
            client.close();
        }
    }
}
