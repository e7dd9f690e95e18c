//! Netlink helpers shared by the plugin's pod wiring and ipamd's node wiring: one connection
//! per namespace, the kernel's ways of saying "not there", and readers for the attributes of
//! links, routes, rules and neighbours. Nothing here knows about pods or ENIs.

use std::net::{IpAddr, Ipv4Addr};

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{IpVersion, LinkUnspec, RouteMessageBuilder};
use vpc_cni_proto::net::MacAddr;

pub use crate::link_dump::{link_summaries, LinkSummary};
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

// --- attributes ---

/// Defines `fn $name(msg) -> Option<$out>`: `$value` of the first attribute that matches
/// `$pat`.
macro_rules! attribute {
    ($(#[$doc:meta])* $name:ident($msg:ty) -> $out:ty { $pat:pat => $value:expr }) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(msg: &$msg) -> Option<$out> {
            msg.attributes.iter().find_map(|attr| match attr {
                $pat => $value,
                _ => None,
            })
        }
    };
}

attribute!(link_name(LinkMessage) -> &str { LinkAttribute::IfName(name) => Some(name.as_str()) });
attribute!(
    /// The link's Ethernet address; `None` for links without a six-byte one.
    link_mac(LinkMessage) -> MacAddr { LinkAttribute::Address(addr) => MacAddr::from_slice(addr) }
);
attribute!(link_mtu(LinkMessage) -> u32 { LinkAttribute::Mtu(mtu) => Some(*mtu) });
attribute!(
    /// The destination network's address; `None` for a default route.
    route_dst(RouteMessage) -> Ipv4Addr {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a)
    }
);
attribute!(
    route_gateway(RouteMessage) -> Ipv4Addr {
        RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(*a)
    }
);
attribute!(route_oif(RouteMessage) -> u32 { RouteAttribute::Oif(i) => Some(*i) });
attribute!(route_priority(RouteMessage) -> u32 { RouteAttribute::Priority(p) => Some(*p) });
attribute!(route_table_attribute(RouteMessage) -> u32 { RouteAttribute::Table(t) => Some(*t) });
attribute!(
    neighbour_mac(NeighbourMessage) -> MacAddr {
        NeighbourAttribute::LinkLayerAddress(mac) => MacAddr::from_slice(mac)
    }
);

// --- links ---

/// Every link of the namespace.
pub async fn links(handle: &Handle) -> Result<Vec<LinkMessage>, Error> {
    handle.link().get().execute().try_collect().await
}

/// The link with index `index`, or `None` when there is none.
pub async fn link_by_index(handle: &Handle, index: u32) -> Result<Option<LinkMessage>, Error> {
    let mut found = handle.link().get().match_index(index).execute();
    match found.try_next().await {
        Err(err) if is_not_found(&err) => Ok(None),
        other => other,
    }
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

/// Whether the link neither sends nor accepts ARP (`ip link set <dev> arp off`).
#[must_use]
pub fn link_is_noarp(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Noarp)
}

/// Brings link `index` up with `mtu` (and `mac`, when given) unless `current`, the link as
/// last listed, already is so; returns whether it set anything.
pub async fn ensure_link_up(
    handle: &Handle,
    index: u32,
    current: Option<&LinkMessage>,
    mtu: u32,
    mac: Option<MacAddr>,
) -> Result<bool, Error> {
    let settled = current.is_some_and(|link| {
        link_is_up(link)
            && link_mtu(link) == Some(mtu)
            && mac.is_none_or(|mac| link_mac(link) == Some(mac))
    });
    if settled {
        return Ok(false);
    }
    let mut msg = LinkUnspec::new_with_index(index).mtu(mtu).up();
    if let Some(mac) = mac {
        msg = msg.address(mac.0.to_vec());
    }
    handle.link().set(msg.build()).execute().await?;
    Ok(true)
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
    route_table_attribute(route).unwrap_or(u32::from(route.header.table))
}

/// The route's metric; the kernel leaves the attribute out when it is 0.
#[must_use]
pub fn route_metric(route: &RouteMessage) -> u32 {
    route_priority(route).unwrap_or(0)
}

// --- rules ---

//
// The kernel dumps the rule list by position: when a dump needs several messages (a few dozen
// rules fill the first), it resumes at the index where the last one stopped. A rule deleted
// ahead of that index meanwhile shifts the rest forward and the dump skips one that never
// changed; a rule inserted ahead shows one twice. The kernel does not flag such a dump as
// interrupted. Every pod ADD and DEL inserts and deletes rules on the node, so a reader must
// notice changes itself: [`RuleChanges`] listens for them, and [`ipv4_rules`] reads again
// until a whole dump ran with none. Writers need no dump at all: [`delete_ipv4_rules`]
// lets the kernel find the rules.

/// A subscription to the IPv4 rule changes of the namespace it was opened in: open it where
/// (and when) the [`Handle`] it goes with was opened.
pub struct RuleChanges {
    socket: rtnetlink::sys::Socket,
}

impl RuleChanges {
    pub fn subscribe() -> std::io::Result<Self> {
        let mut socket = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.add_membership(libc::RTNLGRP_IPV4_RULE)?;
        socket.set_non_blocking(true)?;
        Ok(Self { socket })
    }

    /// Whether any rule changed since the subscription or the last call; consumes every
    /// notification queued so far. A receive error (an overrun: the kernel dropped
    /// notifications meant for us, and reports it once) also counts as a change.
    fn any_since_last_look(&self) -> bool {
        let mut changed = false;
        let mut buf = Vec::with_capacity(NOTIFICATION_PEEK);
        loop {
            buf.clear();
            match self.socket.recv(&mut buf, libc::MSG_TRUNC) {
                Ok(_) => changed = true,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return changed,
                Err(_) => return true,
            }
        }
    }
}

