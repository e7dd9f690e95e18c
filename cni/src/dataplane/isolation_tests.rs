//! Kernel tests of the host end's ARP isolation: whatever ARP a pod sends (gratuitous ARP for
//! the gateway, replies and requests that claim a neighbour's address) never reaches the
//! node's neighbour table, because the host end of its veth is NOARP. The node is made as
//! credulous as a node can be (`arp_accept=1` on the host end: learn from unsolicited ARP),
//! and a control run with ARP turned back on, as an older plugin left it, shows what the same
//! frames do when they do get through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use vpc_cni_proto::POD_GATEWAY;
use vpc_cni_testkit::arp::{link_mac, ArpFrame};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::send::Packet;
use vpc_cni_testkit::udp::Inbox;

use super::*;

const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 20, 1);
const POD_A: Ipv4Addr = Ipv4Addr::new(10, 99, 20, 2);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 99, 20, 3);
/// A harness bound for the marker datagram (never an assertion).
const MARKER_BOUND: Duration = Duration::from_secs(10);
const MARKER: &[u8] = b"marker";

struct Node {
    node: Netns,
    pod_a: Netns,
    wiring_a: PodWiring,
    macs_a: WiredPod,
    _pod_b: Netns,
    inbox: Inbox,
}

fn wiring(pod: &Netns, ip: Ipv4Addr) -> PodWiring {
    PodWiring {
        netns_path: pod.path(),
        ifname: "eth0".into(),
        host_veth: host_veth_name(Some("iso"), Some(pod.name()), "unused"),
        ip,
        route_table: 0,
        mtu: 1500,
    }
}

fn wire(node: &Netns, w: &PodWiring) -> WiredPod {
    let w = w.clone();
    node.run(move || async move { wire_pod(&w).await }).unwrap()
}

/// A node with pods a and b, its own address on lo, an inbox for markers on that address,
/// and the host end of a's veth set to learn from any ARP it is handed.
fn node() -> Node {
    let node = Netns::unique("iso");
    node.enable_forwarding();
    node.ip(&["addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"]);
    let (pod_a, pod_b) = (Netns::unique("iso"), Netns::unique("iso"));
    let wiring_a = wiring(&pod_a, POD_A);
    let macs_a = wire(&node, &wiring_a);
    wire(&node, &wiring(&pod_b, POD_B));
    let accept = format!("/proc/sys/net/ipv4/conf/{}/arp_accept", wiring_a.host_veth);
    node.write_sysctls(&[(accept.as_str(), "1")]).unwrap();
    let inbox = node.udp_inbox(NODE_IP).unwrap();
    Node {
        node,
        pod_a,
        wiring_a,
        macs_a,
        _pod_b: pod_b,
        inbox,
    }
}

/// Every ARP lie pod a can tell, then a marker datagram from its own address to the node;
/// returns once the marker is in, when the node has handled every frame before it.
fn lie(n: &Node) {
    let mac = link_mac(&n.pod_a, "eth0").unwrap();
    let host_mac = n.macs_a.host_mac.0;
    let frames = [
        // "The gateway is at my MAC", as a request and as a reply.
        ArpFrame::gratuitous_request(mac, POD_GATEWAY),
        ArpFrame::gratuitous_reply(mac, POD_GATEWAY),
        // "Pod b is at my MAC", told to the node unasked.
        ArpFrame::reply(mac, POD_B, host_mac, NODE_IP),
        // A question to the node in pod b's name: answering it teaches the node the lie.
        ArpFrame::request(mac, POD_B, NODE_IP),
    ];
    let to: SocketAddr = n.inbox.addr().unwrap();
    let mut packets: Vec<Packet> = frames.iter().map(|f| Packet::arp("eth0", *f)).collect();
    packets.push(Packet::udp(POD_A, to, MARKER));
    n.pod_a.send_in_order(&packets).unwrap();
    let before = n.inbox.until_marker(MARKER, MARKER_BOUND).unwrap();
    assert!(before.is_empty(), "unexpected datagrams: {before:?}");
}

/// The node's neighbours on pod a's host veth, one line each.
fn host_entries(n: &Node) -> Vec<String> {
    n.node
        .neighbours(&["dev", &n.wiring_a.host_veth])
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect()
}

#[test]
fn no_arp_a_pod_sends_reaches_the_nodes_neighbour_table() {
    let n = node();
    let pod_entry = format!("{POD_A} lladdr {} PERMANENT", n.macs_a.pod_mac);
    assert_eq!(host_entries(&n), std::slice::from_ref(&pod_entry));

    lie(&n);
    assert_eq!(
        host_entries(&n),
        [pod_entry],
        "the node learnt from pod a's ARP"
    );

    // Control: the same frames through a host end that speaks ARP (as an older plugin made
    // it) do teach the node, so the run above would have seen them.
    n.node
        .ip(&["link", "set", &n.wiring_a.host_veth, "arp", "on"]);
    lie(&n);
    let learnt = host_entries(&n);
    for claimed in [POD_GATEWAY, POD_B] {
        assert!(
            learnt
                .iter()
                .any(|l| l.starts_with(&format!("{claimed} lladdr"))),
            "control: the node did not learn {claimed} from pod a: {learnt:?}"
        );
    }
}
