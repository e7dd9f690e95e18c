//! A hybrid cluster on the two-site fabric (issue 15, acceptance 1 and 2 in part): a
//! VPC-mode node with `ENABLE_HYBRID_OVERLAY` and an overlay node on the on-prem site's LAN,
//! following one peers file or the Kubernetes API. TCP both ways between an on-prem pod and
//! VPC pods on the primary and on a secondary ENI, with each pod's own address seen; the
//! on-prem pod to a VPC host (the documented translation: the on-prem node's address) and
//! to the internet through the site's own NAT; the site link cut and restored, the paths come
//! back with nothing restarted; the on-prem node removed, none of its entries stay on the
//! VPC node. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddrV4;
use std::time::Duration;

use serde_json::json;
use vpc_cni_integration::fabric::{INTERNET_ADDR, SITE_NAT_ADDR};
use vpc_cni_integration::fake_kube::{node_object, FakeKube};
use vpc_cni_integration::hybrid_cluster::{
    attach_site, onprem_ip, onprem_marks, onprem_pod_cidr, overlay_route_cidrs, peers_file_env,
    vpc_pod_ranges, wait_forgotten, write_peers_file, OnpremNode,
};
use vpc_cni_integration::node::ClusterPod;
use vpc_cni_integration::vpc_cluster::{tcp_peer, VpcCluster, VpcPod};
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);
/// t3.medium: 5 pod addresses per ENI, and the primary ENI fills first: the sixth and
/// seventh pods sit on a secondary ENI.
const VPC_PODS: usize = 7;

fn vpc_env(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("ENABLE_HYBRID_OVERLAY", "true".to_string()),
        ("MY_NODE_NAME", "a".to_string()),
    ];
    env.extend(extra.iter().cloned());
    env
}

fn start_vpc(prefix: &str, env: &[(&'static str, String)]) -> VpcCluster {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cluster = VpcCluster::new(prefix, &[("a", "t3.medium")], &env)
        .unwrap_or_else(|e| panic!("starting the VPC node: {e}"));
    attach_site(cluster.fabric(), 1500).unwrap();
    cluster
}

fn vpc_pods(cluster: &VpcCluster) -> Vec<VpcPod> {
    (0..VPC_PODS)
        .map(|i| cluster.pod("a", &format!("vp{i}")))
        .collect()
}

/// A pod on the primary ENI and one on a secondary ENI.
fn on_both_enis<'a>(cluster: &VpcCluster, pods: &'a [VpcPod]) -> [(&'static str, &'a VpcPod); 2] {
    let on_device = |device: u32| {
        pods.iter()
            .find(|p| cluster.device_index_of(p.ip.unwrap()) == Some(device))
            .unwrap_or_else(|| panic!("no pod on ENI {device}\n{}", cluster.all_diagnostics()))
    };
    [
        ("primary ENI", on_device(0)),
        ("secondary ENI", on_device(1)),
    ]
}

/// Both nodes have learnt each other: the on-prem node routes the VPC pods into the overlay,
/// the VPC node the on-prem pods.
fn converge(cluster: &VpcCluster, onprem: &OnpremNode, pods: &[(&str, &VpcPod)]) {
    let vpc_node = cluster.node("a").unwrap();
    wait_for(EVENTUAL, || {
        // Routes are CIDR blocks (a VPC node announces its pool merged): containment, not text.
        let onprem_routes = overlay_route_cidrs(onprem.netns())?;
        let vpc_routes = overlay_route_cidrs(vpc_node.netns())?;
        let routed = |routes: &[Ipv4Cidr], ip| routes.iter().any(|r| r.contains(ip));
        let own: Ipv4Cidr = onprem.pod_cidr.parse().unwrap();
        let pods_routed = pods
            .iter()
            .all(|(_, pod)| routed(&onprem_routes, pod.ip.unwrap()));
        (pods_routed && vpc_routes.contains(&own)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the overlay did not converge\n{}\n{}",
            cluster.all_diagnostics(),
            onprem.diagnostics()
        )
    });
}

/// Every path of the matrix this pair of nodes has.
fn check_paths(
    cluster: &VpcCluster,
    onprem: &OnpremNode,
    onprem_pod: &ClusterPod,
    pods: &[(&str, &VpcPod)],
    host_name: &str,
) {
    let diagnostics = || format!("{}\n{}", cluster.all_diagnostics(), onprem.diagnostics());
    let onprem_ip = onprem_pod.ip.unwrap();
    // From a secondary ENI's pod, replies and connections must go into the overlay, not out
    // of its ENI.
    for (what, pod) in pods {
        let vpc_ip = pod.ip.unwrap();
        let seen = tcp_peer(&pod.netns, vpc_ip, &onprem_pod.netns).unwrap_or_else(|e| {
            panic!(
                "on-prem pod -> VPC pod on the {what}: {e}\n{}",
                diagnostics()
            )
        });
        assert_eq!(seen.ip(), onprem_ip, "on-prem pod -> VPC pod on the {what}");
        let seen = tcp_peer(&onprem_pod.netns, onprem_ip, &pod.netns).unwrap_or_else(|e| {
            panic!(
                "VPC pod on the {what} -> on-prem pod: {e}\n{}",
                diagnostics()
            )
        });
        assert_eq!(seen.ip(), vpc_ip, "VPC pod on the {what} -> on-prem pod");
    }
    // A VPC host cannot route back to on-prem pod CIDRs: it sees the on-prem node's address.
    let (host, host_ip) = cluster.attach_host(host_name).unwrap();
    let seen = tcp_peer(&host, host_ip, &onprem_pod.netns)
        .unwrap_or_else(|e| panic!("on-prem pod -> VPC host: {e}\n{}", diagnostics()));
    assert_eq!(seen.ip(), onprem.underlay_ip);
    // Each side to the internet: through the site's NAT, and through the VPC as today.
    let internet = cluster.fabric().internet();
    let seen = tcp_peer(internet, INTERNET_ADDR, &onprem_pod.netns)
        .unwrap_or_else(|e| panic!("on-prem pod -> internet: {e}\n{}", diagnostics()));
    assert_eq!(seen.ip(), SITE_NAT_ADDR);
    let seen = tcp_peer(internet, INTERNET_ADDR, &pods[0].1.netns)
        .unwrap_or_else(|e| panic!("VPC pod -> internet: {e}\n{}", diagnostics()));
    assert_eq!(seen.ip(), cluster.node("a").unwrap().primary_ip());
}

/// Waits until the VPC node holds nothing of `onprem`: no route, neighbour or FDB entry, no
/// exemption.
fn assert_forgotten(cluster: &VpcCluster, onprem: &OnpremNode) {
    let ns = cluster.node("a").unwrap().netns();
    wait_forgotten(ns, "a", &onprem_marks(onprem), None).unwrap_or_else(|e| panic!("{e}"));
    let table = ns.nft(&["list", "table", "ip", "vpc-cni"]).unwrap();
    assert!(!table.contains(&onprem.pod_cidr), "{table}");
}

#[test]
fn from_a_peers_file_vpc_and_onprem_pods_reach_each_other_with_their_own_addresses() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let peers_file = dir.path().join("peers.json");
    let cluster = start_vpc("hybe", &vpc_env(&peers_file_env(&peers_file)));
    let mut onprem_env = peers_file_env(&peers_file);
    onprem_env.push(("POD_CIDR", onprem_pod_cidr(1)));
    let onprem = OnpremNode::start(cluster.fabric(), 1, &onprem_env).unwrap();
    let pods = vpc_pods(&cluster);
    let tested = on_both_enis(&cluster, &pods);
    let onprem_pod = onprem.pod("op").unwrap();
    let vpc_entry = |ranges: Vec<String>| {
        let primary = cluster.node("a").unwrap().primary_ip();
        json!({ "name": "a", "underlayIP": primary.to_string(), "vpcPodRanges": ranges })
    };
    let onprem_entry = json!({
        "name": onprem.name, "underlayIP": onprem.underlay_ip.to_string(), "podCIDR": onprem.pod_cidr,
    });
    // Written once the pods have their addresses, so the ranges hold theirs.
    let ranges = vpc_pod_ranges(&cluster, "a").unwrap();
    write_peers_file(
        &peers_file,
        &json!([onprem_entry, vpc_entry(ranges.clone())]),
    )
    .unwrap();
    converge(&cluster, &onprem, &tested);
    check_paths(&cluster, &onprem, &onprem_pod, &tested, "alb");

    // The site link goes down and comes back: the paths return with nothing restarted.
    let (_, pod) = tested[1];
    cluster.fabric().set_site_link(false).unwrap();
    assert!(
        tcp_peer(&pod.netns, pod.ip.unwrap(), &onprem_pod.netns).is_err(),
        "the link is cut"
    );
    cluster.fabric().set_site_link(true).unwrap();
    check_paths(
        &cluster,
        &onprem,
        &onprem_pod,
        &tested[1..],
        "alb-after-cut",
    );

    // The on-prem node leaves the file: nothing of it stays on the VPC node.
    write_peers_file(&peers_file, &json!([vpc_entry(ranges)])).unwrap();
    assert_forgotten(&cluster, &onprem);
}

