//! Reading, adding and deleting the per-peer entries: permanent neighbours and FDB entries on
//! the device, and routes in the main table.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};

use super::core::{
    FdbEntry, NeighbourEntry, Observed, RouteEntry, RouteKind, DEVICE_NAME, ROUTE_PROTOCOL,
};
use super::mac_string;
use super::nl::{is_gone, netlink_error};
use crate::error::IpamdError;

/// Link indexes the entries refer to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Links {
    pub device: u32,
    pub underlay: u32,
}

/// The kernel's routes behind [`Observed::routes`], index for index, to delete them as dumped.
pub(super) type RawRoutes = Vec<RouteMessage>;

fn neighbour_mac(msg: &NeighbourMessage) -> Option<[u8; 6]> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(m) => <[u8; 6]>::try_from(m.as_slice()).ok(),
        _ => None,
    })
}

fn neighbour_ip(msg: &NeighbourMessage) -> Option<Ipv4Addr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        // The parser only knows the family's own addresses; FDB remotes come in raw.
        NeighbourAttribute::Destination(NeighbourAddress::Other(raw)) => {
            <[u8; 4]>::try_from(raw.as_slice()).ok().map(Ipv4Addr::from)
        }
        _ => None,
    })
}

async fn dump_neighbours(
    handle: &Handle,
    family: AddressFamily,
) -> Result<Vec<NeighbourMessage>, IpamdError> {
    handle
        .neighbours()
        .get()
        .set_address_family(family)
        .execute()
        .try_collect()
        .await
        .map_err(|e| netlink_error(format!("listing {family:?} neighbours"), e))
}

fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

/// Our route as a [`RouteEntry`], `None` when it has a shape we never add.
fn route_entry(route: &RouteMessage, links: Links) -> Option<RouteEntry> {
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut oif = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) if *p != 0 => return None,
            _ => {}
        }
    }
    let onlink = route.header.flags.contains(RouteFlags::Onlink);
    let kind = match oif {
        Some(i) if i == links.device && onlink => RouteKind::Overlay,
        Some(i) if i == links.underlay && !onlink => RouteKind::Direct,
        _ => return None,
    };
    Some(RouteEntry {
        dst: (dst, route.header.destination_prefix_length),
        gateway: gateway?,
        kind,
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
                ip: neighbour_ip(m)?,
                mac: neighbour_mac(m)?,
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
                mac: neighbour_mac(m)?,
                dst: neighbour_ip(m)?,
            })
        })
        .collect();

    let all_routes: Vec<RouteMessage> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| netlink_error("listing IPv4 routes", e))?;
    let raw: RawRoutes = all_routes
        .into_iter()
        .filter(|r| {
            let protocol = u8::from(r.header.protocol);
            let on_device = r.attributes.contains(&RouteAttribute::Oif(links.device));
            route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
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
        .link_layer_address(&entry.mac)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(|e| {
            netlink_error(
                format!(
                    "adding neighbour {} lladdr {} dev {DEVICE_NAME}",
                    entry.ip,
                    mac_string(entry.mac)
                ),
                e,
            )
        })
}

pub(super) async fn add_fdb(
    handle: &Handle,
    links: Links,
    entry: FdbEntry,
) -> Result<(), IpamdError> {
    handle
        .neighbours()
        .add_bridge(links.device, &entry.mac)
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .destination(IpAddr::V4(entry.dst))
        .replace()
        .execute()
        .await
        .map_err(|e| {
            netlink_error(
                format!(
                    "adding FDB entry {} dst {} dev {DEVICE_NAME}",
                    mac_string(entry.mac),
                    entry.dst
                ),
                e,
            )
        })
}

fn route_message(links: Links, entry: RouteEntry) -> RouteMessage {
    let (net, len) = entry.dst;
    let builder = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(net, len)
        .gateway(entry.gateway)
        .protocol(RouteProtocol::from(ROUTE_PROTOCOL));
    match entry.kind {
        RouteKind::Overlay => builder.output_interface(links.device).onlink().build(),
        RouteKind::Direct => builder.output_interface(links.underlay).build(),
    }
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
        .map_err(|e| netlink_error(format!("adding route {entry}"), e))
}

/// Runs one delete; an entry already gone counts as deleted.
async fn delete(
    what: String,
    request: impl std::future::Future<Output = Result<(), rtnetlink::Error>>,
) -> Result<(), IpamdError> {
    match request.await {
        Err(e) if !is_gone(&e) => Err(netlink_error(what, e)),
        _ => Ok(()),
    }
}

pub(super) async fn remove_neighbour(
    handle: &Handle,
    links: Links,
    entry: NeighbourEntry,
) -> Result<(), IpamdError> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = links.device;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            entry.ip,
        )));
    let what = format!("deleting neighbour {} dev {DEVICE_NAME}", entry.ip);
    delete(what, handle.neighbours().del(msg).execute()).await
}

pub(super) async fn remove_fdb(
    handle: &Handle,
    links: Links,
    entry: FdbEntry,
) -> Result<(), IpamdError> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = links.device;
    msg.header.flags = NeighbourFlags::Own;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()));
    // With the remote named, only that remote goes: a MAC may have another one we keep.
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            entry.dst,
        )));
    let what = format!(
        "deleting FDB entry {} dst {} dev {DEVICE_NAME}",
        mac_string(entry.mac),
        entry.dst
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
        route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a),
            _ => None,
        }),
        route.header.destination_prefix_length
    );
    delete(what, handle.route().del(route).execute()).await
}
