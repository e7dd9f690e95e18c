//! Host (node) side of a pod: the `/32` route, the static neighbour, the policy rules, and
//! teardown.

use std::net::Ipv4Addr;

use rtnetlink::packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::packet_route::rule::RuleAction;
use rtnetlink::{Handle, RouteMessageBuilder};
use vpc_cni_proto::net::MacAddr;
use vpc_cni_proto::{MAIN_TABLE, RULE_PRIORITY_FROM_POD, RULE_PRIORITY_TO_POD};

use super::netns::connect_here;
use crate::netlink::{self as nl, RuleSelector};
use crate::CniError;

/// Which rules a pod address should have on the host.
#[derive(Clone, Copy)]
pub(super) enum WantRules {
    /// None at all (teardown, and cleanup of a failed ADD).
    None,
    /// `to ip lookup main` at 512, plus `from ip lookup <table>` at 1536 when table != 0.
    Pod { route_table: u32 },
}

/// Brings the host's 512/1536 rules for `ip` to exactly `want`: every rule at those
/// priorities for `ip/32` goes first (another table, extra selectors, duplicates; a rule left
/// by an earlier owner of the address with another table would otherwise shadow the new one),
/// then the wanted ones are added. The rule list is never read: under parallel ADDs and DELs
/// a dump of it can skip or repeat rules (see `vpc_cni::netlink`), and a DEL that missed its
/// own rule would leak it.
pub(super) async fn sync_rules(
    handle: &Handle,
    ip: Ipv4Addr,
    want: WantRules,
) -> Result<(), CniError> {
    let (to, from) = match want {
        WantRules::None => (None, None),
        WantRules::Pod { route_table: 0 } => (Some(HostRule::To), None),
        WantRules::Pod { route_table } => (
            Some(HostRule::To),
            Some(HostRule::From { table: route_table }),
        ),
    };
    let to = replace_rules(handle, ip, RULE_PRIORITY_TO_POD, RuleSelector::To(ip), to);
    let from = replace_rules(
        handle,
        ip,
        RULE_PRIORITY_FROM_POD,
        RuleSelector::From(ip),
        from,
    );
    let (to, from) = tokio::join!(to, from);
    to.and(from)
}

/// Deletes every rule at `priority` selecting `selector`, then adds `rule` if given.
async fn replace_rules(
    handle: &Handle,
    ip: Ipv4Addr,
    priority: u32,
    selector: RuleSelector,
    rule: Option<HostRule>,
) -> Result<(), CniError> {
    nl::delete_ipv4_rules(handle, priority, selector)
        .await
        .map_err(|e| {
            CniError::netlink(format!("deleting rules priority {priority} for {ip}/32"), e)
        })?;
    match rule {
        Some(rule) => add_rule(handle, ip, rule).await,
        None => Ok(()),
    }
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

/// `ip lladdr <pod MAC> dev <host veth> nud permanent`: the host end is NOARP (see
/// `wire_links`), so this entry is how the node reaches the pod, and no ARP from the pod can
/// ever change it. It goes with the link.
pub(super) async fn add_host_neighbour(
    handle: &Handle,
    ip: Ipv4Addr,
    host_veth: &str,
    host_index: u32,
    pod_mac: MacAddr,
) -> Result<(), CniError> {
    nl::replace_permanent_neighbour(handle, host_index, ip, pod_mac)
        .await
        .map_err(|e| {
            CniError::netlink(
                format!("adding neighbour {ip} lladdr {pod_mac} dev {host_veth}"),
                e,
            )
        })
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
    let links = nl::link_summaries()
        .await
        .map_err(|e| CniError::netlink(format!("listing links named {prefix}*"), e))?;
    Ok(links
        .into_iter()
        .map(|link| link.name)
        .filter(|name| name.starts_with(prefix))
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
