//! Prefix delegation end to end on the fabric (issue 5, acceptance 6): two
//! Nitro nodes with ENABLE_PREFIX_DELEGATION=true and WARM_PREFIX_TARGET=1;
//! every pod's address lies in a /28 prefix the model assigned to one of its
//! node's ENIs, and pods on the two nodes reach each other. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use vpc_cni_integration::vpc_cluster::{reachable, VpcCluster, VpcPod};
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::require_root;

/// One more than a /28 holds, so node a's pods span two prefixes and the
/// second one (delegated while pods were being added) is exercised too.
const PODS_ON_A: usize = 17;
const PODS_ON_B: usize = 2;

fn ip(pod: &VpcPod) -> Ipv4Addr {
    pod.ip().unwrap()
}

/// The /28 prefix of an ENI attached to `instance_id` that holds `ip`;
/// panics (with the model's ENIs) when the address is anything else.
fn prefix_of(cluster: &VpcCluster, instance_id: &str, pod: &VpcPod) -> Ipv4Cidr {
    let addr = ip(pod);
    let eni = cluster.eni_of(addr).unwrap_or_else(|| {
        panic!(
            "{} ({addr}) is on no attached ENI of the model\n{}",
            pod.name,
            cluster.all_diagnostics()
        )
    });
    let owner = eni.attachment.as_ref().map(|a| a.instance_id.as_str());
    assert_eq!(
        owner,
        Some(instance_id),
        "{} ({addr}) is on ENI {} of another instance",
        pod.name,
        eni.id
    );
    assert!(
        !eni.private_ips.iter().any(|p| p.address == addr),
        "{} ({addr}) is a secondary address of {}, not inside a prefix; prefixes {:?}",
        pod.name,
        eni.id,
        eni.prefixes
    );
    let prefix = eni
        .prefixes
        .iter()
        .map(|p| p.parse::<Ipv4Cidr>().unwrap())
        .find(|net| net.contains(addr))
        .unwrap_or_else(|| {
            panic!(
                "{} ({addr}) lies in none of {}'s prefixes {:?}",
                pod.name, eni.id, eni.prefixes
            )
        });
    assert_eq!(
        prefix.prefix_len, 28,
        "{} ({addr}) is in {prefix:?}",
        pod.name
    );
    prefix
}

fn assert_reaches(cluster: &VpcCluster, from: &VpcPod, to: &VpcPod) {
    assert!(
        reachable(&from.netns, ip(to)),
        "{} ({}) on {} gets no answer from {} ({}) on {}\n{}",
        from.name,
        ip(from),
        from.node,
        to.name,
        ip(to),
        to.node,
        cluster.all_diagnostics()
    );
}

#[test]
fn prefix_delegation_pods_get_prefix_addresses_and_talk_across_nodes() {
    require_root();
    let cluster = VpcCluster::new(
        "vpfx",
        &[("a", "m5.large"), ("b", "t3.medium")],
        &[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_PREFIX_TARGET", "1"),
        ],
    )
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

    let mut a_prefixes: Vec<Ipv4Cidr> = a_pods
        .iter()
        .map(|p| prefix_of(&cluster, &a.instance.id, p))
        .collect();
    let b_prefixes: Vec<Ipv4Cidr> = b_pods
        .iter()
        .map(|p| prefix_of(&cluster, &b.instance.id, p))
        .collect();
    for pod in a_pods.iter().chain(&b_pods) {
        eprintln!("{} on {}: {}", pod.name, pod.node, ip(pod));
    }
    a_prefixes.sort_unstable();
    a_prefixes.dedup();
    assert!(
        a_prefixes.len() >= 2,
        "{PODS_ON_A} pods on a fit in one /28: {a_prefixes:?}"
    );

    let (a1, a_last) = (&a_pods[0], &a_pods[PODS_ON_A - 1]);
    let b1 = &b_pods[0];
    assert!(
        b_prefixes[0].contains(ip(b1)),
        "b's pod left its prefix between checks"
    );

    // Across nodes, both ways, from pods in the first and the last prefix.
    assert_reaches(&cluster, a1, b1);
    assert_reaches(&cluster, b1, a1);
    assert_reaches(&cluster, a_last, b1);
    assert_reaches(&cluster, b1, a_last);
    // On one node, between prefixes.
    assert_reaches(&cluster, a1, a_last);
    // Each node reaches its own prefix pods.
    for pod in [a1, a_last] {
        assert!(
            reachable(a.netns(), ip(pod)),
            "node a gets no answer from {} ({})\n{}",
            pod.name,
            ip(pod),
            cluster.all_diagnostics()
        );
    }
    assert!(
        reachable(b.netns(), ip(b1)),
        "node b gets no answer from {} ({})\n{}",
        b1.name,
        ip(b1),
        cluster.all_diagnostics()
    );
}
