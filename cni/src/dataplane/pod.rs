//! ADD: the veth pair, the pod side, and the host side of one pod.

use std::net::{IpAddr, Ipv4Addr};

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use vpc_cni_proto::net::MacAddr;
use vpc_cni_proto::POD_GATEWAY;

use super::host::{add_host_neighbour, add_host_route, sync_rules, unwire_with, WantRules};
use super::names::{veth_mac, End};
use super::netns::{connect_here, connect_in, Netns};
use super::{PodWiring, WiredPod};
use crate::netlink as nl;
use crate::CniError;

/// Wires a pod: the veth pair (`ifname` in the pod netns, `host_veth` in the calling
/// thread's netns), the pod's address, gateway route, default route and static gateway
/// neighbour, and the host's route, static pod neighbour and rules; the host end does not
/// speak ARP. Re-running it for the same pod replaces the previous wiring. On failure nothing it created is left behind.
///
/// Must be called from the host (node) netns, inside a tokio runtime (current_thread is fine).
pub async fn wire_pod(w: &PodWiring) -> Result<WiredPod, CniError> {
    let pod_ns = Netns::open(&w.netns_path)?;
    let host_ns = Netns::current()?;
    let host = connect_here()?;
    let pod = connect_in(&pod_ns, &host_ns)?;
    let macs = WiredPod {
        pod_mac: MacAddr(veth_mac(&w.host_veth, End::Pod)),
        host_mac: MacAddr(veth_mac(&w.host_veth, End::Host)),
    };

    // Rules do not depend on any link, so they are settled while the links are built.
    let (links, rules) = tokio::join!(
        wire_links(w, &host, &pod, &pod_ns, &host_ns, &macs),
        sync_rules(
            &host,
            w.ip,
            WantRules::Pod {
                route_table: w.route_table
            }
        )
    );
    if let Err(err) = links.and(rules) {
        // Deleting the host end removes the pod end and the host route with it. A failure
        // here changes nothing for the caller, who gets the original error.
        let _ = unwire_with(&host, w.ip, Some(&w.host_veth)).await;
        return Err(err);
    }
    Ok(macs)
}

async fn wire_links(
    w: &PodWiring,
    host: &Handle,
    pod: &Handle,
    pod_ns: &Netns,
    host_ns: &Netns,
    macs: &WiredPod,
) -> Result<(), CniError> {
    let ns = pod_ns.path().display();

    // A previous ADD for this pod (retried by the runtime) may have left either end.
    let (stale_host, stale_pod) = tokio::join!(
        nl::delete_link_by_name(host, &w.host_veth),
        nl::delete_link_by_name(pod, &w.ifname)
    );
    stale_host
        .map_err(|e| CniError::netlink(format!("deleting stale host veth {}", w.host_veth), e))?;
    stale_pod
        .map_err(|e| CniError::netlink(format!("deleting stale {} in netns {ns}", w.ifname), e))?;

    // Created from the pod side with the peer born in the host netns: moving a link between
    // namespaces afterwards serialises on the rtnl lock under bursts of ADDs. The peer cannot
    // be created up (veth refuses to open an end before the pair is joined), the pod end can.
    // The host end is born NOARP: the kernel discards every ARP frame that arrives on it, so a
    // pod cannot feed the node's neighbour table (gratuitous ARP for the gateway, replies for
    // addresses not its own); the host knows the pod by the permanent entry added below.
    let peer = LinkUnspec::new_with_name(&w.host_veth)
        .mtu(w.mtu)
        .address(macs.host_mac.0.to_vec())
        .arp(false)
        .setns_by_fd(host_ns.raw_fd())
        .build();
    let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(w.ifname.clone())
        .mtu(w.mtu)
        .address(macs.pod_mac.0.to_vec())
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    pod.link().add(veth).execute().await.map_err(|e| {
        CniError::netlink(
            format!(
                "creating veth {} (netns {ns}) / {} (host)",
                w.ifname, w.host_veth
            ),
            e,
        )
    })?;

    // Set-up and lookup share one round trip: the kernel handles a socket's requests in the
    // order sent, and the host route below needs the link up (it is, once both are answered).
    let host_up = LinkUnspec::new_with_name(&w.host_veth).up().build();
    let (host_up, host_link, pod_link) = tokio::join!(
        host.link().set(host_up).execute(),
        nl::link_by_name(host, &w.host_veth),
        nl::link_by_name(pod, &w.ifname)
    );
    host_up.map_err(|e| CniError::netlink(format!("setting host veth {} up", w.host_veth), e))?;
    let host_index = found_index(host_link, &w.host_veth, "the host netns")?;
    let pod_index = found_index(pod_link, &w.ifname, &format!("netns {ns}"))?;

    // The neighbour rides the same socket as the route, so it costs no round trip of its own.
    let (pod_side, host_route, host_neighbour) = tokio::join!(
        wire_pod_side(w, pod, pod_index, macs.host_mac, pod_ns),
        add_host_route(host, w.ip, &w.host_veth, host_index),
        add_host_neighbour(host, w.ip, &w.host_veth, host_index, macs.pod_mac)
    );
    pod_side.and(host_route).and(host_neighbour)
}

fn found_index(
    link: Result<Option<rtnetlink::packet_route::link::LinkMessage>, rtnetlink::Error>,
    name: &str,
    place: &str,
) -> Result<u32, CniError> {
    match link {
        Ok(Some(link)) => Ok(link.header.index),
        Ok(None) => Err(CniError::Internal(format!(
            "veth end {name} vanished from {place} right after it was created"
        ))),
        Err(e) => Err(CniError::netlink(
            format!("looking up {name} in {place}"),
            e,
        )),
    }
}

/// Address, gateway route, default route and the static gateway neighbour inside the pod.
async fn wire_pod_side(
    w: &PodWiring,
    pod: &Handle,
    index: u32,
    host_mac: MacAddr,
    pod_ns: &Netns,
) -> Result<(), CniError> {
    let ns = pod_ns.path().display();
    let ifname = &w.ifname;
    let ip = w.ip;

    let address = async {
        pod.address()
            .add(index, IpAddr::V4(ip), 32)
            .execute()
            .await
            .map_err(|e| CniError::netlink(format!("adding {ip}/32 to {ifname} in netns {ns}"), e))
    };
    let routes = async {
        let gw_route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(POD_GATEWAY, 32)
            .output_interface(index)
            .scope(RouteScope::Link)
            .build();
        pod.route()
            .add(gw_route)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                CniError::netlink(
                    format!("adding route {POD_GATEWAY}/32 dev {ifname} in netns {ns}"),
                    e,
                )
            })?;
        // Only after the gateway route: the kernel refuses a gateway it cannot reach.
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
            .gateway(POD_GATEWAY)
            .output_interface(index)
            .build();
        pod.route()
            .add(default)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                CniError::netlink(
                    format!("adding default route via {POD_GATEWAY} dev {ifname} in netns {ns}"),
                    e,
                )
            })
    };
    let neighbour = async {
        nl::replace_permanent_neighbour(pod, index, POD_GATEWAY, host_mac)
            .await
            .map_err(|e| {
                CniError::netlink(
                    format!(
                        "adding neighbour {POD_GATEWAY} lladdr {} dev {ifname} in netns {ns}",
                        host_mac
                    ),
                    e,
                )
            })
    };
    let (address, routes, neighbour) = tokio::join!(address, routes, neighbour);
    address.and(routes).and(neighbour)
}
