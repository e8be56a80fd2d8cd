//! When to try the fluentd server again: fluent-logger-golang's exponential backoff
//! (`retry-wait * 1.5^(n-1)` after the n-th consecutive failure, at most 60 s) and its limit
//! of attempts (fluentd-max-retries), kept as state between `write` calls instead of sleeps.

use std::time::{Duration, Instant};

/// fluent-logger-golang's MaxRetryWait: no wait between attempts is longer.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// fluent-logger-golang's defaultReconnectWaitIncreRate.
const GROWTH: f64 = 1.5;

/// Where time comes from, so that tests can move it.
pub trait Clock {
    fn now(&self) -> Instant;
}

/// The real monotonic clock (WASI's, in the component).
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// fluentd-retry-wait and fluentd-max-retries, after Docker's defaults and
/// fluent-logger-golang's replacements of zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure.
    pub wait: Duration,
    /// Consecutive failed attempts after which the data is given up.
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    /// Docker's: 1 s and math.MaxInt32 attempts (with the 60 s cap, about 4,000 years).
    fn default() -> Self {
        RetryPolicy {
            wait: Duration::from_secs(1),
            max_retries: i32::MAX as u32,
        }
    }
}

impl RetryPolicy {
    /// How long to wait after the `failures`-th consecutive failure (from 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.wait.as_secs_f64() * GROWTH.powi(exp);
        if secs.is_finite() && secs < MAX_RETRY_WAIT.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            MAX_RETRY_WAIT
        }
    }
}

/// What a failure leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again once this much time has passed.
    RetryIn(Duration),
    /// That was the last allowed attempt, of this many: give the data up. The count starts
    /// again from zero.
    GiveUp(u32),
}

/// Consecutive failures of one logger and when the next connection may be tried.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    failures: u32,
    retry_at: Option<Instant>,
    /// Why the last attempt failed, for the messages of the calls that wait.
    last_error: String,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
            retry_at: None,
            last_error: String::new(),
        }
    }

    /// How much longer the next attempt has to wait; none when it may go now.
    pub fn wait_left(&self, now: Instant) -> Option<Duration> {
        self.retry_at
            .map(|at| at.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Why the last attempt failed.
    pub fn last_error(&self) -> &str {
        &self.last_error
    }

    /// Records a failed attempt.
    pub fn failed(&mut self, now: Instant, error: String) -> Next {
        self.failures += 1;
        if self.failures >= self.policy.max_retries {
            let attempts = self.failures;
            self.succeeded();
            return Next::GiveUp(attempts);
        }
        let delay = self.policy.delay(self.failures);
        self.retry_at = Some(now + delay);
        self.last_error = error;
        Next::RetryIn(delay)
    }

    /// Records a delivery: the next failure waits the shortest time again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
        self.last_error.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_grow_by_half_and_stop_at_a_minute() {
        let p = RetryPolicy::default();
        let got: Vec<Duration> = (1..=4).map(|n| p.delay(n)).collect();
        assert_eq!(got, [ms(1000), ms(1500), ms(2250), ms(3375)]);
        assert_eq!(p.delay(11), Duration::from_secs_f64(1.5f64.powi(10)));
        assert_eq!(p.delay(12), MAX_RETRY_WAIT, "1.5^11 s is over 60 s");
        assert_eq!(p.delay(u32::MAX), MAX_RETRY_WAIT);
        let long = RetryPolicy {
            wait: Duration::from_secs(90),
            max_retries: 3,
        };
        assert_eq!(long.delay(1), MAX_RETRY_WAIT);
    }

    #[test]
    fn a_failure_sets_the_next_attempts_time() {
        let t0 = Instant::now();
        let mut b = Backoff::new(RetryPolicy::default());
        assert_eq!(b.wait_left(t0), None);
        assert_eq!(b.failed(t0, "refused".into()), Next::RetryIn(ms(1000)));
        assert_eq!(b.wait_left(t0 + ms(400)), Some(ms(600)));
        assert_eq!(b.last_error(), "refused");
        assert_eq!(b.wait_left(t0 + ms(1000)), None);
        assert_eq!(
            b.failed(t0 + ms(1000), "refused".into()),
            Next::RetryIn(ms(1500))
        );
        b.succeeded();
        assert_eq!(b.wait_left(t0 + ms(1001)), None);
        assert_eq!(b.failed(t0, "refused".into()), Next::RetryIn(ms(1000)));
    }

    #[test]
    fn the_last_allowed_failure_gives_up_and_starts_over() {
        let t0 = Instant::now();
        let mut b = Backoff::new(RetryPolicy {
            wait: ms(10),
            max_retries: 3,
        });
        assert!(matches!(b.failed(t0, "x".into()), Next::RetryIn(_)));
        assert!(matches!(b.failed(t0, "x".into()), Next::RetryIn(_)));
        assert_eq!(b.failed(t0, "x".into()), Next::GiveUp(3));
        assert_eq!(b.wait_left(t0), None, "the next attempt goes at once");
        assert_eq!(b.failed(t0, "x".into()), Next::RetryIn(ms(10)));
    }
}
