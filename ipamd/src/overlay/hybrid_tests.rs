//! The overlay of a VPC-mode node in a hybrid cluster, on the real kernel: `vxlan.vpc` on the
//! primary ENI without an address of its own, entries for overlay nodes only, and their pod
//! CIDRs handed to the VPC datapath's table. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use vpc_cni_proto::net::{Ipv4Cidr, MacAddr};
use vpc_cni_testkit::netns::Netns;

use super::peers::{Peer, PeerSet};
use super::vxlan::{OverlaySpec, DEVICE_NAME};
use super::OverlayDatapath;
use crate::datapath::NodeDatapath;
use crate::vpc_datapath::{PrimaryEni, VpcDatapath, VpcNodeSpec};

const ENI_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x0a, 0x0a];

fn cidr(text: &str) -> Ipv4Cidr {
    text.parse().unwrap()
}

/// A VPC node: its primary ENI `eth0` at 10.0.0.10/24 with a default route.
fn vpc_node() -> Netns {
    let ns = Netns::unique("ovx-hyb");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ns.ip(&["link", "set", "eth0", "address", "02:00:00:00:0a:0a"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "eth0p", "up"]);
    ns.ip(&["addr", "add", "10.0.0.10/24", "dev", "eth0"]);
    ns.ip(&["route", "add", "default", "via", "10.0.0.1"]);
    ns
}

fn vpc_datapath() -> Arc<VpcDatapath> {
    Arc::new(VpcDatapath::new(VpcNodeSpec {
        primary: PrimaryEni {
            mac: MacAddr(ENI_MAC),
            address: Ipv4Addr::new(10, 0, 0, 10),
        },
        secondaries: Vec::new(),
        vpc_cidrs: vec![cidr("10.0.0.0/16")],
        exclude_snat_cidrs: Vec::new(),
        external_snat: false,
        eni_mtu: 9001,
        max_enis: 4,
        overlay: None,
    }))
}

/// `vxlan.vpc` on the primary ENI, sized for a site link of MTU 1400 rather than the ENI's
/// 9001.
fn overlay_spec() -> OverlaySpec {
    OverlaySpec {
        vni: 1,
        port: 8472,
        underlay_iface: "eth0".into(),
        underlay_ip: Ipv4Addr::new(10, 0, 0, 10),
        underlay_mtu: 1400,
        own_pod_cidr: None,
        direct_routing: false,
        underlay_subnet: None,
    }
}

fn set(peers: Vec<Peer>) -> PeerSet {
    peers.into_iter().map(|p| (p.name.clone(), p)).collect()
}

#[test]
fn a_vpc_node_routes_overlay_pods_into_vxlan_and_keeps_them_untranslated() {
    let ns = vpc_node();
    let onprem = Peer::overlay(
        "onprem-1",
        Ipv4Addr::new(172, 20, 0, 11),
        cidr("10.244.1.0/24"),
    );
    let other_vpc = Peer::vpc("vpc-b", Ipv4Addr::new(10, 0, 0, 20), [cidr("10.0.1.16/28")]);
    let peers = set(vec![onprem, other_vpc]);
    ns.run(|| async move {
        let vpc = vpc_datapath();
        vpc.apply().await.unwrap();
        let spec = overlay_spec();
        let (overlay, _) = OverlayDatapath::new_hybrid(spec, Arc::clone(&vpc))
            .await
            .unwrap();
        overlay.apply_peers(&peers).await.unwrap();
        // Applied twice: nothing changes.
        let again = overlay.apply_peers(&peers).await.unwrap();
        assert!(again.is_unchanged(), "{again:?}");
    });

    let routes = ns.ip(&["route", "show", "dev", DEVICE_NAME]);
    assert!(
        routes.contains("10.244.1.0/24 via 10.244.1.0 proto 86 onlink"),
        "{routes}"
    );
    assert!(
        !routes.contains("10.0.1.16"),
        "a VPC-mode peer is reached through the VPC: {routes}"
    );
    let addresses = ns.ip(&["-4", "addr", "show", "dev", DEVICE_NAME]);
    assert!(!addresses.contains("inet "), "{addresses}");
    let link = ns.ip(&["link", "show", DEVICE_NAME]);
    assert!(link.contains("mtu 1350"), "{link}");
    let table = ns.nft(&["list", "table", "ip", "vpc-cni"]).unwrap();
    assert!(table.contains("set remote-pods"), "{table}");
    assert!(table.contains("10.244.1.0/24"), "{table}");
    assert!(table.contains("iifname \"vxlan.vpc\""), "{table}");

    // The on-prem node leaves: its route and its pods' exemption go with it.
    // Adopted afresh, as a restarted ipamd would.
    ns.run(|| async move {
        let spec = overlay_spec();
        let (overlay, _) = OverlayDatapath::new_hybrid(spec, vpc_datapath())
            .await
            .unwrap();
        overlay.apply_peers(&PeerSet::new()).await.unwrap();
    });
    let routes = ns.ip(&["route", "show", "dev", DEVICE_NAME]);
    assert!(routes.trim().is_empty(), "{routes}");
    let table = ns.nft(&["list", "table", "ip", "vpc-cni"]).unwrap();
    assert!(!table.contains("10.244.1.0/24"), "{table}");
}
