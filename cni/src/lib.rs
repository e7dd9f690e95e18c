//! The vpc-cni CNI plugin as a library: spec types for every supported CNI
//! version, the ipamd client, the pod wiring (`dataplane`) and the netlink helpers
//! (`netlink`) that ipamd's node wiring uses too, and the plugin's own log (`log`).

#![forbid(unsafe_code)]

pub mod error;

pub use error::CniError;
pub mod client;
pub mod commands;
pub mod dataplane;
mod link_dump;
pub mod log;
pub mod netlink;
pub mod spec;
