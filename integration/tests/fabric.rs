//! The VPC fabric on real namespaces: nodes wired from the model, routing,
//! the source/dest check, the internet's public-address rule, services,
//! the visibility delay and teardown. Needs root (creates namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vpc_cni_cloud::sim::{AssignIps, CreateEni, Eni, Faults, SimVpc};
use vpc_cni_integration::fabric::{
    in_namespace, parse_net, Fabric, EC2_ENDPOINT, IMDS_ADDR, INTERNET_ADDR,
};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::require_root;

const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// A VPC 10.0.0.0/16 with subnet 10.0.0.0/24, instances "a" and "b"
/// (t3.medium), and a second ENI attached to b at device 1.
struct World {
    sim: SimVpc,
    subnet: String,
    a_ip: Ipv4Addr,
    b_ip: Ipv4Addr,
    a_eni: String,
    b_eth1: Eni,
    clock: Arc<AtomicU64>,
}

fn world() -> World {
    let sim = SimVpc::new();
    let clock = Arc::new(AtomicU64::new(1_000_000));
    let now = Arc::clone(&clock);
    sim.set_clock(Arc::new(move || now.load(Ordering::SeqCst)));
    let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
    let subnet = sim
        .create_subnet(&vpc.id, "10.0.0.0/24", "us-west-2a")
        .unwrap();
    let a = sim.run_instance(&subnet.id, "t3.medium", "a").unwrap();
    let b = sim.run_instance(&subnet.id, "t3.medium", "b").unwrap();
    let eni = sim
        .create_network_interface(CreateEni {
            subnet_id: subnet.id.clone(),
            ..Default::default()
        })
        .unwrap();
    sim.attach_network_interface(&eni.id, &b.id, 1).unwrap();
    World {
        sim,
        subnet: subnet.id,
        a_ip: a.private_ip,
        b_ip: b.private_ip,
        a_eni: a.primary_eni,
        b_eth1: eni,
        clock,
    }
}

