//! VPC mode end to end on the fabric (issue 5, acceptance 2): two t3.medium
//! nodes running the real ipamd against vpc-sim's IMDS and EC2 API, pods
//! ADDed through the real plugin, enough of them that some sit on a
//! secondary ENI; then the traffic a VPC must carry. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use vpc_cni_integration::fabric::INTERNET_ADDR;
use vpc_cni_integration::vpc_cluster::{reachable, tcp_peer, VpcCluster, VpcPod};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::require_root;

/// t3.medium: 3 ENIs x 6 IPv4, so 5 pod addresses per ENI. With the
/// default WARM_ENI_TARGET=1 the primary ENI fills first; pods 6 and 7 go
/// to a secondary ENI.
const PODS_ON_A: usize = 7;
const PODS_ON_B: usize = 2;

fn ip(pod: &VpcPod) -> Ipv4Addr {
    pod.ip().unwrap()
}

/// Asserts a ping from `from` to `pod` gets an answer, with everything
/// worth seeing when it does not.
fn assert_reaches(cluster: &VpcCluster, what: &str, from: &Netns, pod: &VpcPod) {
    assert!(
        reachable(from, ip(pod)),
        "{what}: no answer from {} ({}) on {}\n{}",
        pod.name,
        ip(pod),
        pod.node,
        cluster.all_diagnostics()
    );
}

#[test]
fn vpc_mode_pods_talk_across_enis_nodes_alb_and_internet() {
    require_root();
    let cluster = VpcCluster::new("ve2e", &[("a", "t3.medium"), ("b", "t3.medium")], &[])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let a_pods: Vec<VpcPod> = (0..PODS_ON_A)
        .map(|i| cluster.pod("a", &format!("a{i}")))
        .collect();
    let b_pods: Vec<VpcPod> = (0..PODS_ON_B)
        .map(|i| cluster.pod("b", &format!("b{i}")))
        .collect();
    let a = cluster.node("a").unwrap();
    let b = cluster.node("b").unwrap();

    let mut addresses: Vec<Ipv4Addr> = a_pods.iter().chain(&b_pods).map(ip).collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(
        addresses.len(),
        PODS_ON_A + PODS_ON_B,
        "two pods share an address"
    );

    let device = |pod: &VpcPod| {
        cluster.device_index_of(ip(pod)).unwrap_or_else(|| {
            panic!(
                "{} ({}) is on no attached ENI of the model\n{}",
                pod.name,
                ip(pod),
                cluster.all_diagnostics()
            )
        })
    };
    for pod in &a_pods {
        let eni = cluster.eni_of(ip(pod)).unwrap();
        let owner = eni.attachment.as_ref().map(|at| at.instance_id.as_str());
        assert_eq!(
            owner,
            Some(a.instance.id.as_str()),
            "{} got an address of another instance's ENI {}",
            pod.name,
            eni.id
        );
    }
    let primary: Vec<&VpcPod> = a_pods.iter().filter(|p| device(p) == 0).collect();
    let secondary: Vec<&VpcPod> = a_pods.iter().filter(|p| device(p) > 0).collect();
    assert!(
        primary.len() >= 2 && !secondary.is_empty(),
        "expected pods on node a on both the primary ENI (>= 2) and a secondary one; \
         primary {:?}, secondary {:?}\n{}",
        primary.iter().map(|p| ip(p)).collect::<Vec<_>>(),
        secondary.iter().map(|p| ip(p)).collect::<Vec<_>>(),
        cluster.all_diagnostics()
    );
    for pod in a_pods.iter().chain(&b_pods) {
        eprintln!(
            "{} on {}: {} (eth{})",
            pod.name,
            pod.node,
            ip(pod),
            device(pod)
        );
    }
    let (p1, p2, s1) = (primary[0], primary[1], secondary[0]);
    let b1 = &b_pods[0];

    // Pod to pod on one node: within the primary ENI and across its ENIs.
    assert_reaches(&cluster, "primary-ENI pod to pod on a", &p1.netns, p2);
    assert_reaches(&cluster, "primary to secondary-ENI pod on a", &p1.netns, s1);
    assert_reaches(&cluster, "secondary to primary-ENI pod on a", &s1.netns, p1);

    // Across nodes.
    assert_reaches(&cluster, "pod on a to pod on b", &p1.netns, b1);
    assert_reaches(&cluster, "pod on b to pod on a", &b1.netns, p1);

    // From a secondary ENI: its packets must leave by that ENI (rule 1536
    // and its table) or the fabric's source/dest check drops them.
    assert_reaches(
        &cluster,
        "secondary-ENI pod on a to pod on b",
        &s1.netns,
        b1,
    );
    assert_reaches(
        &cluster,
        "pod on b to secondary-ENI pod on a",
        &b1.netns,
        s1,
    );

    // An ALB in the VPC reaches pods directly and pods see its address.
    let (alb, alb_ip) = cluster.attach_host("alb").unwrap();
    for pod in [p1, s1] {
        let peer = tcp_peer(&pod.netns, ip(pod), &alb).unwrap_or_else(|e| {
            panic!(
                "ALB to {} ({}): {e}\n{}",
                pod.name,
                ip(pod),
                cluster.all_diagnostics()
            )
        });
        assert_eq!(
            peer.ip(),
            IpAddr::V4(alb_ip),
            "{} saw the ALB's connection from another address",
            pod.name
        );
    }

    // To the internet, pods on either ENI appear as the node's primary
    // address (the fabric drops any other VPC source on the way out).
    for pod in [p1, s1] {
        let peer =
            tcp_peer(cluster.fabric().internet(), INTERNET_ADDR, &pod.netns).unwrap_or_else(|e| {
                panic!(
                    "{} ({}) to the internet: {e}\n{}",
                    pod.name,
                    ip(pod),
                    cluster.all_diagnostics()
                )
            });
        assert_eq!(
            peer.ip(),
            IpAddr::V4(a.primary_ip()),
            "the internet saw {} as another address than node a's primary",
            pod.name
        );
    }

    // Each node reaches its own pods.
    for pod in &a_pods {
        assert_reaches(&cluster, "node a to its pod", a.netns(), pod);
    }
    for pod in &b_pods {
        assert_reaches(&cluster, "node b to its pod", b.netns(), pod);
    }
}
