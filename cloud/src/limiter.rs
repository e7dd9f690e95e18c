//! One token bucket in front of every EC2 call a node makes (`EC2_API_QPS`,
//! `EC2_API_BURST`).
//!
//! EC2 throttles per account and region, and every node of a cluster draws
//! on the same allowance, so a node must pace itself rather than discover
//! the limit by being refused. Retries take a token too: a retry storm is
//! exactly what the bucket is there to damp.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Default sustained EC2 request rate of one node, per second.
///
/// EC2 refills its per-account buckets at about 5/s for mutating actions
/// and 20/s for describes, shared by every node of the account and region.
/// 10/s lets one node fill a fresh m5.4xlarge (7 secondary ENIs: create,
/// attach, modify, assign each, about 30 calls) within a second or two after
/// its burst, and a cluster scaling out together then leans on retries
/// rather than hammering the account. Cilium's operator uses 4/s, but for a
/// whole cluster; ours is per node, which is why it is higher. It is a
/// default: `EC2_API_QPS` lowers it for large clusters.
pub const DEFAULT_EC2_API_QPS: f64 = 10.0;

/// Default burst: enough for a node's start-up (describe the instance type,
/// its ENIs, create and attach a second ENI and fill both) without waiting.
pub const DEFAULT_EC2_API_BURST: u32 = 20;

/// A token bucket on tokio's clock: `burst` tokens at most, refilled at
/// `qps` per second. Waiters are served in arrival order.
#[derive(Debug)]
pub struct TokenBucket {
    /// Tokens per second; `None` when limiting is off.
    rate: Option<f64>,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens (at least 1) refilled at `qps` per
    /// second. A `qps` that is not a positive finite number turns limiting
    /// off, so "0" in configuration means "no limit" rather than "never".
    #[must_use]
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        let rate = (qps.is_finite() && qps > 0.0).then_some(qps);
        Self {
            rate,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// A bucket that never makes anyone wait.
    #[must_use]
    pub fn unlimited() -> Self {
        Self::new(0.0, 1)
    }

    /// Waits for a token and takes it.
    ///
    /// Cancel-safe: a caller dropped while waiting takes no token.
    pub async fn acquire(&self) {
        let Some(rate) = self.rate else {
            return;
        };
        // The lock is held while sleeping on purpose: tokio's mutex queues
        // waiters first come, first served, so a late caller cannot take the
        // token an earlier one has been waiting for.
        let mut state = self.state.lock().await;
        self.refill(&mut state, rate);
        if state.tokens < 1.0 {
            // A rate so low (EC2_API_QPS=1e-300) that the wait outlasts a Duration waits
            // "forever" rather than panicking: it is a valid, if useless, setting.
            let wait =
                Duration::try_from_secs_f64((1.0 - state.tokens) / rate).unwrap_or(Duration::MAX);
            tokio::time::sleep(wait).await;
            self.refill(&mut state, rate);
            // Float rounding can leave a hair under one token after sleeping
            // exactly the computed time; the token is due, so take it.
            state.tokens = state.tokens.max(1.0);
        }
        state.tokens -= 1.0;
    }

    fn refill(&self, state: &mut State, rate: f64) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        state.tokens = (state.tokens + elapsed * rate).min(self.burst);
        state.last = now;
    }
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "limiter_prop_tests.rs"]
mod prop_tests;
