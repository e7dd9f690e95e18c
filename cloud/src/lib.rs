//! Cloud seams for ipamd's VPC mode.
//!
//! Empty on purpose: the `Ec2` and `Imds` traits, the AWS implementation
//! (feature `aws`) and the in-memory VPC (`sim`) arrive with the vpc-sim and
//! VPC-mode issues. Nothing here claims to talk to a cloud yet; ipamd refuses
//! `VPC_CNI_MODE=vpc` until it does.
