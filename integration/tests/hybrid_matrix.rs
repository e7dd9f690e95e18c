//! One hybrid cluster with every kind of path (issue 15, acceptance 1): two VPC-mode nodes
//! (one on secondary IPs with a pod on a secondary ENI, one on /28 prefixes) and two on-prem
//! nodes behind a site link of MTU 1400, every ipamd on `VPC_CNI_MODE=auto` and following
//! the Kubernetes API. Each node picks its own mode; the whole matrix passes over TCP with
//! the expected source seen at every listener (the pod's own address between pods); bulk
//! transfers cross the small link both ways without a fragment made on the way; a VPC node
//! leaving takes exactly its entries off the on-prem nodes. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use vpc_cni_integration::hybrid_cluster::{
    check_matrix, HybridCluster, HybridPod, HybridSpec, NodeKind, VpcNodeSpec,
};
use vpc_cni_integration::vpc_cluster::tcp_transfer;
use vpc_cni_proto::Mode;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);

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
    // Routes name a VPC node as their next hop, neighbours by address, FDB entries by dst.
    let marks = |node: &str| {
        let ip = vpc.node(node).unwrap().primary_ip();
        [
            format!(" via {ip} "),
            format!("{ip} lladdr"),
            format!(" dst {ip} "),
        ]
    };
    let (a_marks, b_marks) = (marks("a"), marks("b"));
    cluster.kube().api().delete_node("b").unwrap();
    for node in cluster.onprem() {
        let ns = node.netns();
        let entries = || {
            let routes = ns.try_ip(&["route", "show", "dev", "vxlan.vpc"]).ok()?;
            let neighbours = ns.try_ip(&["neigh", "show", "dev", "vxlan.vpc"]).ok()?;
            let fdb = ns.exec_ok(&["bridge", "fdb", "show", "dev", "vxlan.vpc"]);
            Some((routes, neighbours, fdb))
        };
        let (routes, neighbours, fdb) = wait_for(EVENTUAL, || {
            entries().filter(|(routes, _, _)| !routes.contains(&b_marks[0]))
        })
        .unwrap_or_else(|| panic!("{} kept b's routes: {:?}", node.name, entries()));
        let kinds = [
            ("routes", &routes),
            ("neighbour", &neighbours),
            ("FDB entry", &fdb),
        ];
        for (i, (what, text)) in kinds.iter().enumerate() {
            assert!(
                !text.contains(&b_marks[i]),
                "{}: b's {what} stayed: {text}",
                node.name
            );
            assert!(
                text.contains(&a_marks[i]),
                "{}: a's {what} went: {text}",
                node.name
            );
        }
    }
}

/// A counter of the IP layer (`Ip:` in /proc/net/snmp) as `netns` sees it.
fn ip_counter(netns: &vpc_cni_testkit::netns::Netns, name: &str) -> u64 {
    let text = netns.exec_ok(&["cat", "/proc/net/snmp"]);
    let mut ip_lines = text.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip_lines.next().unwrap(), ip_lines.next().unwrap());
    let at = names.split_whitespace().position(|n| n == name).unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}
