//! Timestamps in the formats EC2 and IMDS use, and identifiers that only need
//! to be unique within this process (request ids, IMDS tokens, fake keys).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use vpc_cni_proto::time::now_ms;

/// EC2's XML timestamps: `2024-05-01T12:00:00.000Z`.
pub fn ec2_time(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// IMDS's timestamps (credentials): `2024-05-01T12:00:00Z`.
pub fn imds_time(unix_ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
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
