//! The figures every section reports: medians, spreads and percentiles of samples.

use std::time::Duration;

/// Sorts in place and returns the middle sample (zero when there are none).
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// The fastest and slowest sample, ms.
pub fn spread_ms(samples: &[Duration]) -> (f64, f64) {
    let lo = samples.iter().min().copied().unwrap_or_default();
    let hi = samples.iter().max().copied().unwrap_or_default();
    (ms(lo), ms(hi))
}

/// The nearest-rank percentile `p` of `samples` (zero when there are none).
pub fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
