//! Overlay mode end to end (issue 6, acceptance 1): three node namespaces on
//! a plain L2 underlay with no IMDS, each running the real ipamd with
//! VPC_CNI_MODE=auto and its peers from a peers file; two pods per node ADDed
//! through the real plugin. ipamd must choose overlay on its own, every pod
//! must reach every other, pods get the underlay MTU minus VXLAN's 50 bytes
//! and a DF ping filling it exactly crosses nodes; traffic leaving the
//! cluster CIDR is SNATed to the node, pod to pod is not. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use vpc_cni_integration::overlay_cluster::{OverlayCluster, OverlayPod, OUTSIDE_IP};
use vpc_cni_integration::vpc_cluster::{reachable, tcp_peer};
use vpc_cni_proto::Mode;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

const UNDERLAY_MTU: u32 = 1500;
const POD_MTU: u32 = UNDERLAY_MTU - 50;
/// ICMP payload that fills the pod MTU: 20 bytes of IPv4 and 8 of ICMP header.
const FULL_PAYLOAD: u32 = POD_MTU - 28;
/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

fn ip(pod: &OverlayPod) -> Ipv4Addr {
    pod.ip().unwrap()
}

/// One ping with DF set and `size` bytes of payload; whether it was answered,
/// and ping's output.
fn df_ping(from: &Netns, target: Ipv4Addr, size: u32) -> (bool, String) {
    let out = from
        .command("ping")
        .args(["-n", "-c", "1", "-W", "2", "-M", "do", "-s"])
        .arg(size.to_string())
        .arg(target.to_string())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `mtu` of a link, from `ip -o link show`.
fn link_mtu(ns: &Netns, dev: &str) -> Option<u32> {
    let text = ns.try_ip(&["-o", "link", "show", "dev", dev]).ok()?;
    let tokens: Vec<&str> = text.split_whitespace().collect();
    tokens
        .windows(2)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse().ok())
}

