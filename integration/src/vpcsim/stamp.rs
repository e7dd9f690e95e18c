//! Timestamps in the formats EC2 and IMDS use, and identifiers that only need
//! to be unique within this process (request ids, IMDS tokens, fake keys).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// (year, month, day) of a day count since 1970-01-01, proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift to a March-based era of 400 years so leap days fall at era ends.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both fit: day is 1..=31 and month 1..=12 by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

fn split(unix_ms: u64) -> (i64, u32, u32, u64, u64, u64, u64) {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let (y, mo, d) = civil_from_days(days);
    let rem = secs % 86_400;
    (
        y,
        mo,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000,
    )
}

/// EC2's XML timestamps: `2024-05-01T12:00:00.000Z`.
pub fn ec2_time(unix_ms: u64) -> String {
    let (y, mo, d, h, mi, s, ms) = split(unix_ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// IMDS credential timestamps: `2024-05-01T12:00:00Z`.
pub fn imds_time(unix_ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = split(unix_ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A fresh 64-bit value: a process-wide counter mixed with the clock and pid
/// (splitmix64), so two processes or two calls never collide in practice.
pub fn unique_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut z = n
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(now_ms().rotate_left(20))
        .wrapping_add(u64::from(std::process::id()) << 40);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A UUID-shaped request id, as EC2 returns.
pub fn request_id() -> String {
    let (a, b) = (unique_u64(), unique_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// `len` characters from `alphabet`, drawn from `unique_u64`.
pub fn token(len: usize, alphabet: &[u8]) -> String {
    let mut out = String::with_capacity(len);
    let mut bits = 0u64;
    let mut left = 0;
    for _ in 0..len {
        if left == 0 {
            bits = unique_u64();
            left = 8;
        }
        let idx = usize::try_from(bits & 0xff).unwrap_or(0) % alphabet.len().max(1);
        out.push(char::from(alphabet.get(idx).copied().unwrap_or(b'A')));
        bits >>= 8;
        left -= 1;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(ec2_time(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century year) 23:59:59.123.
        assert_eq!(ec2_time(951_868_799_123), "2000-02-29T23:59:59.123Z");
        assert_eq!(imds_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(imds_time(4_102_444_800_000), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn request_ids_are_uuid_shaped_and_distinct() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12], "{a}");
    }

    #[test]
    fn tokens_use_the_alphabet() {
        let t = token(40, b"abc");
        assert_eq!(t.len(), 40);
        assert!(t.chars().all(|c| "abc".contains(c)), "{t}");
        assert_ne!(token(40, b"abcdef"), token(40, b"abcdef"));
    }
}
