//! Pod-to-pod TCP throughput across two nodes against node-to-node over the
//! same network, in VPC mode (the simulated VPC fabric) and in overlay mode
//! (VXLAN over a plain L2 underlay). Pod and node transfers alternate round
//! by round, so machine noise hits both alike; medians and the ratio are
//! printed. Nothing is asserted.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::report::say;
use vpc_cni_integration::node::ClusterPod;
use vpc_cni_integration::overlay_cluster::OverlayCluster;
use vpc_cni_integration::vpc_cluster::{reachable, VpcCluster};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::wait_for;

use crate::tcp;

const ROUNDS: usize = 5;
const ROUND_LENGTH: Duration = Duration::from_secs(2);
const INSTANCE_TYPE: &str = "t3.medium";
/// A typical on-prem underlay: pods then get 1450 under VXLAN.
const UNDERLAY_MTU: u32 = 1500;
/// Bounds on harness convergence (fabric routes, overlay peers), not
/// measurements.
const CONVERGE_LIMIT: Duration = Duration::from_secs(30);
/// ipamd fills its warm pool in the background after start; the setup's
/// EC2 calls are counted once they have stopped for this long.
const EC2_QUIET: Duration = Duration::from_secs(2);

/// One side of a transfer: the namespace it runs in and the address the
/// receiver listens on.
struct End<'a> {
    ns: &'a Netns,
    ip: Ipv4Addr,
}

/// A pod-to-pod and a node-to-node path between the same two nodes.
struct Paths<'a> {
    pods: (End<'a>, End<'a>),
    nodes: (End<'a>, End<'a>),
}

impl<'a> Paths<'a> {
    /// Between the two pods (ADDed) and the two node addresses.
    fn new(pods: &'a [ClusterPod; 2], nodes: [(&'a Netns, Ipv4Addr); 2]) -> anyhow::Result<Self> {
        let [pa, pb] = pods;
        let [na, nb] = nodes;
        Ok(Self {
            pods: (
                End {
                    ns: &pa.netns,
                    ip: pa.ip()?,
                },
                End {
                    ns: &pb.netns,
                    ip: pb.ip()?,
                },
            ),
            nodes: (End { ns: na.0, ip: na.1 }, End { ns: nb.0, ip: nb.1 }),
        })
    }
}

/// One pod on each of two nodes, made and ADDed by `add`.
fn two_pods(
    nodes: [&str; 2],
    add: impl Fn(&str) -> anyhow::Result<ClusterPod>,
) -> anyhow::Result<[ClusterPod; 2]> {
    Ok([add(nodes[0])?, add(nodes[1])?])
}

pub fn run() -> anyhow::Result<()> {
    say!(
        "\nTCP throughput across nodes, one stream, {}-KiB writes, {ROUNDS} alternating rounds \
         of {} s per path, median (min-max):",
        tcp::CHUNK / 1024,
        ROUND_LENGTH.as_secs()
    );
    vpc()?;
    overlay()?;
    Ok(())
}

fn vpc() -> anyhow::Result<()> {
    let cluster = VpcCluster::new("bvpc", &[("a", INSTANCE_TYPE), ("b", INSTANCE_TYPE)], &[])
        .context("starting vpc-sim, the fabric and ipamd on nodes a and b")?;
    let pods = two_pods(["a", "b"], |node| {
        Ok(cluster.try_pod(node, &format!("tput-{node}"))?)
    })?;
    let (na, nb) = (cluster.node("a")?, cluster.node("b")?);
    let paths = Paths::new(
        &pods,
        [(na.netns(), na.primary_ip()), (nb.netns(), nb.primary_ip())],
    )?;
    let pa = &pods[0];
    converge(&paths).with_context(|| cluster.all_diagnostics())?;
    let calls = settled_counts(&cluster);
    say!(
        "VPC mode: two {INSTANCE_TYPE} nodes on the fabric (ENI MTU {}, pod eth0 MTU {}), \
         pods on {} and {}",
        mtu(na.netns(), "eth0"),
        mtu(&pa.netns, "eth0"),
        paths.pods.0.ip,
        paths.pods.1.ip
    );
    measure(&paths, "pod a -> pod b", "node a -> node b", Some(0.95))?;
    print_calls(&calls);
    for pod in &pods {
        // A failed DEL leaves nothing behind: the namespaces go on drop.
        let _ = cluster.del(pod);
    }
    Ok(())
}

