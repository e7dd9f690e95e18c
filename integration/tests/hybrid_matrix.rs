//! One hybrid cluster with every kind of path (issue 15, acceptance 1): two VPC-mode nodes
//! (one on secondary IPs with a pod on a secondary ENI, one on /28 prefixes) and two on-prem
//! nodes behind a site link of MTU 1400, every ipamd on `VPC_CNI_MODE=auto` and following
//! the Kubernetes API. Each node picks its own mode; the whole matrix passes over TCP with
//! the expected source seen at every listener (the pod's own address between pods); bulk
//! transfers cross the small link both ways without a fragment made on the way; a VPC node
//! leaving takes exactly its entries off the on-prem nodes, an on-prem node leaving exactly
//! its entries off the VPC and on-prem nodes. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vpc_cni_integration::hybrid_cluster::{
    check_matrix, onprem_marks, vpc_marks, wait_forgotten, HybridCluster, HybridPod, HybridSpec,
    NodeKind, VpcNodeSpec,
};
use vpc_cni_integration::vpc_cluster::tcp_transfer;
use vpc_cni_proto::Mode;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::require_root;

/// Below the LAN's 1500: what a VPN leaves after its own headers.
const LINK_MTU: u32 = 1400;
/// Enough full-size segments to fill windows and meet any MTU problem many times.
const BULK_BYTES: u64 = 4 * 1024 * 1024;

/// t3.medium: 5 pod addresses per ENI, the primary fills first: the sixth pod on `a` sits on
/// a secondary ENI.
const PODS: &[(&str, &str)] = &[
    ("a", "a1"),
    ("a", "a2"),
    ("a", "a3"),
    ("a", "a4"),
    ("a", "a5"),
    ("a", "a6"),
    ("b", "b1"),
    ("onprem-1", "o1"),
    ("onprem-1", "o2"),
    ("onprem-2", "o3"),
];

fn start(prefix: &str) -> HybridCluster {
    let spec = HybridSpec {
        vpc_nodes: &[
            VpcNodeSpec {
                name: "a",
                instance_type: "t3.medium",
                env: &[],
            },
            VpcNodeSpec {
                name: "b",
                instance_type: "t3.medium",
                env: &[
                    ("ENABLE_PREFIX_DELEGATION", "true"),
                    ("WARM_PREFIX_TARGET", "1"),
                ],
            },
        ],
        onprem_nodes: 2,
        link_mtu: LINK_MTU,
        onprem_env: &[],
    };
    HybridCluster::start(prefix, &spec).unwrap_or_else(|e| panic!("starting the cluster: {e}"))
}

fn find<'a>(pods: &'a [HybridPod], name: &str) -> &'a HybridPod {
    pods.iter().find(|p| p.name == name).unwrap()
}

