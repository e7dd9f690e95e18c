//! A VPC CIDR block associated and disassociated while pods run (issue 16, acceptance 2): the
//! node exempts the new block from SNAT at its next reconcile, so a host in the block sees a
//! pod's own address (before, as outside the VPC, the node's); once the block is gone again,
//! so is the exemption. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use vpc_cni_integration::vpc_cluster::{tcp_peer, VpcCluster};
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for a reconcile (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(45);
const BLOCK: &str = "100.64.0.0/16";

#[test]
fn a_vpc_block_added_while_pods_run_is_exempt_from_snat_and_removed_again() {
    require_root();
    let cluster = VpcCluster::new("vcid", &[("a", "t3.medium")], &[])
        .unwrap_or_else(|e| panic!("starting the cluster: {e}"));
    let pod = cluster.pod("a", "p0");
    let node = cluster.node("a").unwrap();
    let table = || {
        node.netns()
            .nft(&["list", "table", "ip", "vpc-cni"])
            .unwrap_or_default()
    };
    assert!(!table().contains(BLOCK), "{}", table());

    // A host at an address of the block-to-be (a peered network, say): outside the VPC for
    // now, so pods reach it SNATed to the node's address.
    let far_ip = Ipv4Addr::new(100, 64, 0, 200);
    let far = cluster.fabric().attach_host("far", far_ip).unwrap();
    let seen = tcp_peer(&far, far_ip, &pod.netns).unwrap();
    assert_eq!(seen.ip(), node.primary_ip());

    // The block is associated with the VPC, with a subnet in it.
    let sim = cluster.sim();
    let vpc = sim.describe_vpcs(&[]).unwrap().remove(0);
    let block = sim.associate_vpc_cidr_block(&vpc.id, BLOCK).unwrap();
    let subnet = sim
        .create_subnet(&vpc.id, "100.64.0.0/24", "us-west-2a")
        .unwrap();
    // An ADD wakes the pool controller: its reconcile reads IMDS, which lists the new block.
    let _woken = cluster.pod("a", "p1");
    wait_for(EVENTUAL, || table().contains(BLOCK).then_some(()))
        .unwrap_or_else(|| panic!("{BLOCK} never became exempt\n{}", cluster.diagnostics("a")));
    let seen = tcp_peer(&far, far_ip, &pod.netns).unwrap();
    assert_eq!(
        seen.ip(),
        pod.ip.unwrap(),
        "the host sees the pod's own address"
    );

    // The block goes (its subnet first, as EC2 requires): so does the exemption, and the host
    // sees the node again.
    sim.delete_subnet(&subnet.id).unwrap();
    sim.disassociate_vpc_cidr_block(&block.association_id)
        .unwrap();
    let _woken = cluster.pod("a", "p2");
    wait_for(EVENTUAL, || (!table().contains(BLOCK)).then_some(()))
        .unwrap_or_else(|| panic!("{BLOCK} stayed exempt\n{}", table()));
    assert!(
        table().contains("10.0.0.0/16"),
        "the primary block stays exempt: {}",
        table()
    );
    let seen = tcp_peer(&far, far_ip, &pod.netns).unwrap();
    assert_eq!(seen.ip(), node.primary_ip());
}
