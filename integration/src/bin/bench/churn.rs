//! EC2 calls per 1,000 pod churns (an ADD then its DEL through the real plugin) on a VPC node
//! in steady state, for each warm-pool setting a user picks, counted by vpc-sim for that
//! node once the pool has settled. The target is at most 50 calls per 1,000 churns.
//!
//! Time is scaled down 30-fold so a run takes a minute per setting, not hours: the cooldown
//! of released addresses, the least time between two shrinks and the least age of an ENI
//! before it is freed are the test harness's (1 s, 1 s, 2 s for 30 s, 30 s, 1 min), and one
//! pod starts every 50 ms (a node starting one every 1.5 s). Shorter pacing can only cost
//! more calls: the pool is allowed to shrink, and grow again, 30 times as often.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vpc_cni_integration::vpc_cluster::VpcCluster;

use crate::report::say;
use crate::stats::median;

const CHURNS: usize = 1_000;
/// Counted in blocks, for the spread; the warm-up goes in blocks too.
const BLOCK: usize = 100;
/// The warm-up ends after a block of churns that made at most this many calls (the pool
/// has grown to what the churn holds), or after [`WARM_UP_BLOCKS`] blocks. The churn goes
/// on throughout: a pause would let the pool shrink back to its idle size.
const SETTLED_CALLS: u64 = 5;
const WARM_UP_BLOCKS: usize = 5;
/// One pod starts this often (unless the previous churn took longer).
const PERIOD: Duration = Duration::from_millis(50);
/// m5.xlarge: 4 ENIs of 15 addresses; prefix delegation needs a Nitro type.
const INSTANCE_TYPE: &str = "m5.xlarge";
const TARGET_PER_1000: u64 = 50;
/// Harness bound (not a measurement).
const ADD_LIMIT: Duration = Duration::from_secs(30);
/// CNI's "try again later".
const TRY_AGAIN_LATER: u64 = 11;

const SETTINGS: [(&str, &[(&str, &str)]); 4] = [
    ("WARM_ENI_TARGET=1 (default)", &[]),
    ("WARM_IP_TARGET=5", &[("WARM_IP_TARGET", "5")]),
    (
        "WARM_IP_TARGET=5, MINIMUM_IP_TARGET=20",
        &[("WARM_IP_TARGET", "5"), ("MINIMUM_IP_TARGET", "20")],
    ),
    (
        "prefix delegation, WARM_PREFIX_TARGET=1",
        &[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_PREFIX_TARGET", "1"),
        ],
    ),
];

pub fn run() -> anyhow::Result<()> {
    say!(
        "\nEC2 calls per {CHURNS} pod churns (ADD then DEL) in steady state on one \
         {INSTANCE_TYPE}, counted once a block of {BLOCK} churns made at most {SETTLED_CALLS} \
         calls (or after {WARM_UP_BLOCKS} blocks); time scaled down 30-fold \
         (IP_COOLDOWN_PERIOD=1s, POOL_SHRINK_INTERVAL=1s, MIN_ENI_AGE=2s, a pod every {} ms); \
         target: at most {TARGET_PER_1000}:",
        PERIOD.as_millis()
    );
    say!(
        "  {:<40} {:>6} {:>7}  {:<24} by action",
        "setting",
        "calls",
        "/target",
        "per 100: median [min-max]"
    );
    for (setting, env) in SETTINGS {
        let counted = churn(env).with_context(|| format!("setting {setting}"))?;
        let mut blocks = counted.blocks.clone();
        blocks.sort_unstable();
        let m = blocks.get(blocks.len() / 2).copied().unwrap_or_default();
        let (lo, hi) = (
            blocks.first().copied().unwrap_or_default(),
            blocks.last().copied().unwrap_or_default(),
        );
        let each: Vec<String> = counted
            .by_action
            .iter()
            .map(|(a, n)| format!("{a} x{n}"))
            .collect();
        // Call counts stay far below f64's exact range.
        #[allow(clippy::cast_precision_loss)]
        let ratio = counted.total as f64 / TARGET_PER_1000 as f64;
        say!(
            "  {setting:<40} {:>6} {ratio:>7.2}  {:<24} {}",
            counted.total,
            format!("{m} [{lo}-{hi}]"),
            if each.is_empty() {
                "none".to_owned()
            } else {
                each.join(", ")
            }
        );
        say!(
            "  {:<40} {} warm-up churns; pool of {} addresses before, {} after; {} ADDs told \
             to try again; churn median {:.1} ms",
            "",
            counted.warm_up,
            counted.pool_before,
            counted.pool_after,
            counted.retried,
            counted.churn_ms
        );
    }
    Ok(())
}

