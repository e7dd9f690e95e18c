//! All on tokio's paused clock: time only moves when every task waits,
//! so the elapsed times below are exact, not measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use super::*;

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test(start_paused = true)]
async fn burst_passes_at_once_then_the_rate() {
    let bucket = TokenBucket::new(10.0, 20);
    let start = Instant::now();
    for _ in 0..20 {
        bucket.acquire().await;
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "the burst must not wait");

    bucket.acquire().await;
    let first = ms(start.elapsed());
    assert!(
        (100..=101).contains(&first),
        "21st token after 100 ms, got {first} ms"
    );

    for _ in 0..10 {
        bucket.acquire().await;
    }
    let total = ms(start.elapsed());
    assert!(
        (1100..=1110).contains(&total),
        "10 more at 10/s, got {total} ms"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_time_refills_only_up_to_the_burst() {
    let bucket = TokenBucket::new(5.0, 3);
    for _ in 0..3 {
        bucket.acquire().await;
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let start = Instant::now();
    for _ in 0..3 {
        bucket.acquire().await;
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    bucket.acquire().await;
    let waited = ms(start.elapsed());
    assert!(
        (200..=201).contains(&waited),
        "4th token after 200 ms, got {waited} ms"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_rate() {
    let bucket = Arc::new(TokenBucket::new(10.0, 20));
    let start = Instant::now();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let bucket = Arc::clone(&bucket);
            tokio::spawn(async move {
                bucket.acquire().await;
                Instant::now()
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap().duration_since(start));
    }
    done.sort();
    assert_eq!(done[19], Duration::ZERO, "20 pass on the burst");
    let last = ms(done[39]);
    assert!(
        (2000..=2020).contains(&last),
        "20 more at 10/s, got {last} ms"
    );
}

#[tokio::test(start_paused = true)]
async fn zero_qps_means_no_limit() {
    let bucket = TokenBucket::new(0.0, 0);
    let start = Instant::now();
    for _ in 0..1000 {
        bucket.acquire().await;
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}
