//! The one error type of the `vpc_cni` library, with its mapping to CNI error codes.

use std::path::PathBuf;

/// CNI spec error codes (SPEC "Error" section); 100+ would be ours, none are needed yet.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    pub const INTERNAL: u32 = 999;
}

/// Everything that can go wrong in the plugin and the shared dataplane code.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("incompatible CNI version {requested:?}: this plugin supports {supported}")]
    IncompatibleVersion {
        requested: String,
        supported: String,
    },

    #[error("unsupported field {field:?} in network configuration: {reason}")]
    UnsupportedField { field: String, reason: String },

    #[error("unknown container: {0}")]
    UnknownContainer(String),

    #[error("invalid environment variable {var}: {reason}")]
    InvalidEnvironment { var: &'static str, reason: String },

    #[error("I/O failure while {context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to decode {what}: {reason}")]
    Decode { what: String, reason: String },

    #[error("invalid network configuration field {field:?}: {reason}")]
    InvalidConfig { field: String, reason: String },

    #[error("try again later: {0}")]
    TryAgainLater(String),

    #[error("ipamd is not available at {socket}: {reason}")]
    IpamdUnavailable { socket: PathBuf, reason: String },

    #[error("ipamd refused the request: {0}")]
    IpamdRejected(String),

    #[error("network namespace {path}: {reason}")]
    Netns { path: PathBuf, reason: String },

    #[error("netlink {operation} failed")]
    Netlink {
        operation: String,
        #[source]
        source: rtnetlink::Error,
    },

    #[error("CHECK failed: {0}")]
    CheckFailed(String),

    #[error("not ready to serve ADD: {0}")]
    NotReady(String),

    #[error("the pod dataplane is broken: {0}")]
    DataplaneBroken(String),

    #[error("internal error: {0}")]
    Internal(String),
}

impl CniError {
    /// The CNI error code the spec assigns to this failure.
    #[must_use]
    pub fn code(&self) -> u32 {
        match self {
            Self::IncompatibleVersion { .. } => code::INCOMPATIBLE_VERSION,
            Self::UnsupportedField { .. } => code::UNSUPPORTED_FIELD,
            Self::UnknownContainer(_) => code::UNKNOWN_CONTAINER,
            Self::InvalidEnvironment { .. } | Self::Netns { .. } => code::INVALID_ENVIRONMENT,
            Self::Io { .. } => code::IO_FAILURE,
            Self::Decode { .. } => code::DECODE_FAILURE,
            Self::InvalidConfig { .. } | Self::IpamdRejected(_) => code::INVALID_NETWORK_CONFIG,
            Self::TryAgainLater(_) | Self::IpamdUnavailable { .. } => code::TRY_AGAIN_LATER,
            Self::NotReady(_) => code::PLUGIN_NOT_AVAILABLE,
            Self::DataplaneBroken(_) => code::LIMITED_CONNECTIVITY,
            Self::Netlink { .. } | Self::CheckFailed(_) | Self::Internal(_) => code::INTERNAL,
        }
    }

    /// The spec's error object: `{"cniVersion", "code", "msg", "details"}`.
    #[must_use]
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let details = std::error::Error::source(self)
            .map(ToString::to_string)
            .unwrap_or_default();
        serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code(),
            "msg": self.to_string(),
            "details": details,
        })
    }

    /// Shorthand for a netlink failure with the operation that failed.
    pub fn netlink(operation: impl Into<String>, source: rtnetlink::Error) -> Self {
        Self::Netlink {
            operation: operation.into(),
            source,
        }
    }

    /// Shorthand for an I/O failure with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_spec_fields_and_code() {
        let err = CniError::InvalidEnvironment {
            var: "CNI_NETNS",
            reason: "missing".into(),
        };
        let json = err.to_json("1.0.0");
        assert_eq!(json["code"], 4);
        assert_eq!(json["cniVersion"], "1.0.0");
        assert!(json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("CNI_NETNS")));
    }

    #[test]
    fn unavailable_ipamd_is_try_again_later() {
        let err = CniError::IpamdUnavailable {
            socket: "/x.sock".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(err.code(), code::TRY_AGAIN_LATER);
    }
}