fn assign_one(sim: &SimVpc, eni: &str) -> Ipv4Addr {
    let assigned = sim
        .assign_private_ip_addresses(
            eni,
            AssignIps {
                count: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assigned.addresses[0]
}

fn ping_from(ns: &Netns, source: Ipv4Addr, target: Ipv4Addr) -> bool {
    ns.command("ping")
        .args(["-c", "1", "-W", "2", "-q", "-I", &source.to_string()])
        .arg(target.to_string())
        .output()
        .is_ok_and(|o| o.status.success())
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `ip netns list` output names `name` (lines are "name (id: n)").
fn listed(list: &str, name: &str) -> bool {
    list.lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// What ipamd will do for an address on a secondary ENI: the address on
/// the link and a table that sends its replies back out of that ENI.
fn configure_on_eth1(node: &Netns, ip: Ipv4Addr) {
    node.try_ip(&["link", "set", "eth1", "up"]).unwrap();
    node.try_ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth1"])
        .unwrap();
    node.try_ip(&[
        "route",
        "add",
        &format!("{GW}/32"),
        "dev",
        "eth1",
        "scope",
        "link",
        "table",
        "2",
    ])
    .unwrap();
    node.try_ip(&[
        "route",
        "add",
        "default",
        "via",
        &GW.to_string(),
        "dev",
        "eth1",
        "table",
        "2",
    ])
    .unwrap();
    node.try_ip(&["rule", "add", "from", &ip.to_string(), "lookup", "2"])
        .unwrap();
}

#[test]
fn fabric_nodes_look_like_ec2_instances() {
    require_root();
    let w = world();
    let fabric = Fabric::new("vfn").unwrap();
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    let a = fabric.node("a").expect("node a");
    let b = fabric.node("b").expect("node b");
    let a_mac = w
        .sim
        .fabric_view()
        .enis
        .into_iter()
        .find(|e| e.id == w.a_eni)
        .unwrap()
        .mac;

    let eth0 = a.try_ip(&["-o", "addr", "show", "dev", "eth0"]).unwrap();
    assert!(
        eth0.contains(&format!("{}/24", w.a_ip)),
        "eth0 of a: {eth0}"
    );
    let link = a.try_ip(&["-o", "link", "show", "dev", "eth0"]).unwrap();
    assert!(link.contains(&a_mac), "eth0 of a lacks MAC {a_mac}: {link}");
    assert!(link.contains("mtu 9001"), "{link}");
    let eth1 = b.try_ip(&["-o", "link", "show", "dev", "eth1"]).unwrap();
    assert!(
        eth1.contains(&w.b_eth1.mac),
        "eth1 of b lacks its MAC: {eth1}"
    );
    let eth1_addrs = b
        .try_ip(&["-o", "-4", "addr", "show", "dev", "eth1"])
        .unwrap();
    assert!(
        eth1_addrs.trim().is_empty(),
        "fabric configured eth1: {eth1_addrs}"
    );
    let links = a.try_ip(&["-o", "link", "show"]).unwrap();
    assert_eq!(
        links.lines().count(),
        2,
        "a node holds only lo and eth0: {links}"
    );
    let route = a.try_ip(&["route", "show", "default"]).unwrap();
    assert!(route.contains(&format!("via {GW} dev eth0")), "{route}");

    assert!(a.ping(w.b_ip), "a cannot reach b's primary address");
    assert!(b.ping(w.a_ip), "b cannot reach a's primary address");
    assert!(a.ping(GW), "a cannot reach its subnet gateway");
    assert!(a.ping(IMDS_ADDR), "a cannot reach IMDS");
    assert!(b.ping(EC2_ENDPOINT), "b cannot reach the EC2 endpoint");
    assert!(
        !a.ping(Ipv4Addr::new(10, 0, 0, 200)),
        "an unassigned address answered"
    );
}

#[test]
fn fabric_routes_a_secondary_address_only_once_assigned() {
    require_root();
    let w = world();
    let fabric = Fabric::new("vfs").unwrap();
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    let a = fabric.node("a").unwrap();
    let b = fabric.node("b").unwrap();
    // The model hands out the lowest free address: claim it first on b
    // without EC2 knowing, then let EC2 assign that very address.
    let free = Ipv4Addr::from(u32::from(w.b_ip.max(w.b_eth1.primary_ip().unwrap())) + 1);
    configure_on_eth1(&b, free);
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    assert!(!a.ping(free), "{free} reachable before EC2 assigned it");

    let assigned = assign_one(&w.sim, &w.b_eth1.id);
    assert_eq!(
        assigned, free,
        "the model did not hand out the address b holds"
    );
    assert!(!a.ping(free), "{free} reachable before the fabric saw it");
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    assert!(
        a.ping(free),
        "a cannot reach {free} on b's eth1 after assignment"
    );

    w.sim
        .unassign_private_ip_addresses(&w.b_eth1.id, &[free], &[])
        .unwrap();
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    assert!(!a.ping(free), "{free} still reachable after unassignment");
}

#[test]
fn fabric_drops_packets_with_a_spoofed_source() {
    require_root();
    let w = world();
    let fabric = Fabric::new("vfd").unwrap();
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    let a = fabric.node("a").unwrap();
    let spoofed = Ipv4Addr::new(10, 0, 0, 200);
    a.try_ip(&["addr", "add", &format!("{spoofed}/32"), "dev", "lo"])
        .unwrap();
    assert!(
        ping_from(&a, w.a_ip, w.b_ip),
        "a's own address does not get through"
    );
    let before = fabric.spoofed_drops().unwrap();
    assert!(
        !ping_from(&a, spoofed, w.b_ip),
        "a spoofed source got a reply"
    );
    let after = fabric.spoofed_drops().unwrap();
    assert!(after > before, "the source/dest check did not count a drop");
}

#[test]
fn fabric_internet_answers_only_primary_addresses() {
    require_root();
    let w = world();
    let secondary = assign_one(&w.sim, &w.a_eni);
    let fabric = Fabric::new("vfi").unwrap();
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    let a = fabric.node("a").unwrap();
    a.try_ip(&["addr", "add", &format!("{secondary}/32"), "dev", "eth0"])
        .unwrap();

    assert!(
        a.ping(INTERNET_ADDR),
        "the internet does not answer a's primary"
    );
    assert!(
        fabric.internet().ping(w.a_ip),
        "a's primary has no public mapping"
    );
    assert!(
        ping_from(&a, secondary, w.b_ip),
        "the VPC refuses a's secondary address"
    );
    let before = fabric.not_public_drops().unwrap();
    assert!(
        !ping_from(&a, secondary, INTERNET_ADDR),
        "a secondary address reached the internet"
    );
    assert!(
        !fabric.internet().ping(secondary),
        "the internet reached a secondary address"
    );
    let after = fabric.not_public_drops().unwrap();
    assert!(
        after >= before + 2,
        "drops {before} -> {after}: not counted"
    );
}

#[test]
fn fabric_hides_an_address_until_ec2_shows_it() {
    require_root();
    let w = world();
    let fabric = Fabric::new("vfv").unwrap();
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    w.sim.set_faults(Faults {
        visibility_delay_ms: 5_000,
        ..Default::default()
    });
    // Past the delay for everything made so far, so only what follows hides.
    w.clock.fetch_add(10_000, Ordering::SeqCst);
    let a = fabric.node("a").unwrap();
    let b = fabric.node("b").unwrap();
    let fresh = assign_one(&w.sim, &w.b_eth1.id);
    configure_on_eth1(&b, fresh);
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    let routed = |ip: Ipv4Addr| {
        let out = fabric
            .router()
            .try_ip(&["route", "show", &format!("{ip}/32")])
            .unwrap();
        !out.trim().is_empty()
    };
    assert!(!routed(fresh), "{fresh} routed inside the visibility delay");
    assert!(
        !a.ping(fresh),
        "{fresh} reachable inside the visibility delay"
    );
    assert!(a.ping(w.b_ip), "the delay hid what was already visible");

    w.clock.fetch_add(5_000, Ordering::SeqCst);
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    assert!(routed(fresh), "{fresh} not routed once visible");
    assert!(a.ping(fresh), "{fresh} unreachable once visible");
}

#[test]
fn fabric_follows_the_model_and_tears_everything_down() {
    require_root();
    let w = world();
    let fabric = Arc::new(Fabric::new("vft").unwrap());
    let follower = fabric
        .follow(w.sim.clone(), Duration::from_millis(100))
        .unwrap();
    let names = fabric.namespaces();
    assert_eq!(names.len(), 4, "{names:?}");
    let before = netns_list();
    for name in &names {
        assert!(listed(&before, name), "{name} missing from {before}");
    }
    let a = fabric.node("a").unwrap();
    let a_name = a.name().to_string();
    drop(a);
    let b = fabric.node("b").unwrap();
    let fresh = assign_one(&w.sim, &w.b_eth1.id);
    configure_on_eth1(&b, fresh);
    let router = fabric.router().name().to_string();
    let reached = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        Command::new("ip")
            .args(["-n", &router, "route", "show", &format!("{fresh}/32")])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    });
    assert!(
        reached,
        "the follower never routed {fresh}: {:?}",
        follower.last_error()
    );

    let id = w
        .sim
        .fabric_view()
        .instances
        .into_iter()
        .find(|i| i.name == "a")
        .unwrap()
        .id;
    w.sim.terminate_instance(&id).unwrap();
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        !listed(&netns_list(), &a_name)
    });
    assert!(
        gone,
        "a's namespace outlived its instance: {:?}",
        follower.last_error()
    );
    assert!(fabric.node("a").is_none());
    drop(b);
    drop(follower);
    drop(fabric);
    let after = netns_list();
    for name in &names {
        assert!(!listed(&after, name), "{name} left behind: {after}");
    }
}

