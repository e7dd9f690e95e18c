//! `make bench`: CNI ADD+DEL latency of vpc-cni (warm pool) against Debian's
//! `ptp` + `host-local` in the same run, alternating one call pair of each so
//! machine noise hits both alike; medians and the ratio are reported. Also
//! reports ipamd's resident memory with 250 pods in each mode (split into anonymous and
//! file-backed) and the binaries' sizes, then TCP
//! throughput pod-to-pod across nodes against node-to-node over the same
//! network, in VPC mode and in overlay mode. Then a cold VPC node against a slow EC2, EC2
//! calls per pod churn for each warm-pool setting, an overlay node programming 1,000 peers,
//! and AddNetwork RPCs per second with and without group commit.
//!
//! Nothing here asserts a time: this prints figures for people to compare.

// In a directory of their own: a file beside bench.rs would be a binary.
#[path = "bench/churn.rs"]
mod churn;
#[path = "bench/cold.rs"]
mod cold;
#[path = "bench/commit.rs"]
mod commit;
#[path = "bench/memory.rs"]
mod memory;
#[path = "bench/peers.rs"]
mod peers;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/tcp.rs"]
mod tcp;
#[path = "bench/throughput.rs"]
mod throughput;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use report::{say, section};
use serde_json::json;
use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::plugin::Invocation;

const ROUNDS: usize = 60;
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// `make bench`'s arguments.
#[derive(clap::Parser)]
#[command(
    name = "vpc-cni-bench",
    about = "Benchmarks vpc-cni against baselines in the same run"
)]
struct Args {
    /// Where to write the Markdown report (`make bench` gives docs/bench.md).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Run only these sections (comma-separated; all when absent).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(SECTIONS.map(|s| s.0)))]
    only: Vec<String>,
}

/// Every section: its name for `--only`, its title, and what runs it.
type Section = (&'static str, &'static str, fn() -> anyhow::Result<()>);
const SECTIONS: [Section; 7] = [
    ("latency", "CNI ADD+DEL latency", latency),
    ("memory", "ipamd memory", memory::run),
    ("throughput", "TCP throughput", throughput::run),
    ("cold", "Cold VPC node", cold::run),
    ("churn", "EC2 calls per pod churn", churn::run),
    ("peers", "Overlay peers", peers::run),
    ("commit", "Group commit", commit::run),
];

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    if !nix::unistd::geteuid().is_root() {
        bail!("the benchmark creates network namespaces: run it as root (make bench)");
    }
    if !Path::new(REFERENCE_PLUGINS).join("ptp").exists() {
        bail!("{REFERENCE_PLUGINS}/ptp is missing: install containernetworking-plugins");
    }
    let mut failed = Vec::new();
    for (name, title, run) in SECTIONS {
        if (args.only.is_empty() || args.only.iter().any(|o| o == name)) && !section(title, run) {
            failed.push(name);
        }
    }
    if let Some(path) = args.out {
        std::fs::write(&path, report::page())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    if !failed.is_empty() {
        bail!("could not run: {} (see above)", failed.join(", "));
    }
    Ok(())
}

/// The CNI latency comparison, on one node of its own that is gone before the memory
/// and throughput set-ups start.
fn latency() -> anyhow::Result<()> {
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
    say!("CNI ADD+DEL, {ROUNDS} alternating rounds, median per pod:");
    say!("  vpc-cni (warm pool)        {:>8.2} ms", ms(m_ours));
    say!("  ptp + host-local (Debian)  {:>8.2} ms", ms(m_ref));
    say!(
        "  ratio vpc-cni / reference  {:>8.2}  (target: at most 0.25)",
        ms(m_ours) / ms(m_ref)
    );

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

/// The fastest and slowest sample, ms.
fn spread_ms(samples: &[Duration]) -> (f64, f64) {
    let lo = samples.iter().min().copied().unwrap_or_default();
    let hi = samples.iter().max().copied().unwrap_or_default();
    (ms(lo), ms(hi))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
