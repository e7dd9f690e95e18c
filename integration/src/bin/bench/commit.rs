//! AddNetwork RPCs per second on an overlay node whose every assignment is durable (the
//! checkpoint written, fsynced and renamed before the reply), with group commit and without.
//!
//! "With": 16 callers at once, as the runtime's ADDs of a burst of pods arrive; concurrent
//! changes share one checkpoint write. "Without": one caller at a time, so every RPC's change
//! has a write of its own: what each ADD would cost if the store wrote per change. Same ipamd,
//! same number of RPCs, alternating rounds. The checkpoint writes come from ipamd's own
//! metrics (`vpc_cni_checkpoint_write_seconds_count`); each write is two fsyncs (the file,
//! then its directory after the rename).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vpc_cni::client::IpamdClient;
use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_integration::vpcsim::client::request;
use vpc_cni_proto::AttachmentRequest;

use crate::report::say;
use crate::stats::{median, spread_ms};

const RPCS: usize = 400;
const CALLERS: usize = 16;
const ROUNDS: usize = 5;
/// Each durable checkpoint write: fsync of the temp file, fsync of the directory.
const FSYNCS_PER_WRITE: f64 = 2.0;
/// ipamd's default METRICS_ADDR port, inside the node.
const METRICS: &str = "127.0.0.1:61678";

pub fn run() -> anyhow::Result<()> {
    // Sweeps write too: pushed out of the run, and the unwired assignments left alone.
    let options = NodeOptions::new("10.128.0.0/16")
        .with("ASSIGNMENT_GRACE_PERIOD", "600")
        .with("VETH_SWEEP_INTERVAL", "600");
    let node = TestNode::start("bcommit", options).context("starting the node")?;
    let metrics: SocketAddr = METRICS.parse()?;
    let socket = node.ipamd.socket().to_path_buf();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    let (mut grouped, mut single) = (Rounds::default(), Rounds::default());
    for round in 0..ROUNDS {
        for callers in if round % 2 == 0 {
            [CALLERS, 1]
        } else {
            [1, CALLERS]
        } {
            let writes_before = writes(&node, metrics)?;
            let started = Instant::now();
            let keys = runtime.block_on(add_all(&socket, round, callers))?;
            let took = started.elapsed();
            let written = writes(&node, metrics)? - writes_before;
            runtime.block_on(del_all(&socket, keys))?;
            let into = if callers == 1 {
                &mut single
            } else {
                &mut grouped
            };
            into.took.push(took);
            into.writes.push(written);
        }
    }
    say!(
        "\nAddNetwork RPCs with durable checkpoints, {RPCS} per round, {ROUNDS} alternating \
         rounds, median [min-max]:"
    );
    let (g, s) = (grouped.line(), single.line());
    say!(
        "  group commit ({CALLERS} callers at once)   {:>7.0} RPC/s [{:.0}-{:.0}]  {:.3} writes, \
         {:.3} fsyncs per RPC",
        g.rate,
        g.rate_lo,
        g.rate_hi,
        g.writes_per_rpc,
        g.writes_per_rpc * FSYNCS_PER_WRITE
    );
    say!(
        "  one caller at a time (a write each) {:>7.0} RPC/s [{:.0}-{:.0}]  {:.3} writes, \
         {:.3} fsyncs per RPC",
        s.rate,
        s.rate_lo,
        s.rate_hi,
        s.writes_per_rpc,
        s.writes_per_rpc * FSYNCS_PER_WRITE
    );
    say!(
        "  ratio group / one at a time         {:>7.2}",
        g.rate / s.rate
    );
    Ok(())
}

#[derive(Default)]
struct Rounds {
    took: Vec<Duration>,
    writes: Vec<f64>,
}

struct Line {
    rate: f64,
    rate_lo: f64,
    rate_hi: f64,
    writes_per_rpc: f64,
}

impl Rounds {
    fn line(&mut self) -> Line {
        // RPCS is small: exact in f64.
        #[allow(clippy::cast_precision_loss)]
        let rpcs = RPCS as f64;
        let (fast, slow) = spread_ms(&self.took);
        let mut writes = self.writes.clone();
        writes.sort_by(f64::total_cmp);
        Line {
            rate: rpcs / median(&mut self.took).as_secs_f64(),
            rate_lo: rpcs * 1000.0 / slow,
            rate_hi: rpcs * 1000.0 / fast,
            writes_per_rpc: writes.get(writes.len() / 2).copied().unwrap_or_default() / rpcs,
        }
    }
}

/// ipamd's checkpoint writes so far, from its metrics inside the node.
fn writes(node: &TestNode, metrics: SocketAddr) -> anyhow::Result<f64> {
    let reply = node
        .netns
        .in_thread(move || {
            request(metrics, "GET", "/metrics", &[], b"")
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .context("reading ipamd's metrics")?;
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix("vpc_cni_checkpoint_write_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no checkpoint write count in the metrics:\n{}", reply.body))
}

fn request_for(round: usize, i: usize) -> AttachmentRequest {
    AttachmentRequest {
        container_id: format!("commit-{round}-{i}"),
        ifname: "eth0".into(),
        netns: "/run/netns/commit-bench".into(),
        network_name: "vpc-test".into(),
        pod_namespace: "bench".into(),
        pod_name: format!("commit-{round}-{i}"),
        ..AttachmentRequest::default()
    }
}

/// [`RPCS`] AddNetwork calls from `callers` connections at once, each caller's in turn.
async fn add_all(
    socket: &Path,
    round: usize,
    callers: usize,
) -> anyhow::Result<Vec<AttachmentRequest>> {
    let mut tasks = Vec::with_capacity(callers);
    for caller in 0..callers {
        let socket: PathBuf = socket.to_path_buf();
        tasks.push(tokio::spawn(async move {
            let mut client = IpamdClient::connect(&socket).await?;
            let mut mine = Vec::new();
            for i in (caller..RPCS).step_by(callers) {
                let req = request_for(round, i);
                client.rpc().add_network(req.clone()).await?;
                mine.push(req);
            }
            anyhow::Ok(mine)
        }));
    }
    let mut all = Vec::with_capacity(RPCS);
    for task in tasks {
        all.extend(task.await??);
    }
    if all.len() != RPCS {
        bail!("{} of {RPCS} AddNetwork calls answered", all.len());
    }
    Ok(all)
}

/// Gives every address back (not timed).
async fn del_all(socket: &Path, keys: Vec<AttachmentRequest>) -> anyhow::Result<()> {
    let mut client = IpamdClient::connect(socket).await?;
    for req in keys {
        client.rpc().del_network(req).await?;
    }
    Ok(())
}
