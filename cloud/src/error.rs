//! The one error type of the cloud crate: what went wrong talking to EC2 or
//! IMDS, classified so callers can decide (retry, back off, give up).

/// A failed EC2 or IMDS call.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// EC2 refused for rate (RequestLimitExceeded, Throttling): retried with
    /// backoff before this surfaces.
    #[error("EC2 throttled {action}: {message}")]
    Throttled { action: String, message: String },

    /// An instance or ENI limit was reached (AttachmentLimitExceeded,
    /// PrivateIpAddressLimitExceeded).
    #[error("{action}: limit reached ({code}): {message}")]
    LimitExceeded {
        action: String,
        code: String,
        message: String,
    },

    /// The subnet has no room (InsufficientFreeAddressesInSubnet,
    /// InsufficientCidrBlocks): growth should pause.
    #[error("{action}: subnet full ({code}): {message}")]
    SubnetFull {
        action: String,
        code: String,
        message: String,
    },

    /// The named resource does not exist (any `*.NotFound`).
    #[error("{action}: not found ({code}): {message}")]
    NotFound {
        action: String,
        code: String,
        message: String,
    },

    /// The ENI is attached (InvalidNetworkInterface.InUse).
    #[error("{action}: in use: {message}")]
    InUse { action: String, message: String },

    /// A network or server failure worth retrying (timeouts, 5xx).
    #[error("{action}: transient failure: {message}")]
    Transient { action: String, message: String },

    /// Anything else EC2 or IMDS answered: not retried.
    #[error("{action} failed ({code}): {message}")]
    Fatal {
        action: String,
        code: String,
        message: String,
    },

    /// IMDS gave a value we could not parse.
    #[error("IMDS {path}: {reason}")]
    BadMetadata { path: String, reason: String },

    /// EC2 answered with something it should never send (a field missing, a value that does
    /// not parse): not retried, since asking again gets the same answer.
    #[error("{action}: malformed reply: {reason}")]
    MalformedReply { action: String, reason: String },
}

/// Parses one value of a reply: `FromStr` with its error kept as text.
fn parse_text<T: std::str::FromStr>(value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| format!("{value:?} does not parse: {e}"))
}

impl CloudError {
    /// A value read from IMDS at `path`, as a `T`.
    pub fn parse_metadata<T: std::str::FromStr>(path: &str, value: &str) -> Result<T, Self>
    where
        T::Err: std::fmt::Display,
    {
        parse_text(value).map_err(|reason| Self::BadMetadata {
            path: path.to_string(),
            reason,
        })
    }

    /// A value of `action`'s reply, as a `T`.
    pub fn parse_reply<T: std::str::FromStr>(action: &str, value: &str) -> Result<T, Self>
    where
        T::Err: std::fmt::Display,
    {
        parse_text(value).map_err(|reason| Self::malformed(action, reason))
    }

    /// A reply of `action` that is missing something or makes no sense.
    pub fn malformed(action: &str, reason: impl Into<String>) -> Self {
        Self::MalformedReply {
            action: action.to_string(),
            reason: reason.into(),
        }
    }

    /// Classifies an EC2 error code the way every implementation must.
    #[must_use]
    pub fn from_code(action: &str, code: &str, message: &str) -> Self {
        let (action, message) = (action.to_string(), message.to_string());
        let code_s = code.to_string();
        match code {
            "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => {
                Self::Throttled { action, message }
            }
            "AttachmentLimitExceeded" | "PrivateIpAddressLimitExceeded" => Self::LimitExceeded {
                action,
                code: code_s,
                message,
            },
            "InsufficientFreeAddressesInSubnet" | "InsufficientCidrBlocks" => Self::SubnetFull {
                action,
                code: code_s,
                message,
            },
            "InvalidNetworkInterface.InUse" => Self::InUse { action, message },
            "InternalError" | "ServiceUnavailable" | "Unavailable" => {
                Self::Transient { action, message }
            }
            c if c.ends_with(".NotFound") => Self::NotFound {
                action,
                code: code_s,
                message,
            },
            _ => Self::Fatal {
                action,
                code: code_s,
                message,
            },
        }
    }

    /// Whether a retry may succeed (throttling and transient failures).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Transient { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert!(matches!(
            CloudError::from_code("A", "RequestLimitExceeded", ""),
            CloudError::Throttled { .. }
        ));
        assert!(matches!(
            CloudError::from_code("A", "InvalidNetworkInterfaceID.NotFound", ""),
            CloudError::NotFound { .. }
        ));
        assert!(matches!(
            CloudError::from_code("A", "InsufficientCidrBlocks", ""),
            CloudError::SubnetFull { .. }
        ));
        assert!(matches!(
            CloudError::from_code("A", "PrivateIpAddressLimitExceeded", ""),
            CloudError::LimitExceeded { .. }
        ));
        assert!(matches!(
            CloudError::from_code("A", "InvalidNetworkInterface.InUse", ""),
            CloudError::InUse { .. }
        ));
        assert!(CloudError::from_code("A", "InternalError", "").is_retryable());
        assert!(!CloudError::from_code("A", "UnauthorizedOperation", "").is_retryable());
    }
}
