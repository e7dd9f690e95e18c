//! Links, routes and rules of the node wiring, over one rtnetlink connection in the calling
//! thread's netns. Each step reads the kernel's state once and only writes the difference,
//! so a second run changes nothing.

use std::future::Future;
use std::net::Ipv4Addr;

use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, RouteMessageBuilder};
use vpc_cni::netlink as nl;
use vpc_cni_proto::net::MacAddr;

use super::wiring::{LinkPlan, NodeWiring, ObservedLink, RoutePlan, RulePlan};
use crate::error::IpamdError;

/// Every link of the calling thread's namespace that has a name and an Ethernet address.
pub(super) async fn observe_links() -> Result<Vec<ObservedLink>, IpamdError> {
    Ok(nl::link_summaries()
        .await
        .map_err(IpamdError::netlink("listing links"))?
        .into_iter()
        .filter_map(|link| {
            Some(ObservedLink {
                mac: link.mac?,
                name: link.name,
                index: link.index,
            })
        })
        .collect())
}

/// [`observe_links`], merged with a second listing when the first lacks one of `expected`.
pub(super) async fn observe_links_confirmed(
    expected: &[MacAddr],
) -> Result<Vec<ObservedLink>, IpamdError> {
    confirm_links(expected, observe_links).await
}

/// Takes one listing from `list`, and a second one merged into it when the first lacks one
/// of `expected`. On kernels that walk links by hash bucket a dump resumes by position, and
/// rtnetlink does not pass the kernel's dump-interrupted flag on, so one listing taken while
/// links come and go (pods' veths at ADD and DEL) is not proof that a link is gone: only a
/// MAC missing from both counts as missing (as `rebuild::pods_in_kernel` merges two rounds).
pub(super) async fn confirm_links<F, Fut>(
    expected: &[MacAddr],
    mut list: F,
) -> Result<Vec<ObservedLink>, IpamdError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<ObservedLink>, IpamdError>>,
{
    let mut links = list().await?;
    if expected
        .iter()
        .all(|mac| links.iter().any(|l| l.mac == *mac))
    {
        return Ok(links);
    }
    for link in list().await? {
        if !links.iter().any(|l| l.index == link.index) {
            links.push(link);
        }
    }
    Ok(links)
}

/// Brings each link up with its MTU, touching only links that differ.
pub(super) async fn sync_links(handle: &Handle, plans: &[LinkPlan]) -> Result<(), IpamdError> {
    for plan in plans {
        let link = nl::link_by_index(handle, plan.index)
            .await
            .map_err(IpamdError::netlink(format!("looking up {}", plan.name)))?;
        nl::ensure_link_up(handle, plan.index, link.as_ref(), plan.mtu, None)
            .await
            .map_err(IpamdError::netlink(format!(
                "setting {} up with MTU {}",
                plan.name, plan.mtu
            )))?;
    }
    Ok(())
}

/// Whether the kernel's route is exactly `plan` (protocol aside).
fn route_is(route: &RouteMessage, plan: &RoutePlan) -> bool {
    let scope = if plan.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    nl::route_table(route) == plan.table
        && route.header.kind == RouteType::Unicast
        && route.header.destination_prefix_length == plan.dst.prefix_len
        && nl::route_dst(route).unwrap_or(Ipv4Addr::UNSPECIFIED) == plan.dst.network
        && nl::route_gateway(route) == plan.gateway
        && nl::route_oif(route) == Some(plan.index)
        && route.header.scope == scope
}

/// The main-table subnet route of a secondary ENI, whatever its scope, source or protocol.
fn route_is_subnet_of(route: &RouteMessage, plan: &RoutePlan) -> bool {
    nl::route_table(route) == plan.table
        && route.header.destination_prefix_length == plan.dst.prefix_len
        && nl::route_dst(route) == Some(plan.dst.network)
        && nl::route_oif(route) == Some(plan.index)
}

/// Makes the ENI tables hold exactly the planned routes and drops the secondary ENIs'
/// subnet routes from main.
pub(super) async fn sync_routes(handle: &Handle, wiring: &NodeWiring) -> Result<(), IpamdError> {
    let current = nl::ipv4_routes(handle)
        .await
        .map_err(IpamdError::netlink("listing IPv4 routes"))?;

    let mut present = vec![false; wiring.routes.len()];
    let mut stale = Vec::new();
    for route in current {
        let table = nl::route_table(&route);
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
            nl::route_dst(&route),
            route.header.destination_prefix_length,
            nl::route_table(&route)
        );
        nl::gone_is_ok(handle.route().del(route).execute().await)
            .map_err(IpamdError::netlink(what))?;
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
            .map_err(IpamdError::netlink(format!(
                "adding route {plan} table {}",
                plan.table
            )))?;
    }
    Ok(())
}

/// Whether the kernel's rule is exactly `plan`: no selector besides the mark.
fn rule_is(rule: &RuleMessage, plan: &RulePlan) -> bool {
    rule.header.action == RuleAction::ToTable
        && rule.header.src_len == 0
        && rule.header.dst_len == 0
        && rule.header.tos == 0
        && nl::rule_priority(rule) == Some(plan.priority)
        && nl::rule_fwmark(rule) == Some(plan.fwmark)
        && nl::rule_fwmask(rule) == Some(plan.fwmask)
        && nl::rule_table(rule) == plan.table
        && !nl::rule_selects_more(rule)
}

/// Adds the planned rules once each; removes duplicates and variants of them (same priority
/// and mark). Pod rules (1536) are the store's to judge (see [`super::pod_rules`]).
pub(super) async fn sync_rules(
    handle: &Handle,
    changes: &nl::RuleChanges,
    wiring: &NodeWiring,
) -> Result<(), IpamdError> {
    let current: Vec<RuleMessage> = nl::ipv4_rules(handle, changes)
        .await
        .map_err(IpamdError::netlink("listing IPv4 rules"))?;

    let mut present = vec![false; wiring.rules.len()];
    let mut stale = Vec::new();
    for rule in current {
        let prio = nl::rule_priority(&rule);
        if let Some(i) = wiring
            .rules
            .iter()
            .position(|p| Some(p.priority) == prio && nl::rule_fwmark(&rule) == Some(p.fwmark))
        {
            if !present[i] && rule_is(&rule, &wiring.rules[i]) {
                present[i] = true;
            } else {
                stale.push(rule);
            }
        }
    }

    for rule in stale {
        let what = format!(
            "deleting stale rule priority {} lookup {}",
            nl::rule_priority(&rule).unwrap_or_default(),
            nl::rule_table(&rule)
        );
        nl::gone_is_ok(handle.rule().del(rule).execute().await)
            .map_err(IpamdError::netlink(what))?;
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
            .map_err(IpamdError::netlink(format!("adding rule {plan}")))?;
    }
    Ok(())
}
