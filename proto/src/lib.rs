//! What every vpc-cni crate agrees on: the ipamd gRPC contract, the dataplane constants
//! ipamd and the plugin share, and the plain values passed between all of them
//! ([`net`]: IPv4 networks and MAC addresses; [`time`]: unix-millisecond clocks).

#![forbid(unsafe_code)]

pub mod net;
pub mod time;

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

impl Mode {
    /// The name settings, the checkpoint and logs use for the mode: `vpc` or `overlay`
    /// (`unspecified` for the wire's zero value, which no setting produces).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Mode::Vpc => "vpc",
            Mode::Overlay => "overlay",
            Mode::Unspecified => "unspecified",
        }
    }

    /// The mode of a [`Mode::name`]; `None` for anything else.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "vpc" => Some(Mode::Vpc),
            "overlay" => Some(Mode::Overlay),
            _ => None,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
