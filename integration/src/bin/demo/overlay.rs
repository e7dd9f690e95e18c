//! The demo's on-prem part: three nodes on a plain L2 underlay with no IMDS,
//! ipamd in `auto` mode on each (it picks overlay by itself), peers from a
//! peers file, two pods per node; then the nodes, a connectivity matrix among
//! the pods and each pod's connection to a host outside the cluster, seen
//! from the node's underlay address (SNAT).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::Context;
use vpc_cni_integration::overlay_cluster::{OverlayCluster, OverlayPod, OUTSIDE_IP};
use vpc_cni_integration::vpc_cluster::{reachable, tcp_peer};
use vpc_cni_proto::Mode;
use vpc_cni_testkit::process::wait_for;

const UNDERLAY_MTU: u32 = 1500;
/// (node, pod) pairs: two pods on each of the three nodes.
const PODS: &[(&str, &str)] = &[
    ("node-1", "app-1"),
    ("node-1", "app-2"),
    ("node-2", "app-3"),
    ("node-2", "app-4"),
    ("node-3", "app-5"),
    ("node-3", "app-6"),
];
/// A bound on the overlay's first cross-node answer (peers are programmed
/// asynchronously after start); not a measurement.
const CONVERGE_LIMIT: Duration = Duration::from_secs(30);

/// Runs the on-prem part; returns (checks passed, checks made).
pub fn run() -> anyhow::Result<(usize, usize)> {
    println!(
        "\non-prem: three nodes on a plain L2 underlay 172.20.0.0/24 (MTU {UNDERLAY_MTU}), \
         no IMDS, VPC_CNI_MODE=auto, peers from a peers file"
    );
    let cluster = OverlayCluster::new("demo", 3, UNDERLAY_MTU)
        .context("starting the on-prem nodes and their ipamd")?;
    let pods = PODS
        .iter()
        .map(|(node, name)| cluster.try_pod(node, name))
        .collect::<std::io::Result<Vec<_>>>()?;
    print_nodes(&cluster, &pods)?;

    let (first, last) = (&pods[0], &pods[pods.len() - 1]);
    let (from, to) = (&first.netns, last.ip()?);
    if wait_for(CONVERGE_LIMIT, || reachable(from, to).then_some(())).is_none() {
        println!(
            "(the overlay did not carry {} -> {} within {CONVERGE_LIMIT:?})",
            first.name, last.name
        );
    }
    let counts = matrix(&cluster, &pods)?;
    drop(pods);
    Ok(counts)
}

/// Each node: underlay address, pod CIDR, the mode ipamd reports, the VXLAN
/// device as the kernel holds it, and its pods.
fn print_nodes(cluster: &OverlayCluster, pods: &[OverlayPod]) -> anyhow::Result<()> {
    println!(
        "{:<7} {:<12} {:<14} {:<8} {:<24} pods",
        "node", "underlay", "pod CIDR", "mode", "vxlan.vpc"
    );
    for node in cluster.nodes() {
        let mode = match node.ipamd.status() {
            Ok(status) if status.mode() == Mode::Overlay => "overlay".to_string(),
            Ok(status) => format!("{:?}", status.mode()),
            Err(e) => format!("? ({e})"),
        };
        let device = node.snapshot()?.device.map_or_else(
            || "(missing)".to_string(),
            |d| {
                let show = |v: Option<String>| v.unwrap_or_else(|| "?".into());
                format!(
                    "vni {} port {} mtu {}",
                    show(d.vni.map(|v| v.to_string())),
                    show(d.port.map(|v| v.to_string())),
                    show(d.mtu.map(|v| v.to_string()))
                )
            },
        );
        let on: Vec<String> = pods
            .iter()
            .filter(|p| p.node == node.name)
            .map(|p| {
                format!(
                    "{} {}",
                    p.name,
                    p.ip.map_or("-".into(), |ip| ip.to_string())
                )
            })
            .collect();
        println!(
            "{:<7} {:<12} {:<14} {:<8} {:<24} {}",
            node.name,
            node.underlay_ip.to_string(),
            node.pod_cidr,
            mode,
            device,
            on.join(", ")
        );
    }
    println!("outside: host at {OUTSIDE_IP} beyond the nodes, with no route to any pod CIDR\n");
    Ok(())
}

/// Pings among all pods, and a TCP connection from each pod to the outside
/// host, which counts as ok when the host saw it from the pod's node (SNAT:
/// it could not answer a pod address).
fn matrix(cluster: &OverlayCluster, pods: &[OverlayPod]) -> anyhow::Result<(usize, usize)> {
    let mut targets: Vec<(String, Ipv4Addr)> = Vec::new();
    for pod in pods {
        targets.push((pod.name.clone(), pod.ip()?));
    }
    print!("{:<8}", "from\\to");
    for (name, _) in &targets {
        print!(" {name:<6}");
    }
    println!(" outside (seen as)");
    let (mut ok, mut total) = (0, 0);
    for pod in pods {
        print!("{:<8}", pod.name);
        for (name, ip) in &targets {
            if *name == pod.name {
                print!(" {:<6}", "-");
                continue;
            }
            total += 1;
            let reached = reachable(&pod.netns, *ip);
            ok += usize::from(reached);
            print!(" {:<6}", if reached { "ok" } else { "FAIL" });
        }
        total += 1;
        let node_ip = cluster.node(&pod.node)?.underlay_ip;
        let seen = tcp_peer(cluster.outside(), OUTSIDE_IP, &pod.netns).map(|peer| peer.ip());
        match seen {
            Ok(source) if source == IpAddr::V4(node_ip) => {
                ok += 1;
                println!(" ok ({source}, {}: SNAT)", pod.node);
            }
            Ok(source) => println!(" FAIL (seen as {source}, not {node_ip})"),
            Err(e) => println!(" FAIL ({e})"),
        }
    }
    Ok((ok, total))
}
