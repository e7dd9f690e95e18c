//! `vpc-sim`: the EC2 Query API, IMDSv2 and an admin API over the in-memory
//! VPC `vpc_cni_cloud::sim::SimVpc`, so ipamd and the contract tests talk to
//! it exactly as they would to EC2.
//!
//! Every server takes a bound `TcpListener` and a shutdown future: the
//! network fabric binds them inside its namespaces, tests bind 127.0.0.1:0.

mod admin;
mod api_error;
pub mod client;
mod ec2;
mod ec2_filter;
mod ec2_world;
mod ec2_xml;
mod http;
mod imds;
mod imds_tree;
mod launch;
pub mod query;
pub mod stamp;
pub mod xml;

pub use admin::{serve_admin, AdminOptions};
pub use api_error::ApiError;
pub use ec2::{serve_ec2, ACTIONS};
pub use imds::{serve_imds, ImdsResolver, TOKEN_HEADER, TTL_HEADER};
pub use launch::{start, start_loopback, Running};

/// The account id every resource reports as its owner (AWS's documentation
/// example account).
pub const ACCOUNT_ID: &str = "111122223333";

/// What can go wrong running or talking to vpc-sim.
#[derive(Debug, thiserror::Error)]
pub enum VpcSimError {
    #[error("I/O: {0}")]
    Io(String),
    #[error("unexpected reply: {0}")]
    BadReply(String),
}

#[cfg(test)]
mod tests;