#[test]
fn from_the_kubernetes_api_nodes_learn_each_other_and_forget_a_deleted_node() {
    require_root();
    let (mut cluster, mut instances) = VpcCluster::without_ipamd("hybk", &[("a", "t3.medium")])
        .unwrap_or_else(|e| panic!("building the VPC: {e}"));
    attach_site(cluster.fabric(), 1500).unwrap();
    // The API where both sites reach it, as a managed control plane's public endpoint.
    let kube = FakeKube::start(
        cluster.fabric().internet(),
        SocketAddrV4::new(INTERNET_ADDR, 0),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    let instance = instances.remove(0);
    kube.api()
        .create_node(node_object("a", instance.private_ip, None))
        .unwrap();
    kube.api()
        .create_node(node_object(
            "onprem-1",
            onprem_ip(1),
            Some(&onprem_pod_cidr(1)),
        ))
        .unwrap();
    let kube_env = vec![("KUBECONFIG", kubeconfig.display().to_string())];
    let env = vpc_env(&kube_env);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cluster
        .start_ipamd(instance, &env)
        .unwrap_or_else(|e| panic!("starting the VPC node: {e}"));
    let onprem = OnpremNode::start(cluster.fabric(), 1, &kube_env).unwrap();
    let pods = vpc_pods(&cluster);
    let tested = on_both_enis(&cluster, &pods);
    let onprem_pod = onprem.pod("op").unwrap();
    // The VPC node announces its pool; the on-prem node routes it once it has read it.
    converge(&cluster, &onprem, &tested);
    let announced = kube
        .api()
        .annotation("a", "vpc-cni.io/vpc-pod-ranges")
        .unwrap_or_default();
    assert!(!announced.is_empty(), "the VPC node announced no ranges");
    check_paths(&cluster, &onprem, &onprem_pod, &tested, "alb");

    // The on-prem Node is deleted: nothing of it stays on the VPC node.
    kube.api().delete_node("onprem-1").unwrap();
    assert_forgotten(&cluster, &onprem);
}
