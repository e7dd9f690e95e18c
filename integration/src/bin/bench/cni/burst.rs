//! `burst`: 100 ADDs at once on one node, ours against the baseline in alternating rounds:
//! per-call latency, failures, duplicate addresses and CPU time per pod.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Context};
use vpc_cni_testkit::process::all_at_once;

use super::inside::IpamdTimes;
use super::{Bench, Exec, Plugin};
use crate::report::say;
use crate::stats::{ms, percentile};

/// Pods in one burst, and bursts per plugin.
const BURST: usize = 100;

const BURST_ROUNDS: usize = 5;

/// What one burst gave.
#[derive(Default)]
struct BurstOutcome {
    latencies: Vec<Duration>,
    failures: usize,
    duplicates: usize,
    /// CPU time of the burst's ADDs and DELs per pod: the exec'd processes (nsenter, the
    /// plugin and what it execs), and ipamd's for ours.
    cpu_calls: Duration,
    cpu_ipamd: Duration,
}

impl BurstOutcome {
    fn p(&self, p: usize) -> f64 {
        ms(percentile(&self.latencies, p))
    }
}

/// CPU time (user and system) as `/proc/<pid>/stat` counts it, in clock ticks.
#[derive(Clone, Copy)]
struct Cpu(u64);

/// `/proc`'s clock ticks per second (USER_HZ, 100 on every Linux architecture we run on).
const TICKS_PER_SECOND: u64 = 100;

impl Cpu {
    /// A process's own CPU time.
    fn of(pid: u32) -> anyhow::Result<Self> {
        Self::read(&pid.to_string(), 11)
    }

    /// The CPU time of this process's children that it has waited for: every exec'd call.
    fn children() -> anyhow::Result<Self> {
        Self::read("self", 13)
    }

    /// Two fields (user, system) from `first` on, counted after the command name, which may
    /// hold spaces and parentheses itself.
    fn read(pid: &str, first: usize) -> anyhow::Result<Self> {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let tick = |i: usize| -> anyhow::Result<u64> {
            fields
                .get(i)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no field {i} after the name in {path}"))
        };
        Ok(Self(tick(first)? + tick(first + 1)?))
    }

    fn since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0) * 1000 / TICKS_PER_SECOND)
    }
}

/// `burst`: [`BURST`] ADDs at once on one node, each exec'd through nsenter, then as many
/// DELs; per-call ADD latency, failures and duplicate addresses, alternating which plugin's
/// burst goes first.
pub fn run() -> anyhow::Result<()> {
    let bench = Bench::new()?;
    let node = bench.node()?;
    let pool = node
        .ipamd
        .status()
        .map_err(|e| anyhow::anyhow!("asking ipamd's status: {e}"))?;
    let before = IpamdTimes::scrape(&bench)?;
    let mut rounds: [Vec<BurstOutcome>; 2] = Default::default();
    say!(
        "{BURST} CNI ADDs at once on one node, each exec'd through nsenter; {BURST_ROUNDS} \
         rounds alternating which burst goes first; ipamd's pool: the overlay pod CIDR {}, {} \
         addresses, all warm before each burst; per-call ADD latency, ms:",
        node.pod_cidr,
        pool.total_addresses
    );
    for round in 0..BURST_ROUNDS {
        for plugin in Plugin::in_turn(round) {
            let outcome = one_burst(&bench, plugin, round)?;
            say!(
                "  round {}  {:<27} p50 {:>8.2}  p99 {:>8.2}  failures {}  duplicates {}",
                round + 1,
                plugin.label(),
                outcome.p(50),
                outcome.p(99),
                outcome.failures,
                outcome.duplicates
            );
            rounds[usize::from(plugin == Plugin::Ptp)].push(outcome);
        }
    }
    // Per-round figures, then their median: one round that a noisy neighbour slowed moves
    // the median of the rounds much less than it moves a p99 over every call pooled.
    say!("  median of the rounds (lowest-highest):");
    let mut p99s = [0.0; 2];
    for plugin in [Plugin::Ours, Plugin::Ptp] {
        let mine = &rounds[usize::from(plugin == Plugin::Ptp)];
        let (p50, p99) = (
            Rounds::of(mine.iter().map(|o| o.p(50))),
            Rounds::of(mine.iter().map(|o| o.p(99))),
        );
        p99s[usize::from(plugin == Plugin::Ptp)] = p99.median;
        say!(
            "    {:<27} p50 {p50:<28} p99 {p99:<28} failures {}  duplicates {}",
            plugin.label(),
            mine.iter().map(|o| o.failures).sum::<usize>(),
            mine.iter().map(|o| o.duplicates).sum::<usize>()
        );
    }
    say!(
        "    ratio of the median p99s, vpc-cni / reference: {:.2}  (target: at most 0.5)",
        p99s[0] / p99s[1]
    );
    say!(
        "  CPU time per pod (ADD and DEL; user + system, median of the rounds), which bounds a \
         burst on a busy node:"
    );
    for plugin in [Plugin::Ours, Plugin::Ptp] {
        let mine = &rounds[usize::from(plugin == Plugin::Ptp)];
        let calls = Rounds::of(mine.iter().map(|o| ms(o.cpu_calls)));
        let ipamd = Rounds::of(mine.iter().map(|o| ms(o.cpu_ipamd)));
        let total = Rounds::of(mine.iter().map(|o| ms(o.cpu_calls + o.cpu_ipamd)));
        say!(
            "    {:<27} {total:<28} nsenter + plugin + its children {:.2}, ipamd {:.2}",
            plugin.label(),
            calls.median,
            ipamd.median
        );
    }
    IpamdTimes::scrape(&bench)?.since(&before).say();
    Ok(())
}

