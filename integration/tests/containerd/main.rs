//! Real caller: containerd (Debian's 1.6 with its CRI plugin) runs inside a
//! test node's namespace and calls the real `vpc-cni` plugin, chained with
//! Debian's portmap and tuning, when a CRI client creates pod sandboxes.
//! Needs root (network namespaces, containerd, runc).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checks;
mod cri;
mod daemonset;
mod kubelet_node;
mod kubelet_path;
mod procs;
mod runtime;

use std::collections::BTreeSet;

use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_testkit::{require_root, unique_name};

use checks::{
    assert_ipamd_holds, assert_node_clean, exec_ok, fetch_from_pod, fetch_host_port, host_veths,
};
use cri::{Kubelet, Pod};
use procs::processes_mentioning;
use runtime::{mounts_under, Containerd};

/// The page busybox httpd serves from the test image's /www.
const INDEX_TEXT: &str = "hello from a vpc-cni pod";
const SLEEP: &[&str] = &["sleep", "2147483647"];
const HTTPD: &[&str] = &["httpd", "-f", "-p", "80", "-h", "/www"];

#[test]
fn netlink_cri_two_pods_ping_http_host_port_and_clean_delete() {
    require_root();
    // Declared before containerd so it drops after it: the CRI's DELs on
    // teardown still find ipamd.
    let node = TestNode::start("vcr", NodeOptions::new("10.81.0.0/24")).unwrap();
    let containerd = Containerd::start(&node);
    let kubelet = containerd.kubelet();

    let a = kubelet.run_pod(&unique_name("pod-a-"), None).unwrap();
    let b = kubelet
        .run_pod(&unique_name("pod-b-"), Some(18080))
        .unwrap();
    assert_ne!(a.ip, b.ip);
    for pod in [&a, &b] {
        assert_ipamd_holds(&node, pod);
        assert!(node.netns.ping(pod.ip), "node cannot ping {}", pod.ip);
    }
    assert_eq!(node.ipamd.status().unwrap().assigned_addresses, 2);
    assert_eq!(node.rules_at(512).unwrap().len(), 2);
    assert_eq!(host_veths(&node).len(), 2);

    let in_a = kubelet.start_container(&a, "shell", SLEEP).unwrap();
    let in_b = kubelet.start_container(&b, "web", HTTPD).unwrap();
    exec_ok(&kubelet, &in_a, &["ping", "-c1", "-W2", &b.ip.to_string()]);
    exec_ok(&kubelet, &in_b, &["ping", "-c1", "-W2", &a.ip.to_string()]);

    let page = fetch_from_pod(&kubelet, &in_a, &format!("http://{}/", b.ip));
    assert_eq!(page.trim(), INDEX_TEXT);
    let page = fetch_host_port(&node, 18080);
    assert_eq!(page.trim(), INDEX_TEXT);

    for pod in [&a, &b] {
        kubelet.delete_pod(pod).unwrap();
    }
    assert_node_clean(&node, &[a, b]);
    assert!(kubelet.list_pod_sandboxes().unwrap().is_empty());
    shut_down(containerd, kubelet);
}

/// Pods created at once through the CRI.
const PARALLEL_PODS: usize = 20;

#[test]
fn netlink_cri_twenty_parallel_sandboxes_full_ping_matrix_and_clean_delete() {
    require_root();
    let node = TestNode::start("vcr", NodeOptions::new("10.82.0.0/24")).unwrap();
    let containerd = Containerd::start(&node);
    let kubelet = containerd.kubelet();

    let names: Vec<String> = (0..PARALLEL_PODS)
        .map(|i| unique_name(&format!("par{i}-")))
        .collect();
    let pods: Vec<Pod> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| scope.spawn(|| kubelet.run_pod(name, None)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let ips: BTreeSet<_> = pods.iter().map(|p| p.ip).collect();
    assert_eq!(ips.len(), PARALLEL_PODS, "addresses not distinct: {pods:?}");
    for pod in &pods {
        assert_ipamd_holds(&node, pod);
    }
    let status = node.ipamd.status().unwrap();
    assert_eq!(status.assigned_addresses as usize, PARALLEL_PODS);
    assert_eq!(node.rules_at(512).unwrap().len(), PARALLEL_PODS);

    let containers: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .map(|pod| scope.spawn(|| kubelet.start_container(pod, "shell", SLEEP)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });

    // Full matrix: one exec per pod pings every other pod in a shell loop,
    // printing the ones that did not answer.
    let unreachable: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .zip(&containers)
            .map(|(pod, container)| {
                let others: Vec<String> = pods
                    .iter()
                    .filter(|p| p.ip != pod.ip)
                    .map(|p| p.ip.to_string())
                    .collect();
                let script = format!(
                    "for ip in {}; do ping -c1 -W2 -q $ip >/dev/null 2>&1 || echo $ip; done",
                    others.join(" ")
                );
                let kubelet = &kubelet;
                scope.spawn(move || {
                    let out = kubelet
                        .exec(container, &["sh", "-c", &script], 120)
                        .unwrap();
                    assert!(out.success(), "ping loop in {}: {out:?}", pod.name);
                    out.stdout
                        .split_whitespace()
                        .map(|ip| format!("{} -> {ip}", pod.ip))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(unreachable, Vec::<String>::new(), "pairs without a reply");

    std::thread::scope(|scope| {
        for pod in &pods {
            let kubelet = &kubelet;
            scope.spawn(move || kubelet.delete_pod(pod).unwrap());
        }
    });
    assert_node_clean(&node, &pods);
    assert!(kubelet.list_pod_sandboxes().unwrap().is_empty());
    shut_down(containerd, kubelet);
}

/// Stops containerd and checks its guard left no mount, process or file.
fn shut_down(containerd: Containerd, kubelet: Kubelet) {
    let dir = containerd.dir().to_path_buf();
    drop(kubelet);
    drop(containerd);
    assert_eq!(mounts_under(&dir), Vec::<std::path::PathBuf>::new());
    assert_eq!(processes_mentioning(&dir), Vec::new());
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
