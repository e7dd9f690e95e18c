//! Property tests of what the AWS clients make of EC2's and IMDS's answers (issue 12, "bad
//! input, everywhere it enters"). EC2's XML is parsed inside aws-sdk-ec2, so the EC2
//! properties drive the real client over a fake HTTP connector (`fake_http`) with replies
//! generated and edited as XML trees (`xml`); the IMDS properties test our parsing of the
//! text values IMDS returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ec2;
pub(super) mod fake_http;
mod imds;
mod xml;
