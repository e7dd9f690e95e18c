//! EC2's error codes, as the sim answers them.

use std::fmt;
use std::str::FromStr;

/// An EC2 error code the sim can answer. `as_str` is the exact string EC2
/// puts in `<Code>`, which SDK retry logic and ipamd match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    PrivateIpAddressLimitExceeded,
    AttachmentLimitExceeded,
    InsufficientFreeAddressesInSubnet,
    InsufficientCidrBlocks,
    /// `InvalidNetworkInterface.InUse`
    InvalidNetworkInterfaceInUse,
    /// `InvalidNetworkInterfaceID.NotFound`
    InvalidNetworkInterfaceIdNotFound,
    /// `InvalidAttachmentID.NotFound`
    InvalidAttachmentIdNotFound,
    /// `InvalidInstanceID.NotFound`
    InvalidInstanceIdNotFound,
    /// `InvalidSubnetID.NotFound`
    InvalidSubnetIdNotFound,
    /// `InvalidVpcID.NotFound`
    InvalidVpcIdNotFound,
    /// `InvalidSubnet.Range`: a subnet outside every CIDR block of its VPC.
    InvalidSubnetRange,
    /// `InvalidSubnet.Conflict`: a subnet overlapping another of its VPC.
    InvalidSubnetConflict,
    /// `InvalidVpc.Range`: a VPC CIDR block of the wrong size, or overlapping another block of
    /// the VPC.
    InvalidVpcRange,
    /// `CidrLimitExceeded`: a sixth IPv4 CIDR block on a VPC.
    CidrLimitExceeded,
    /// `InvalidVpcCidrBlockAssociationIdError.NotFound`
    InvalidVpcCidrBlockAssociationIdNotFound,
    /// `OperationNotPermitted`: disassociating a VPC's primary block, or one with subnets.
    OperationNotPermitted,
    /// `DependencyViolation`: deleting a subnet that still has network interfaces.
    DependencyViolation,
    /// `InvalidGroup.NotFound`
    InvalidGroupNotFound,
    /// `InvalidGroup.Duplicate`
    InvalidGroupDuplicate,
    InvalidParameterValue,
    InvalidParameterCombination,
    MissingParameter,
    RequestLimitExceeded,
    InvalidAction,
    /// The caller's IAM policy does not allow the action (HTTP 403); the sim answers it
    /// only when a test injects it.
    UnauthorizedOperation,
    InternalError,
}

impl ErrorCode {
    /// Every code, for parsing and for tests that walk them all.
    pub const ALL: [ErrorCode; 26] = [
        ErrorCode::PrivateIpAddressLimitExceeded,
        ErrorCode::AttachmentLimitExceeded,
        ErrorCode::InsufficientFreeAddressesInSubnet,
        ErrorCode::InsufficientCidrBlocks,
        ErrorCode::InvalidNetworkInterfaceInUse,
        ErrorCode::InvalidNetworkInterfaceIdNotFound,
        ErrorCode::InvalidAttachmentIdNotFound,
        ErrorCode::InvalidInstanceIdNotFound,
        ErrorCode::InvalidSubnetIdNotFound,
        ErrorCode::InvalidVpcIdNotFound,
        ErrorCode::InvalidSubnetRange,
        ErrorCode::InvalidSubnetConflict,
        ErrorCode::InvalidVpcRange,
        ErrorCode::CidrLimitExceeded,
        ErrorCode::InvalidVpcCidrBlockAssociationIdNotFound,
        ErrorCode::OperationNotPermitted,
        ErrorCode::DependencyViolation,
        ErrorCode::InvalidGroupNotFound,
        ErrorCode::InvalidGroupDuplicate,
        ErrorCode::InvalidParameterValue,
        ErrorCode::InvalidParameterCombination,
        ErrorCode::MissingParameter,
        ErrorCode::RequestLimitExceeded,
        ErrorCode::InvalidAction,
        ErrorCode::UnauthorizedOperation,
        ErrorCode::InternalError,
    ];

    /// EC2's exact code string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::PrivateIpAddressLimitExceeded => "PrivateIpAddressLimitExceeded",
            ErrorCode::AttachmentLimitExceeded => "AttachmentLimitExceeded",
            ErrorCode::InsufficientFreeAddressesInSubnet => "InsufficientFreeAddressesInSubnet",
            ErrorCode::InsufficientCidrBlocks => "InsufficientCidrBlocks",
            ErrorCode::InvalidNetworkInterfaceInUse => "InvalidNetworkInterface.InUse",
            ErrorCode::InvalidNetworkInterfaceIdNotFound => "InvalidNetworkInterfaceID.NotFound",
            ErrorCode::InvalidAttachmentIdNotFound => "InvalidAttachmentID.NotFound",
            ErrorCode::InvalidInstanceIdNotFound => "InvalidInstanceID.NotFound",
            ErrorCode::InvalidSubnetIdNotFound => "InvalidSubnetID.NotFound",
            ErrorCode::InvalidVpcIdNotFound => "InvalidVpcID.NotFound",
            ErrorCode::InvalidSubnetRange => "InvalidSubnet.Range",
            ErrorCode::InvalidSubnetConflict => "InvalidSubnet.Conflict",
            ErrorCode::InvalidVpcRange => "InvalidVpc.Range",
            ErrorCode::CidrLimitExceeded => "CidrLimitExceeded",
            ErrorCode::InvalidVpcCidrBlockAssociationIdNotFound => {
                "InvalidVpcCidrBlockAssociationIdError.NotFound"
            }
            ErrorCode::OperationNotPermitted => "OperationNotPermitted",
            ErrorCode::DependencyViolation => "DependencyViolation",
            ErrorCode::InvalidGroupNotFound => "InvalidGroup.NotFound",
            ErrorCode::InvalidGroupDuplicate => "InvalidGroup.Duplicate",
            ErrorCode::InvalidParameterValue => "InvalidParameterValue",
            ErrorCode::InvalidParameterCombination => "InvalidParameterCombination",
            ErrorCode::MissingParameter => "MissingParameter",
            ErrorCode::RequestLimitExceeded => "RequestLimitExceeded",
            ErrorCode::InvalidAction => "InvalidAction",
            ErrorCode::UnauthorizedOperation => "UnauthorizedOperation",
            ErrorCode::InternalError => "InternalError",
        }
    }

    /// The HTTP status EC2 answers this code with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::RequestLimitExceeded => 503,
            ErrorCode::InternalError => 500,
            ErrorCode::UnauthorizedOperation => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                SimError::new(
                    ErrorCode::InvalidParameterValue,
                    format!("unknown error code {s:?}"),
                )
            })
    }
}

/// An EC2 error: the code the server puts in `<Code>` and a human message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SimError {
    pub code: ErrorCode,
    pub message: String,
}

impl SimError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        SimError {
            code,
            message: message.into(),
        }
    }
}

/// Shorthand constructors keep the rule code readable.
pub(crate) fn err<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, SimError> {
    Err(SimError::new(code, message))
}
