//! Host (node) side of a pod: the `/32` route, the policy rules, and teardown.

use std::net::Ipv4Addr;

use futures::future::join_all;
use rtnetlink::packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::packet_route::rule::{RuleAction, RuleMessage};
use rtnetlink::{Handle, RouteMessageBuilder};
use vpc_cni_proto::{MAIN_TABLE, RULE_PRIORITY_FROM_POD, RULE_PRIORITY_TO_POD};

use super::netns::connect_here;
use crate::netlink as nl;
use crate::CniError;

/// Which rules a pod address should have on the host.
#[derive(Clone, Copy)]
pub(super) enum WantRules {
    /// None at all (teardown, and cleanup of a failed ADD).
    None,
    /// `to ip lookup main` at 512, plus `from ip lookup <table>` at 1536 when table != 0.
    Pod { route_table: u32 },
}

pub(super) async fn dump_rules(handle: &Handle) -> Result<Vec<RuleMessage>, CniError> {
    nl::ipv4_rules(handle)
        .await
        .map_err(|e| CniError::netlink("listing IPv4 rules in the host netns", e))
}

/// Brings the host's 512/1536 rules for `ip` to exactly `want`: rules that differ (another
/// table, extra selectors, duplicates) are deleted and missing ones added. A rule left by an
/// earlier owner of the address with another table would otherwise shadow the new one.
pub(super) async fn sync_rules(
    handle: &Handle,
    ip: Ipv4Addr,
    want: WantRules,
) -> Result<(), CniError> {
    let (want_to, want_from) = match want {
        WantRules::None => (false, None),
        WantRules::Pod { route_table: 0 } => (true, None),
        WantRules::Pod { route_table } => (true, Some(route_table)),
    };
    let mut have_to = false;
    let mut have_from = false;
    let mut stale = Vec::new();
    for rule in dump_rules(handle).await? {
        let prio = nl::rule_priority(&rule);
        if prio == Some(RULE_PRIORITY_TO_POD) && nl::rule_is_to(&rule, ip) {
            let keep = want_to
                && !have_to
                && nl::rule_is_plain_lookup(&rule)
                && nl::rule_table(&rule) == MAIN_TABLE;
            if keep {
                have_to = true;
            } else {
                stale.push(rule);
            }
        } else if prio == Some(RULE_PRIORITY_FROM_POD) && nl::rule_is_from(&rule, ip) {
            let keep = want_from.is_some_and(|table| table == nl::rule_table(&rule))
                && !have_from
                && nl::rule_is_plain_lookup(&rule);
            if keep {
                have_from = true;
            } else {
                stale.push(rule);
            }
        }
    }

    let deletions = stale.into_iter().map(|rule| {
        let what = format!(
            "deleting rule priority {} for {ip}/32 (table {})",
            nl::rule_priority(&rule).unwrap_or_default(),
            nl::rule_table(&rule)
        );
        async move {
            nl::gone_is_ok(handle.rule().del(rule).execute().await)
                .map_err(|e| CniError::netlink(what, e))
        }
    });
    join_all(deletions)
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;

    let add_to = async {
        if !want_to || have_to {
            return Ok(());
        }
        add_rule(handle, ip, HostRule::To).await
    };
    let add_from = async {
        let Some(table) = want_from.filter(|_| !have_from) else {
            return Ok(());
        };
        add_rule(handle, ip, HostRule::From { table }).await
    };
    let (to, from) = tokio::join!(add_to, add_from);
    to.and(from)
}

/// One of a pod address's host rules.
#[derive(Clone, Copy)]
enum HostRule {
    /// `to ip/32 lookup main` at 512.
    To,
    /// `from ip/32 lookup <table>` at 1536.
    From { table: u32 },
}

