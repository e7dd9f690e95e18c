//! The CNI spec as this plugin speaks it (versions 0.3.0 to 1.1.0): the
//! network configuration on stdin, the `CNI_*` environment, the ADD result
//! per version and the VERSION reply. Pure parsing and rendering, no I/O
//! beyond reading the process environment in [`CniEnv::from_process`].

pub mod config;
pub mod env;
pub mod result;
pub mod version;

pub use config::{parse_netconf, parse_version_only, Attachment, NetConf, MAX_STDIN_BYTES};
pub use env::{parse_cni_args, CniArgs, CniEnv, Command};
pub use result::{first_ipv4, render, AddResult, Interface, IpConfig, Route};
pub use version::{version_reply, CniVersion};
