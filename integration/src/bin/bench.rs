//! `make bench`: CNI ADD+DEL latency of vpc-cni (warm pool) against Debian's
//! `ptp` + `host-local` in the same run, alternating one call pair of each so
//! machine noise hits both alike; medians and the ratio are reported. Also
//! reports ipamd's resident memory with 250 pods assigned, then TCP
//! throughput pod-to-pod across nodes against node-to-node over the same
//! network, in VPC mode and in overlay mode.
//!
//! Nothing here asserts a time: this prints figures for people to compare.

// In a directory of their own: a file beside bench.rs would be a binary.
#[path = "bench/tcp.rs"]
mod tcp;
#[path = "bench/throughput.rs"]
mod throughput;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::plugin::Invocation;

const ROUNDS: usize = 60;
const MEMORY_PODS: usize = 250;
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

fn main() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the benchmark creates network namespaces: run it as root (make bench)");
    }
    if !Path::new(REFERENCE_PLUGINS).join("ptp").exists() {
        bail!("{REFERENCE_PLUGINS}/ptp is missing: install containernetworking-plugins");
    }
    latency_and_memory()?;
    throughput::run()
}

/// The CNI latency comparison and ipamd's memory, on one node of their own
/// that is gone before the throughput clusters start.
fn latency_and_memory() -> anyhow::Result<()> {
    let node = TestNode::start("bench", NodeOptions::new("10.128.0.0/16"))
        .context("starting the node and ipamd")?;
    let state = tempfile::tempdir()?;
    let ours_conf = node.conf("1.0.0");
    let ptp_conf = json!({
        "cniVersion": "1.0.0",
        "name": "ptp-bench",
        "type": "ptp",
        "ipam": {
            "type": "host-local",
            "subnet": "10.200.0.0/16",
            "dataDir": state.path().join("host-local"),
        }
    });

    let (mut ours, mut reference) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which goes first so neither always runs on a warmer cache.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for use_ours in order {
            let pod = node.new_pod(&format!("bench-{round}"))?;
            let elapsed = if use_ours {
                add_del(&node, &pod.netns, &pod.container_id, &ours_conf, None)?
            } else {
                add_del(&node, &pod.netns, &pod.container_id, &ptp_conf, Some("ptp"))?
            };
            if use_ours {
                ours.push(elapsed)
            } else {
                reference.push(elapsed)
            }
        }
    }
    let (m_ours, m_ref) = (median(&mut ours), median(&mut reference));
    println!("CNI ADD+DEL, {ROUNDS} alternating rounds, median per pod:");
    println!("  vpc-cni (warm pool)        {:>8.2} ms", ms(m_ours));
    println!("  ptp + host-local (Debian)  {:>8.2} ms", ms(m_ref));
    println!(
        "  ratio vpc-cni / reference  {:>8.2}  (target: at most 0.25)",
        ms(m_ours) / ms(m_ref)
    );

    let mut pods = Vec::new();
    for i in 0..MEMORY_PODS {
        let mut pod = node.new_pod(&format!("mem-{i}"))?;
        let out = node.add(&mut pod)?;
        if !out.success() {
            bail!("ADD mem-{i} failed: {}", out.stdout);
        }
        pods.push(pod);
    }
    let pid = node.ipamd.pid().context("ipamd is not running")?;
    let rss = resident_kib(pid)?;
    println!(
        "ipamd resident memory with {MEMORY_PODS} pods: {:.1} MiB (target: under 15 MiB)",
        f64::from(rss) / 1024.0
    );
    for pod in &pods {
        let _ = node.del(pod);
    }
    Ok(())
}

/// One ADD then one DEL of a pod through `plugin` (ours when None), timed
/// from exec to exit; both must succeed.
fn add_del(
    node: &TestNode,
    pod: &Netns,
    container_id: &str,
    conf: &serde_json::Value,
    reference: Option<&str>,
) -> anyhow::Result<Duration> {
    let netns = pod.path().display().to_string();
    let started = Instant::now();
    for command in ["ADD", "DEL"] {
        let call = Invocation::for_pod(command, container_id, Some(&netns), pod.name(), conf);
        let out = match reference {
            None => call.run(&node.netns)?,
            Some(name) => {
                call.run_program(&node.netns, &Path::new(REFERENCE_PLUGINS).join(name))?
            }
        };
        if !out.success() {
            bail!(
                "{command} via {} failed: {}{}",
                reference.unwrap_or("vpc-cni"),
                out.stdout,
                out.stderr
            );
        }
    }
    Ok(started.elapsed())
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn resident_kib(pid: u32) -> anyhow::Result<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status")
}
