//! The ipamd gRPC contract and the dataplane constants that ipamd and the
//! `vpc-cni` plugin must agree on.

#[allow(clippy::pedantic, clippy::unwrap_used, clippy::expect_used)]
mod generated {
    tonic::include_proto!("vpccni.ipamd.v1");
}

pub use generated::*;

/// Default path of ipamd's unix socket (network config key `ipamdSocket`, env `IPAMD_SOCKET`).
pub const DEFAULT_IPAMD_SOCKET: &str = "/run/vpc-cni/ipamd.sock";

/// Default directory of ipamd's checkpoint (env `IPAMD_STATE_DIR`).
pub const DEFAULT_STATE_DIR: &str = "/run/vpc-cni";

/// Gateway every pod routes through: link-local, answered by a permanent
/// neighbour entry that points at the host veth's MAC.
pub const POD_GATEWAY: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 1, 1);

/// Rule priority of `to <pod ip> lookup main`.
pub const RULE_PRIORITY_TO_POD: u32 = 512;

/// Rule priority of `fwmark 0x80/0x80 lookup main` (VPC mode connmark).
pub const RULE_PRIORITY_CONNMARK: u32 = 1024;

/// Rule priority of `from <pod ip> lookup <eni table>` for pods on secondary ENIs.
pub const RULE_PRIORITY_FROM_POD: u32 = 1536;

/// Main routing table id.
pub const MAIN_TABLE: u32 = 254;

/// Prefix of the host-side veth name; the rest is 11 hex chars of a sha1.
pub const HOST_VETH_PREFIX: &str = "vpc";

/// Route table that holds a secondary ENI's routes: device index + 1.
#[must_use]
pub fn eni_route_table(device_number: u32) -> u32 {
    device_number + 1
}

/// The gRPC service name ipamd registers with the standard health service.
pub const HEALTH_SERVICE_NAME: &str = "vpccni.ipamd.v1.CniBackend";
