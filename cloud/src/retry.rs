//! Retries with capped exponential backoff and full jitter, for the errors
//! `CloudError::is_retryable` names (throttling, transient failures).
//!
//! Full jitter (sleep a uniform random time below the ceiling) rather than
//! a fixed schedule, because the nodes of a cluster are throttled together
//! and would otherwise retry together.

use std::future::Future;
use std::time::Duration;

use crate::error::CloudError;

/// How often and how patiently a failed call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 0 counts as 1.
    pub max_attempts: u32,
    /// Ceiling of the first backoff; doubles with each retry.
    pub base: Duration,
    /// Largest ceiling.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts (what AWS VPC CNI gives the SDK's retryer), ceilings
    /// from 200 ms doubling to 20 s: about a minute in the worst case,
    /// half that on average, which outlasts EC2's throttling episodes
    /// without holding a pod ADD hostage for long.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The longest sleep before retry number `retry` (0 = the first retry).
    #[must_use]
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A sleep drawn uniformly from zero to `ceiling(retry)`.
    #[must_use]
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=ceiling))
    }
}

/// Runs `f` until it succeeds, fails with an error that is not retryable,
/// or `policy.max_attempts` attempts have failed; the last error is
/// returned as it was. `action` names the call in the retry log.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    action: &str,
    mut f: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_retryable() && attempt < attempts => {
                let delay = policy.backoff(attempt - 1);
                tracing::debug!(action, attempt, ?delay, error = %err, "retrying EC2 call");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    //! On tokio's paused clock, so the backoffs cost no real time.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;

    fn throttled() -> CloudError {
        CloudError::from_code(
            "AssignPrivateIpAddresses",
            "RequestLimitExceeded",
            "slow down",
        )
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_then_ok_succeeds() {
        let calls = AtomicU32::new(0);
        let out = with_retries(&policy(5), "A", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(throttled())
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_is_retried_too() {
        let calls = AtomicU32::new(0);
        let out = with_retries(&policy(5), "A", || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(CloudError::from_code("A", "InternalError", "oops"))
            } else {
                Ok(())
            }
        })
        .await;
        assert!(out.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_and_not_found_are_not_retried() {
        for code in [
            "UnauthorizedOperation",
            "InvalidNetworkInterfaceID.NotFound",
        ] {
            let calls = AtomicU32::new(0);
            let start = Instant::now();
            let out: Result<(), _> = with_retries(&policy(5), "A", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CloudError::from_code("A", code, "no"))
            })
            .await;
            assert!(!out.unwrap_err().is_retryable(), "{code}");
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{code} was retried");
            assert_eq!(start.elapsed(), Duration::ZERO, "{code} slept");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded_and_backoff_stays_under_the_ceilings() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let out: Result<(), _> = with_retries(&policy(6), "A", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(throttled())
        })
        .await;
        assert!(matches!(out, Err(CloudError::Throttled { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        // Ceilings 100, 200, 400, 800, 1000 (capped) ms, plus the timer's
        // millisecond rounding per sleep.
        let bound = Duration::from_millis(100 + 200 + 400 + 800 + 1000 + 5);
        assert!(start.elapsed() <= bound, "slept {:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_attempts_still_tries_once() {
        let calls = AtomicU32::new(0);
        let _: Result<(), _> = with_retries(&policy(0), "A", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(throttled())
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn ceilings_double_up_to_the_cap_without_overflow() {
        let p = policy(3);
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(800));
        assert_eq!(p.ceiling(4), Duration::from_secs(1));
        assert_eq!(p.ceiling(200), Duration::from_secs(1));
        for retry in 0..8 {
            assert!(p.backoff(retry) <= p.ceiling(retry));
        }
    }
}
