//! Netlink helpers shared by the plugin's pod wiring and ipamd's node wiring: one connection
//! per namespace, the kernel's ways of saying "not there", and readers for the attributes of
//! links, routes, rules and neighbours. Nothing here knows about pods or ENIs.

use std::net::{IpAddr, Ipv4Addr};

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{IpVersion, LinkUnspec, RouteMessageBuilder};
use vpc_cni_proto::net::MacAddr;

pub use rtnetlink::{Error, Handle};

/// A connection in the calling thread's network namespace (a netlink socket keeps the
/// namespace it was opened in), served by a task on the current tokio runtime.
pub fn connect() -> std::io::Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The errno of a kernel NACK, positive, if that is what the error is.
#[must_use]
pub fn errno(err: &Error) -> Option<i32> {
    match err {
        Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

/// The kernel's ways of saying "there is no such object" across links, routes, rules,
/// addresses and neighbours: for a delete, the goal is reached all the same.
#[must_use]
pub fn is_not_found(err: &Error) -> bool {
    matches!(
        errno(err),
        Some(libc::ENODEV | libc::ESRCH | libc::ENOENT | libc::EADDRNOTAVAIL)
    )
}

#[must_use]
pub fn is_exists(err: &Error) -> bool {
    errno(err) == Some(libc::EEXIST)
}

/// A delete's outcome with "already gone" counted as success.
pub fn gone_is_ok(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(err) if is_not_found(&err) => Ok(()),
        other => other,
    }
}

// --- links ---

/// Every link of the namespace.
pub async fn links(handle: &Handle) -> Result<Vec<LinkMessage>, Error> {
    handle.link().get().execute().try_collect().await
}

/// The link called `name`, or `None` when there is none.
pub async fn link_by_name(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, Error> {
    let mut found = handle.link().get().match_name(name.to_owned()).execute();
    match found.try_next().await {
        Err(err) if is_not_found(&err) => Ok(None),
        other => other,
    }
}

/// Deletes the link called `name`; a missing link is success.
pub async fn delete_link_by_name(handle: &Handle, name: &str) -> Result<(), Error> {
    let msg = LinkUnspec::new_with_name(name).build();
    gone_is_ok(handle.link().del_with_message(msg).execute().await)
}

#[must_use]
pub fn link_is_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up)
}

#[must_use]
pub fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

/// The link's Ethernet address; `None` for links without one (lo has six zero bytes).
#[must_use]
pub fn link_mac(link: &LinkMessage) -> Option<MacAddr> {
    link.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::Address(addr) => MacAddr::from_slice(addr),
        _ => None,
    })
}

#[must_use]
pub fn link_mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::Mtu(mtu) => Some(*mtu),
        _ => None,
    })
}

// --- addresses ---

/// The IPv4 addresses (with prefix length) on the link with index `index`, in kernel order.
pub async fn ipv4_addresses(handle: &Handle, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, Error> {
    Ok(ipv4_address_messages(handle, index)
        .await?
        .iter()
        .filter_map(|msg| Some((address_local(msg)?, msg.header.prefix_len)))
        .collect())
}

/// The kernel's IPv4 address messages of one link, to delete them as listed.
pub async fn ipv4_address_messages(
    handle: &Handle,
    index: u32,
) -> Result<Vec<AddressMessage>, Error> {
    let all: Vec<AddressMessage> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await?;
    Ok(all
        .into_iter()
        .filter(|m| m.header.family == AddressFamily::Inet && m.header.index == index)
        .collect())
}

/// The local IPv4 address of an address message (`IFA_LOCAL`, which differs from
/// `IFA_ADDRESS` on point-to-point links; `IFA_ADDRESS` when there is no `IFA_LOCAL`).
#[must_use]
pub fn address_local(msg: &AddressMessage) -> Option<Ipv4Addr> {
    let pick = |local: bool| {
        msg.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Local(IpAddr::V4(ip)) if local => Some(*ip),
            AddressAttribute::Address(IpAddr::V4(ip)) if !local => Some(*ip),
            _ => None,
        })
    };
    pick(true).or_else(|| pick(false))
}

// --- routes ---

/// Every IPv4 route of every table (the kernel ignores a table filter on dumps unless asked
/// strictly, so callers filter with [`route_table`]).
pub async fn ipv4_routes(handle: &Handle) -> Result<Vec<RouteMessage>, Error> {
    let mut filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
    filter.header.table = 0;
    handle.route().get(filter).execute().try_collect().await
}

/// Table id of a route: the 32-bit attribute when present, the header byte otherwise.
#[must_use]
pub fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attr| match attr {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

/// The destination network's address; `None` for a default route.
#[must_use]
pub fn route_dst(route: &RouteMessage) -> Option<Ipv4Addr> {
    route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a),
        _ => None,
    })
}

#[must_use]
pub fn route_gateway(route: &RouteMessage) -> Option<Ipv4Addr> {
    route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(*a),
        _ => None,
    })
}

