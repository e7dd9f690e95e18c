//! The CNI spec versions this plugin speaks, and the VERSION command's reply.

use std::fmt;

use crate::error::CniError;

/// A CNI spec version this plugin can be called with.
///
/// The variants are declared oldest first so that the derived `Ord` is the
/// spec's chronological order, which the feature predicates rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first.
    pub const ALL: [CniVersion; 5] = [
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    /// The newest supported version: what we answer in when the caller gave none.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// Parses an exact version string.
    ///
    /// Matching is exact, as in the reference library: "1.0" or "v1.0.0" are
    /// not accepted, because runtimes always send the full three-part form.
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Self::incompatible(s))
    }

    /// The spec's spelling of this version, e.g. `"0.4.0"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// The spelling of every supported version, oldest first.
    #[must_use]
    pub fn supported_strings() -> Vec<&'static str> {
        Self::ALL.into_iter().map(Self::as_str).collect()
    }

    /// The error for a version we cannot speak; `requested` is echoed verbatim.
    #[must_use]
    pub fn incompatible(requested: &str) -> CniError {
        CniError::IncompatibleVersion {
            requested: requested.to_owned(),
            supported: Self::supported_strings().join(", "),
        }
    }

    /// CHECK exists since 0.4.0.
    #[must_use]
    pub fn has_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// GC and STATUS exist since 1.1.0.
    #[must_use]
    pub fn has_gc_status(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// `ips[].version` was dropped from results in 1.0.0.
    #[must_use]
    pub fn ip_has_version_field(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// `interfaces[].mtu` was added to results in 1.1.0.
    #[must_use]
    pub fn interface_has_mtu(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CniVersion {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Whether `s` looks like a version number (`X`, `X.Y` or `X.Y.Z`, decimal).
///
/// The reference library accepts exactly these shapes; anything else is
/// garbage we should not echo back to the runtime.
#[must_use]
pub fn is_semverish(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The VERSION command's reply.
///
/// The spec asks the plugin to echo the caller's `cniVersion`, even one it
/// does not support, so the runtime can tell what it asked for; a malformed
/// one is replaced by the newest version rather than echoed.
#[must_use]
pub fn version_reply(requested: &str) -> serde_json::Value {
    let version = if is_semverish(requested) {
        requested
    } else {
        CniVersion::LATEST.as_str()
    };
    serde_json::json!({
        "cniVersion": version,
        "supportedVersions": CniVersion::supported_strings(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_version_and_round_trips() {
        for v in CniVersion::ALL {
            assert_eq!(CniVersion::parse(v.as_str()).unwrap(), v);
            assert_eq!(v.to_string(), v.as_str());
            assert_eq!(v.as_str().parse::<CniVersion>().unwrap(), v);
        }
        assert_eq!(
            CniVersion::supported_strings(),
            ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        );
    }

    #[test]
    fn order_is_chronological() {
        let mut sorted = CniVersion::ALL;
        sorted.sort();
        assert_eq!(sorted, CniVersion::ALL);
        assert!(CniVersion::V0_3_1 < CniVersion::V0_4_0);
        assert!(CniVersion::V1_0_0 < CniVersion::V1_1_0);
        assert_eq!(CniVersion::ALL.iter().max(), Some(&CniVersion::LATEST));
    }

    #[test]
    fn unsupported_and_malformed_versions_are_code_1_listing_all_supported() {
        for bad in [
            "0.1.0", "0.2.0", "2.0.0", "1.0", "v1.0.0", "", "abc", " 1.0.0",
        ] {
            let err = CniVersion::parse(bad).unwrap_err();
            assert_eq!(err.code(), 1, "{bad:?}");
            match &err {
                CniError::IncompatibleVersion {
                    requested,
                    supported,
                } => {
                    assert_eq!(requested, bad);
                    assert_eq!(supported, "0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
                }
                other => panic!("unexpected error {other:?}"),
            }
            assert!(err.to_string().contains("1.1.0"));
        }
    }

    #[test]
    fn feature_predicates_follow_the_spec_history() {
        use CniVersion::*;
        let table = [
            // (version, check, gc/status, ips[].version, interface mtu)
            (V0_3_0, false, false, true, false),
            (V0_3_1, false, false, true, false),
            (V0_4_0, true, false, true, false),
            (V1_0_0, true, false, false, false),
            (V1_1_0, true, true, false, true),
        ];
        for (v, check, gc, ipver, mtu) in table {
            assert_eq!(v.has_check(), check, "{v} has_check");
            assert_eq!(v.has_gc_status(), gc, "{v} has_gc_status");
            assert_eq!(v.ip_has_version_field(), ipver, "{v} ip_has_version_field");
            assert_eq!(v.interface_has_mtu(), mtu, "{v} interface_has_mtu");
        }
    }

    #[test]
    fn semverish_shapes() {
        for ok in ["1", "1.0", "1.0.0", "0.4.0", "2.10.300"] {
            assert!(is_semverish(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "1.0.0.0",
            "v1",
            "1.0.0-rc1",
            "1.a",
            "１.0",
        ] {
            assert!(!is_semverish(bad), "{bad}");
        }
    }

    #[test]
    fn version_reply_echoes_valid_requests_even_unsupported() {
        let reply = version_reply("0.4.0");
        assert_eq!(reply["cniVersion"], "0.4.0");
        assert_eq!(
            reply["supportedVersions"],
            serde_json::json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
        assert_eq!(version_reply("2.0.0")["cniVersion"], "2.0.0");
        assert_eq!(version_reply("1.0")["cniVersion"], "1.0");
        assert_eq!(reply.as_object().unwrap().len(), 2);
    }

    #[test]
    fn version_reply_replaces_garbage_with_latest() {
        for bad in ["", "latest", "1.0.0; rm -rf /", "1.0.0.0"] {
            assert_eq!(version_reply(bad)["cniVersion"], "1.1.0", "{bad:?}");
        }
    }
}