/// What one setting's run counted.
struct Counted {
    total: u64,
    by_action: BTreeMap<String, u64>,
    blocks: Vec<u64>,
    warm_up: usize,
    pool_before: u32,
    pool_after: u32,
    retried: usize,
    churn_ms: f64,
}

fn churn(env: &[(&str, &str)]) -> anyhow::Result<Counted> {
    let cluster = VpcCluster::new("bchurn", &[("churn", INSTANCE_TYPE)], env)
        .context("starting the VPC node")?;
    let node = cluster.node("churn")?;
    let instance = node.instance.id.clone();
    let calls = || cluster.sim().request_counts_of(&instance);
    let total = |c: &BTreeMap<String, u64>| c.values().sum::<u64>();
    let mut times = Vec::with_capacity(CHURNS);
    let mut retried = 0;
    let mut warm_up = 0;
    for _ in 0..WARM_UP_BLOCKS {
        let start = total(&calls());
        for _ in 0..BLOCK {
            let (took, retries) = one_churn(&cluster, &format!("w{warm_up}"))?;
            retried += retries;
            warm_up += 1;
            std::thread::sleep(PERIOD.saturating_sub(took));
        }
        if total(&calls()) - start <= SETTLED_CALLS {
            break;
        }
    }
    let pool_before = pool(&cluster)?;
    let before = calls();
    let mut blocks = Vec::with_capacity(CHURNS / BLOCK);
    let mut block_start = total(&before);
    for i in 0..CHURNS {
        let (took, retries) = one_churn(&cluster, &format!("c{i}"))?;
        retried += retries;
        times.push(took);
        if (i + 1) % BLOCK == 0 {
            let now = total(&calls());
            blocks.push(now - block_start);
            block_start = now;
        }
        std::thread::sleep(PERIOD.saturating_sub(took));
    }
    let after = calls();
    let by_action: BTreeMap<String, u64> = after
        .iter()
        .map(|(a, n)| (a.clone(), n - before.get(a).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    Ok(Counted {
        total: by_action.values().sum(),
        by_action,
        blocks,
        warm_up,
        pool_before,
        pool_after: pool(&cluster)?,
        retried,
        churn_ms: crate::stats::ms(median(&mut times)),
    })
}

/// Addresses in the node's pool.
fn pool(cluster: &VpcCluster) -> anyhow::Result<u32> {
    Ok(cluster
        .node("churn")?
        .ipamd
        .status()
        .map_err(anyhow::Error::msg)
        .context("STATUS")?
        .total_addresses)
}

/// A fresh pod ADDed (retried while ipamd says "try again later", as a runtime does) and
/// DELeted; returns how long that took and how many tries were turned away.
fn one_churn(cluster: &VpcCluster, name: &str) -> anyhow::Result<(Duration, usize)> {
    let mut pod = cluster.new_pod("churn", name)?;
    let started = Instant::now();
    let mut retries = 0;
    loop {
        let out = cluster.add(&mut pod)?;
        if out.success() {
            break;
        }
        if out.error_code() != Some(TRY_AGAIN_LATER) || started.elapsed() > ADD_LIMIT {
            bail!(
                "ADD {name} failed: {} {}\n{}",
                out.stdout,
                out.stderr,
                cluster.diagnostics("churn")
            );
        }
        retries += 1;
    }
    let out = cluster.del(&pod)?;
    if !out.success() {
        bail!("DEL {name} failed: {} {}", out.stdout, out.stderr);
    }
    Ok((started.elapsed(), retries))
}
