//! Retry and backoff, once for every service: exponential pauses between attempts, capped, built
//! on [`backon`].
//!
//! - [`RetryPolicy`] is the shape (first pause, cap, how many attempts); [`RetryPolicy::builder`]
//!   hands it to backon's `Retryable` for a plain "retry this call" loop.
//! - [`Backoff`] is one sequence of pauses for loops that backon's combinators do not fit (a
//!   watch that resumes, and starts over once it works again).
//! - [`Backoffs`] keeps one sequence per object, for a controller's `error_policy`.

use std::collections::HashMap;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use parking_lot::Mutex;

/// Exponential backoff: `first`, then doubling up to `max`, for at most `max_attempts` retries
/// (unbounded when `None`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
    pub max_attempts: Option<usize>,
    /// Adds a random part (up to the pause itself) to each pause, so that many clients cut off
    /// by the same event do not all come back at the same instant.
    pub jitter: bool,
}

impl RetryPolicy {
    /// Doubling pauses from `first` up to `max`, for ever, without jitter.
    pub const fn exponential(first: Duration, max: Duration) -> RetryPolicy {
        RetryPolicy {
            first,
            max,
            max_attempts: None,
            jitter: false,
        }
    }

    /// The same policy, giving up after `attempts` retries.
    pub const fn with_max_attempts(mut self, attempts: usize) -> RetryPolicy {
        self.max_attempts = Some(attempts);
        self
    }

    /// The same policy with jitter.
    pub const fn with_jitter(mut self) -> RetryPolicy {
        self.jitter = true;
        self
    }

    /// backon's builder for this policy, for `Retryable::retry`.
    pub fn builder(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .with_factor(2.0);
        let builder = match self.max_attempts {
            Some(attempts) => builder.with_max_times(attempts),
            None => builder.without_max_times(),
        };
        if self.jitter {
            builder.with_jitter()
        } else {
            builder
        }
    }

    /// A fresh sequence of pauses.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            pauses: None,
        }
    }
}

/// One sequence of pauses under a [`RetryPolicy`].
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    /// Made at the first failure, so that [`Backoff::reset`] after every success costs nothing.
    pauses: Option<ExponentialBackoff>,
}

impl Backoff {
    /// The pause before the next attempt, or `None` once the policy's attempts are used up.
    pub fn next_pause(&mut self) -> Option<Duration> {
        let policy = &self.policy;
        self.pauses
            .get_or_insert_with(|| policy.builder().build())
            .next()
    }

    /// Starts over from the first pause: after a success.
    pub fn reset(&mut self) {
        self.pauses = None;
    }
}

/// Consecutive failures per key (such as an object's `namespace/name`), each with its own
/// [`Backoff`]. Keys are forgotten on success or deletion, so memory follows the failing objects.
#[derive(Debug)]
pub struct Backoffs {
    policy: RetryPolicy,
    failing: Mutex<HashMap<String, Backoff>>,
}

impl Backoffs {
    /// `policy` must not limit attempts: a controller keeps retrying (at the cap) for as long
    /// as the object exists. A limit is ignored.
    pub fn new(policy: RetryPolicy) -> Backoffs {
        Backoffs {
            policy: RetryPolicy {
                max_attempts: None,
                ..policy
            },
            failing: Mutex::default(),
        }
    }

    /// Counts one more failure of `key`; returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failing = self.failing.lock();
        let backoff = failing
            .entry(key.to_owned())
            .or_insert_with(|| self.policy.backoff());
        // Without an attempt limit the sequence never ends; the cap is the safe answer anyway.
        backoff.next_pause().unwrap_or(self.policy.max)
    }

    /// Forgets `key`'s failures: after a success, or once the object is gone.
    pub fn forget(&self, key: &str) {
        self.failing.lock().remove(key);
    }

    /// How many keys have failures on record.
    pub fn len(&self) -> usize {
        self.failing.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy =
        RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(1));

    /// backon computes pauses in f32 seconds: compare them to the millisecond.
    fn millis(pause: Duration) -> u64 {
        (pause.as_secs_f64() * 1000.0).round() as u64
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let mut backoff = POLICY.backoff();
        let pauses: Vec<_> = std::iter::from_fn(|| backoff.next_pause())
            .take(7)
            .map(millis)
            .collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn attempts_run_out_and_reset_starts_over() {
        let mut backoff = POLICY.with_max_attempts(2).backoff();
        assert_eq!(backoff.next_pause().map(millis), Some(100));
        assert_eq!(backoff.next_pause().map(millis), Some(200));
        assert_eq!(backoff.next_pause(), None);
        backoff.reset();
        assert_eq!(backoff.next_pause().map(millis), Some(100));
    }

    #[test]
    fn jitter_stays_between_the_pause_and_twice_it() {
        let mut backoff = POLICY.with_jitter().backoff();
        for base in [100, 200, 400, 800] {
            let pause = backoff.next_pause().expect("unbounded");
            let pause = millis(pause);
            assert!(
                pause >= base && pause <= 2 * base,
                "{pause} ms for {base} ms"
            );
        }
    }

    #[test]
    fn per_key_failures_back_off_independently_and_are_forgotten() {
        let backoffs = Backoffs::new(POLICY.with_max_attempts(1));
        assert_eq!(millis(backoffs.failed("ns/a")), 100);
        assert_eq!(millis(backoffs.failed("ns/a")), 200);
        assert_eq!(millis(backoffs.failed("ns/b")), 100);
        for _ in 0..10 {
            backoffs.failed("ns/a");
        }
        assert_eq!(
            millis(backoffs.failed("ns/a")),
            1000,
            "capped, never exhausted"
        );
        assert_eq!(backoffs.len(), 2);
        backoffs.forget("ns/a");
        assert_eq!(backoffs.len(), 1);
        assert_eq!(millis(backoffs.failed("ns/a")), 100);
    }
}
