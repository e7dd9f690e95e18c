//! `make bench`: CNI calls of vpc-cni (warm pool) against Debian's `ptp` +
//! `host-local` in the same run, alternating so machine noise hits both alike: one pod's
//! ADD and DEL exec'd as a runtime execs them, a burst of 100 ADDs at once, and the
//! plugin's start. Also reports ipamd's resident memory with 250 pods in each mode (split into anonymous and
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
#[path = "bench/cni.rs"]
mod cni;
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
#[path = "bench/stats.rs"]
mod stats;
#[path = "bench/tcp.rs"]
mod tcp;
#[path = "bench/throughput.rs"]
mod throughput;

use std::path::Path;

use anyhow::{bail, Context};
use report::section;

/// Where Debian's containernetworking-plugins, the baselines, live.
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
const SECTIONS: [Section; 9] = [
    ("latency", "CNI ADD and DEL latency", cni::latency::run),
    ("burst", "100 parallel CNI ADDs", cni::burst::run),
    ("start", "CNI plugin start", cni::start::run),
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