#[test]
fn fabric_serves_tcp_and_reaches_a_plain_host() {
    require_root();
    let w = world();
    let fabric = Fabric::new("vfh").unwrap();
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    let a = fabric.node("a").unwrap();

    let listener = fabric.bind_tcp(SocketAddr::from((IMDS_ADDR, 80))).unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, peer) = listener.accept().unwrap();
        stream.write_all(b"hello").unwrap();
        peer
    });
    let got = in_namespace(&a, || {
        let mut stream = TcpStream::connect((IMDS_ADDR, 80))?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })
    .unwrap();
    assert_eq!(got, "hello");
    let peer = server.join().unwrap();
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(w.a_ip),
        "IMDS would misidentify the caller"
    );

    // Reserve the load balancer's address in the model so nothing else gets it.
    let alb_eni = w
        .sim
        .create_network_interface(CreateEni {
            subnet_id: w.subnet.clone(),
            ..Default::default()
        })
        .unwrap();
    let alb_ip = alb_eni.primary_ip().unwrap();
    let alb = fabric.attach_host("alb", alb_ip).unwrap();
    assert!(alb.ping(w.a_ip), "the host cannot reach a");
    assert!(a.ping(alb_ip), "a cannot reach the host");
    assert!(
        !alb.ping(INTERNET_ADDR),
        "a plain host reached the internet"
    );
    assert_eq!(vpc_cni_proto::net::Ipv4Cidr::host(alb_ip).prefix_len, 32);
}

