//! Reading, adding and deleting the per-peer entries: permanent neighbours and FDB entries on
//! the device, and routes in the main table.

use std::net::{IpAddr, Ipv4Addr};

use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric, RouteProtocol, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};
use vpc_cni::netlink as nl;

use super::core::{
    FdbEntry, NeighbourEntry, Observed, RouteEntry, RouteKind, DEVICE_NAME, ROUTE_PROTOCOL,
};
use crate::error::IpamdError;

/// Link indexes the entries refer to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Links {
    pub device: u32,
    pub underlay: u32,
}

/// The kernel's routes behind [`Observed::routes`], index for index, to delete them as dumped.
pub(super) type RawRoutes = Vec<RouteMessage>;

async fn dump_neighbours(
    handle: &Handle,
    family: AddressFamily,
) -> Result<Vec<NeighbourMessage>, IpamdError> {
    nl::neighbours(handle, family)
        .await
        .map_err(IpamdError::netlink(format!(
            "listing {family:?} neighbours"
        )))
}

/// Our route as a [`RouteEntry`], `None` when it has a shape we never add.
fn route_entry(route: &RouteMessage, links: Links) -> Option<RouteEntry> {
    if nl::route_metric(route) != 0 {
        return None;
    }
    let onlink = route.header.flags.contains(RouteFlags::Onlink);
    let kind = match nl::route_oif(route) {
        Some(i) if i == links.device && onlink => RouteKind::Overlay,
        Some(i) if i == links.underlay && !onlink => RouteKind::Direct,
        _ => return None,
    };
    Some(RouteEntry {
        dst: (
            nl::route_dst(route).unwrap_or(Ipv4Addr::UNSPECIFIED),
            route.header.destination_prefix_length,
        ),
        gateway: nl::route_gateway(route)?,
        kind,
        mtu: route_mtu(route),
    })
}

/// The MTU metric of a route, if it has one.
fn route_mtu(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Metrics(metrics) => metrics.iter().find_map(|m| match m {
            RouteMetric::Mtu(mtu) => Some(*mtu),
            _ => None,
        }),
        _ => None,
    })
}

/// Our entries: every permanent IPv4 neighbour and every unicast FDB entry on the device, and
/// the main-table routes that point at the device or carry our protocol number.
pub(super) async fn observe(
    handle: &Handle,
    links: Links,
) -> Result<(Observed, RawRoutes), IpamdError> {
    let neighbours = dump_neighbours(handle, AddressFamily::Inet)
        .await?
        .iter()
        .filter(|m| m.header.ifindex == links.device && m.header.state == NeighbourState::Permanent)
        .filter_map(|m| {
            Some(NeighbourEntry {
                ip: nl::neighbour_ip(m)?,
                mac: nl::neighbour_mac(m)?,
            })
        })
        .collect();
    // Entries without a remote address are the device's own multicast list, not forwarding.
    let fdb = dump_neighbours(handle, AddressFamily::Bridge)
        .await?
        .iter()
        .filter(|m| m.header.ifindex == links.device)
        .filter_map(|m| {
            Some(FdbEntry {
                mac: nl::neighbour_mac(m)?,
                dst: nl::neighbour_ip(m)?,
            })
        })
        .collect();

    let all_routes = nl::ipv4_routes(handle)
        .await
        .map_err(IpamdError::netlink("listing IPv4 routes"))?;
    let raw: RawRoutes = all_routes
        .into_iter()
        .filter(|r| {
            let protocol = u8::from(r.header.protocol);
            let on_device = r.attributes.contains(&RouteAttribute::Oif(links.device));
            nl::route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
                && r.header.kind == RouteType::Unicast
                && (protocol == ROUTE_PROTOCOL
                    || (on_device && r.header.protocol != RouteProtocol::Kernel))
        })
        .collect();
    let routes = raw.iter().map(|r| route_entry(r, links)).collect();
    Ok((
        Observed {
            neighbours,
            fdb,
            routes,
        },
        raw,
    ))
}

