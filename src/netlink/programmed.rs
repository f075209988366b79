//! What a pod's table holds after a clean pass of ours, and the change of its planned routes
//! applied from that knowledge alone: no dump, no link lookup, no state file, work only for
//! the routes that changed.
//!
//! Why this is safe: the knowledge is kept only while the pod is watched (every route, link
//! and address change inside the pod that we did not make marks the pod, see
//! [`super::watch`]), and only after a pass that failed nothing and left every foreign route
//! as it was (no default route taken over or given back). A marked pod, a pod whose netns
//! moved, or a pass that failed drops it, and the next pass dumps the table again. A change
//! that needs anything not known here (a dev never looked up, a default route, a route that
//! cannot be a kernel route) is not applied here at all ([`Programmed::change_to`] says
//! None) and goes through the full pass. A write the kernel refuses (someone added a route
//! in the way and its notification is still on its way to us) sends the pod through the
//! full pass at once.
//!
//! Must not: do I/O; answer anything but None when in doubt.
use std::net::IpAddr;
use std::sync::Arc;

use super::diff::{Resolved, Skip, resolve};
use super::kernel::{KernelRoute, Links};
use crate::plan::pod::{PodRoute, PodRoutes};

/// A pod's table as our last clean pass left it (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programmed {
    /// The planned routes that pass put in place.
    pub routes: Arc<PodRoutes>,
    /// Every dev the pass looked up: its index, None when missing.
    pub links: Vec<(String, Option<u32>)>,
    /// The dev gateway of every (index, IPv6?) of the found links.
    pub gateways: Vec<(u32, bool, Option<IpAddr>)>,
    /// Planned routes not installed for want of their dev.
    pub skips: Vec<Skip>,
}

/// The writes one change of a pod's planned routes needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Our routes to delete.
    pub deletes: Vec<KernelRoute>,
    /// Routes to add (`false`) or replace in place (`true`).
    pub writes: Vec<(KernelRoute, bool)>,
    /// The planned routes skipped after the change (their dev is missing).
    pub skips: Vec<Skip>,
    /// Planned routes already in place.
    pub unchanged: usize,
}

/// The part of a planned route the kernel sees (the owning Route is not part of it).
fn same_kernel_route(a: &PodRoute, b: &PodRoute) -> bool {
    a.dst == b.dst && a.dev == b.dev && a.next_hop == b.next_hop
}

fn strictly_sorted(r: &[PodRoute]) -> bool {
    r.windows(2).all(|w| w[0].dst < w[1].dst)
}

impl Programmed {
    /// Builds the knowledge of a clean pass: what it put in place, the links it looked up
    /// (`names`, found ones in `links`), the dev gateways of those links.
    pub fn new(
        routes: Arc<PodRoutes>,
        names: &[&str],
        links: &Links,
        gateway: impl Fn(&str, u32, bool) -> Option<IpAddr>,
        skips: Vec<Skip>,
    ) -> Programmed {
        let links: Vec<(String, Option<u32>)> = names
            .iter()
            .map(|n| ((*n).to_owned(), links.get(*n).copied()))
            .collect();
        let gateways = links
            .iter()
            .filter_map(|(n, i)| i.map(|i| (n, i)))
            .flat_map(|(n, i)| [false, true].map(|v6| (i, v6, gateway(n, i, v6))))
            .collect();
        Programmed {
            routes,
            links,
            gateways,
            skips,
        }
    }

    fn resolve(&self, r: &PodRoute, protocol: u8) -> Resolved {
        let link = self
            .links
            .iter()
            .find(|(n, _)| **n == *r.dev)
            .map(|(_, i)| *i);
        let gateway = |oif: u32, v6: bool| {
            self.gateways
                .iter()
                .find(|(i, f, _)| *i == oif && *f == v6)
                .map(|(_, _, g)| *g)
        };
        resolve(r.dst, &r.next_hop, protocol, link, gateway)
    }

