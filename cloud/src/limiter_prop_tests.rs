//! Properties of the token bucket on any `EC2_API_QPS` and `EC2_API_BURST` ipamd accepts
//! (any `f64` and `u32`): making one and taking tokens past the burst never panics, and a
//! rate that is not a positive finite number never makes a caller wait.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use vpc_cni_testkit::prop::config;

use super::*;

/// Any rate: every bit pattern (NaN, infinities, subnormals, negatives), and the tiny and
/// huge positive ones a typo produces.
fn qps() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-320i32..320, 1.0f64..10.0).prop_map(|(e, m)| m * 10f64.powi(e)),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
    ]
}

/// Takes `n` tokens on a paused clock (a wait of years passes at once); the time it took.
fn take(bucket: &TokenBucket, n: u32) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            bucket.acquire().await;
        }
        start.elapsed()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn prop_token_bucket_takes_any_rate_and_burst(
        qps in qps(),
        burst in prop_oneof![0u32..20, Just(u32::MAX)],
    ) {
        let bucket = TokenBucket::new(qps, burst);
        // Past the burst, so the caller waits for the rate.
        let waited = take(&bucket, burst.min(20) + 2);
        if !(qps.is_finite() && qps > 0.0) {
            prop_assert_eq!(waited, Duration::ZERO);
        }
    }
}

/// Found by `prop_token_bucket_takes_any_rate_and_burst`: `EC2_API_QPS=1e-300` is a
/// positive finite rate, the wait for a token (1e300 s) overflows a `Duration`, and
/// `Duration::from_secs_f64` panicked on the first call past the burst.
#[test]
fn a_rate_so_low_its_wait_overflows_a_duration_does_not_panic() {
    let bucket = TokenBucket::new(1e-300, 1);
    let waited = take(&bucket, 2);
    assert!(waited > Duration::from_secs(3_600 * 24 * 365), "{waited:?}");
}
