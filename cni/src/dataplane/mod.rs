//! Pod dataplane: the veth pair, addresses, routes, neighbour and policy rules of a pod, on
//! both sides (pod netns and host netns), shared by the plugin and ipamd.
//!
//! Every public function runs in the calling thread's netns, which must be the host (node)
//! netns; the pod's netns is named by path. One netlink connection per namespace per call,
//! no polling, no external commands.

mod check;
mod host;
mod names;
mod netns;
mod pod;

#[cfg(test)]
mod isolation_tests;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use vpc_cni_proto::net::MacAddr;

pub use check::check_pod;
pub use host::{delete_link, host_links_with_prefix, link_exists, unwire_host};
pub use names::host_veth_name;
pub use pod::wire_pod;

/// Everything needed to wire (or CHECK) one pod interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodWiring {
    /// The pod's netns (`CNI_NETNS`), e.g. `/proc/<pid>/ns/net` or `/run/netns/<name>`.
    pub netns_path: PathBuf,
    /// Interface name inside the pod (`CNI_IFNAME`).
    pub ifname: String,
    /// Host-side veth name, from [`host_veth_name`].
    pub host_veth: String,
    /// The pod's address; it is configured as `/32`.
    pub ip: Ipv4Addr,
    /// Route table of the address's ENI; 0 = main (no `from` rule).
    pub route_table: u32,
    /// MTU of both veth ends.
    pub mtu: u32,
}

/// The hardware addresses of a wired pod's veth pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WiredPod {
    pub pod_mac: MacAddr,
    pub host_mac: MacAddr,
}