pub(super) async fn add_neighbour(
    handle: &Handle,
    links: Links,
    entry: NeighbourEntry,
) -> Result<(), IpamdError> {
    handle
        .neighbours()
        .add(links.device, IpAddr::V4(entry.ip))
        .link_layer_address(&entry.mac.0)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(IpamdError::netlink(format!(
            "adding neighbour {} lladdr {} dev {DEVICE_NAME}",
            entry.ip, entry.mac
        )))
}

pub(super) async fn add_fdb(
    handle: &Handle,
    links: Links,
    entry: FdbEntry,
) -> Result<(), IpamdError> {
    handle
        .neighbours()
        .add_bridge(links.device, &entry.mac.0)
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .destination(IpAddr::V4(entry.dst))
        .replace()
        .execute()
        .await
        .map_err(IpamdError::netlink(format!(
            "adding FDB entry {} dst {} dev {DEVICE_NAME}",
            entry.mac, entry.dst
        )))
}

fn route_message(links: Links, entry: RouteEntry) -> RouteMessage {
    let (net, len) = entry.dst;
    let builder = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(net, len)
        .gateway(entry.gateway)
        .protocol(RouteProtocol::from(ROUTE_PROTOCOL));
    let mut message = match entry.kind {
        RouteKind::Overlay => builder.output_interface(links.device).onlink().build(),
        RouteKind::Direct => builder.output_interface(links.underlay).build(),
    };
    if let Some(mtu) = entry.mtu {
        message
            .attributes
            .push(RouteAttribute::Metrics(vec![RouteMetric::Mtu(mtu)]));
    }
    message
}

pub(super) async fn add_route(
    handle: &Handle,
    links: Links,
    entry: RouteEntry,
) -> Result<(), IpamdError> {
    handle
        .route()
        .add(route_message(links, entry))
        .replace()
        .execute()
        .await
        .map_err(IpamdError::netlink(format!("adding route {entry}")))
}

/// Runs one delete; an entry already gone counts as deleted.
async fn delete(
    what: String,
    request: impl std::future::Future<Output = Result<(), nl::Error>>,
) -> Result<(), IpamdError> {
    nl::gone_is_ok(request.await).map_err(IpamdError::netlink(what))
}

/// A neighbour-table message about the entry for `dst` on the device.
fn device_entry(links: Links, family: AddressFamily, dst: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family;
    msg.header.ifindex = links.device;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    msg
}

pub(super) async fn remove_neighbour(
    handle: &Handle,
    links: Links,
    entry: NeighbourEntry,
) -> Result<(), IpamdError> {
    let msg = device_entry(links, AddressFamily::Inet, entry.ip);
    let what = format!("deleting neighbour {} dev {DEVICE_NAME}", entry.ip);
    delete(what, handle.neighbours().del(msg).execute()).await
}

pub(super) async fn remove_fdb(
    handle: &Handle,
    links: Links,
    entry: FdbEntry,
) -> Result<(), IpamdError> {
    // With the remote named, only that remote goes: a MAC may have another one we keep.
    let mut msg = device_entry(links, AddressFamily::Bridge, entry.dst);
    msg.header.flags = NeighbourFlags::Own;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(entry.mac.0.to_vec()));
    let what = format!(
        "deleting FDB entry {} dst {} dev {DEVICE_NAME}",
        entry.mac, entry.dst
    );
    delete(what, handle.neighbours().del(msg).execute()).await
}

pub(super) async fn remove_route(
    handle: &Handle,
    links: Links,
    entry: RouteEntry,
) -> Result<(), IpamdError> {
    let mut msg = route_message(links, entry);
    // Any protocol: a route of ours added by hand or by an older ipamd goes too.
    msg.header.protocol = RouteProtocol::Unspec;
    delete(
        format!("deleting route {entry}"),
        handle.route().del(msg).execute(),
    )
    .await
}

/// Deletes a route exactly as the kernel listed it.
pub(super) async fn remove_raw_route(
    handle: &Handle,
    route: RouteMessage,
) -> Result<(), IpamdError> {
    let what = format!(
        "deleting stale route to {:?}/{}",
        nl::route_dst(&route),
        route.header.destination_prefix_length
    );
    delete(what, handle.route().del(route).execute()).await
}
