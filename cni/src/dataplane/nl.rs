//! Small netlink helpers shared by wiring, teardown and CHECK.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, LinkUnspec};

/// The errno of a kernel NACK, positive, if that is what the error is.
pub(super) fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

/// The kernel's ways of saying "there is no such object" across links, routes and rules.
pub(super) fn is_not_found(err: &rtnetlink::Error) -> bool {
    matches!(
        errno(err),
        Some(libc::ENODEV | libc::ESRCH | libc::ENOENT | libc::EADDRNOTAVAIL)
    )
}

pub(super) fn is_exists(err: &rtnetlink::Error) -> bool {
    errno(err) == Some(libc::EEXIST)
}

/// The link called `name`, or `None` when there is none.
pub(super) async fn link_by_name(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Deletes the link called `name`; a missing link is success.
pub(super) async fn delete_link_by_name(
    handle: &Handle,
    name: &str,
) -> Result<(), rtnetlink::Error> {
    let msg = LinkUnspec::new_with_name(name).build();
    match handle.link().del_with_message(msg).execute().await {
        Err(err) if is_not_found(&err) => Ok(()),
        other => other,
    }
}

pub(super) fn link_is_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up)
}

pub(super) fn link_mac(link: &LinkMessage) -> Option<[u8; 6]> {
    link.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::Address(addr) => <[u8; 6]>::try_from(addr.as_slice()).ok(),
        _ => None,
    })
}

pub(super) fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

/// Table id of a route: the 32-bit attribute when present, the header byte otherwise.
pub(super) fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attr| match attr {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

pub(super) fn route_dst(route: &RouteMessage) -> Option<Ipv4Addr> {
    route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(*a),
        _ => None,
    })
}

pub(super) fn route_gateway(route: &RouteMessage) -> Option<Ipv4Addr> {
    route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(*a),
        _ => None,
    })
}

pub(super) fn route_oif(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

/// Table id of a rule, same convention as routes.
pub(super) fn rule_table(rule: &RuleMessage) -> u32 {
    rule.attributes
        .iter()
        .find_map(|attr| match attr {
            RuleAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(rule.header.table))
}

pub(super) fn rule_priority(rule: &RuleMessage) -> Option<u32> {
    rule.attributes.iter().find_map(|attr| match attr {
        RuleAttribute::Priority(p) => Some(*p),
        _ => None,
    })
}

/// True when the rule's destination selector is exactly `ip/32`.
pub(super) fn rule_is_to(rule: &RuleMessage, ip: Ipv4Addr) -> bool {
    rule.header.dst_len == 32
        && rule
            .attributes
            .contains(&RuleAttribute::Destination(IpAddr::V4(ip)))
}

/// True when the rule's source selector is exactly `ip/32`.
pub(super) fn rule_is_from(rule: &RuleMessage, ip: Ipv4Addr) -> bool {
    rule.header.src_len == 32
        && rule
            .attributes
            .contains(&RuleAttribute::Source(IpAddr::V4(ip)))
}

/// True when the rule has no selector besides the one address and priority we look at, and
/// plainly looks a table up: anything else at our priorities is not ours to keep.
pub(super) fn rule_is_plain_lookup(rule: &RuleMessage) -> bool {
    rule.header.action == RuleAction::ToTable
        && rule.header.tos == 0
        && (rule.header.src_len == 0 || rule.header.dst_len == 0)
        && !rule.attributes.iter().any(|attr| match attr {
            // The kernel reports a zero mask on every rule without a mark match.
            RuleAttribute::FwMark(v) | RuleAttribute::FwMask(v) => *v != 0,
            RuleAttribute::Iifname(_)
            | RuleAttribute::Oifname(_)
            | RuleAttribute::UidRange(_)
            | RuleAttribute::IpProtocol(_)
            | RuleAttribute::SourcePortRange(_)
            | RuleAttribute::DestinationPortRange(_) => true,
            _ => false,
        })
}

pub(super) fn fmt_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