fn overlay() -> anyhow::Result<()> {
    let cluster = OverlayCluster::new("bov", 2, UNDERLAY_MTU)
        .context("starting the overlay nodes and their ipamd")?;
    let pods = two_pods(["node-1", "node-2"], |node| {
        Ok(cluster.try_pod(node, &format!("tput-{node}"))?)
    })?;
    let (na, nb) = (cluster.node("node-1")?, cluster.node("node-2")?);
    let paths = Paths::new(
        &pods,
        [(na.netns(), na.underlay_ip), (nb.netns(), nb.underlay_ip)],
    )?;
    let pa = &pods[0];
    converge(&paths).with_context(|| cluster.all_diagnostics())?;
    say!(
        "overlay mode (for information): two nodes on an L2 underlay (MTU {UNDERLAY_MTU}), \
         pod eth0 MTU {}, VXLAN between nodes",
        mtu(&pa.netns, "eth0")
    );
    measure(&paths, "pod 1 -> pod 2", "node 1 -> node 2", None)?;
    for pod in &pods {
        let _ = cluster.del(pod);
    }
    Ok(())
}

/// Waits until both paths carry pings: pod addresses are routed by the
/// fabric's follower, overlay peers are programmed asynchronously.
fn converge(paths: &Paths) -> anyhow::Result<()> {
    for (from, to) in [&paths.pods, &paths.nodes] {
        if wait_for(CONVERGE_LIMIT, || reachable(from.ns, to.ip).then_some(())).is_none() {
            bail!(
                "{} cannot reach {} after {CONVERGE_LIMIT:?}",
                from.ns.name(),
                to.ip
            );
        }
    }
    Ok(())
}

/// Alternates pod and node transfers, swapping which goes first each round,
/// and prints medians and the ratio pod / node.
fn measure(
    paths: &Paths,
    pod_label: &str,
    node_label: &str,
    target: Option<f64>,
) -> anyhow::Result<()> {
    let (mut pod, mut node) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let pod_first = round % 2 == 0;
        for is_pod in [pod_first, !pod_first] {
            let (from, to) = if is_pod { &paths.pods } else { &paths.nodes };
            let rate = tcp::transfer(from.ns, to.ns, to.ip, ROUND_LENGTH)?;
            if is_pod {
                pod.push(rate);
            } else {
                node.push(rate);
            }
        }
    }
    let (pm, nm) = (median(&mut pod), median(&mut node));
    say!("  {pod_label:<22} {}", summary(pm, &pod));
    say!("  {node_label:<22} {}", summary(nm, &node));
    let ratio = if nm > 0.0 { pm / nm } else { f64::NAN };
    match target {
        Some(t) => say!("  ratio pod / node       {ratio:>6.3}  (target: at least {t:.2})"),
        None => say!("  ratio pod / node       {ratio:>6.3}"),
    }
    Ok(())
}

fn summary(median: f64, sorted: &[f64]) -> String {
    let lo = sorted.first().copied().unwrap_or_default();
    let hi = sorted.last().copied().unwrap_or_default();
    format!("{median:>6.2} Gbit/s  ({lo:.2}-{hi:.2})")
}

/// Sorts in place and returns the middle sample.
fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// The sim's EC2 request counts once ipamd on both nodes has stopped
/// calling (or after the convergence bound, as they stand then).
fn settled_counts(cluster: &VpcCluster) -> BTreeMap<String, u64> {
    let started = Instant::now();
    let mut last = cluster.sim().request_counts();
    let mut since = Instant::now();
    while started.elapsed() < CONVERGE_LIMIT {
        std::thread::sleep(Duration::from_millis(200));
        let now = cluster.sim().request_counts();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= EC2_QUIET {
            break;
        }
    }
    last
}

fn print_calls(calls: &BTreeMap<String, u64>) {
    let total: u64 = calls.values().sum();
    let each: Vec<String> = calls.iter().map(|(k, v)| format!("{k} {v}")).collect();
    say!(
        "  EC2 calls for the setup (two ipamd starts, warm pools, two ADDs): {total} ({})",
        each.join(", ")
    );
}

/// The MTU of `link` in `ns`, or "?" when it cannot be read (for display).
fn mtu(ns: &Netns, link: &str) -> String {
    ns.try_ip(&["-o", "link", "show", link])
        .ok()
        .and_then(|out| {
            let mut words = out.split_whitespace();
            words.find(|w| *w == "mtu")?;
            words.next().map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}
