//! Cloud seams for ipamd's VPC mode.
//!
//! `sim` (feature `sim`) is the in-memory VPC with EC2's rules that the
//! `vpc-sim` server and the tests build on. The `Ec2` and `Imds` traits and
//! the AWS implementation (feature `aws`) arrive with the VPC-mode issue;
//! nothing here talks to a real cloud yet, and ipamd refuses
//! `VPC_CNI_MODE=vpc` until it does.

#[cfg(feature = "sim")]
pub mod sim;