/// Bytes read of each rule notification: only its arrival matters, the rest is discarded.
const NOTIFICATION_PEEK: usize = 64;

/// Every IPv4 policy rule, each exactly once. Like a seqlock reader, it dumps again while
/// rules change during the dump (see above); rule writers on a node come in bursts (pod
/// ADDs and DELs), so a quiet dump follows.
pub async fn ipv4_rules(handle: &Handle, changes: &RuleChanges) -> Result<Vec<RuleMessage>, Error> {
    // Changes before the first dump cannot disturb it; each later look drains what it saw.
    changes.any_since_last_look();
    loop {
        let rules: Vec<RuleMessage> = handle
            .rule()
            .get(IpVersion::V4)
            .execute()
            .try_collect()
            .await?;
        if !changes.any_since_last_look() {
            return Ok(rules);
        }
    }
}

/// Which `/32` a rule selects on.
#[derive(Clone, Copy, Debug)]
pub enum RuleSelector {
    To(Ipv4Addr),
    From(Ipv4Addr),
}

/// Deletes every IPv4 rule at `priority` that selects exactly `selector`, whatever its table,
/// action or other selectors: the kernel matches a delete on the attributes it is given and
/// takes the first match, so deleting until it finds none removes them all without reading
/// the list. Returns how many there were.
pub async fn delete_ipv4_rules(
    handle: &Handle,
    priority: u32,
    selector: RuleSelector,
) -> Result<usize, Error> {
    let mut rule = RuleMessage::default();
    rule.header.family = AddressFamily::Inet;
    rule.attributes.push(RuleAttribute::Priority(priority));
    match selector {
        RuleSelector::To(ip) => {
            rule.header.dst_len = 32;
            rule.attributes.push(RuleAttribute::Destination(ip.into()));
        }
        RuleSelector::From(ip) => {
            rule.header.src_len = 32;
            rule.attributes.push(RuleAttribute::Source(ip.into()));
        }
    }
    let mut deleted = 0;
    loop {
        match handle.rule().del(rule.clone()).execute().await {
            Ok(()) => deleted += 1,
            Err(err) if is_not_found(&err) => return Ok(deleted),
            Err(err) => return Err(err),
        }
    }
}

/// Table id of a rule, same convention as routes.
#[must_use]
pub fn rule_table(rule: &RuleMessage) -> u32 {
    rule_table_attribute(rule).unwrap_or(u32::from(rule.header.table))
}

attribute!(rule_priority(RuleMessage) -> u32 { RuleAttribute::Priority(p) => Some(*p) });
attribute!(rule_fwmark(RuleMessage) -> u32 { RuleAttribute::FwMark(m) => Some(*m) });
attribute!(rule_fwmask(RuleMessage) -> u32 { RuleAttribute::FwMask(m) => Some(*m) });
attribute!(rule_table_attribute(RuleMessage) -> u32 { RuleAttribute::Table(t) => Some(*t) });

/// The rule's source selector as `(address, prefix length)`; `None` for `from all`.
#[must_use]
pub fn rule_source(rule: &RuleMessage) -> Option<(IpAddr, u8)> {
    rule.attributes.iter().find_map(|attr| match attr {
        RuleAttribute::Source(ip) => Some((*ip, rule.header.src_len)),
        _ => None,
    })
}

/// True when the rule's destination selector is exactly `ip/32`.
#[must_use]
pub fn rule_is_to(rule: &RuleMessage, ip: Ipv4Addr) -> bool {
    rule.header.dst_len == 32
        && rule
            .attributes
            .contains(&RuleAttribute::Destination(ip.into()))
}

/// True when the rule's source selector is exactly `ip/32`.
#[must_use]
pub fn rule_is_from(rule: &RuleMessage, ip: Ipv4Addr) -> bool {
    rule.header.src_len == 32 && rule.attributes.contains(&RuleAttribute::Source(ip.into()))
}

/// True when the rule selects on an interface, a user, a protocol or ports: none of ours do.
#[must_use]
pub fn rule_selects_more(rule: &RuleMessage) -> bool {
    rule.attributes.iter().any(|attr| {
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

/// True when the rule plainly looks a table up and selects on nothing but (at most) one of
/// source, destination or mark: anything else at our priorities is not ours to keep.
#[must_use]
pub fn rule_is_plain_lookup(rule: &RuleMessage) -> bool {
    rule.header.action == RuleAction::ToTable
        && rule.header.tos == 0
        && (rule.header.src_len == 0 || rule.header.dst_len == 0)
        && !rule_selects_more(rule)
}

// --- neighbours ---
//
// The neighbour table is one hash table shared by every network namespace of the machine.
// While the kernel grows it (when its entries outnumber its buckets) a dump or a lookup that
// runs at the same moment can miss entries of any namespace: a reader of this table must
// treat "missing" as "maybe missing". Duplicates never exist in the kernel (one entry per
// address and device), so readers also drop repeated entries of a dump.

/// `ip neigh replace <ip> lladdr <mac> dev <index> nud permanent`: an entry no ARP can change.
pub async fn replace_permanent_neighbour(
    handle: &Handle,
    index: u32,
    ip: Ipv4Addr,
    mac: MacAddr,
) -> Result<(), Error> {
    handle
        .neighbours()
        .add(index, IpAddr::V4(ip))
        .link_layer_address(&mac.0)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
}

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

#[cfg(test)]
mod tests;
