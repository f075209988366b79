//! Destination -> Routes sharing it: who claims each (router, destination) slot, in
//! precedence order. A Route's policy rank and static route ownership are read from its
//! slots alone, so only Routes sharing a slot with a changed Route are planned again.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::plan::Precedence;
use crate::plan::ovn::{ClaimKind, Slot, Slots};

/// The claimants of one slot, sorted by precedence. Most slots have one (a destination
/// of one Route): a vector grown one at a time costs that one claim, a map node eleven.
type Claimants = Vec<(Precedence, ClaimKind)>;

#[derive(Clone, Debug, Default)]
pub(super) struct SlotIndex {
    slots: BTreeMap<Slot, Claimants>,
}

impl SlotIndex {
    pub(super) fn add(&mut self, prec: &Precedence, claims: &[(Slot, ClaimKind)]) {
        for (slot, kind) in claims {
            let c = self.slots.entry(slot.clone()).or_default();
            match c.binary_search_by(|(p, _)| p.cmp(prec)) {
                Ok(i) => c[i].1 = kind.clone(),
                Err(i) => {
                    c.reserve_exact(1);
                    c.insert(i, (prec.clone(), kind.clone()));
                }
            }
        }
    }

    pub(super) fn remove(&mut self, prec: &Precedence, claims: &[(Slot, ClaimKind)]) {
        for (slot, _) in claims {
            if let Some(c) = self.slots.get_mut(slot) {
                if let Ok(i) = c.binary_search_by(|(p, _)| p.cmp(prec)) {
                    c.remove(i);
                    c.shrink_to_fit();
                }
                if c.is_empty() {
                    self.slots.remove(slot);
                }
            }
        }
    }

    /// Names of the Routes claiming any of `slots`.
    pub(super) fn sharing<'a>(
        &self,
        slots: impl IntoIterator<Item = &'a Slot>,
        out: &mut BTreeSet<String>,
    ) {
        for s in slots {
            if let Some(c) = self.slots.get(s) {
                out.extend(c.iter().map(|(p, _)| p.name.to_string()));
            }
        }
    }
}

impl Slots for SlotIndex {
    fn policy_rank(&self, slot: &Slot, me: &Precedence) -> usize {
        self.slots.get(slot).map_or(0, |c| {
            let before = c.partition_point(|(p, _)| p < me);
            c[..before]
                .iter()
                .filter(|(_, k)| *k == ClaimKind::Policy)
                .count()
        })
    }

    fn static_owner(&self, slot: &Slot, _me: &Precedence) -> Option<(&str, &BTreeSet<IpAddr>)> {
        self.slots.get(slot)?.iter().find_map(|(p, k)| match k {
            ClaimKind::Static(hops) => Some((&*p.name, hops)),
            ClaimKind::Policy => None,
        })
    }
}
