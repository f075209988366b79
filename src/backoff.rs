//! Exponential backoff with jitter: the one retry schedule of the Kubernetes watches, the
//! status writer and the OVSDB client's reconnects. The delay doubles per failed attempt
//! from `min` up to `max`; jitter takes up to `jitter` of it off (never adds), so many
//! instances retrying after one outage spread out instead of arriving together.
//!
//! Owns: the schedule. Must not: sleep or know what is retried.
use std::time::Duration;

/// A retry schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    /// Fraction of the delay that jitter may take off (0 = none, 0.5 = up to half).
    pub jitter: f64,
}

impl Backoff {
    pub const fn new(min: Duration, max: Duration, jitter: f64) -> Backoff {
        Backoff { min, max, jitter }
    }

    /// The delay before attempt `n + 1` after `n` failures (`n` >= 1), without jitter:
    /// `min`, doubled per further failure, at most `max`.
    pub fn base(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.min.saturating_mul(1u32 << exp).min(self.max)
    }

    /// The delay after `failures` failures, with jitter; zero after none.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let cut = rand::random::<f64>() * self.jitter.clamp(0.0, 1.0);
        self.base(failures).mul_f64(1.0 - cut)
    }

    /// The delays of consecutive failures, as an iterator (restarted by [`Retry::reset`]).
    pub fn retries(self) -> Retry {
        Retry {
            schedule: self,
            failures: 0,
        }
    }
}

/// Consecutive failures counted against a [`Backoff`].
#[derive(Clone, Debug)]
pub struct Retry {
    schedule: Backoff,
    failures: u32,
}

impl Retry {
    /// A success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

impl Iterator for Retry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        Some(self.schedule.delay(self.failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_min_to_max_and_jitter_only_shortens() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500), 0.5);
        let base: Vec<u128> = (1..=5).map(|n| b.base(n).as_millis()).collect();
        assert_eq!(base, [100, 200, 400, 500, 500]);
        assert_eq!(b.delay(0), Duration::ZERO);
        for n in 1..=40 {
            let d = b.delay(n);
            assert!(d <= b.base(n) && d >= b.base(n) / 2, "{n}: {d:?}");
        }
        let mut r = b.retries();
        assert!(r.next().unwrap() <= Duration::from_millis(100));
        assert!(r.next().unwrap() > Duration::from_millis(99));
        r.reset();
        assert!(r.next().unwrap() <= Duration::from_millis(100));
    }
}
