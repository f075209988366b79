//! The latency figures of a round, each sample timed from the moment its cause is complete
//! (the file renamed into place, the API call answered, the route deleted) to the arrival
//! of the last notification it needed (or the NB replica showing the change).
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use ovnkube_route::nb::observed::POLICY;
use ovnkube_route::plan::nb::{ID_KEY, NAME_KEY};

use super::OURS;
use super::probe::Ev;
use super::rounds::{Round, Source, address_set, heard, policy_dsts, until};
use super::sandbox::{EDITED, Pod, ROUTES, RULES, rule_dst, selected};

/// Where a wait stops looking.
const LIMIT: Duration = Duration::from_secs(60);

impl Round<'_> {
    /// Rule 0 of the edited Route moves: one route changes in every other pod, one policy
    /// in the NB.
    pub(super) async fn edit(&mut self, variant: usize) {
        let (old, new) = (
            rule_dst(EDITED, 0, self.variants[EDITED]),
            rule_dst(EDITED, 0, variant),
        );
        let affected: Vec<usize> = (0..self.sb.pods.len())
            .filter(|i| self.labels[*i].contains(&EDITED))
            .collect();
        self.variants[EDITED] = variant;
        let want_nb = self.policies_of(EDITED);
        // Per affected pod: the new route added, the old one deleted.
        let mut left: HashMap<usize, u8> = affected.iter().map(|p| (*p, 2)).collect();
        let mut pending = left.len();
        self.listener.drain();
        let t = Instant::now();
        match self.source {
            Source::File => self.sb.write_route(EDITED, variant),
            Source::Kubernetes => self.cluster.as_ref().unwrap().edit_route(EDITED, variant),
        }
        let nb = &self.nb;
        let (heard, nb_at) = tokio::join!(
            self.listener.until(LIMIT, |ev: &Ev| {
                let hit = ev.protocol == OURS
                    && ((ev.added && ev.dst == new) || (!ev.added && ev.dst == old));
                if hit
                    && let Some(c) = left.get_mut(&ev.pod)
                    && *c > 0
                {
                    *c -= 1;
                    if *c == 0 {
                        pending -= 1;
                    }
                }
                pending == 0
            }),
            until("edit: NB", LIMIT, async || policy_dsts(nb, EDITED)
                == want_nb)
        );
        let pods_at = self.or_dumps(heard, &affected).await;
        self.f.edit.push(pods_at.max(nb_at) - t);
        self.f.edit_nb.push(nb_at - t);
        let spot: Vec<usize> = affected
            .iter()
            .step_by((affected.len() / 3).max(1))
            .copied()
            .collect();
        self.check(&spot).await;
    }

    /// A pod gains the label of a Route it did not have (45 routes and an address set
    /// entry), and loses it again on the next sample.
    pub(super) async fn relabel(&mut self, s: usize) {
        let p = (s / 2 * 37) % self.base;
        let pod = self.sb.pods[p].clone();
        let extra = (1..ROUTES).find(|j| !selected(p).contains(j)).unwrap();
        let on = s.is_multiple_of(2);
        if on {
            self.labels[p].push(extra);
        } else {
            self.labels[p].retain(|j| *j != extra);
        }
        let count = if on { RULES as i64 } else { -(RULES as i64) };
        self.listener.drain();
        let t = Instant::now();
        match self.source {
            Source::File => self.write_world(),
            Source::Kubernetes => self.cluster.as_ref().unwrap().label(&pod, extra, on),
        }
        let nb = &self.nb;
        let (heard, nb_at) = tokio::join!(
            heard(self.listener, HashMap::from([(p, count)])),
            until("label: NB", LIMIT, async || address_set(nb, extra)
                .contains(&pod.ovn_ip)
                == on)
        );
        let pod_at = self.or_dumps(heard, &[p]).await;
        self.f.label.push(pod_at.max(nb_at) - t);
        self.check(&[p]).await;
    }

    /// The world file as this round's labels say (file source).
    fn write_world(&self) {
        let pods: Vec<&Pod> = self.sb.pods.iter().collect();
        let labels = &self.labels;
        self.sb.write_world(&pods, |i| labels[i].clone());
    }

    /// A new pod: its namespace, and its object (Running, annotated), in either order;
    /// timed from the later of the two (the CNI cache file is what says the namespace is
    /// there).
    pub(super) async fn new_pod(&mut self, s: usize) {
        let p = self.sb.add_pod().await;
        self.tables.open(&[(p.i, self.sb.netns_path(&p))]);
        self.listener.hear(&self.sb.nsids(&[&p]));
        self.labels.push(selected(p.i));
        let count = self.want(p.i).len() as i64;
        let netns_first = s.is_multiple_of(2);
        self.listener.drain();
        let t = match self.source {
            Source::File => {
                self.uids.push(p.file_uid());
                if netns_first {
                    self.sb.cni_file(&p, &p.file_uid());
                    self.write_world();
                } else {
                    self.write_world();
                    self.sb.cni_file(&p, &p.file_uid());
                }
                Instant::now()
            }
            Source::Kubernetes => {
                let c = self.cluster.as_ref().unwrap();
                let stored = c.create_pod(&p, &selected(p.i));
                let uid = stored["metadata"]["uid"].as_str().unwrap().to_owned();
                if netns_first {
                    self.sb.cni_file(&p, &uid);
                    c.run_pod(&p, &stored);
                } else {
                    c.run_pod(&p, &stored);
                    self.sb.cni_file(&p, &uid);
                }
                self.uids.push(uid);
                Instant::now()
            }
        };
        let (j, ip) = (selected(p.i)[0], p.ovn_ip.clone());
        let nb = &self.nb;
        let (heard, nb_at) = tokio::join!(
            heard(self.listener, HashMap::from([(p.i, count)])),
            until("new pod: NB", LIMIT, async || address_set(nb, j)
                .contains(&ip))
        );
        let pod_at = self.or_dumps(heard, &[p.i]).await;
        // Done before both causes were (the agent may program a Pending pod whose
        // namespace it knows): no wait at all.
        self.f
            .new_pod
            .push(pod_at.max(nb_at).saturating_duration_since(t));
        self.check(&[p.i]).await;
    }

    /// One of our routes deleted by hand: from the kernel's notification of the deletion to
    /// the one of the route's return.
    pub(super) async fn pod_drift(&mut self, s: usize) {
        let p = (s * 53) % self.base;
        let dst = rule_dst(self.labels[p][0], 1, 0);
        self.listener.drain();
        assert!(
            self.tables.delete(p, &dst).await,
            "no route {dst} in pod {p}"
        );
        let mut gone = None;
        let back = self
            .listener
            .until(LIMIT, |ev: &Ev| {
                if ev.pod != p || ev.dst != dst {
                    return false;
                }
                if !ev.added {
                    gone = Some(ev.at);
                }
                ev.added && ev.protocol == OURS && gone.is_some()
            })
            .await;
        match (gone, back) {
            (Some(g), Some(b)) => self.f.pod_drift.push(b - g),
            _ => {
                let t = Instant::now();
                let at = self.or_dumps(None, &[p]).await;
                self.f.pod_drift.push(at - t);
            }
        }
    }

    /// A policy of ours deleted with `ovn-nbctl`: from its exit to the replica showing our
    /// row again.
    pub(super) async fn nb_drift(&mut self, s: usize) {
        let j = (s * 11) % ROUTES;
        let row = self
            .nb
            .snapshot()
            .find_by_external_id(POLICY, NAME_KEY, &format!("r{j}"))[0]
            .clone();
        let (old, id) = (row.uuid(), row.external_id(ID_KEY).unwrap().to_owned());
        let db = format!("--db=unix:{}", self.sb.nb.sock.display());
        let out = Command::new("ovn-nbctl")
            .args([
                db.as_str(),
                "lr-policy-del",
                "ovn_cluster_router",
                &old.to_string(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let t = Instant::now();
        let nb = &self.nb;
        let done = until("NB row back", LIMIT, async || {
            nb.snapshot()
                .find_by_external_id(POLICY, ID_KEY, &id)
                .iter()
                .any(|r| r.uuid() != old)
        })
        .await;
        self.f.nb_drift.push(done - t);
        assert_eq!(policy_dsts(&self.nb, j), self.policies_of(j));
    }
}