#[test]
fn fabric_delivers_a_prefix_to_a_pod_behind_its_eni() {
    require_root();
    let w = world();
    let prefix = w
        .sim
        .assign_private_ip_addresses(
            &w.b_eth1.id,
            AssignIps {
                prefix_count: 1,
                ..Default::default()
            },
        )
        .unwrap()
        .prefixes
        .remove(0);
    let fabric = Fabric::new("vfp").unwrap();
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    let a = fabric.node("a").unwrap();
    let b = fabric.node("b").unwrap();
    // A pod address inside the prefix, not local to b: b routes it to a
    // veth and never answers ARP for it, as with ipamd's pods.
    let net = parse_net(&prefix).unwrap();
    let pod_ip = Ipv4Addr::from(u32::from(net.network) + 3);
    let pod = Netns::try_new(&vpc_cni_testkit::unique_name("vfppod")).unwrap();
    b.try_ip(&[
        "link",
        "add",
        "vpod",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        pod.name(),
    ])
    .unwrap();
    b.try_ip(&["addr", "add", "169.254.1.1/32", "dev", "vpod"])
        .unwrap();
    b.try_ip(&["link", "set", "vpod", "up"]).unwrap();
    b.try_ip(&["route", "add", &format!("{pod_ip}/32"), "dev", "vpod"])
        .unwrap();
    b.enable_forwarding();
    pod.try_ip(&["addr", "add", &format!("{pod_ip}/32"), "dev", "eth0"])
        .unwrap();
    pod.try_ip(&["link", "set", "eth0", "up"]).unwrap();
    pod.try_ip(&[
        "route",
        "add",
        "169.254.1.1/32",
        "dev",
        "eth0",
        "scope",
        "link",
    ])
    .unwrap();
    pod.try_ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])
    .unwrap();
    b.try_ip(&["link", "set", "eth1", "up"]).unwrap();
    b.try_ip(&[
        "route",
        "add",
        &format!("{GW}/32"),
        "dev",
        "eth1",
        "scope",
        "link",
        "table",
        "2",
    ])
    .unwrap();
    b.try_ip(&[
        "route",
        "add",
        "default",
        "via",
        &GW.to_string(),
        "dev",
        "eth1",
        "table",
        "2",
    ])
    .unwrap();
    b.try_ip(&["rule", "add", "from", &pod_ip.to_string(), "lookup", "2"])
        .unwrap();

    assert!(
        a.ping(pod_ip),
        "a cannot reach the pod at {pod_ip} in {prefix}"
    );
    let outside = Ipv4Addr::from(u32::from(net.network) + 16);
    assert!(!a.ping(outside), "{outside}, past the prefix, answered");
}

#[test]
fn fabric_wires_an_instance_in_a_secondary_vpc_block() {
    require_root();
    let w = world();
    let vpc = w.sim.describe_vpcs(&[]).unwrap().remove(0);
    w.sim
        .associate_vpc_cidr_block(&vpc.id, "100.64.0.0/16")
        .unwrap();
    let subnet = w
        .sim
        .create_subnet(&vpc.id, "100.64.0.0/24", "us-west-2b")
        .unwrap();
    let c = w.sim.run_instance(&subnet.id, "t3.medium", "c").unwrap();
    assert_eq!(c.private_ip, Ipv4Addr::new(100, 64, 0, 4));
    let fabric = Fabric::new("vfs").unwrap();
    fabric.reconcile(&w.sim.fabric_view()).unwrap();
    let (a, c_ns) = (fabric.node("a").unwrap(), fabric.node("c").unwrap());
    let route = c_ns.try_ip(&["route", "show", "default"]).unwrap();
    assert!(route.contains("via 100.64.0.1 dev eth0"), "{route}");
    assert!(
        a.ping(c.private_ip),
        "a cannot reach c in the secondary block"
    );
    assert!(c_ns.ping(w.a_ip), "c cannot reach a");
    assert!(c_ns.ping(IMDS_ADDR), "c cannot reach IMDS");
    assert!(
        !a.ping(Ipv4Addr::new(100, 64, 0, 200)),
        "an unassigned address of the secondary block answered"
    );
}