/// Adds the rule; one that exists already is success.
async fn add_rule(handle: &Handle, ip: Ipv4Addr, rule: HostRule) -> Result<(), CniError> {
    let req = handle.rule().add().v4().action(RuleAction::ToTable);
    let (req, what) = match rule {
        HostRule::To => (
            req.destination_prefix(ip, 32)
                .table_id(MAIN_TABLE)
                .priority(RULE_PRIORITY_TO_POD),
            format!("to {ip}/32 lookup main priority {RULE_PRIORITY_TO_POD}"),
        ),
        HostRule::From { table } => (
            req.source_prefix(ip, 32)
                .table_id(table)
                .priority(RULE_PRIORITY_FROM_POD),
            format!("from {ip}/32 lookup {table} priority {RULE_PRIORITY_FROM_POD}"),
        ),
    };
    match req.execute().await {
        Err(e) if !nl::is_exists(&e) => Err(CniError::netlink(format!("adding rule {what}"), e)),
        _ => Ok(()),
    }
}

/// `ip/32 dev <host veth> scope link` in main, replacing whatever route the address had.
pub(super) async fn add_host_route(
    handle: &Handle,
    ip: Ipv4Addr,
    host_veth: &str,
    host_index: u32,
) -> Result<(), CniError> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(ip, 32)
        .output_interface(host_index)
        .scope(RouteScope::Link)
        .table_id(MAIN_TABLE)
        .build();
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(|e| CniError::netlink(format!("adding route {ip}/32 dev {host_veth}"), e))
}

/// Deletes the main-table route to `ip/32`, whatever its device; none is success.
async fn delete_host_route(handle: &Handle, ip: Ipv4Addr) -> Result<(), CniError> {
    let mut route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(ip, 32)
        .table_id(MAIN_TABLE)
        .build();
    // Wildcards for the kernel's match: any scope, any protocol.
    route.header.scope = RouteScope::NoWhere;
    route.header.protocol = RouteProtocol::Unspec;
    nl::gone_is_ok(handle.route().del(route).execute().await)
        .map_err(|e| CniError::netlink(format!("deleting route {ip}/32 from the main table"), e))
}

/// Removes what wiring put on the host for `ip`: its 512/1536 rules (any table), its main-table
/// route and, when named, the host veth (which takes the pod end with it). Everything already
/// gone is success, so DEL can be repeated.
pub async fn unwire_host(ip: Ipv4Addr, host_veth: Option<&str>) -> Result<(), CniError> {
    let handle = connect_here()?;
    unwire_with(&handle, ip, host_veth).await
}

pub(super) async fn unwire_with(
    handle: &Handle,
    ip: Ipv4Addr,
    host_veth: Option<&str>,
) -> Result<(), CniError> {
    let link = async {
        match host_veth {
            Some(name) => nl::delete_link_by_name(handle, name)
                .await
                .map_err(|e| CniError::netlink(format!("deleting host veth {name}"), e)),
            None => Ok(()),
        }
    };
    let (rules, route, link) = tokio::join!(
        sync_rules(handle, ip, WantRules::None),
        delete_host_route(handle, ip),
        link
    );
    rules.and(route).and(link)
}

/// Names of the links in the calling thread's netns that start with `prefix`.
pub async fn host_links_with_prefix(prefix: &str) -> Result<Vec<String>, CniError> {
    let handle = connect_here()?;
    let links = nl::links(&handle)
        .await
        .map_err(|e| CniError::netlink(format!("listing links named {prefix}*"), e))?;
    Ok(links
        .iter()
        .filter_map(nl::link_name)
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect())
}

/// Whether a link called `name` exists in the calling thread's netns.
pub async fn link_exists(name: &str) -> Result<bool, CniError> {
    let handle = connect_here()?;
    nl::link_by_name(&handle, name)
        .await
        .map(|link| link.is_some())
        .map_err(|e| CniError::netlink(format!("looking up link {name}"), e))
}

/// Deletes the link called `name` in the calling thread's netns; already gone
/// is success (a DEL with no prevResult to name the pod's address).
pub async fn delete_link(name: &str) -> Result<(), CniError> {
    let handle = connect_here()?;
    nl::delete_link_by_name(&handle, name)
        .await
        .map_err(|e| CniError::netlink(format!("deleting link {name}"), e))
}