#[test]
fn overlay_nodes_choose_overlay_and_pods_talk_across_them() {
    require_root();
    let cluster = OverlayCluster::new("ove", 3, UNDERLAY_MTU)
        .unwrap_or_else(|e| panic!("starting the overlay cluster: {e}"));

    // ipamd chose overlay by itself: STATUS says so, and so does its log.
    for node in cluster.nodes() {
        let status = node.ipamd.status().unwrap();
        assert_eq!(
            status.mode(),
            Mode::Overlay,
            "{} reports mode {:?}\n{}",
            node.name,
            status.mode(),
            cluster.diagnostics(&node.name)
        );
        let log = node.ipamd.log_text();
        let chosen = log.lines().find(|l| l.contains("mode chosen"));
        assert!(
            chosen.is_some_and(|l| l.contains("overlay") && l.contains("Auto")),
            "{}: no 'mode chosen' log line with mode overlay under setting auto: {chosen:?}\n{log}",
            node.name
        );
    }

    let pods: Vec<OverlayPod> = NODES
        .iter()
        .flat_map(|node| [(node, "a"), (node, "b")])
        .map(|(node, tag)| cluster.pod(node, &format!("{}{tag}", &node[5..])))
        .collect();
    let mut addresses: Vec<Ipv4Addr> = pods.iter().map(ip).collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses.len(), pods.len(), "two pods share an address");
    for pod in &pods {
        let node = cluster.node(&pod.node).unwrap();
        let cidr: vpc_cni_proto::net::Ipv4Cidr = node.pod_cidr.parse().unwrap();
        assert!(
            cidr.contains(ip(pod)) && ip(pod) != cidr.network,
            "{} on {} got {}, outside its pod CIDR {} or its network address",
            pod.name,
            pod.node,
            ip(pod),
            node.pod_cidr
        );
        eprintln!("{} on {}: {}", pod.name, pod.node, ip(pod));
    }

    // The VXLAN device: VNI 1, port 8472, the VTEP MAC derived from the
    // node's underlay address, MTU underlay - 50, the pod CIDR's .0 on it.
    for node in cluster.nodes() {
        let snapshot = node.snapshot().unwrap();
        let device = snapshot.device.clone().unwrap_or_else(|| {
            panic!(
                "{} has no vxlan.vpc\n{}",
                node.name,
                cluster.diagnostics(&node.name)
            )
        });
        let network = node.pod_cidr.split('/').next().unwrap();
        let ok = device.vni == Some(1)
            && device.port == Some(8472)
            && device.mtu == Some(POD_MTU)
            && device.mac.as_deref() == Some(node.vtep_mac().as_str())
            && device.local == Some(node.underlay_ip.to_string())
            && !device.learning
            && device.addresses == vec![format!("{network}/32")];
        assert!(
            ok,
            "{}: unexpected device {device}\n{}",
            node.name,
            cluster.diagnostics(&node.name)
        );
    }

    // Every pod reaches every other, on its node and across nodes. The peers
    // file was complete before any ipamd started, but programming it is
    // asynchronous: wait for the first cross-node answer, then demand all.
    let (first, last) = (&pods[0], &pods[pods.len() - 1]);
    wait_for(EVENTUAL, || reachable(&first.netns, ip(last)).then_some(())).unwrap_or_else(|| {
        panic!(
            "{} never reached {} on {}\n{}",
            first.name,
            last.name,
            last.node,
            cluster.all_diagnostics()
        )
    });
    let mut failures = Vec::new();
    for from in &pods {
        for to in pods.iter().filter(|p| p.name != from.name) {
            if !reachable(&from.netns, ip(to)) {
                failures.push(format!(
                    "{} ({}, {}) -> {} ({}, {})",
                    from.name,
                    ip(from),
                    from.node,
                    to.name,
                    ip(to),
                    to.node
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "pods that got no answer: {failures:#?}\n{}",
        cluster.all_diagnostics()
    );

    // Pod MTU: on eth0 in the pod and in the 1.1.0 result's interface.
    for pod in &pods {
        assert_eq!(
            link_mtu(&pod.netns, "eth0"),
            Some(POD_MTU),
            "{}'s eth0 MTU",
            pod.name
        );
        let interfaces = pod.result["interfaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let eth0 = interfaces
            .iter()
            .find(|i| i["sandbox"].as_str().is_some_and(|s| !s.is_empty()))
            .unwrap_or_else(|| panic!("{}: no sandbox interface in {}", pod.name, pod.result));
        assert_eq!(
            eth0["mtu"].as_u64(),
            Some(u64::from(POD_MTU)),
            "{}: MTU in the ADD result {}",
            pod.name,
            pod.result
        );
    }

    // DF pings across nodes: the full pod MTU passes, one byte more does not.
    for (from, to) in [
        (&pods[0], &pods[2]),
        (&pods[3], &pods[5]),
        (&pods[4], &pods[1]),
    ] {
        let mut last = String::new();
        let passed = (0..3).any(|_| {
            let (ok, out) = df_ping(&from.netns, ip(to), FULL_PAYLOAD);
            last = out;
            ok
        });
        assert!(
            passed,
            "DF ping of {FULL_PAYLOAD} bytes (fills MTU {POD_MTU}) from {} to {} failed:\n{last}\n{}",
            from.name,
            to.name,
            cluster.all_diagnostics()
        );
        let (passed, out) = df_ping(&from.netns, ip(to), FULL_PAYLOAD + 1);
        assert!(
            !passed,
            "DF ping of {} bytes from {} to {} passed: the pod MTU is not the limit\n{out}",
            FULL_PAYLOAD + 1,
            from.name,
            to.name
        );
    }

    // Leaving CLUSTER_CIDR, pods appear as their node's underlay address (the
    // outside host has no route back to a pod address).
    for node in cluster.nodes() {
        let pod = pods.iter().find(|p| p.node == node.name).unwrap();
        let peer = tcp_peer(cluster.outside(), OUTSIDE_IP, &pod.netns).unwrap_or_else(|e| {
            panic!(
                "{} ({}) to the outside host: {e}\n{}",
                pod.name,
                ip(pod),
                cluster.diagnostics(&node.name)
            )
        });
        assert_eq!(
            peer.ip(),
            IpAddr::V4(node.underlay_ip),
            "the outside host saw {} from another address than {}'s underlay address",
            pod.name,
            node.name
        );
    }

    // Inside CLUSTER_CIDR no SNAT: a pod sees the other pod's own address.
    for (client, server) in [(&pods[0], &pods[3]), (&pods[5], &pods[1])] {
        let peer = tcp_peer(&server.netns, ip(server), &client.netns).unwrap_or_else(|e| {
            panic!(
                "{} to {} over TCP: {e}\n{}",
                client.name,
                server.name,
                cluster.all_diagnostics()
            )
        });
        assert_eq!(
            peer.ip(),
            IpAddr::V4(ip(client)),
            "{} saw {}'s connection from another address",
            server.name,
            client.name
        );
    }
}
