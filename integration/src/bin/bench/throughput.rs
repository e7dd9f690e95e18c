//! Pod-to-pod TCP throughput and ping RTT across two nodes against node-to-node over the
//! same network: in VPC mode (the simulated VPC fabric) from a pod on the primary ENI and
//! one on a secondary ENI, with the default datapath and with the fast path
//! (`ENABLE_POD_FAST_PATH`); and in overlay mode (VXLAN over a plain L2 underlay). The
//! paths alternate round by round, so machine noise hits them alike; medians and ratios
//! are printed. Nothing is asserted.

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

const ROUNDS: usize = 9;
const ROUND_LENGTH: Duration = Duration::from_secs(2);
const INSTANCE_TYPE: &str = "t3.medium";
/// Echoes per ping round.
const PINGS: u32 = 50;
/// Pods made on node a at most while looking for one on a secondary ENI.
const SECONDARY_SEARCH: usize = 8;
/// A typical on-prem underlay: pods then get 1450 under VXLAN.
const UNDERLAY_MTU: u32 = 1500;
/// Bounds on harness convergence (fabric routes, overlay peers), not
/// measurements.
const CONVERGE_LIMIT: Duration = Duration::from_secs(30);
/// ipamd fills its warm pool in the background after start; the setup's
/// EC2 calls are counted once they have stopped for this long.
const EC2_QUIET: Duration = Duration::from_secs(2);

/// One measured path: who sends, who receives at which address.
struct Path<'a> {
    label: String,
    from: &'a Netns,
    to: &'a Netns,
    to_ip: Ipv4Addr,
}

impl<'a> Path<'a> {
    fn new(label: impl Into<String>, from: &'a Netns, to: &'a Netns, to_ip: Ipv4Addr) -> Self {
        Self {
            label: label.into(),
            from,
            to,
            to_ip,
        }
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
         of {} s per path, median (min-max); ratio to node-to-node: median (min-max) of the \
         rounds' ratios; ping RTT, {PINGS} echoes per round, median of the rounds' means:",
        tcp::CHUNK / 1024,
        ROUND_LENGTH.as_secs()
    );
    vpc(false)?;
    vpc(true)?;
    overlay()?;
    Ok(())
}

/// Pods on node a until one lands on a secondary ENI (t3.medium: the primary ENI holds 5
/// pod addresses); returns the first pod (primary ENI) and that one, and DELs the rest.
fn primary_and_secondary_pods(cluster: &VpcCluster) -> anyhow::Result<(ClusterPod, ClusterPod)> {
    let mut pods = Vec::new();
    for i in 0..SECONDARY_SEARCH {
        let pod = cluster.try_pod("a", &format!("tput-a{i}"))?;
        let on_secondary = cluster.device_index_of(pod.ip()?).unwrap_or(0) > 0;
        pods.push(pod);
        if on_secondary && pods.len() > 1 {
            let secondary = pods.pop().context("just pushed")?;
            let mut rest = pods.into_iter();
            let primary = rest.next().context("more than one pod")?;
            for pod in rest {
                let _ = cluster.del(&pod);
            }
            return Ok((primary, secondary));
        }
    }
    bail!("none of {SECONDARY_SEARCH} pods on node a got a secondary ENI's address")
}

fn vpc(fast_path: bool) -> anyhow::Result<()> {
    let env: &[(&str, &str)] = if fast_path {
        &[("ENABLE_POD_FAST_PATH", "true")]
    } else {
        &[]
    };
    let cluster = VpcCluster::new("bvpc", &[("a", INSTANCE_TYPE), ("b", INSTANCE_TYPE)], env)
        .context("starting vpc-sim, the fabric and ipamd on nodes a and b")?;
    let (primary, secondary) = primary_and_secondary_pods(&cluster)?;
    let receiver = cluster.try_pod("b", "tput-b")?;
    let (na, nb) = (cluster.node("a")?, cluster.node("b")?);
    let rx = receiver.ip()?;
    let paths = [
        Path::new("pod a -> pod b", &primary.netns, &receiver.netns, rx),
        Path::new(
            "pod a (2nd ENI) -> pod b",
            &secondary.netns,
            &receiver.netns,
            rx,
        ),
        Path::new("node a -> node b", na.netns(), nb.netns(), nb.primary_ip()),
    ];
    converge(&paths).with_context(|| cluster.all_diagnostics())?;
    if fast_path {
        wait_for_fast_path(&cluster, &[&primary, &secondary, &receiver])?;
    }
    let calls = settled_counts(&cluster);
    say!(
        "VPC mode{}: two {INSTANCE_TYPE} nodes on the fabric (ENI MTU {}, pod eth0 MTU {}), \
         pods on {} (primary ENI) and {} (secondary ENI) to {rx}",
        if fast_path {
            ", fast path (ENABLE_POD_FAST_PATH=true)"
        } else {
            ", default datapath"
        },
        mtu(na.netns(), "eth0"),
        mtu(&primary.netns, "eth0"),
        primary.ip()?,
        secondary.ip()?,
    );
    measure(&paths, Some(0.95))?;
    ping_rtt(&paths)?;
    print_calls(&calls);
    for pod in [&primary, &secondary, &receiver] {
        // A failed DEL leaves nothing behind: the namespaces go on drop.
        let _ = cluster.del(pod);
    }
    Ok(())
}

