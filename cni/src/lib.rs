//! The vpc-cni CNI plugin as a library: spec types for every supported CNI
//! version, the ipamd client, and the netlink/netns code (`dataplane`) that
//! ipamd shares.

pub mod error;

pub use error::CniError;
pub mod client;
pub mod commands;
pub mod dataplane;
pub mod spec;
