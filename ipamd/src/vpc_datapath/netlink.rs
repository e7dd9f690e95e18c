//! Links, routes and rules of the node wiring, over one rtnetlink connection in the calling
//! thread's netns. Each step reads the kernel's state once and only writes the difference,
//! so a second run changes nothing.

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion, LinkUnspec, RouteMessageBuilder};
use vpc_cni::CniError;
use vpc_cni_proto::RULE_PRIORITY_FROM_POD;

use super::wiring::{LinkPlan, NodeWiring, ObservedLink, RoutePlan, RulePlan};
use crate::error::IpamdError;

fn netlink_error(operation: impl Into<String>, source: rtnetlink::Error) -> IpamdError {
    IpamdError::Dataplane(CniError::netlink(operation, source))
}

fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

/// Something else removed it first: the goal is reached all the same.
fn is_gone(err: &rtnetlink::Error) -> bool {
    use nix::errno::Errno;
    errno(err).is_some_and(|code| {
        [
            Errno::ENODEV,
            Errno::ESRCH,
            Errno::ENOENT,
            Errno::EADDRNOTAVAIL,
        ]
        .iter()
        .any(|gone| *gone as i32 == code)
    })
}

/// A netlink connection in the calling thread's netns.
pub(super) fn connect() -> Result<Handle, IpamdError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| IpamdError::Io {
        context: "opening a netlink socket in the node netns".to_owned(),
        source,
    })?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn dump_links(handle: &Handle) -> Result<Vec<LinkMessage>, IpamdError> {
    handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| netlink_error("listing links", e))
}

/// Every link that has a name and an Ethernet address.
pub(super) async fn observe_links(handle: &Handle) -> Result<Vec<ObservedLink>, IpamdError> {
    Ok(dump_links(handle)
        .await?
        .iter()
        .filter_map(|link| {
            let mut name = None;
            let mut mac = None;
            for attr in &link.attributes {
                match attr {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                    _ => {}
                }
            }
            Some(ObservedLink {
                name: name?,
                index: link.header.index,
                mac: mac?,
            })
        })
        .collect())
}

/// Brings each link up with its MTU, touching only links that differ.
pub(super) async fn sync_links(handle: &Handle, plans: &[LinkPlan]) -> Result<(), IpamdError> {
    let current = dump_links(handle).await?;
    for plan in plans {
        let link = current.iter().find(|l| l.header.index == plan.index);
        let up = link.is_some_and(|l| l.header.flags.contains(LinkFlags::Up));
        let mtu = link.and_then(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        });
        if up && mtu == Some(plan.mtu) {
            continue;
        }
        let msg = LinkUnspec::new_with_index(plan.index)
            .mtu(plan.mtu)
            .up()
            .build();
        handle.link().set(msg).execute().await.map_err(|e| {
            netlink_error(format!("setting {} up with MTU {}", plan.name, plan.mtu), e)
        })?;
    }
    Ok(())
}

fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attr| match attr {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

fn route_addr(route: &RouteMessage, want_gateway: bool) -> Option<Ipv4Addr> {
    route
        .attributes
        .iter()
        .find_map(|attr| match (attr, want_gateway) {
            (RouteAttribute::Destination(RouteAddress::Inet(a)), false)
            | (RouteAttribute::Gateway(RouteAddress::Inet(a)), true) => Some(*a),
            _ => None,
        })
}

fn route_oif(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

/// Whether the kernel's route is exactly `plan` (protocol aside).
fn route_is(route: &RouteMessage, plan: &RoutePlan) -> bool {
    let scope = if plan.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    route_table(route) == plan.table
        && route.header.kind == RouteType::Unicast
        && route.header.destination_prefix_length == plan.dst.prefix_len
        && route_addr(route, false).unwrap_or(Ipv4Addr::UNSPECIFIED) == plan.dst.network
        && route_addr(route, true) == plan.gateway
        && route_oif(route) == Some(plan.index)
        && route.header.scope == scope
}

/// The main-table subnet route of a secondary ENI, whatever its scope, source or protocol.
fn route_is_subnet_of(route: &RouteMessage, plan: &RoutePlan) -> bool {
    route_table(route) == plan.table
        && route.header.destination_prefix_length == plan.dst.prefix_len
        && route_addr(route, false) == Some(plan.dst.network)
        && route_oif(route) == Some(plan.index)
}

/// Makes the ENI tables hold exactly the planned routes and drops the secondary ENIs'
/// subnet routes from main.
pub(super) async fn sync_routes(handle: &Handle, wiring: &NodeWiring) -> Result<(), IpamdError> {
    // Table 0 and no destination: a dump of every table.
    let mut filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
    filter.header.table = 0;
    let current: Vec<RouteMessage> = handle
        .route()
        .get(filter)
        .execute()
        .try_collect()
        .await
        .map_err(|e| netlink_error("listing IPv4 routes", e))?;

    let mut present = vec![false; wiring.routes.len()];
    let mut stale = Vec::new();
    for route in current {
        let table = route_table(&route);
        if wiring.owned_tables.contains(&table) {
            let wanted = wiring
                .routes
                .iter()
                .enumerate()
                .find(|(i, plan)| !present[*i] && route_is(&route, plan));
            match wanted {
                Some((i, _)) => present[i] = true,
                None => stale.push(route),
            }
        } else if wiring
            .main_routes_to_remove
            .iter()
            .any(|plan| route_is_subnet_of(&route, plan))
        {
            stale.push(route);
        }
    }

    for route in stale {
        let what = format!(
            "deleting stale route to {:?}/{} in table {}",
            route_addr(&route, false),
            route.header.destination_prefix_length,
            route_table(&route)
        );
        match handle.route().del(route).execute().await {
            Err(e) if !is_gone(&e) => return Err(netlink_error(what, e)),
            _ => {}
        }
    }

    // Planned order puts each gateway's link route before the default that needs it.
    for (plan, _) in wiring.routes.iter().zip(present).filter(|(_, p)| !p) {
        let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(plan.dst.network, plan.dst.prefix_len)
            .output_interface(plan.index)
            .table_id(plan.table)
            .protocol(RouteProtocol::Boot);
        builder = match plan.gateway {
            Some(gw) => builder.gateway(gw),
            None => builder.scope(RouteScope::Link),
        };
        handle
            .route()
            .add(builder.build())
            .replace()
            .execute()
            .await
            .map_err(|e| netlink_error(format!("adding route {plan} table {}", plan.table), e))?;
    }
    Ok(())
}

fn rule_attr_u32(rule: &RuleMessage, pick: fn(&RuleAttribute) -> Option<u32>) -> Option<u32> {
    rule.attributes.iter().find_map(pick)
}

fn rule_table(rule: &RuleMessage) -> u32 {
    rule_attr_u32(rule, |a| match a {
        RuleAttribute::Table(t) => Some(*t),
        _ => None,
    })
    .unwrap_or(u32::from(rule.header.table))
}

fn rule_priority(rule: &RuleMessage) -> Option<u32> {
    rule_attr_u32(rule, |a| match a {
        RuleAttribute::Priority(p) => Some(*p),
        _ => None,
    })
}

fn rule_fwmark(rule: &RuleMessage) -> Option<u32> {
    rule_attr_u32(rule, |a| match a {
        RuleAttribute::FwMark(m) => Some(*m),
        _ => None,
    })
}

/// Whether the kernel's rule is exactly `plan`: no selector besides the mark.
fn rule_is(rule: &RuleMessage, plan: &RulePlan) -> bool {
    let fwmask = rule_attr_u32(rule, |a| match a {
        RuleAttribute::FwMask(m) => Some(*m),
        _ => None,
    });
    rule.header.action == RuleAction::ToTable
        && rule.header.src_len == 0
        && rule.header.dst_len == 0
        && rule.header.tos == 0
        && rule_priority(rule) == Some(plan.priority)
        && rule_fwmark(rule) == Some(plan.fwmark)
        && fwmask == Some(plan.fwmask)
        && rule_table(rule) == plan.table
        && !rule.attributes.iter().any(|a| {
            matches!(
                a,
                RuleAttribute::Iifname(_)
                    | RuleAttribute::Oifname(_)
                    | RuleAttribute::Source(_)
                    | RuleAttribute::Destination(_)
                    | RuleAttribute::UidRange(_)
                    | RuleAttribute::IpProtocol(_)
                    | RuleAttribute::SourcePortRange(_)
                    | RuleAttribute::DestinationPortRange(_)
            )
        })
}

/// Adds the planned rules once each; removes duplicates and variants of them (same priority
/// and mark) and pod rules (1536) that point at an ENI table no attached ENI owns.
pub(super) async fn sync_rules(handle: &Handle, wiring: &NodeWiring) -> Result<(), IpamdError> {
    let current: Vec<RuleMessage> = handle
        .rule()
        .get(IpVersion::V4)
        .execute()
        .try_collect()
        .await
        .map_err(|e| netlink_error("listing IPv4 rules", e))?;
    let eni_tables: Vec<u32> = wiring.eni_tables().collect();

    let mut present = vec![false; wiring.rules.len()];
    let mut stale = Vec::new();
    for rule in current {
        let prio = rule_priority(&rule);
        let table = rule_table(&rule);
        if let Some(i) = wiring
            .rules
            .iter()
            .position(|p| Some(p.priority) == prio && rule_fwmark(&rule) == Some(p.fwmark))
        {
            if !present[i] && rule_is(&rule, &wiring.rules[i]) {
                present[i] = true;
            } else {
                stale.push(rule);
            }
        } else if prio == Some(RULE_PRIORITY_FROM_POD)
            && wiring.owned_tables.contains(&table)
            && !eni_tables.contains(&table)
        {
            stale.push(rule);
        }
    }

    for rule in stale {
        let what = format!(
            "deleting stale rule priority {} lookup {}",
            rule_priority(&rule).unwrap_or_default(),
            rule_table(&rule)
        );
        match handle.rule().del(rule).execute().await {
            Err(e) if !is_gone(&e) => return Err(netlink_error(what, e)),
            _ => {}
        }
    }

    for (plan, _) in wiring.rules.iter().zip(present).filter(|(_, p)| !p) {
        let mut req = handle
            .rule()
            .add()
            .v4()
            .priority(plan.priority)
            .fw_mark(plan.fwmark)
            .table_id(plan.table)
            .action(RuleAction::ToTable);
        req.message_mut()
            .attributes
            .push(RuleAttribute::FwMask(plan.fwmask));
        req.execute()
            .await
            .map_err(|e| netlink_error(format!("adding rule {plan}"), e))?;
    }
    Ok(())
}