#[test]
fn vpc_and_onprem_nodes_in_one_cluster_pass_the_whole_matrix() {
    require_root();
    let cluster = start("hybm");
    for node in cluster.vpc().nodes() {
        let mode = node.ipamd.status().unwrap().mode();
        assert_eq!(mode, Mode::Vpc, "auto on VPC node {}", node.name);
    }
    for node in cluster.onprem() {
        let mode = node.ipamd.status().unwrap().mode();
        assert_eq!(mode, Mode::Overlay, "auto on on-prem node {}", node.name);
    }
    let pods: Vec<HybridPod> = PODS
        .iter()
        .map(|(node, name)| {
            cluster
                .pod(node, name)
                .unwrap_or_else(|e| panic!("{e}\n{}", cluster.diagnostics()))
        })
        .collect();
    let vpc = cluster.vpc();
    let a6 = find(&pods, "a6");
    assert_eq!(
        vpc.device_index_of(a6.ip.unwrap()),
        Some(1),
        "a6 should sit on a secondary ENI\n{}",
        vpc.all_diagnostics()
    );
    let b1 = find(&pods, "b1");
    let b_prefixes = vpc.eni_of(b1.ip.unwrap()).unwrap().prefixes;
    assert!(!b_prefixes.is_empty(), "b should run on prefixes");
    cluster
        .converge(&pods)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.diagnostics()));
    assert!(
        !cluster.announced_ranges("b").is_empty(),
        "b announced nothing"
    );

    let (host, host_ip) = vpc.attach_host("alb").unwrap();
    let matrix = check_matrix(&cluster, &pods, &host, host_ip).unwrap();
    let failures = matrix.failures();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        cluster.diagnostics()
    );
    let (ok, paths) = matrix.counts();
    assert_eq!(ok, paths);
    // Every pod to every other pod, each pod to the host and the internet, the host to the
    // VPC pods.
    let vpc_pods = pods.iter().filter(|p| p.kind == NodeKind::Vpc).count();
    assert_eq!(
        paths,
        pods.len() * (pods.len() - 1) + 2 * pods.len() + vpc_pods
    );

    // Full-size segments across the 1400-byte link, both ways, between an on-prem pod and a
    // pod on a secondary ENI and one on a prefix; and between the two on-prem nodes. The VPC
    // nodes announce their device MTU (path - 50), the on-prem nodes hold their routes to it,
    // so the pods size their packets for the link and the site's router never fragments.
    let router = vpc.fabric().site_router().unwrap();
    let fragmented_before = ip_counter(&router, "FragCreates");
    let o1 = find(&pods, "o1");
    let o3 = find(&pods, "o3");
    for (from, to) in [(o1, a6), (a6, o1), (o3, b1), (b1, o3), (o1, o3)] {
        tcp_transfer(&from.netns, &to.netns, to.ip.unwrap(), BULK_BYTES).unwrap_or_else(|e| {
            panic!(
                "{} -> {}: {e}\n{}",
                from.name,
                to.name,
                cluster.diagnostics()
            )
        });
    }
    assert_eq!(
        ip_counter(&router, "FragCreates"),
        fragmented_before,
        "the site's router fragmented packets crossing the link"
    );

    // VPC node b leaves the cluster (its Node deleted): every on-prem node drops exactly its
    // routes, neighbour and FDB entry; a's stay.
    let (a_ip, b_ip) = (vpc_ip(&cluster, "a"), vpc_ip(&cluster, "b"));
    cluster.kube().api().delete_node("b").unwrap();
    for node in cluster.onprem() {
        let (gone, kept) = (vpc_marks(b_ip), vpc_marks(a_ip));
        assert_forgets(node.netns(), &node.name, &gone, &kept);
    }
    // On-prem node 2 leaves: a (VPC) and onprem-1 drop exactly its entries, and a its
    // exemption from SNAT.
    let (one, two) = (&cluster.onprem()[0], &cluster.onprem()[1]);
    cluster.kube().api().delete_node(&two.name).unwrap();
    let a = vpc.node("a").unwrap();
    let (gone, kept) = (onprem_marks(two), onprem_marks(one));
    assert_forgets(a.netns(), "a", &gone, &kept);
    let table = a.netns().nft(&["list", "table", "ip", "vpc-cni"]).unwrap();
    assert!(
        !table.contains(&two.pod_cidr) && table.contains(&one.pod_cidr),
        "{table}"
    );
    assert_forgets(one.netns(), &one.name, &gone, &vpc_marks(a_ip));
}

fn vpc_ip(cluster: &HybridCluster, name: &str) -> std::net::Ipv4Addr {
    cluster.vpc().node(name).unwrap().primary_ip()
}

fn assert_forgets(ns: &Netns, name: &str, gone: &[String; 3], kept: &[String; 3]) {
    wait_forgotten(ns, name, gone, Some(kept)).unwrap_or_else(|e| panic!("{e}"));
}

/// A counter of the IP layer (`Ip:` in /proc/net/snmp) as `netns` sees it.
fn ip_counter(netns: &vpc_cni_testkit::netns::Netns, name: &str) -> u64 {
    let text = netns.exec_ok(&["cat", "/proc/net/snmp"]);
    let mut ip_lines = text.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip_lines.next().unwrap(), ip_lines.next().unwrap());
    let at = names.split_whitespace().position(|n| n == name).unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}
