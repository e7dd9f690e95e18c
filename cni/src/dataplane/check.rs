//! CHECK: verifies that a pod's wiring is still what `wire_pod` made.

use std::net::Ipv4Addr;
use std::time::Duration;

use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::neighbour::{NeighbourMessage, NeighbourState};
use rtnetlink::packet_route::route::{RouteMessage, RouteScope};
use rtnetlink::Handle;
use vpc_cni_proto::net::MacAddr;
use vpc_cni_proto::{MAIN_TABLE, POD_GATEWAY, RULE_PRIORITY_FROM_POD, RULE_PRIORITY_TO_POD};

use super::netns::{connect_here, connect_in, Netns};
use super::PodWiring;
use crate::netlink as nl;
use crate::CniError;

fn failed(what: impl Into<String>) -> CniError {
    CniError::CheckFailed(what.into())
}

/// `Ok` when `present`, else the failure `missing` describes.
fn expect(present: bool, missing: impl FnOnce() -> String) -> Result<(), CniError> {
    if present {
        Ok(())
    } else {
        Err(failed(missing()))
    }
}

/// Verifies the pod side (link up, address, gateway and default routes, static gateway
/// neighbour pointing at the host veth's MAC) and the host side (veth up and NOARP, `/32`
/// route, static neighbour pointing at the pod's MAC, rules). The first mismatch is returned
/// as `CheckFailed`.
pub async fn check_pod(w: &PodWiring) -> Result<(), CniError> {
    let pod_ns = Netns::open(&w.netns_path)?;
    let host_ns = Netns::current()?;
    let host = connect_here()?;
    let host_rule_changes = nl::RuleChanges::subscribe()
        .map_err(|e| CniError::io("subscribing to rule changes in the host netns", e))?;
    let pod = connect_in(&pod_ns, &host_ns)?;
    let ns = pod_ns.path().display().to_string();

    let (host_link, pod_link) = tokio::join!(
        nl::link_by_name(&host, &w.host_veth),
        nl::link_by_name(&pod, &w.ifname)
    );
    let pod_link = pod_link
        .map_err(|e| CniError::netlink(format!("looking up {} in netns {ns}", w.ifname), e))?;
    let host_link = host_link
        .map_err(|e| CniError::netlink(format!("looking up host veth {}", w.host_veth), e))?;
    let pod_index = usable_link(pod_link.as_ref(), &w.ifname, &format!("netns {ns}"))?;
    let host_index = usable_link(host_link.as_ref(), &w.host_veth, "the host netns")?;
    let host_mac = host_link
        .as_ref()
        .and_then(nl::link_mac)
        .ok_or_else(|| failed(format!("host veth {} has no MAC address", w.host_veth)))?;

    let pod_mac = pod_link
        .as_ref()
        .and_then(nl::link_mac)
        .ok_or_else(|| failed(format!("{} in netns {ns} has no MAC address", w.ifname)))?;
    // Without NOARP the pod's ARP reaches the node's neighbour table again.
    let noarp = host_link.as_ref().is_some_and(nl::link_is_noarp);
    expect(noarp, || {
        format!("host veth {} answers ARP (NOARP is off)", w.host_veth)
    })?;

    check_pod_side(w, &pod, pod_index, host_mac, &ns).await?;
    check_host_side(w, &host, &host_rule_changes, host_index, pod_mac).await
}

fn usable_link(link: Option<&LinkMessage>, name: &str, place: &str) -> Result<u32, CniError> {
    let link = link.ok_or_else(|| failed(format!("link {name} is missing in {place}")))?;
    if !nl::link_is_up(link) {
        return Err(failed(format!("link {name} in {place} is down")));
    }
    Ok(link.header.index)
}

async fn main_routes(handle: &Handle, place: &str) -> Result<Vec<RouteMessage>, CniError> {
    let routes = nl::ipv4_routes(handle)
        .await
        .map_err(|e| CniError::netlink(format!("listing IPv4 routes in {place}"), e))?;
    Ok(routes
        .into_iter()
        .filter(|r| nl::route_table(r) == MAIN_TABLE)
        .collect())
}

async fn check_pod_side(
    w: &PodWiring,
    pod: &Handle,
    index: u32,
    host_mac: MacAddr,
    ns: &str,
) -> Result<(), CniError> {
    let ifname = &w.ifname;
    let ip = w.ip;
    let place = format!("netns {ns}");

    let addresses = nl::ipv4_addresses(pod, index)
        .await
        .map_err(|e| CniError::netlink(format!("listing addresses of {ifname} in {place}"), e))?;
    let has_ip = addresses.contains(&(ip, 32));
    expect(has_ip, || format!("{ip}/32 is not on {ifname} in {place}"))?;

    let routes = main_routes(pod, &place).await?;
    let has_gw_route = routes.iter().any(|r| {
        r.header.destination_prefix_length == 32
            && nl::route_dst(r) == Some(POD_GATEWAY)
            && nl::route_oif(r) == Some(index)
            && r.header.scope == RouteScope::Link
    });
    expect(has_gw_route, || {
        format!("route {POD_GATEWAY}/32 dev {ifname} scope link is missing in {place}")
    })?;
    let has_default = routes.iter().any(|r| {
        r.header.destination_prefix_length == 0
            && nl::route_gateway(r) == Some(POD_GATEWAY)
            && nl::route_oif(r) == Some(index)
    });
    expect(has_default, || {
        format!("default route via {POD_GATEWAY} dev {ifname} is missing in {place}")
    })?;

    let owner = format!("host veth {}", w.host_veth);
    static_neighbour(pod, index, POD_GATEWAY, ifname, &place, host_mac, &owner).await
}

