//! What the guard lets through, for pods wired by the plugin's own code. Each test first runs
//! its traffic without the guard, as a control: on this node the kernel alone lets every
//! spoofed packet through, so the same traffic stopped afterwards is the guard's doing. A
//! marker datagram sent last, on the same path, says when everything before it has arrived
//! or been dropped (see `vpc_cni_testkit::send`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use vpc_cni_proto::POD_GATEWAY;
use vpc_cni_testkit::arp::{link_mac, ArpFrame};
use vpc_cni_testkit::send::Packet;
use vpc_cni_testkit::udp::{Datagram, Inbox};

use super::node::{Node, Pod, NODE_IP, UPSTREAM_IP};
use crate::guard::{PodGuard, IMDS_ADDR};

/// A harness bound for a marker to arrive (never an assertion).
const MARKER_BOUND: Duration = Duration::from_secs(10);
const MARKER: &[u8] = b"marker";
/// Somewhere on the internet, as a forged source.
const STRANGER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
const NONE: [Ipv4Addr; 0] = [];

/// The sources of what `inbox` got before the marker `from` sends after `packets`.
fn arrivals(from: &Pod, inbox: &Inbox, packets: Vec<Packet>) -> Vec<Ipv4Addr> {
    let mut packets = packets;
    packets.push(Packet::udp(from.ip, inbox.addr().unwrap(), MARKER));
    from.ns.send_in_order(&packets).unwrap();
    sources(&inbox.until_marker(MARKER, MARKER_BOUND).unwrap())
}

fn sources(datagrams: &[Datagram]) -> Vec<Ipv4Addr> {
    datagrams
        .iter()
        .map(|d| match d.from {
            SocketAddr::V4(v4) => *v4.ip(),
            SocketAddr::V6(v6) => panic!("IPv6 source {v6}"),
        })
        .collect()
}

fn forged(sources: &[Ipv4Addr], to: SocketAddr) -> Vec<Packet> {
    sources
        .iter()
        .map(|source| Packet::udp(*source, to, b"forged"))
        .collect()
}

#[test]
fn a_pod_sends_with_its_own_address_only() {
    let node = Node::new();
    let a = node.pod([10, 0, 0, 50]);
    let b = node.pod([10, 0, 0, 51]);
    let c = node.pod([10, 0, 0, 52]);
    let inbox = c.ns.udp_inbox(c.ip).unwrap();
    let to = inbox.addr().unwrap();
    let lies = [b.ip, NODE_IP, STRANGER];

    let control = arrivals(&a, &inbox, forged(&lies, to));
    assert_eq!(
        control, lies,
        "control: the kernel alone should let them through"
    );

    node.apply(PodGuard::new(true));
    let mut packets = forged(&lies, to);
    packets.push(Packet::udp(a.ip, to, b"honest"));
    assert_eq!(
        arrivals(&a, &inbox, packets),
        [a.ip],
        "a pod's forged sources got through the guard"
    );
    // Pods and node still talk both ways, also to a pod on another veth.
    assert!(a.ns.ping(c.ip), "a -> c");
    assert!(c.ns.ping(a.ip), "c -> a");
    assert!(node.ns.ping(a.ip), "node -> a");
}

#[test]
fn pods_reach_imds_only_when_allowed_and_the_node_always() {
    let node = Node::new();
    let a = node.pod([10, 0, 0, 60]);
    let imds = node.upstream.udp_inbox(IMDS_ADDR).unwrap();
    let upstream = node.upstream.udp_inbox(UPSTREAM_IP).unwrap();
    let to_imds = imds.addr().unwrap();
    // The IMDS datagram and the marker to the upstream's other address share the path up
    // to the upstream namespace, so once the marker is in, the datagram is in or dropped.
    let ask = |ns: &vpc_cni_testkit::netns::Netns, from: Ipv4Addr| {
        ns.send_in_order(&[
            Packet::udp(from, to_imds, b"imds"),
            Packet::udp(from, upstream.addr().unwrap(), MARKER),
        ])
        .unwrap();
        upstream.until_marker(MARKER, MARKER_BOUND).unwrap();
        sources(&imds.pending().unwrap())
    };

    node.apply(PodGuard::new(true));
    assert_eq!(ask(&a.ns, a.ip), NONE, "a pod reached IMDS while blocked");
    assert_eq!(ask(&node.ns, NODE_IP), [NODE_IP], "the node lost IMDS");

    node.apply(PodGuard::new(false));
    assert_eq!(
        ask(&a.ns, a.ip),
        [a.ip],
        "BLOCK_POD_IMDS=false still blocks"
    );
}

/// ARP that a pod wired by an older plugin (its host end still speaks ARP) sends: the
/// guard's ARP table stops the gratuitous announcements for the gateway and the requests
/// that teach the node a neighbour's address, and lets the pod's own replies through.
#[test]
fn the_arp_table_guards_host_ends_that_still_speak_arp() {
    let node = Node::new();
    let a = node.pod([10, 0, 0, 70]);
    let b = node.pod([10, 0, 0, 71]);
    let veth = &a.host_veth;
    node.ns.ip(&["link", "set", veth, "arp", "on"]);
    let accept = format!("/proc/sys/net/ipv4/conf/{veth}/arp_accept");
    node.ns.write_sysctls(&[(accept.as_str(), "1")]).unwrap();
    let inbox: Inbox = node.inbox(NODE_IP);
    let mac = link_mac(&a.ns, "eth0").unwrap();
    let lies = || -> Vec<Packet> {
        [
            ArpFrame::gratuitous_request(mac, POD_GATEWAY),
            ArpFrame::gratuitous_reply(mac, POD_GATEWAY),
            ArpFrame::request(mac, b.ip, NODE_IP),
        ]
        .into_iter()
        .map(|frame| Packet::arp("eth0", frame))
        .collect()
    };
    let learnt = |ip: Ipv4Addr| {
        node.ns
            .neighbours(&["dev", veth])
            .lines()
            .any(|l| l.starts_with(&format!("{ip} lladdr")))
    };

    assert_eq!(arrivals(&a, &inbox, lies()), NONE);
    assert!(
        learnt(POD_GATEWAY) && learnt(b.ip),
        "control: the node should learn from these frames: {}",
        node.ns.neighbours(&["dev", veth])
    );
    node.ns.ip(&["neigh", "flush", "dev", veth]);

    node.apply(PodGuard::new(true));
    assert_eq!(arrivals(&a, &inbox, lies()), NONE);
    assert!(
        !learnt(POD_GATEWAY) && !learnt(b.ip),
        "the node learnt from a pod's ARP: {}",
        node.ns.neighbours(&["dev", veth])
    );
    // The node resolves this pod by ARP (its permanent entry went with the flag change):
    // the pod's replies must still get through.
    assert!(node.ns.ping(a.ip), "node -> a");
    assert!(learnt(a.ip), "{}", node.ns.neighbours(&["dev", veth]));
}
