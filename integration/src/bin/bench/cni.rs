//! The CNI call rows of `make bench`, each vpc-cni (warm pool) against Debian's `ptp` +
//! `host-local` on the same node in the same run, alternating so machine noise hits both
//! alike:
//! - `latency`: one pod's ADD, DEL and ADD+DEL, every call exec'd through
//!   `nsenter --net=<node>` as containerd and podman (which live outside the node's
//!   namespace) exec it, and again with the namespace joined in the child before exec;
//! - `burst`: 100 ADDs at once on one node, per-call latency, failures and duplicates;
//! - `start`: the plugin's own start, a `VERSION` exec.
//!
//! The node is a one-node overlay cluster: its namespace has an uplink (`eth0` on a
//! bridged underlay) and a default route through it, as a real node has, and ipamd keeps
//! its checkpoint on tmpfs, as a node does in `/run/vpc-cni`.
//!
//! Nothing here asserts a time: this prints figures for people to compare.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use vpc_cni_integration::node::plugin_conf;
use vpc_cni_integration::overlay_cluster::{OverlayCluster, OverlayNode};
use vpc_cni_integration::prometheus::scrape;
use vpc_cni_testkit::bins;
use vpc_cni_testkit::netns::{feed, Netns};
use vpc_cni_testkit::plugin::PluginOutput;
use vpc_cni_testkit::pod::TestPod;
use vpc_cni_testkit::process::{all_at_once, wait_for};

use crate::report::say;
use crate::REFERENCE_PLUGINS;

/// Pods ADDed and DELed one at a time per plugin and way of exec.
const ROUNDS: usize = 60;
/// Pods in one burst, and bursts per plugin.
const BURST: usize = 100;
const BURST_ROUNDS: usize = 5;
/// `VERSION` execs per plugin.
const START_ROUNDS: usize = 200;
/// The newest CNI version Debian's plugins speak.
const CNI_VERSION: &str = "1.0.0";
/// A tmpfs every Linux host has, for ipamd's checkpoint.
const TMPFS: &str = "/dev/shm";
/// The underlay's MTU, a plain Ethernet's.
const MTU: u32 = 1500;
/// How long the warm pool may take to get its addresses back after a burst (a harness bound).
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// The two plugins compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plugin {
    Ours,
    Ptp,
}

impl Plugin {
    /// Both, in an order that alternates with `round`, so neither always runs first (on a
    /// warmer or a colder cache).
    fn in_turn(round: usize) -> [Self; 2] {
        if round.is_multiple_of(2) {
            [Self::Ours, Self::Ptp]
        } else {
            [Self::Ptp, Self::Ours]
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Ours => "vpc-cni (warm pool)",
            Self::Ptp => "ptp + host-local (Debian)",
        }
    }

    /// The binary alone, for rows with no IPAM involved.
    fn name(self) -> &'static str {
        match self {
            Self::Ours => "vpc-cni",
            Self::Ptp => "ptp (Debian)",
        }
    }

    fn program(self) -> PathBuf {
        match self {
            Self::Ours => bins::plugin(),
            Self::Ptp => Path::new(REFERENCE_PLUGINS).join("ptp"),
        }
    }
}

/// How the plugin is put into the node's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exec {
    /// `nsenter --net=<node> <plugin>`: a runtime outside the node's namespace.
    Nsenter,
    /// setns in the forked child before exec: one exec less.
    Setns,
}

/// One node with an uplink and a default route, its ipamd, and the configuration each
/// plugin gets on it.
struct Bench {
    // Field order is drop order: the cluster (ipamd, then namespaces) before host-local's
    // directory.
    cluster: OverlayCluster,
    ours: Value,
    ptp: Value,
    _host_local: tempfile::TempDir,
    /// ipamd's checkpoint directory, on tmpfs.
    _state: tempfile::TempDir,
}

