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

// Each section in a file of its own, under cni/ beside this file.
#[path = "cni/burst.rs"]
pub mod burst;
#[path = "cni/inside.rs"]
mod inside;
#[path = "cni/latency.rs"]
pub mod latency;
#[path = "cni/start.rs"]
pub mod start;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use vpc_cni_integration::node::plugin_conf;
use vpc_cni_integration::overlay_cluster::{OverlayCluster, OverlayNode};
use vpc_cni_testkit::bins;
use vpc_cni_testkit::plugin::PluginOutput;
use vpc_cni_testkit::pod::TestPod;
use vpc_cni_testkit::process::wait_for;

use crate::stats::{ms, percentile};
use crate::REFERENCE_PLUGINS;
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
        if out.success() {
            return Ok((elapsed, out));
        }
        bail!(
            "{command} via {} failed: {}{}",
            plugin.label(),
            out.stdout,
            out.stderr
        )
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
