//! Subnet discovery (issue 16, acceptance 1, its first half): a node whose primary subnet is
//! full keeps adding pods from the subnet of its zone tagged `kubernetes.io/role/cni`, on
//! ENIs ipamd creates there; those pods reach each other, a VPC host and the internet (SNAT
//! to the node's primary address). A subnet tagged in another zone, or tagged `0`, is never
//! used. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use vpc_cni_cloud::sim::CreateEni;
use vpc_cni_integration::fabric::INTERNET_ADDR;
use vpc_cni_integration::vpc_cluster::{reachable, tcp_peer, VpcCluster, VpcPod};
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::require_root;

const ROLE: &str = "kubernetes.io/role/cni";
/// More than the primary ENI would hold (t3.medium: 5 per ENI): two new ENIs.
const PODS: usize = 6;

fn tag(sim: &vpc_cni_cloud::sim::SimVpc, id: &str, value: &str) {
    let tags = BTreeMap::from([(ROLE.to_string(), value.to_string())]);
    sim.create_tags(&[id.to_string()], &tags).unwrap();
}

#[test]
fn a_node_whose_primary_subnet_is_full_adds_pods_from_a_tagged_subnet() {
    require_root();
    // The primary subnet is a /28: 11 usable addresses, one the node's.
    let (mut cluster, mut instances) =
        VpcCluster::without_ipamd_in("vsdi", "10.0.0.0/28", &[("a", "t3.medium")])
            .unwrap_or_else(|e| panic!("building the VPC: {e}"));
    let sim = cluster.sim().clone();
    let primary_subnet = cluster.subnet().clone();
    // Someone else takes the other ten.
    let squatter = sim
        .create_network_interface(CreateEni {
            subnet_id: primary_subnet.id.clone(),
            secondary_count: 9,
            ..CreateEni::default()
        })
        .unwrap();
    assert_eq!(
        sim.describe_subnets(std::slice::from_ref(&primary_subnet.id))
            .unwrap()[0]
            .available_ip_count,
        0
    );
    let vpc = primary_subnet.vpc_id.clone();
    let tagged = sim
        .create_subnet(&vpc, "10.0.1.0/24", "us-west-2a")
        .unwrap();
    tag(&sim, &tagged.id, "1");
    // Never to be used: tagged in another zone, and tagged out.
    let elsewhere = sim
        .create_subnet(&vpc, "10.0.2.0/24", "us-west-2b")
        .unwrap();
    tag(&sim, &elsewhere.id, "1");
    let opted_out = sim
        .create_subnet(&vpc, "10.0.3.0/24", "us-west-2a")
        .unwrap();
    tag(&sim, &opted_out.id, "0");

    cluster
        .start_ipamd(instances.remove(0), &[("SUBNET_FULL_PAUSE", "5s")])
        .unwrap_or_else(|e| panic!("starting ipamd: {e}"));
    let pods: Vec<VpcPod> = (0..PODS)
        .map(|i| cluster.pod("a", &format!("p{i}")))
        .collect();
    let tagged_cidr: Ipv4Cidr = tagged.cidr.parse().unwrap();
    let primary_groups = cluster
        .eni_of(cluster.node("a").unwrap().primary_ip())
        .unwrap()
        .security_groups;
    for pod in &pods {
        let ip = pod.ip().unwrap();
        let eni = cluster.eni_of(ip).unwrap();
        assert_eq!(
            eni.subnet_id,
            tagged.id,
            "{} ({ip}) is on {} in {}\n{}",
            pod.name,
            eni.id,
            eni.subnet_id,
            cluster.all_diagnostics()
        );
        assert!(tagged_cidr.contains(ip), "{ip}");
        assert_eq!(
            eni.security_groups, primary_groups,
            "the primary ENI's groups"
        );
    }
    let enis: std::collections::BTreeSet<String> = pods
        .iter()
        .map(|p| cluster.eni_of(p.ip().unwrap()).unwrap().id)
        .collect();
    assert_eq!(enis.len(), 2, "two new ENIs in the tagged subnet: {enis:?}");

    // The pods work as any: each other, a VPC host (in the tagged subnet: the primary one is
    // full) and the internet through the node's primary address.
    let host_eni = sim
        .create_network_interface(CreateEni {
            subnet_id: tagged.id.clone(),
            description: "host alb".into(),
            ..CreateEni::default()
        })
        .unwrap();
    let host_ip = host_eni.primary_ip().unwrap();
    let host = cluster.fabric().attach_host("alb", host_ip).unwrap();
    let (first, last) = (&pods[0], &pods[PODS - 1]);
    assert!(reachable(&first.netns, last.ip().unwrap()), "pod to pod");
    let seen = tcp_peer(&host, host_ip, &last.netns).unwrap();
    assert_eq!(
        seen.ip(),
        last.ip().unwrap(),
        "the host sees the pod's own address"
    );
    let seen = tcp_peer(cluster.fabric().internet(), INTERNET_ADDR, &first.netns).unwrap();
    assert_eq!(seen.ip(), cluster.node("a").unwrap().primary_ip());
    // Nothing went to the subnets that are not candidates.
    let view = sim.fabric_view();
    for subnet in [&elsewhere, &opted_out] {
        assert!(
            !view.enis.iter().any(|e| e.subnet_id == subnet.id),
            "an ENI went to {}",
            subnet.id
        );
    }
    drop(squatter);
}