impl Bench {
    fn new() -> anyhow::Result<Self> {
        let state = checkpoint_dir()?;
        let state_path = state
            .path()
            .to_str()
            .context("the state directory's path")?;
        // The harness's own state directory (on the test's disk) is overridden here.
        let cluster = OverlayCluster::with_env("bnc", 1, MTU, &[("IPAMD_STATE_DIR", state_path)])
            .context("starting the node and ipamd")?;
        let host_local = tempfile::tempdir()?;
        let node = cluster.nodes().first().context("the node is missing")?;
        let ours = plugin_conf(CNI_VERSION, "vpc-bench", &node.ipamd);
        let ptp = json!({
            "cniVersion": CNI_VERSION,
            "name": "ptp-bench",
            "type": "ptp",
            "ipam": {
                "type": "host-local",
                "subnet": "10.200.0.0/16",
                "dataDir": host_local.path().join("host-local"),
            }
        });
        Ok(Self {
            cluster,
            ours,
            ptp,
            _host_local: host_local,
            _state: state,
        })
    }

    fn node(&self) -> anyhow::Result<&OverlayNode> {
        self.cluster.nodes().first().context("the node is missing")
    }

    /// A fresh pod namespace (not ADDed).
    fn pod(name: &str) -> anyhow::Result<TestPod> {
        TestPod::create(name, "bcp").with_context(|| format!("creating pod {name}"))
    }

    /// One call of `plugin` for `pod`, timed from exec to exit; DEL carries the ADD's
    /// result as prevResult, as containerd sends it.
    fn call(
        &self,
        exec: Exec,
        plugin: Plugin,
        command: &str,
        pod: &TestPod,
        prev: Option<&Value>,
    ) -> anyhow::Result<(Duration, PluginOutput)> {
        let mut conf = match plugin {
            Plugin::Ours => self.ours.clone(),
            Plugin::Ptp => self.ptp.clone(),
        };
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        let call = pod.invocation(command, &conf);
        let (node, program) = (self.node()?.netns(), plugin.program());
        let started = Instant::now();
        let out = match exec {
            Exec::Nsenter => call.run_nsenter(node, &program),
            Exec::Setns => call.run_program(node, &program),
        }
        .with_context(|| format!("running {command} via {}", plugin.label()))?;
        Ok((started.elapsed(), out))
    }

    /// [`Bench::call`] that must succeed.
    fn call_ok(
        &self,
        exec: Exec,
        plugin: Plugin,
        command: &str,
        pod: &TestPod,
        prev: Option<&Value>,
    ) -> anyhow::Result<(Duration, PluginOutput)> {
        let (elapsed, out) = self.call(exec, plugin, command, pod, prev)?;
        if !out.success() {
            bail!(
                "{command} via {} failed: {}{}",
                plugin.label(),
                out.stdout,
                out.stderr
            );
        }
        Ok((elapsed, out))
    }

    /// Waits until ipamd has every address back in its warm pool (none assigned or cooling).
    fn settle(&self) -> anyhow::Result<()> {
        let ipamd = &self.node()?.ipamd;
        wait_for(SETTLE_LIMIT, || {
            ipamd
                .status()
                .ok()
                .filter(|s| s.assigned_addresses == 0 && s.cooling_addresses == 0)
        })
        .map(drop)
        .with_context(|| format!("ipamd's pool did not settle within {SETTLE_LIMIT:?}"))
    }
}

/// A directory for ipamd's checkpoint on tmpfs, where a node keeps it (`/run/vpc-cni`; `/run`
/// is tmpfs on every systemd host). On the disk the harness's directories live on, every
/// ADD and DEL would wait for an fsync to that disk, which no node pays.
fn checkpoint_dir() -> anyhow::Result<tempfile::TempDir> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    let on_tmpfs = mounts.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some(TMPFS) && fields.next() == Some("tmpfs")
    });
    if !on_tmpfs {
        bail!("{TMPFS} is not a tmpfs: ipamd's checkpoint would be written to a disk");
    }
    tempfile::Builder::new()
        .prefix("vpc-cni-bench")
        .tempdir_in(TMPFS)
        .with_context(|| format!("creating a directory in {TMPFS}"))
}

/// The 10th, 50th and 90th percentiles of some samples.
struct Spread {
    p10: Duration,
    p50: Duration,
    p90: Duration,
}