/// Verifies that `dev` (index `index`, in `place`) has a permanent neighbour `ip` pointing at
/// `want`, the MAC of `owner`.
async fn static_neighbour(
    handle: &Handle,
    index: u32,
    ip: Ipv4Addr,
    dev: &str,
    place: &str,
    want: MacAddr,
    owner: &str,
) -> Result<(), CniError> {
    let Some(found) = neighbour(handle, index, ip, place).await? else {
        return Err(failed(format!(
            "neighbour {ip} dev {dev} is missing in {place}"
        )));
    };
    if found.header.state != NeighbourState::Permanent {
        return Err(failed(format!(
            "neighbour {ip} dev {dev} in {place} is not permanent"
        )));
    }
    let lladdr = nl::neighbour_mac(&found);
    if lladdr != Some(want) {
        return Err(failed(format!(
            "neighbour {ip} dev {dev} in {place} has lladdr {}, {owner} has {want}",
            lladdr.map_or_else(|| "none".to_owned(), |mac| mac.to_string()),
        )));
    }
    Ok(())
}

/// Pause before the second lookup of a neighbour the first did not find.
const NEIGHBOUR_RECHECK: Duration = Duration::from_millis(20);

/// The neighbour `ip` on link `index`, looked up directly. The kernel's neighbour table is
/// shared by every namespace, and a lookup that overlaps a resize of it (another namespace's
/// new entry tipping it over) can miss an entry that exists; so "missing" is confirmed once
/// before CHECK reports it.
async fn neighbour(
    handle: &Handle,
    index: u32,
    ip: Ipv4Addr,
    place: &str,
) -> Result<Option<NeighbourMessage>, CniError> {
    let lookup = || async {
        nl::ipv4_neighbour(handle, index, ip)
            .await
            .map_err(|e| CniError::netlink(format!("looking up neighbour {ip} in {place}"), e))
    };
    if let Some(found) = lookup().await? {
        return Ok(Some(found));
    }
    tokio::time::sleep(NEIGHBOUR_RECHECK).await;
    lookup().await
}

async fn check_host_side(
    w: &PodWiring,
    host: &Handle,
    rule_changes: &nl::RuleChanges,
    index: u32,
    pod_mac: MacAddr,
) -> Result<(), CniError> {
    let ip = w.ip;
    let routes = main_routes(host, "the host netns").await?;
    let has_route = routes.iter().any(|r| {
        r.header.destination_prefix_length == 32
            && nl::route_dst(r) == Some(ip)
            && nl::route_oif(r) == Some(index)
    });
    expect(has_route, || {
        format!("host route {ip}/32 dev {} is missing", w.host_veth)
    })?;
    let owner = format!("the pod's {}", w.ifname);
    static_neighbour(
        host,
        index,
        ip,
        &w.host_veth,
        "the host netns",
        pod_mac,
        &owner,
    )
    .await?;

    let rules = nl::ipv4_rules(host, rule_changes)
        .await
        .map_err(|e| CniError::netlink("listing IPv4 rules in the host netns", e))?;
    let has_to = rules.iter().any(|r| {
        nl::rule_priority(r) == Some(RULE_PRIORITY_TO_POD)
            && nl::rule_is_to(r, ip)
            && nl::rule_is_plain_lookup(r)
            && nl::rule_table(r) == MAIN_TABLE
    });
    expect(has_to, || {
        format!("host rule to {ip}/32 lookup main priority {RULE_PRIORITY_TO_POD} is missing")
    })?;
    let from_tables: Vec<u32> = rules
        .iter()
        .filter(|r| {
            nl::rule_priority(r) == Some(RULE_PRIORITY_FROM_POD)
                && nl::rule_is_from(r, ip)
                && nl::rule_is_plain_lookup(r)
        })
        .map(nl::rule_table)
        .collect();
    match (w.route_table, from_tables.as_slice()) {
        (0, []) => Ok(()),
        (0, tables) => Err(failed(format!(
            "host has rule from {ip}/32 priority {RULE_PRIORITY_FROM_POD} (tables {tables:?}) \
             but the address uses the main table"
        ))),
        (want, [got]) if *got == want => Ok(()),
        (want, tables) => Err(failed(format!(
            "host rule from {ip}/32 lookup {want} priority {RULE_PRIORITY_FROM_POD} expected, \
             found tables {tables:?}"
        ))),
    }
}