    /// The writes that turn this pod's table into the one `new` plans, or None when this
    /// knowledge is not enough to say (the full pass then decides). Walks both route lists
    /// (sorted by destination, as the planner gives them) once; resolves only the routes
    /// that differ.
    pub fn change_to(&self, new: &PodRoutes, protocol: u8) -> Option<Change> {
        let old = &*self.routes;
        if old.default_routes != new.default_routes
            || !strictly_sorted(&old.routes)
            || !strictly_sorted(&new.routes)
        {
            return None;
        }
        let mut change = Change {
            skips: self.skips.clone(),
            ..Change::default()
        };
        let (mut i, mut j) = (0, 0);
        while i < old.routes.len() || j < new.routes.len() {
            let (o, n) = (old.routes.get(i), new.routes.get(j));
            match (o, n) {
                (Some(o), Some(n)) if o.dst == n.dst => {
                    i += 1;
                    j += 1;
                    if !same_kernel_route(o, n) {
                        self.swap(o, n, protocol, &mut change)?;
                    }
                }
                (Some(o), Some(n)) if o.dst < n.dst => {
                    i += 1;
                    self.gone(o, protocol, &mut change)?;
                }
                (Some(o), None) => {
                    i += 1;
                    self.gone(o, protocol, &mut change)?;
                }
                (_, Some(n)) => {
                    j += 1;
                    self.added(n, protocol, &mut change)?;
                }
                (None, None) => break,
            }
        }
        let wanted = new.routes.len() + new.default_routes.len();
        change.unchanged = wanted.checked_sub(change.skips.len() + change.writes.len())?;
        Some(change)
    }

    fn unskip(change: &mut Change, r: &PodRoute) -> Option<()> {
        let at = change.skips.iter().position(|s| s.dst == r.dst)?;
        change.skips.remove(at);
        Some(())
    }

    /// A planned route that is no longer planned.
    fn gone(&self, o: &PodRoute, protocol: u8, change: &mut Change) -> Option<()> {
        match self.resolve(o, protocol) {
            Resolved::Route(k) => change.deletes.push(k),
            Resolved::Skip => Self::unskip(change, o)?,
            Resolved::Invalid(_) | Resolved::Unknown => return None,
        }
        Some(())
    }

    /// A newly planned route.
    fn added(&self, n: &PodRoute, protocol: u8, change: &mut Change) -> Option<()> {
        match self.resolve(n, protocol) {
            // Added exclusively: a foreign route in the way fails the write (EEXIST), and
            // the full pass reports the conflict.
            Resolved::Route(k) if k.dst == n.dst => change.writes.push((k, false)),
            Resolved::Skip => change.skips.push(Skip {
                dst: n.dst,
                dev: n.dev.to_string(),
            }),
            // A destination with host bits set is left to the full diff's rules.
            Resolved::Route(_) | Resolved::Invalid(_) | Resolved::Unknown => return None,
        }
        Some(())
    }

    /// The same destination planned differently.
    fn swap(&self, o: &PodRoute, n: &PodRoute, protocol: u8, change: &mut Change) -> Option<()> {
        match (self.resolve(o, protocol), self.resolve(n, protocol)) {
            (Resolved::Route(a), Resolved::Route(b)) if a == b => {}
            // Ours is at that destination and metric: replaced in place, no gap.
            (Resolved::Route(_), Resolved::Route(b)) if b.dst == n.dst => {
                change.writes.push((b, true))
            }
            (Resolved::Route(a), Resolved::Skip) => {
                change.deletes.push(a);
                change.skips.push(Skip {
                    dst: n.dst,
                    dev: n.dev.to_string(),
                });
            }
            (Resolved::Skip, Resolved::Route(b)) if b.dst == n.dst => {
                Self::unskip(change, o)?;
                change.writes.push((b, false));
            }
            (Resolved::Skip, Resolved::Skip) => {
                Self::unskip(change, o)?;
                change.skips.push(Skip {
                    dst: n.dst,
                    dev: n.dev.to_string(),
                });
            }
            _ => return None,
        }
        Some(())
    }

    /// The knowledge after `change` was applied without a failure.
    pub fn advance(self, routes: Arc<PodRoutes>, change: Change) -> Programmed {
        Programmed {
            routes,
            skips: change.skips,
            ..self
        }
    }
}