impl Spread {
    fn of(samples: &[Duration]) -> Self {
        Self {
            p10: percentile(samples, 10),
            p50: percentile(samples, 50),
            p90: percentile(samples, 90),
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so a width in the caller's format string applies to the whole figure.
        f.pad(&format!(
            "{:.2} ({:.2}-{:.2})",
            ms(self.p50),
            ms(self.p10),
            ms(self.p90)
        ))
    }
}

/// The nearest-rank percentile `p` of `samples` (zero when there are none).
fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One plugin's samples of one way of exec.
#[derive(Default)]
struct Calls {
    add: Vec<Duration>,
    del: Vec<Duration>,
    both: Vec<Duration>,
}

/// `latency`: ADD, DEL and ADD+DEL of one pod at a time, alternating plugins and ways of
/// exec; nsenter is the headline, the in-child setns figure says what nsenter adds.
pub fn latency() -> anyhow::Result<()> {
    let bench = Bench::new()?;
    let before = IpamdTimes::scrape(&bench)?;
    let ways = [Exec::Nsenter, Exec::Setns];
    let mut calls: [[Calls; 2]; 2] = Default::default();
    for round in 0..ROUNDS {
        let order = if round.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        };
        for w in order {
            let exec = ways[w];
            for plugin in Plugin::in_turn(round / 2 + w) {
                let pod = Bench::pod(&format!("lat-{round}"))?;
                let (add, out) = bench.call_ok(exec, plugin, "ADD", &pod, None)?;
                let (del, _) = bench.call_ok(exec, plugin, "DEL", &pod, Some(&out.json()))?;
                let samples = &mut calls[w][usize::from(plugin == Plugin::Ptp)];
                samples.add.push(add);
                samples.del.push(del);
                samples.both.push(add + del);
            }
        }
    }

    say!(
        "CNI calls of one pod at a time, {ROUNDS} alternating rounds; node with an uplink and a \
         default route, ipamd's checkpoint on tmpfs; ms, p50 (p10-p90):"
    );
    for (w, title) in [
        "exec'd through nsenter --net=<node> (as containerd and podman call):",
        "exec'd with the node's namespace joined in the child (setns before exec):",
    ]
    .into_iter()
    .enumerate()
    {
        say!("  {title}");
        say!("    {:<27} {:<23} {:<23} ADD+DEL", "", "ADD", "DEL");
        for plugin in [Plugin::Ours, Plugin::Ptp] {
            let c = &calls[w][usize::from(plugin == Plugin::Ptp)];
            say!(
                "    {:<27} {:<23} {:<23} {}",
                plugin.label(),
                Spread::of(&c.add),
                Spread::of(&c.del),
                Spread::of(&c.both)
            );
        }
        let (ours, theirs) = (
            percentile(&calls[w][0].both, 50),
            percentile(&calls[w][1].both, 50),
        );
        say!(
            "    ratio of ADD+DEL p50s, vpc-cni / reference: {:.2}  (target: at most 0.25)",
            ms(ours) / ms(theirs)
        );
    }
    let inside = IpamdTimes::scrape(&bench)?.since(&before);
    say!(
        "  inside ipamd (its metrics, mean over vpc-cni's calls above): AddNetwork {:.2} ms, \
         DelNetwork {:.2} ms; a checkpoint write {:.2} ms ({} writes for {} calls)",
        inside.mean("ADD"),
        inside.mean("DEL"),
        inside.mean_write(),
        inside.get(WRITES_COUNT),
        inside.get(&requests("ADD", "count")) + inside.get(&requests("DEL", "count")),
    );
    let node = bench.node()?.netns();
    let nsenter = exec_cost(node, START_ROUNDS)?;
    say!(
        "  nsenter --net=<node> true, exec to exit: {nsenter} ms: what each call pays on top \
         of the plugin when a runtime goes through nsenter"
    );
    Ok(())
}

/// ipamd's default metrics address, reached from inside the node.
const METRICS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 61678);
const WRITES_SUM: &str = "vpc_cni_checkpoint_write_seconds_sum";
const WRITES_COUNT: &str = "vpc_cni_checkpoint_write_seconds_count";