/// One figure over the rounds: median, lowest and highest.
struct Rounds {
    median: f64,
    low: f64,
    high: f64,
}

impl Rounds {
    fn of(values: impl Iterator<Item = f64>) -> Self {
        let mut values: Vec<f64> = values.collect();
        values.sort_by(f64::total_cmp);
        Self {
            median: values.get(values.len() / 2).copied().unwrap_or_default(),
            low: values.first().copied().unwrap_or_default(),
            high: values.last().copied().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Rounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&format!(
            "{:.2} ({:.2}-{:.2})",
            self.median, self.low, self.high
        ))
    }
}

/// One burst of `plugin`: ADDs at once, then DELs at once; the pool settled after ours.
fn one_burst(bench: &Bench, plugin: Plugin, round: usize) -> anyhow::Result<BurstOutcome> {
    let pods = (0..BURST)
        .map(|i| Bench::pod(&format!("burst-{round}-{i}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ipamd = bench.node()?.ipamd.pid().context("ipamd is not running")?;
    let cpu_before = (Cpu::children()?, Cpu::of(ipamd)?);
    let adds = all_at_once(pods.iter(), |pod| {
        bench.call(Exec::Nsenter, plugin, "ADD", pod, None)
    });
    let mut outcome = BurstOutcome::default();
    let mut addresses = BTreeSet::<Ipv4Addr>::new();
    let mut results = Vec::with_capacity(BURST);
    for add in adds {
        let (elapsed, out) = add?;
        outcome.latencies.push(elapsed);
        match out.ip().and_then(|ip| ip.parse().ok()) {
            Some(ip) if out.success() => {
                if !addresses.insert(ip) {
                    outcome.duplicates += 1;
                }
                results.push(Some(out.json()));
            }
            _ => {
                outcome.failures += 1;
                results.push(None);
            }
        }
    }
    // Every pod is DELed, also those whose ADD failed, as a runtime does.
    let dels = all_at_once(pods.iter().zip(&results), |(pod, prev)| {
        bench.call(Exec::Nsenter, plugin, "DEL", pod, prev.as_ref())
    });
    let cpu_after = (Cpu::children()?, Cpu::of(ipamd)?);
    let count = u32::try_from(pods.len())?;
    outcome.cpu_calls = cpu_after.0.since(cpu_before.0) / count;
    if plugin == Plugin::Ours {
        outcome.cpu_ipamd = cpu_after.1.since(cpu_before.1) / count;
    }
    for del in dels {
        let (_, out) = del?;
        if !out.success() {
            bail!(
                "DEL via {} after the burst failed: {}{}",
                plugin.label(),
                out.stdout,
                out.stderr
            );
        }
    }
    if plugin == Plugin::Ours {
        bench.settle()?;
    }
    Ok(outcome)
}
