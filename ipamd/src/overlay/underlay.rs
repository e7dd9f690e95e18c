//! The underlay: the interface that carries the overlay's UDP packets, its MTU and the
//! node's address on it, read from the calling thread's netns.

use std::net::Ipv4Addr;

use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::route::RouteHeader;
use rtnetlink::Handle;
use vpc_cni::netlink as nl;
use vpc_cni_proto::net::Ipv4Cidr;

use crate::error::IpamdError;
use crate::kernel;

/// What the overlay needs to know about the underlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub iface: String,
    pub mtu: u32,
    /// The node's address on it: the VXLAN source and the address peers send to.
    pub ip: Ipv4Addr,
    /// The subnet of that address: peers inside it can be routed to directly.
    pub subnet: Ipv4Cidr,
}

const VARIABLE: &str = "VXLAN_UNDERLAY_IFACE";

/// Finds the underlay: the named interface, or the one of the IPv4 default route in the main
/// table. Its first IPv4 address is the node's underlay address.
pub async fn discover(named: Option<&str>) -> Result<Underlay, IpamdError> {
    discover_with(&kernel::connect()?, named).await
}

async fn discover_with(handle: &Handle, named: Option<&str>) -> Result<Underlay, IpamdError> {
    let link: LinkMessage = match named {
        Some(name) => nl::link_by_name(handle, name)
            .await
            .map_err(IpamdError::netlink(format!("looking up link {name}")))?
            .ok_or_else(|| IpamdError::Config {
                variable: VARIABLE,
                reason: format!("no interface named {name:?}"),
            })?,
        None => {
            let index = default_route_oif(handle).await?.ok_or(IpamdError::Config {
                variable: VARIABLE,
                reason: "unset, and this node has no IPv4 default route to take it from".into(),
            })?;
            nl::link_by_index(handle, index)
                .await
                .map_err(IpamdError::netlink(format!("looking up link {index}")))?
                .ok_or_else(|| IpamdError::Config {
                    variable: VARIABLE,
                    reason: format!("the default route's interface (index {index}) is gone"),
                })?
        }
    };
    let iface = nl::link_name(&link).unwrap_or_default().to_owned();
    let mtu = nl::link_mtu(&link)
        .ok_or_else(|| IpamdError::Internal(format!("interface {iface} reports no MTU")))?;
    let addresses = nl::ipv4_addresses(handle, link.header.index)
        .await
        .map_err(IpamdError::netlink(format!("listing addresses of {iface}")))?;
    let (ip, prefix_len) = *addresses.first().ok_or_else(|| IpamdError::Config {
        variable: VARIABLE,
        reason: format!("interface {iface} has no IPv4 address to carry the overlay"),
    })?;
    let subnet = Ipv4Cidr::containing(ip, prefix_len);
    Ok(Underlay {
        iface,
        mtu,
        ip,
        subnet,
    })
}

async fn default_route_oif(handle: &Handle) -> Result<Option<u32>, IpamdError> {
    let routes = nl::ipv4_routes(handle)
        .await
        .map_err(IpamdError::netlink("listing IPv4 routes"))?;
    // The lowest metric wins, as it does for the kernel's own lookup.
    Ok(routes
        .iter()
        .filter(|r| {
            r.header.destination_prefix_length == 0
                && nl::route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
        })
        .filter_map(|r| Some((nl::route_metric(r), nl::route_oif(r)?)))
        .min()
        .map(|(_, oif)| oif))
}