/// Waits until ipamd on both nodes has each pod's veth in the fast path's tables.
fn wait_for_fast_path(cluster: &VpcCluster, pods: &[&ClusterPod]) -> anyhow::Result<()> {
    for pod in pods {
        let node = cluster.node(&pod.node)?.netns();
        let ready = wait_for(CONVERGE_LIMIT, || {
            let listed = node
                .nft(&["list", "table", "netdev", "vpc-cni-fast"])
                .ok()?;
            listed.contains(&pod.ip().ok()?.to_string()).then_some(())
        });
        if ready.is_none() {
            bail!(
                "the fast path on {} does not know pod {} after {CONVERGE_LIMIT:?}",
                pod.node,
                pod.name
            );
        }
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
    let [pa, pb] = &pods;
    let paths = [
        Path::new("pod 1 -> pod 2", &pa.netns, &pb.netns, pb.ip()?),
        Path::new("node 1 -> node 2", na.netns(), nb.netns(), nb.underlay_ip),
    ];
    converge(&paths).with_context(|| cluster.all_diagnostics())?;
    say!(
        "overlay mode (for information): two nodes on an L2 underlay (MTU {UNDERLAY_MTU}), \
         pod eth0 MTU {}, VXLAN between nodes",
        mtu(&pa.netns, "eth0")
    );
    measure(&paths, None)?;
    for pod in &pods {
        let _ = cluster.del(pod);
    }
    Ok(())
}

/// Waits until every path carries pings: pod addresses are routed by the fabric's
/// follower, overlay peers are programmed asynchronously.
fn converge(paths: &[Path]) -> anyhow::Result<()> {
    for path in paths {
        if wait_for(CONVERGE_LIMIT, || {
            reachable(path.from, path.to_ip).then_some(())
        })
        .is_none()
        {
            bail!(
                "{} cannot reach {} after {CONVERGE_LIMIT:?}",
                path.from.name(),
                path.to_ip
            );
        }
    }
    Ok(())
}

/// Runs every path once per round, starting each round one path further on, so machine
/// noise hits them alike; prints each path's median and its ratio to the last path (the
/// node-to-node baseline): the median of the rounds' ratios, each taken between runs next to
/// each other in time, so noise that lasts longer than a round cancels out.
fn measure(paths: &[Path], target: Option<f64>) -> anyhow::Result<()> {
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for round in 0..ROUNDS {
        for k in 0..paths.len() {
            let i = (round + k) % paths.len();
            let p = &paths[i];
            rates[i].push(tcp::transfer(p.from, p.to, p.to_ip, ROUND_LENGTH)?);
        }
    }
    for (path, r) in paths.iter().zip(&rates) {
        let mut sorted = r.clone();
        let m = median(&mut sorted);
        say!("  {:<26} {}", path.label, summary(m, &sorted));
    }
    let Some((baseline, measured)) = rates.split_last() else {
        return Ok(());
    };
    for (path, r) in paths.iter().zip(measured) {
        let mut ratios: Vec<f64> = r
            .iter()
            .zip(baseline)
            .map(|(ours, base)| if *base > 0.0 { ours / base } else { f64::NAN })
            .collect();
        let ratio = median(&mut ratios);
        let lo = ratios.first().copied().unwrap_or_default();
        let hi = ratios.last().copied().unwrap_or_default();
        let label = path.label.split(" ->").next().unwrap_or_default();
        match target {
            Some(t) => {
                say!("  ratio {label:<20} {ratio:>6.3}  ({lo:.3}-{hi:.3}; target: at least {t:.2})")
            }
            None => say!("  ratio {label:<20} {ratio:>6.3}  ({lo:.3}-{hi:.3})"),
        }
    }
    Ok(())
}

/// Mean ping RTT per path, rounds alternating as in [`measure`]; prints the median of the
/// rounds' means and each path's overhead over the last one.
fn ping_rtt(paths: &[Path]) -> anyhow::Result<()> {
    let mut means: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for round in 0..ROUNDS {
        for k in 0..paths.len() {
            let i = (round + k) % paths.len();
            means[i].push(mean_rtt_us(paths[i].from, paths[i].to_ip)?);
        }
    }
    let medians: Vec<f64> = means.iter_mut().map(|m| median(m)).collect();
    let baseline = medians.last().copied().unwrap_or_default();
    for (i, (path, m)) in paths.iter().zip(&medians).enumerate() {
        let extra = if i + 1 < paths.len() {
            format!("  (+{:.0} us over node to node)", m - baseline)
        } else {
            String::new()
        };
        say!("  ping {:<26} {m:>6.0} us{extra}", path.label);
    }
    Ok(())
}

/// The mean RTT `ping` reports for [`PINGS`] echoes from `from` to `to`, in microseconds.
fn mean_rtt_us(from: &Netns, to: Ipv4Addr) -> anyhow::Result<f64> {
    let count = PINGS.to_string();
    let out = from.exec(&[
        "ping",
        "-q",
        "-n",
        "-c",
        &count,
        "-i",
        "0.01",
        &to.to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    // "rtt min/avg/max/mdev = 0.041/0.052/0.101/0.010 ms"
    let avg = text
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|v| v.parse::<f64>().ok());
    match avg {
        Some(ms) if out.status.success() => Ok(ms * 1000.0),
        _ => bail!("ping from {} to {to} failed: {text}", from.name()),
    }
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
        "  EC2 calls for the setup (two ipamd starts, warm pools, the pods' ADDs): {total} ({})",
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
