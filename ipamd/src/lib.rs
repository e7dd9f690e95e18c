//! ipamd, the vpc-cni node daemon, as a library: configuration, the address
//! datastore and its checkpoint, pool sources, the node datapath, the gRPC
//! service and the veth-presence sweep.

pub mod config;
pub mod daemon;
pub mod datapath;
pub mod error;
pub mod overlay;
pub mod pool;
pub mod rpc;
pub mod store;
pub mod sweep;
pub mod vpc;
pub mod vpc_datapath;

pub use error::IpamdError;