/// `vpc_cni_request_duration_seconds_<part>` of one command.
fn requests(command: &str, part: &str) -> String {
    format!("vpc_cni_request_duration_seconds_{part}{{command=\"{command}\"}}")
}

/// The sums and counts of ipamd's request and checkpoint-write histograms.
struct IpamdTimes(BTreeMap<String, f64>);

impl IpamdTimes {
    fn scrape(bench: &Bench) -> anyhow::Result<Self> {
        let all = scrape(bench.node()?.netns(), METRICS).context("scraping ipamd's metrics")?;
        Ok(Self(
            all.into_iter()
                .filter(|(series, _)| {
                    series.starts_with("vpc_cni_request_duration_seconds_")
                        || series.starts_with("vpc_cni_checkpoint_write_seconds_")
                })
                .collect(),
        ))
    }

    /// What happened between `earlier` and this scrape.
    fn since(mut self, earlier: &Self) -> Self {
        for (series, value) in &mut self.0 {
            *value -= earlier.get(series);
        }
        self
    }

    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or_default()
    }

    /// Mean time of one `command` request, ms.
    fn mean(&self, command: &str) -> f64 {
        per_call(
            self.get(&requests(command, "sum")),
            self.get(&requests(command, "count")),
        )
    }

    /// Mean time of one checkpoint write, ms.
    fn mean_write(&self) -> f64 {
        per_call(self.get(WRITES_SUM), self.get(WRITES_COUNT))
    }
}

/// Seconds over calls, in ms per call (zero without calls).
fn per_call(seconds: f64, calls: f64) -> f64 {
    if calls > 0.0 {
        seconds * 1000.0 / calls
    } else {
        0.0
    }
}

/// `nsenter --net=<node> true`, exec to exit, `rounds` times.
fn exec_cost(node: &Netns, rounds: usize) -> anyhow::Result<Spread> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let out = node.nsenter_command("true").output()?;
        samples.push(started.elapsed());
        if !out.status.success() {
            bail!(
                "nsenter into {} failed: {}",
                node.name(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(Spread::of(&samples))
}

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
pub fn burst() -> anyhow::Result<()> {
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
    let inside = IpamdTimes::scrape(&bench)?.since(&before);
    say!(
        "  inside ipamd (its metrics, mean over vpc-cni's calls): AddNetwork {:.2} ms, \
         DelNetwork {:.2} ms; {} checkpoint writes for {} calls, {:.2} ms each",
        inside.mean("ADD"),
        inside.mean("DEL"),
        inside.get(WRITES_COUNT),
        inside.get(&requests("ADD", "count")) + inside.get(&requests("DEL", "count")),
        inside.mean_write(),
    );
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

/// `start`: the plugin's own start and exit, a `VERSION` exec with no namespace involved,
/// alternating.
pub fn start() -> anyhow::Result<()> {
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..START_ROUNDS {
        for plugin in Plugin::in_turn(round) {
            let started = Instant::now();
            let out = feed(
                Command::new(plugin.program())
                    .env_clear()
                    .env("CNI_COMMAND", "VERSION"),
                br#"{"cniVersion":"1.0.0"}"#,
            )?;
            samples[usize::from(plugin == Plugin::Ptp)].push(started.elapsed());
            if !out.status.success() {
                bail!(
                    "VERSION via {} failed: {}",
                    plugin.label(),
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
    }
    say!(
        "Plugin start, VERSION exec to exit, {START_ROUNDS} alternating rounds, ms, p50 (p10-p90):"
    );
    for plugin in [Plugin::Ours, Plugin::Ptp] {
        say!(
            "  {:<27} {}",
            plugin.name(),
            Spread::of(&samples[usize::from(plugin == Plugin::Ptp)])
        );
    }
    say!(
        "  ratio of p50s, vpc-cni / ptp: {:.2}",
        ms(percentile(&samples[0], 50)) / ms(percentile(&samples[1], 50))
    );
    Ok(())
}
