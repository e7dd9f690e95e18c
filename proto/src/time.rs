//! Time as ipamd and the simulated cloud keep it: unix milliseconds, so cooldowns, grace
//! periods and ENI ages survive a restart in the checkpoint and in EC2 tags.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix milliseconds on demand. The daemon uses the wall clock; tests step their own.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Wall-clock milliseconds since the epoch (0 before it, saturating far after it).
#[must_use]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// The wall clock as a [`Clock`].
#[must_use]
pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// A duration in whole milliseconds, saturating at `u64::MAX` (a setting of "forever").
#[must_use]
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
