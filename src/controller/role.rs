//! What this instance may write, and until when.
//!
//! Owns: [`Role`] (which writes are this instance's job now) and [`Fence`] (a deadline past
//! which NB writes stop even if nobody has said so yet: a leader that cannot renew its Lease
//! must stop writing before another instance may take over). Must not: elect anybody; the
//! Kubernetes Lease elector drives both.
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Which writes are this instance's job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    /// Write the NB rows (`ic`: always, each node its own NB; `central`: the leader only).
    pub write_nb: bool,
    /// Aggregate the nodes' reports into Route status (the leader only).
    pub write_status: bool,
}

impl Role {
    /// File mode and single-writer set-ups: everything.
    pub const ALL: Role = Role {
        write_nb: true,
        write_status: true,
    };
}

#[derive(Debug)]
enum Limit {
    Always,
    Until(Option<Instant>),
}

/// A write permit with a deadline, shared between the elector (which extends it after each
/// successful renewal) and the writers (which check it right before each write).
#[derive(Clone, Debug)]
pub struct Fence(Arc<Mutex<Limit>>);

impl Fence {
    /// Writes are always allowed (no election: file mode, `ic` mode's own NB).
    pub fn always() -> Self {
        Fence(Arc::new(Mutex::new(Limit::Always)))
    }

    /// Writes are allowed only until a deadline the elector sets; none yet.
    pub fn closed() -> Self {
        Fence(Arc::new(Mutex::new(Limit::Until(None))))
    }

    /// Allow writes until `deadline`.
    pub fn extend(&self, deadline: Instant) {
        if let Ok(mut l) = self.0.lock()
            && let Limit::Until(d) = &mut *l
        {
            *d = Some(deadline);
        }
    }

    /// Stop writes now.
    pub fn close(&self) {
        if let Ok(mut l) = self.0.lock()
            && let Limit::Until(d) = &mut *l
        {
            *d = None;
        }
    }

    /// Whether a write may start now.
    pub fn may_write(&self) -> bool {
        match self.0.lock() {
            Ok(l) => match &*l {
                Limit::Always => true,
                Limit::Until(d) => d.is_some_and(|d| Instant::now() < d),
            },
            // A poisoned lock means a writer panicked mid-update: do not write.
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_fence_opens_until_its_deadline_and_closes() {
        assert!(Fence::always().may_write());
        let f = Fence::closed();
        assert!(!f.may_write());
        f.extend(Instant::now() + Duration::from_secs(60));
        assert!(f.may_write());
        f.extend(Instant::now() - Duration::from_millis(1));
        assert!(!f.may_write(), "past the deadline");
        f.extend(Instant::now() + Duration::from_secs(60));
        f.close();
        assert!(!f.may_write());
        let a = Fence::always();
        a.close();
        assert!(a.may_write(), "an unconditional fence ignores close");
    }
}
