//! Cloud seams for ipamd's VPC mode.
//!
//! `Ec2` and `Imds` are the seams ipamd's VPC mode calls through, in typed values (`EniId`,
//! `SubnetId`, `MacAddr`, `Ipv4Cidr`: a value EC2 or IMDS sends that does not parse is an
//! error, never dropped); `CloudError` classifies every failure. `sim` (feature `sim`) is the in-memory VPC with
//! EC2's rules that the `vpc-sim` server and the tests build on.

#![forbid(unsafe_code)]

#[cfg(feature = "sim")]
pub mod sim;

#[cfg(feature = "aws")]
pub mod aws;

pub mod api;
pub mod error;
pub mod instance_types;
pub mod limiter;
pub mod observe;
pub mod retry;

pub use api::{
    subnet_router, Assign, AssignedIps, CloudFuture, CloudResult, Ec2, EniId, EniInfo, EniQuery,
    Imds, ImdsEni, InstanceLimits, NewEni, NodeIdentity, SubnetId, SubnetInfo,
};
pub use error::CloudError;
pub use limiter::{TokenBucket, DEFAULT_EC2_API_BURST, DEFAULT_EC2_API_QPS};
pub use observe::{Attempt, CallObserver, Unobserved};
pub use retry::{with_retries, RetryPolicy};

#[cfg(feature = "aws")]
pub use aws::{AwsEc2, AwsImds, Ec2Options};
