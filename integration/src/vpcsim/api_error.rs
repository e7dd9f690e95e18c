//! EC2's errors as they go on the wire: an EC2 code, a message and an HTTP status.

use vpc_cni_cloud::sim::SimError;

use super::query::ParamError;

/// An EC2 error as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl ApiError {
    /// A client error (HTTP 400) with an EC2 code.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            status: 400,
        }
    }
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> Self {
        Self {
            code: e.code.as_str().to_string(),
            message: e.message,
            status: e.code.http_status(),
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::Missing(name) => Self::new(
                "MissingParameter",
                format!("The request must contain the parameter {name}"),
            ),
            ParamError::Invalid { name, value } => Self::new(
                "InvalidParameterValue",
                format!("Value ({value}) for parameter {name} is invalid"),
            ),
        }
    }
}
