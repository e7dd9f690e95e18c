//! ipamd, the vpc-cni node daemon, as a library.
//!
//! - `config`: settings, parsed once from flags and environment; the AWS VPC CNI's variables.
//! - `logging`: ipamd's log, set up from its settings.
//! - `store`: the address pool, its assignments and their durable checkpoint (no kernel or
//!   cloud I/O).
//! - `rpc`: the CniBackend gRPC service the plugin calls.
//! - `datapath`: the node datapath seam both modes implement, and its upkeep.
//! - `guard`: what pods may send into the node (anti-spoofing, `BLOCK_POD_IMDS`), both modes.
//! - `kernel`: netlink connections, sysctls and our nftables table, shared by both modes.
//! - `vpc` (pool controller over EC2) and `vpc_datapath` (ENI tables, rules, SNAT): VPC mode.
//! - `overlay`: VXLAN peers and device: overlay mode.
//! - `sweep`: reclaiming addresses of pods that vanished without a DEL.
//! - `rebuild`: the pods the kernel shows, held at start whatever the checkpoint says.
//! - `metrics` (Prometheus, `/metrics`) and `introspect` (read-only JSON for `ipamd inspect`):
//!   what a running ipamd shows about itself.
//! - `daemon`: start-up, mode choice and shutdown; the network configuration it installs.
//! - `cli`: the subcommands (`ipamd inspect`, `ipamd health`, `ipamd install-cni`).

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod datapath;
pub mod error;
pub mod guard;
pub mod introspect;
pub mod kernel;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod overlay;
pub mod rebuild;
pub mod rpc;
pub mod store;
pub mod sweep;
pub mod vpc;
pub mod vpc_datapath;

#[cfg(test)]
mod test_support;

pub use error::IpamdError;
