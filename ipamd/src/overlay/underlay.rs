//! The underlay: the interface that carries the overlay's UDP packets, its MTU and the
//! node's address on it, read from the calling thread's netns.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAttribute, RouteHeader};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};
use vpc_cni::CniError;

use crate::error::IpamdError;
use vpc_cni_proto::net::Ipv4Cidr;

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

fn nl_error(operation: &str, source: rtnetlink::Error) -> IpamdError {
    IpamdError::Dataplane(CniError::netlink(operation, source))
}

/// Finds the underlay: the named interface, or the one of the IPv4 default route in the main
/// table. Its first IPv4 address is the node's underlay address.
pub async fn discover(named: Option<&str>) -> Result<Underlay, IpamdError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| IpamdError::Io {
        context: "opening a netlink socket to find the VXLAN underlay".to_owned(),
        source,
    })?;
    let task = tokio::spawn(conn);
    let found = discover_with(&handle, named).await;
    task.abort();
    found
}

async fn discover_with(handle: &Handle, named: Option<&str>) -> Result<Underlay, IpamdError> {
    let links: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl_error("listing links", e))?;
    let link = match named {
        Some(name) => links
            .iter()
            .find(|l| link_name(l) == Some(name))
            .ok_or_else(|| IpamdError::Config {
                variable: VARIABLE,
                reason: format!("no interface named {name:?}"),
            })?,
        None => {
            let index = default_route_oif(handle).await?.ok_or(IpamdError::Config {
                variable: VARIABLE,
                reason: "unset, and this node has no IPv4 default route to take it from".into(),
            })?;
            links
                .iter()
                .find(|l| l.header.index == index)
                .ok_or_else(|| IpamdError::Config {
                    variable: VARIABLE,
                    reason: format!("the default route's interface (index {index}) is gone"),
                })?
        }
    };
    let iface = link_name(link).unwrap_or_default().to_owned();
    let mtu = link
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
        .ok_or_else(|| IpamdError::Internal(format!("interface {iface} reports no MTU")))?;
    let (ip, prefix_len) = first_ipv4(handle, link.header.index)
        .await?
        .ok_or_else(|| IpamdError::Config {
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

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

async fn default_route_oif(handle: &Handle) -> Result<Option<u32>, IpamdError> {
    let routes: Vec<_> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl_error("listing IPv4 routes", e))?;
    // The lowest metric wins, as it does for the kernel's own lookup.
    Ok(routes
        .iter()
        .filter(|r| {
            r.header.destination_prefix_length == 0
                && r.header.table == RouteHeader::RT_TABLE_MAIN
                && !r
                    .attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Table(t) if *t != u32::from(RouteHeader::RT_TABLE_MAIN)))
        })
        .filter_map(|r| {
            let oif = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })?;
            let metric = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Priority(p) => Some(*p),
                    _ => None,
                })
                .unwrap_or(0);
            Some((metric, oif))
        })
        .min()
        .map(|(_, oif)| oif))
}

async fn first_ipv4(handle: &Handle, index: u32) -> Result<Option<(Ipv4Addr, u8)>, IpamdError> {
    let addresses: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl_error("listing addresses of the underlay", e))?;
    Ok(addresses
        .iter()
        .filter(|m| m.header.family == AddressFamily::Inet && m.header.index == index)
        .find_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some((*ip, m.header.prefix_len)),
                _ => None,
            })
        }))
}
