//! The on-prem site of the fabric: its LAN reaches the VPC and back across the site link with
//! addresses untranslated, goes to the internet through its own NAT, cannot get an answer
//! for an address the VPC does not route (an on-prem pod's), follows the link's MTU, and
//! loses the VPC while the link is cut and gets it back when it is restored. Needs root
//! (creates namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use vpc_cni_cloud::sim::SimVpc;
use vpc_cni_integration::fabric::{Fabric, SiteSpec, INTERNET_ADDR, SITE_NAT_ADDR};
use vpc_cni_integration::vpc_cluster::{reachable, tcp_peer};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::require_root;

const LAN_HOST: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 11);
/// An on-prem pod address, held by the LAN host as a pod's would be behind it.
const ONPREM_POD: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
const LINK_MTU: u32 = 1400;

fn ping_sized(from: &Netns, target: Ipv4Addr, payload: u32) -> bool {
    from.command("ping")
        .args(["-c", "1", "-W", "2", "-q", "-M", "do", "-s"])
        .arg(payload.to_string())
        .arg(target.to_string())
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_site_reaches_the_vpc_over_its_link_and_the_internet_through_its_own_nat() {
    require_root();
    let sim = SimVpc::new();
    let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
    let subnet = sim
        .create_subnet(&vpc.id, "10.0.0.0/24", "us-west-2a")
        .unwrap();
    let a = sim.run_instance(&subnet.id, "t3.medium", "a").unwrap();
    let fabric = Fabric::new("vsite").unwrap();
    fabric.reconcile(&sim.fabric_view()).unwrap();
    let node = fabric.node("a").expect("node a");
    let router = fabric
        .attach_site(SiteSpec {
            lan: "172.20.0.0/24".parse().unwrap(),
            lan_mtu: 1500,
            link_mtu: LINK_MTU,
        })
        .unwrap();
    let host = Netns::unique("vsitehost");
    fabric.plug_site_node(&host, LAN_HOST).unwrap();
    assert!(
        fabric
            .plug_site_node(&Netns::unique("vsitebad"), Ipv4Addr::new(172, 21, 0, 5))
            .is_err(),
        "an address outside the LAN is refused"
    );
    host.try_ip(&["addr", "add", &format!("{ONPREM_POD}/32"), "dev", "lo"])
        .unwrap();

    // Across the link, both ways, nothing translated.
    let seen = tcp_peer(&node, a.private_ip, &host).unwrap();
    assert_eq!(seen.ip(), LAN_HOST);
    let seen = tcp_peer(&host, LAN_HOST, &node).unwrap();
    assert_eq!(seen.ip(), a.private_ip);

    // The site's own way out, and the VPC's.
    let seen = tcp_peer(fabric.internet(), INTERNET_ADDR, &host).unwrap();
    assert_eq!(seen.ip(), SITE_NAT_ADDR);
    let seen = tcp_peer(fabric.internet(), INTERNET_ADDR, &node).unwrap();
    assert_eq!(seen.ip(), a.private_ip);

    // Nothing routes an on-prem pod address in the VPC.
    assert!(
        !reachable(&node, ONPREM_POD),
        "the VPC must not route {ONPREM_POD}"
    );

    // The path's MTU is the link's: a full-sized packet with DF set crosses, one byte more
    // does not.
    assert!(ping_sized(&node, LAN_HOST, LINK_MTU - 28));
    assert!(!ping_sized(&node, LAN_HOST, LINK_MTU - 27));

    // Cut: the VPC is gone for the site (its internet is not); restored: back. Both are
    // idempotent.
    fabric.set_site_link(false).unwrap();
    fabric.set_site_link(false).unwrap();
    assert!(!reachable(&host, a.private_ip));
    assert!(!reachable(&node, LAN_HOST));
    assert!(reachable(&host, INTERNET_ADDR));
    fabric.set_site_link(true).unwrap();
    fabric.set_site_link(true).unwrap();
    assert!(reachable(&host, a.private_ip));
    assert_eq!(tcp_peer(&node, a.private_ip, &host).unwrap().ip(), LAN_HOST);
    let names = fabric.namespaces();
    assert!(names.contains(&router.name().to_string()), "{names:?}");
}