#[must_use]
pub fn route_oif(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

/// The route's metric; the kernel leaves the attribute out when it is 0.
#[must_use]
pub fn route_metric(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attr| match attr {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0)
}

// --- rules ---

pub async fn ipv4_rules(handle: &Handle) -> Result<Vec<RuleMessage>, Error> {
    handle
        .rule()
        .get(IpVersion::V4)
        .execute()
        .try_collect()
        .await
}

fn rule_u32(rule: &RuleMessage, pick: fn(&RuleAttribute) -> Option<u32>) -> Option<u32> {
    rule.attributes.iter().find_map(pick)
}

/// Table id of a rule, same convention as routes.
#[must_use]
pub fn rule_table(rule: &RuleMessage) -> u32 {
    rule_u32(rule, |attr| match attr {
        RuleAttribute::Table(t) => Some(*t),
        _ => None,
    })
    .unwrap_or(u32::from(rule.header.table))
}

#[must_use]
pub fn rule_priority(rule: &RuleMessage) -> Option<u32> {
    rule_u32(rule, |attr| match attr {
        RuleAttribute::Priority(p) => Some(*p),
        _ => None,
    })
}

#[must_use]
pub fn rule_fwmark(rule: &RuleMessage) -> Option<u32> {
    rule_u32(rule, |attr| match attr {
        RuleAttribute::FwMark(m) => Some(*m),
        _ => None,
    })
}

#[must_use]
pub fn rule_fwmask(rule: &RuleMessage) -> Option<u32> {
    rule_u32(rule, |attr| match attr {
        RuleAttribute::FwMask(m) => Some(*m),
        _ => None,
    })
}

/// True when the rule's destination selector is exactly `ip/32`.
#[must_use]
pub fn rule_is_to(rule: &RuleMessage, ip: Ipv4Addr) -> bool {
    rule.header.dst_len == 32
        && rule
            .attributes
            .contains(&RuleAttribute::Destination(IpAddr::V4(ip)))
}

/// True when the rule's source selector is exactly `ip/32`.
#[must_use]
pub fn rule_is_from(rule: &RuleMessage, ip: Ipv4Addr) -> bool {
    rule.header.src_len == 32
        && rule
            .attributes
            .contains(&RuleAttribute::Source(IpAddr::V4(ip)))
}

/// True when the rule plainly looks a table up and selects on nothing but (at most) one of
/// source, destination or mark: anything else at our priorities is not ours to keep.
#[must_use]
pub fn rule_is_plain_lookup(rule: &RuleMessage) -> bool {
    rule.header.action == RuleAction::ToTable
        && rule.header.tos == 0
        && (rule.header.src_len == 0 || rule.header.dst_len == 0)
        && !rule.attributes.iter().any(|attr| {
            matches!(
                attr,
                RuleAttribute::Iifname(_)
                    | RuleAttribute::Oifname(_)
                    | RuleAttribute::UidRange(_)
                    | RuleAttribute::IpProtocol(_)
                    | RuleAttribute::SourcePortRange(_)
                    | RuleAttribute::DestinationPortRange(_)
            )
        })
}

// --- neighbours ---
//
// The neighbour table is one hash table shared by every network namespace of the machine.
// While the kernel grows it (when its entries outnumber its buckets) a dump or a lookup that
// runs at the same moment can miss entries of any namespace: a reader of this table must
// treat "missing" as "maybe missing". Duplicates never exist in the kernel (one entry per
// address and device), so readers also drop repeated entries of a dump.

/// Every neighbour (or, with [`AddressFamily::Bridge`], FDB entry) of the namespace.
pub async fn neighbours(
    handle: &Handle,
    family: AddressFamily,
) -> Result<Vec<NeighbourMessage>, Error> {
    handle
        .neighbours()
        .get()
        .set_address_family(family)
        .execute()
        .try_collect()
        .await
}

/// The IPv4 neighbour `ip` on the link `index`, looked up directly rather than dumped;
/// `None` when the kernel has none.
pub async fn ipv4_neighbour(
    handle: &Handle,
    index: u32,
    ip: Ipv4Addr,
) -> Result<Option<NeighbourMessage>, Error> {
    let mut query = NeighbourMessage::default();
    query.header.family = AddressFamily::Inet;
    query.header.ifindex = index;
    query
        .attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetNeighbour(query));
    request.header.flags = NLM_F_REQUEST;
    let mut handle = handle.clone();
    let mut answers = handle.request(request)?;
    while let Some(answer) = answers.next().await {
        match answer.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(msg)) => {
                return Ok(Some(msg));
            }
            NetlinkPayload::Error(err) => {
                let err = Error::NetlinkError(err);
                return if is_not_found(&err) {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The IPv4 address a neighbour or FDB entry points at.
#[must_use]
pub fn neighbour_ip(msg: &NeighbourMessage) -> Option<Ipv4Addr> {
    msg.attributes.iter().find_map(|attr| match attr {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        // The parser only knows the family's own addresses; FDB remotes come in raw.
        NeighbourAttribute::Destination(NeighbourAddress::Other(raw)) => {
            <[u8; 4]>::try_from(raw.as_slice()).ok().map(Ipv4Addr::from)
        }
        _ => None,
    })
}

#[must_use]
pub fn neighbour_mac(msg: &NeighbourMessage) -> Option<MacAddr> {
    msg.attributes.iter().find_map(|attr| match attr {
        NeighbourAttribute::LinkLayerAddress(mac) => MacAddr::from_slice(mac),
        _ => None,
    })
}
