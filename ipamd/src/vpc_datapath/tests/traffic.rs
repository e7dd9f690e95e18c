//! Traffic through the wiring: pods ping an "internet" address in an upstream namespace
//! that only has a route back to the node's primary address, so a reply proves SNAT.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use vpc_cni::dataplane::{wire_pod, PodWiring};

use super::core::{eni, spec, MAC0, MAC1};
use vpc_cni_testkit::netns::Netns;

use super::add_eni_link;
use crate::vpc_datapath::apply_node_wiring;
use crate::vpc_datapath::wiring::VpcNodeSpec;

const INTERNET: &str = "198.51.100.7";

struct Fabric {
    node: Netns,
    // Kept for their drop guards.
    _upstream: Netns,
    _subnet1: Netns,
}

/// node eth0 (10.0.0.10) <-> upstream (10.0.0.1, and 198.51.100.7 on lo); node eth1 <->
/// a namespace that answers nothing, as a VPC subnet would for a source it does not expect.
fn fabric() -> Fabric {
    let node = Netns::unique("vdp-tnode");
    let upstream = Netns::unique("vdp-tup");
    let subnet1 = Netns::unique("vdp-tsub");
    add_eni_link(&node, "eth0", MAC0, "up0", Some(&upstream));
    add_eni_link(&node, "eth1", MAC1, "sub0", Some(&subnet1));
    upstream.ip(&["link", "set", "up0", "up"]);
    upstream.ip(&["addr", "add", "10.0.0.1/32", "dev", "up0"]);
    upstream.ip(&["addr", "add", &format!("{INTERNET}/32"), "dev", "lo"]);
    upstream.ip(&["route", "add", "10.0.0.10/32", "dev", "up0"]);
    subnet1.ip(&["link", "set", "sub0", "up"]);
    node.ip(&["link", "set", "eth0", "up"]);
    node.ip(&["addr", "add", "10.0.0.10/24", "dev", "eth0"]);
    node.ip(&["route", "add", "default", "via", "10.0.0.1", "dev", "eth0"]);
    Fabric {
        node,
        _upstream: upstream,
        _subnet1: subnet1,
    }
}

fn node_spec(external_snat: bool) -> VpcNodeSpec {
    VpcNodeSpec {
        secondaries: vec![eni(MAC1, 1, "10.0.1.0/24")],
        external_snat,
        ..spec()
    }
}

fn apply(node: &Netns, spec: VpcNodeSpec) {
    node.run(|| async move { apply_node_wiring(&spec).await.map(drop) })
        .unwrap();
}

/// A pod wired by the plugin's own code, with its address on the ENI of `route_table`.
fn pod(node: &Netns, veth: &str, ip: [u8; 4], route_table: u32) -> Netns {
    let pod = Netns::unique("vdp-tpod");
    let wiring = PodWiring {
        netns_path: PathBuf::from(format!("/run/netns/{}", pod.name())),
        ifname: "eth0".into(),
        host_veth: veth.into(),
        ip: Ipv4Addr::from(ip),
        route_table,
        mtu: 1500,
    };
    node.run(move || async move { wire_pod(&wiring).await.map(drop) })
        .unwrap();
    pod
}

fn pings(ns: &Netns, target: &str) -> bool {
    ns.exec(&["ping", "-c1", "-W2", target]).status.success()
}

#[test]
fn pod_on_the_primary_eni_reaches_the_internet_through_snat() {
    let f = fabric();
    apply(&f.node, node_spec(false));
    let p = pod(&f.node, "vpcprimarypod", [10, 0, 0, 50], 0);
    assert!(
        pings(&p, INTERNET),
        "no reply: the source was not the primary address"
    );
}

#[test]
fn pod_on_a_secondary_eni_leaves_through_the_primary_by_connmark() {
    let f = fabric();
    apply(&f.node, node_spec(false));
    let p = pod(&f.node, "vpcsecondpod", [10, 0, 1, 50], 2);
    // Its 1536 rule points at table 2 (out eth1, into silence); only the connmark rule
    // at 1024 can send it out eth0, where SNAT applies.
    assert!(
        pings(&p, INTERNET),
        "no reply: pod traffic left through its own ENI"
    );
}

#[test]
fn without_snat_the_upstream_cannot_answer() {
    let f = fabric();
    apply(&f.node, node_spec(true));
    let p = pod(&f.node, "vpcnosnatpod", [10, 0, 0, 51], 0);
    assert!(
        !pings(&p, INTERNET),
        "a reply came back although SNAT is off"
    );
}
