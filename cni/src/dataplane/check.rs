//! CHECK: verifies that a pod's wiring is still what `wire_pod` made.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::route::{RouteMessage, RouteScope};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};
use vpc_cni_proto::{MAIN_TABLE, POD_GATEWAY, RULE_PRIORITY_FROM_POD, RULE_PRIORITY_TO_POD};

use super::host::dump_rules;
use super::netns::{connect_here, connect_in, Netns};
use super::nl;
use super::PodWiring;
use crate::CniError;

fn failed(what: impl Into<String>) -> CniError {
    CniError::CheckFailed(what.into())
}

/// Verifies the pod side (link up, address, gateway and default routes, static gateway
/// neighbour pointing at the host veth's MAC) and the host side (veth up, `/32` route, rules).
/// The first mismatch is returned as `CheckFailed`.
pub async fn check_pod(w: &PodWiring) -> Result<(), CniError> {
    let pod_ns = Netns::open(&w.netns_path)?;
    let host_ns = Netns::current()?;
    let host = connect_here()?;
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

    check_pod_side(w, &pod, pod_index, host_mac, &ns).await?;
    check_host_side(w, &host, host_index).await
}

fn usable_link(link: Option<&LinkMessage>, name: &str, place: &str) -> Result<u32, CniError> {
    let link = link.ok_or_else(|| failed(format!("link {name} is missing in {place}")))?;
    if !nl::link_is_up(link) {
        return Err(failed(format!("link {name} in {place} is down")));
    }
    Ok(link.header.index)
}

async fn main_routes(handle: &Handle, place: &str) -> Result<Vec<RouteMessage>, CniError> {
    let routes: Vec<RouteMessage> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
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
    host_mac: [u8; 6],
    ns: &str,
) -> Result<(), CniError> {
    let ifname = &w.ifname;
    let ip = w.ip;
    let place = format!("netns {ns}");

    let addresses: Vec<_> = pod
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| CniError::netlink(format!("listing addresses of {ifname} in {place}"), e))?;
    let has_ip = addresses.iter().any(|a| {
        a.header.index == index
            && a.header.prefix_len == 32
            && a.attributes
                .contains(&AddressAttribute::Address(IpAddr::V4(ip)))
    });
    if !has_ip {
        return Err(failed(format!("{ip}/32 is not on {ifname} in {place}")));
    }

    let routes = main_routes(pod, &place).await?;
    let has_gw_route = routes.iter().any(|r| {
        r.header.destination_prefix_length == 32
            && nl::route_dst(r) == Some(POD_GATEWAY)
            && nl::route_oif(r) == Some(index)
            && r.header.scope == RouteScope::Link
    });
    if !has_gw_route {
        return Err(failed(format!(
            "route {POD_GATEWAY}/32 dev {ifname} scope link is missing in {place}"
        )));
    }
    let has_default = routes.iter().any(|r| {
        r.header.destination_prefix_length == 0
            && nl::route_gateway(r) == Some(POD_GATEWAY)
            && nl::route_oif(r) == Some(index)
    });
    if !has_default {
        return Err(failed(format!(
            "default route via {POD_GATEWAY} dev {ifname} is missing in {place}"
        )));
    }

    let neighbours: Vec<_> = pod
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet)
        .execute()
        .try_collect()
        .await
        .map_err(|e| CniError::netlink(format!("listing neighbours in {place}"), e))?;
    let gateway = neighbours.iter().find(|n| {
        n.header.ifindex == index
            && n.attributes
                .contains(&NeighbourAttribute::Destination(NeighbourAddress::Inet(
                    POD_GATEWAY,
                )))
    });
    let Some(gateway) = gateway else {
        return Err(failed(format!(
            "neighbour {POD_GATEWAY} dev {ifname} is missing in {place}"
        )));
    };
    if gateway.header.state != NeighbourState::Permanent {
        return Err(failed(format!(
            "neighbour {POD_GATEWAY} dev {ifname} in {place} is not permanent"
        )));
    }
    let lladdr = gateway.attributes.iter().find_map(|attr| match attr {
        NeighbourAttribute::LinkLayerAddress(mac) => Some(mac.as_slice()),
        _ => None,
    });
    if lladdr != Some(host_mac.as_slice()) {
        return Err(failed(format!(
            "neighbour {POD_GATEWAY} dev {ifname} in {place} has lladdr {}, host veth {} has {}",
            lladdr.map(nl::fmt_mac).unwrap_or_else(|| "none".into()),
            w.host_veth,
            nl::fmt_mac(&host_mac)
        )));
    }
    Ok(())
}

async fn check_host_side(w: &PodWiring, host: &Handle, index: u32) -> Result<(), CniError> {
    let ip = w.ip;
    let routes = main_routes(host, "the host netns").await?;
    let has_route = routes.iter().any(|r| {
        r.header.destination_prefix_length == 32
            && nl::route_dst(r) == Some(ip)
            && nl::route_oif(r) == Some(index)
    });
    if !has_route {
        return Err(failed(format!(
            "host route {ip}/32 dev {} is missing",
            w.host_veth
        )));
    }

    let rules = dump_rules(host).await?;
    let has_to = rules.iter().any(|r| {
        nl::rule_priority(r) == Some(RULE_PRIORITY_TO_POD)
            && nl::rule_is_to(r, ip)
            && nl::rule_is_plain_lookup(r)
            && nl::rule_table(r) == MAIN_TABLE
    });
    if !has_to {
        return Err(failed(format!(
            "host rule to {ip}/32 lookup main priority {RULE_PRIORITY_TO_POD} is missing"
        )));
    }
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
