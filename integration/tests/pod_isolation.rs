//! Pod isolation (issue 12, acceptance 4), end to end with the real ipamd and plugin, in both
//! modes: a pod that sends with its neighbour's or its node's source address reaches nobody
//! with it (not a pod on its node, not a pod on another node, not a VPC host), and its
//! gratuitous ARP for the gateway 169.254.1.1 and its other ARP lies change no neighbour
//! entry, neither the node's nor another pod's. In VPC mode a pod's request to IMDS is
//! dropped under `BLOCK_POD_IMDS` (the default) and answered once the operator sets it false,
//! while the node's own IMDS keeps working. Needs root.
//!
//! The forged packets are also sent with ipamd's guard table deleted (ipamd runs with
//! `DATAPATH_RESYNC_INTERVAL=1h`, so nothing puts it back behind the test's back): then they
//! arrive, which shows that neither the node's kernel (its reverse-path filter is off, and
//! it takes its own address as a source, as some nodes do) nor the VPC's source/dest check
//! would have stopped them, and that these checks see a forged packet when one gets through.
//! A marker datagram from the pod's own address, sent last on the same path, says when
//! everything before it has arrived or been dropped (see `vpc_cni_testkit::send`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use vpc_cni_integration::fabric::IMDS_ADDR;
use vpc_cni_integration::node::ClusterPod;
use vpc_cni_integration::overlay_cluster::{underlay_ip, OverlayCluster};
use vpc_cni_integration::vpc_cluster::VpcCluster;
use vpc_cni_proto::POD_GATEWAY;
use vpc_cni_testkit::arp::{link_mac, ArpFrame};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::require_root;
use vpc_cni_testkit::send::Packet;
use vpc_cni_testkit::udp::{Datagram, Inbox};

/// A harness bound for a marker to arrive (never an assertion).
const MARKER_BOUND: Duration = Duration::from_secs(10);
const MARKER: &[u8] = b"marker";
const FORGED: &[u8] = b"forged";
const READY: &[u8] = b"ready";
/// Harness bounds for the path to work before the checks: tries, and the wait for each.
const READY_TRIES: u32 = 10;
const READY_WAIT: Duration = Duration::from_secs(2);
/// Somewhere on the internet, as a forged source.
const STRANGER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
/// How long a connection to IMDS may take to open before it counts as dropped (a harness
/// bound: the assertion is on how it failed, a timeout rather than a refusal).
const IMDS_CONNECT: Duration = Duration::from_secs(3);
const NO_PERIODIC_REPAIR: (&str, &str) = ("DATAPATH_RESYNC_INTERVAL", "1h");
const NONE: [Ipv4Addr; 0] = [];

fn ip(pod: &ClusterPod) -> Ipv4Addr {
    pod.ip().unwrap()
}

/// Makes `node` as permissive as a node's kernel gets: no reverse-path filter on links made
/// from now on, and its own address accepted as a source from a link. What stops a forged
/// packet on such a node is the guard alone.
fn permissive(node: &Netns) {
    node.write_sysctls(&[
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.all.accept_local", "1"),
    ])
    .unwrap();
}

/// The sources of the datagrams `inbox` got from `pod`'s forged `lies`, sent ahead of a
/// marker from the pod's own address, once the pod's own datagrams reach the inbox.
fn forged_arrivals(pod: &ClusterPod, inbox: &Inbox, lies: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
    let to = inbox.addr().unwrap();
    path_works(pod, inbox);
    let mut packets: Vec<Packet> = lies
        .iter()
        .map(|source| Packet::udp(*source, to, FORGED))
        .collect();
    packets.push(Packet::udp(ip(pod), to, MARKER));
    pod.netns.send_in_order(&packets).unwrap();
    let before = inbox.until_marker(MARKER, MARKER_BOUND).unwrap();
    // A late copy of a readiness datagram is the pod's own, not a forged one.
    let forged: Vec<Datagram> = before.into_iter().filter(|d| d.payload == FORGED).collect();
    sources(&forged)
}

