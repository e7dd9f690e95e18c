//! The cloud seams over the AWS SDK: `AwsEc2` (aws-sdk-ec2) and `AwsImds`
//! (aws-config's IMDSv2 client). Endpoints, credentials and region come
//! from the SDK's standard loading, so `AWS_ENDPOINT_URL_EC2` and
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` point them at vpc-sim in tests.

pub mod actions;
mod convert;
mod ec2;
mod imds;
#[cfg(test)]
mod prop_tests;

pub use actions::EC2_ACTIONS;
pub use ec2::{AwsEc2, Ec2Options, ATTEMPT_TIMEOUT};
pub use imds::AwsImds;
