//! A cold VPC node against an EC2 that takes a second per call: how long from ipamd's start
//! until its pool is warm, and how long the first pod's ADD takes on a pool that is still
//! empty, with the EC2 calls each made (vpc-sim counts them per instance). The target is at
//! most five calls' latency for each: what is not spent waiting on EC2 is ours.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vpc_cni_cloud::sim::Faults;
use vpc_cni_integration::vpc_cluster::{VpcCluster, VpcPod};
use vpc_cni_testkit::pod::TestPod;

use crate::report::say;
use crate::stats::{median, spread_ms};

/// Few: each round waits on EC2 for several seconds.
const ROUNDS: usize = 3;
const CALL_LATENCY: Duration = Duration::from_secs(1);
/// The target: the start and the first ADD each within five calls' latency.
const TARGET_CALLS: u32 = 5;
/// t3.medium: 3 ENIs of 6 addresses, a common small node.
const INSTANCE_TYPE: &str = "t3.medium";
/// With no pool change and no EC2 call for this long the pool has settled: longer than one
/// call, so a call in flight shows.
const QUIET: Duration = Duration::from_secs(3);
/// Harness bound on one start (not a measurement).
const LIMIT: Duration = Duration::from_secs(120);
/// CNI's "try again later": the ADD waited out POOL_WAIT_TIMEOUT on an empty pool.
const TRY_AGAIN_LATER: u64 = 11;

/// One round's figures.
struct Round {
    serving: Duration,
    warm: Duration,
    warm_calls: BTreeMap<String, u64>,
    pool: u32,
    add: Duration,
    start_to_pod: Duration,
    add_calls: BTreeMap<String, u64>,
}

pub fn run() -> anyhow::Result<()> {
    let mut rounds = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        rounds.push(one_round(round)?);
    }
    let latency_ms = CALL_LATENCY.as_millis();
    say!(
        "\nCold VPC node ({INSTANCE_TYPE}, default warm pool), vpc-sim answering every EC2 call \
         after {latency_ms} ms, {ROUNDS} rounds, median [min-max]; target: at most \
         {TARGET_CALLS} calls' latency ({:.1} s) each:",
        (CALL_LATENCY * TARGET_CALLS).as_secs_f64()
    );
    let line = |what: &str, samples: Vec<Duration>| {
        let mut samples = samples;
        let m = median(&mut samples);
        let (lo, hi) = spread_ms(&samples);
        say!(
            "  {what:<40} {:>7.2} s [{:.2}-{:.2}]  ({:.2} calls' latency)",
            m.as_secs_f64(),
            lo / 1000.0,
            hi / 1000.0,
            m.as_secs_f64() / CALL_LATENCY.as_secs_f64()
        );
    };
    line(
        "ipamd start to serving",
        rounds.iter().map(|r| r.serving).collect(),
    );
    line(
        "ipamd start to warm pool",
        rounds.iter().map(|r| r.warm).collect(),
    );
    line(
        "first pod's ADD on an empty pool",
        rounds.iter().map(|r| r.add).collect(),
    );
    line(
        "ipamd start to first pod wired",
        rounds.iter().map(|r| r.start_to_pod).collect(),
    );
    for r in &rounds {
        say!(
            "  round: warm pool of {} addresses after {}; first ADD's node: {}",
            r.pool,
            calls(&r.warm_calls),
            calls(&r.add_calls)
        );
    }
    Ok(())
}

/// "N EC2 calls (Action xN, ...)".
fn calls(counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    let each: Vec<String> = counts.iter().map(|(a, n)| format!("{a} x{n}")).collect();
    format!("{total} EC2 calls ({})", each.join(", "))
}

/// A fresh VPC with two instances that have never run ipamd: one to time the warm-up, one
/// for the first ADD.
fn one_round(round: usize) -> anyhow::Result<Round> {
    let (warm_name, add_name) = (format!("cold-w{round}"), format!("cold-a{round}"));
    let (mut cluster, instances) = VpcCluster::without_ipamd(
        "bcold",
        &[
            (warm_name.as_str(), INSTANCE_TYPE),
            (add_name.as_str(), INSTANCE_TYPE),
        ],
    )
    .context("building the VPC")?;
    cluster.sim().set_faults(Faults {
        latency_ms: u64::try_from(CALL_LATENCY.as_millis())?,
        ..Faults::default()
    });
    let mut instances = instances.into_iter();
    let (Some(warm_instance), Some(add_instance)) = (instances.next(), instances.next()) else {
        bail!("the VPC has fewer than two instances");
    };

    // Warm-up: from the start to the last change of the pool.
    let warm_id = warm_instance.id.clone();
    let started = Instant::now();
    cluster.start_ipamd(warm_instance, &[])?;
    let serving = started.elapsed();
    let (warm, pool) = settle(&cluster, cluster.node(&warm_name)?, &warm_id, started)?;
    let warm_calls = cluster.sim().request_counts_of(&warm_id);

    // The first ADD, sent the moment ipamd answers.
    let add_id = add_instance.id.clone();
    // Made before the start: a runtime has the pod's namespace ready when it calls ADD.
    let mut pod = VpcPod {
        node: add_name.clone(),
        pod: TestPod::create("cold-pod", "vvp")?,
    };
    let started = Instant::now();
    cluster.start_ipamd(add_instance, &[])?;
    let add_started = Instant::now();
    loop {
        let out = cluster.add(&mut pod)?;
        if out.success() {
            break;
        }
        // A runtime retries "try again later"; anything else is a failure.
        if out.error_code() != Some(TRY_AGAIN_LATER) || started.elapsed() > LIMIT {
            bail!(
                "the first ADD failed: {} {}\n{}",
                out.stdout,
                out.stderr,
                cluster.diagnostics(&add_name)
            );
        }
    }
    let (add, start_to_pod) = (add_started.elapsed(), started.elapsed());
    let add_calls = cluster.sim().request_counts_of(&add_id);
    let _ = cluster.del(&pod);
    drop(pod);
    Ok(Round {
        serving,
        warm,
        warm_calls,
        pool,
        add,
        start_to_pod,
        add_calls,
    })
}

/// Polls the node until neither its pool nor its EC2 calls have changed for [`QUIET`];
/// returns when the pool last changed (from `started`) and its size then.
fn settle(
    cluster: &VpcCluster,
    node: &vpc_cni_integration::vpc_cluster::VpcNode,
    instance_id: &str,
    started: Instant,
) -> anyhow::Result<(Duration, u32)> {
    let calls = || -> u64 { cluster.sim().request_counts_of(instance_id).values().sum() };
    let (mut pool, mut changed) = (0, started.elapsed());
    let (mut seen_calls, mut quiet_since) = (calls(), Instant::now());
    loop {
        let now_pool = node
            .ipamd
            .status()
            .map_err(anyhow::Error::msg)
            .context("STATUS")?
            .total_addresses;
        let now_calls = calls();
        if now_pool != pool {
            pool = now_pool;
            changed = started.elapsed();
            quiet_since = Instant::now();
        }
        if now_calls != seen_calls {
            seen_calls = now_calls;
            quiet_since = Instant::now();
        }
        if pool > 0 && quiet_since.elapsed() >= QUIET {
            return Ok((changed, pool));
        }
        if started.elapsed() > LIMIT {
            bail!(
                "the pool did not settle (last {pool} addresses)\n{}",
                cluster.diagnostics(&node.name)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
