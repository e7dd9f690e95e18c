//! RFC 3339 timestamps (UTC) for the `vpc-cni.io/created-at` tag, so the
//! leaked-ENI cleanup can tell an ENI's age.

use std::time::{Duration, UNIX_EPOCH};

/// Unix milliseconds as "YYYY-MM-DDTHH:MM:SSZ".
#[must_use]
pub fn format(unix_ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// Parses an RFC 3339 UTC timestamp ("...Z", fractions allowed) back to unix
/// milliseconds; `None` for anything else (the cleanup then re-tags the ENI).
#[must_use]
pub fn parse(s: &str) -> Option<u64> {
    let at = humantime::parse_rfc3339(s).ok()?;
    let since = at.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_round_trip() {
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        // 2024-02-29T12:34:56Z, a leap day.
        let ms = 1_709_210_096_000;
        assert_eq!(format(ms), "2024-02-29T12:34:56Z");
        assert_eq!(parse("2024-02-29T12:34:56Z"), Some(ms));
        assert_eq!(parse("2024-02-29T12:34:56.5Z"), Some(ms + 500));
        for ms in [1_000, 951_782_400_000, 4_102_444_800_000] {
            assert_eq!(parse(&format(ms)), Some(ms));
        }
    }

    #[test]
    fn garbage_is_refused() {
        for s in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00+02:00",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }
}