/// Waits until a datagram from `pod`'s own address reaches `inbox`, sending one each try: a
/// path's first packet may be lost while a neighbour entry on the way is resolved (one
/// datagram is all the marker scheme sends, where TCP would retransmit), and without a
/// working path no forged packet could arrive anyway, so the checks would show nothing.
fn path_works(pod: &ClusterPod, inbox: &Inbox) {
    let to = inbox.addr().unwrap();
    for _ in 0..READY_TRIES {
        pod.netns
            .send_in_order(&[Packet::udp(ip(pod), to, READY)])
            .unwrap();
        if inbox.until_marker(READY, READY_WAIT).is_ok() {
            return;
        }
    }
    panic!(
        "{}'s own datagrams never reached {to} ({READY_TRIES} tries)",
        pod.name
    );
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

/// The host veth that the node's `/32` route to `pod` leaves through.
fn host_veth(node: &Netns, pod: Ipv4Addr) -> String {
    let route = node.ip(&["-o", "route", "show", &format!("{pod}/32")]);
    route
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap_or_else(|| panic!("no route to {pod} on the node: {route:?}"))
        .to_owned()
}

fn trimmed_lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// What `liar` tells with ARP, impersonating the gateway and `victim`, to a node that learns
/// from any ARP it is handed on the liar's veth (`arp_accept=1`); then checks that the node
/// learnt nothing there and that `others` (pods beside it) still have their gateway entry.
fn arp_lies_change_nothing(
    node: &Netns,
    node_ip: Ipv4Addr,
    liar: &ClusterPod,
    victim: Ipv4Addr,
    others: &[&ClusterPod],
) {
    let veth = host_veth(node, ip(liar));
    let accept = format!("/proc/sys/net/ipv4/conf/{veth}/arp_accept");
    node.write_sysctls(&[(accept.as_str(), "1")]).unwrap();
    let gateways_before: Vec<Option<String>> = others
        .iter()
        .map(|p| p.netns.neighbour(&POD_GATEWAY.to_string(), "eth0"))
        .collect();
    let node_before = trimmed_lines(&node.neighbours(&["dev", &veth]));
    assert_eq!(
        node_before.len(),
        1,
        "the node should know {} by one permanent entry: {node_before:?}",
        liar.name
    );

    let mac = link_mac(&liar.netns, "eth0").unwrap();
    let host_mac = link_mac(node, &veth).unwrap();
    let inbox = node.udp_inbox(node_ip).unwrap();
    let mut packets: Vec<Packet> = [
        ArpFrame::gratuitous_request(mac, POD_GATEWAY),
        ArpFrame::gratuitous_reply(mac, POD_GATEWAY),
        ArpFrame::reply(mac, victim, host_mac, node_ip),
        ArpFrame::request(mac, victim, node_ip),
    ]
    .into_iter()
    .map(|frame| Packet::arp("eth0", frame))
    .collect();
    packets.push(Packet::udp(ip(liar), inbox.addr().unwrap(), MARKER));
    liar.netns.send_in_order(&packets).unwrap();
    inbox.until_marker(MARKER, MARKER_BOUND).unwrap();

    assert_eq!(
        trimmed_lines(&node.neighbours(&["dev", &veth])),
        node_before,
        "the node learnt from {}'s ARP",
        liar.name
    );
    let gateways_after: Vec<Option<String>> = others
        .iter()
        .map(|p| p.netns.neighbour(&POD_GATEWAY.to_string(), "eth0"))
        .collect();
    assert_eq!(gateways_after, gateways_before);
    for (pod, entry) in others.iter().zip(&gateways_after) {
        assert!(
            entry.as_deref().is_some_and(|e| e.contains("PERMANENT")),
            "{}'s gateway entry: {entry:?}",
            pod.name
        );
    }
}

/// One HTTP/1.1 exchange with IMDS from inside `ns` (connection closed after it); the body.
fn imds_exchange(ns: &Netns, request: String) -> io::Result<String> {
    ns.in_thread(move || {
        let target = SocketAddr::from((IMDS_ADDR, 80));
        let mut stream = TcpStream::connect_timeout(&target, IMDS_CONNECT)?;
        stream.set_read_timeout(Some(IMDS_CONNECT))?;
        stream.write_all(request.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .ok_or_else(|| io::Error::other(format!("no HTTP answer: {answer:?}")))?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(io::Error::other(format!("IMDS answered {head:?}")));
        }
        Ok(body.to_owned())
    })
}

/// The instance id IMDS (v2: a token first) tells whoever asks from inside `ns`.
fn imds_instance_id(ns: &Netns) -> io::Result<String> {
    let token = imds_exchange(
        ns,
        format!(
            "PUT /latest/api/token HTTP/1.1\r\nHost: {IMDS_ADDR}\r\n\
             X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        ),
    )?;
    imds_exchange(
        ns,
        format!(
            "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: {IMDS_ADDR}\r\n\
             X-aws-ec2-metadata-token: {token}\r\nConnection: close\r\n\r\n"
        ),
    )
}

#[test]
fn vpc_pods_cannot_impersonate_their_neighbours_or_the_gateway_nor_reach_imds() {
    require_root();
    let mut cluster = VpcCluster::new("viso", &[("a", "t3.medium")], &[NO_PERIODIC_REPAIR])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let node = cluster.node("a").unwrap();
    let (node_ns, node_ip) = (node.netns().clone(), node.primary_ip());
    let instance_id = node.instance.id.clone();
    permissive(&node_ns);
    let (host_ns, host_ip) = cluster.attach_host("lb").unwrap();
    let mallory = cluster.pod("a", "mallory");
    let alice = cluster.pod("a", "alice");
    let carol = cluster.pod("a", "carol");
    let host_inbox = host_ns.udp_inbox(host_ip).unwrap();
    let carol_inbox = carol.netns.udp_inbox(ip(&carol)).unwrap();
    // The VPC host sees sources the VPC's check lets pass; a pod on the node sees any.
    let to_host = [ip(&alice), node_ip];
    let to_carol = [ip(&alice), node_ip, STRANGER];

    assert_eq!(
        forged_arrivals(&mallory, &host_inbox, &to_host),
        NONE,
        "a VPC host got mallory's forged packets\n{}",
        cluster.diagnostics("a")
    );
    assert_eq!(
        forged_arrivals(&mallory, &carol_inbox, &to_carol),
        NONE,
        "carol got mallory's forged packets\n{}",
        cluster.diagnostics("a")
    );
    arp_lies_change_nothing(&node_ns, node_ip, &mallory, ip(&alice), &[&alice, &carol]);

    let blocked = imds_instance_id(&mallory.netns);
    assert!(
        matches!(&blocked, Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)),
        "mallory's request to IMDS was not dropped: {blocked:?}"
    );
    assert_eq!(
        imds_instance_id(&node_ns).unwrap(),
        instance_id,
        "the node lost IMDS"
    );

    // Control: without the guard table the same packets get through, past the VPC too.
    node_ns.exec_ok(&["nft", "delete", "table", "ip", "vpc-cni-guard"]);
    assert_eq!(forged_arrivals(&mallory, &host_inbox, &to_host), to_host);
    assert_eq!(forged_arrivals(&mallory, &carol_inbox, &to_carol), to_carol);

    // The operator lets pods reach IMDS; the restarted ipamd puts the guard back without
    // that rule. IMDS answers the pod as the node, which is what the block is for.
    let node = cluster.node_mut("a").unwrap();
    node.ipamd.set_env("BLOCK_POD_IMDS", "false");
    let netns = node.netns().clone();
    node.ipamd.restart(&netns).unwrap();
    assert_eq!(forged_arrivals(&mallory, &host_inbox, &to_host), NONE);
    assert_eq!(imds_instance_id(&mallory.netns).unwrap(), instance_id);
    assert_eq!(imds_instance_id(&node_ns).unwrap(), instance_id);
}

#[test]
fn overlay_pods_cannot_impersonate_their_neighbours_or_the_gateway() {
    require_root();
    let cluster = OverlayCluster::with_env("oiso", 2, 1500, &[NO_PERIODIC_REPAIR])
        .unwrap_or_else(|e| panic!("starting the overlay cluster: {e}"));
    let node = cluster.node("node-1").unwrap();
    let node_ns = node.netns();
    let node_ip = underlay_ip(node.number);
    permissive(node_ns);
    let mallory = cluster.pod("node-1", "mallory");
    let alice = cluster.pod("node-1", "alice");
    let carol = cluster.pod("node-1", "carol");
    let bob = cluster.pod("node-2", "bob");
    let carol_inbox = carol.netns.udp_inbox(ip(&carol)).unwrap();
    let bob_inbox = bob.netns.udp_inbox(ip(&bob)).unwrap();
    // Across the overlay, node-2's own reverse-path filter (whatever this machine's default)
    // passes sources that route back through the overlay: a pod of node-1 does.
    let to_bob = [ip(&alice)];
    let to_carol = [ip(&alice), node_ip, STRANGER];

    assert_eq!(
        forged_arrivals(&mallory, &bob_inbox, &to_bob),
        NONE,
        "bob got mallory's forged packets\n{}",
        cluster.all_diagnostics()
    );
    assert_eq!(
        forged_arrivals(&mallory, &carol_inbox, &to_carol),
        NONE,
        "carol got mallory's forged packets\n{}",
        cluster.diagnostics("node-1")
    );
    arp_lies_change_nothing(node_ns, node_ip, &mallory, ip(&alice), &[&alice, &carol]);

    node_ns.exec_ok(&["nft", "delete", "table", "ip", "vpc-cni-guard"]);
    assert_eq!(forged_arrivals(&mallory, &bob_inbox, &to_bob), to_bob);
    assert_eq!(forged_arrivals(&mallory, &carol_inbox, &to_carol), to_carol);
}
