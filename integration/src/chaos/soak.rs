//! Long churn at a steady rate: ipamd's resident memory, open descriptors, threads and
//! checkpoint size must stay flat (the first five minutes against the last five).

use std::time::{Duration, Instant};

use super::churn::{while_churning, Ledger};
use super::{audit, Row, CHAOS_ENV};
use crate::vpc_cluster::{VpcCluster, VpcNode};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The window compared at each end of the run.
const WINDOW: Duration = Duration::from_secs(300);

/// One reading of ipamd's footprint.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss_kib: u64,
    fds: u64,
    threads: u64,
    checkpoint_bytes: u64,
}

fn status_field(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn sample(node: &VpcNode) -> Option<Sample> {
    let pid = node.ipamd.pid()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let checkpoint = node.ipamd.state_dir().join(ipamd::daemon::CHECKPOINT_FILE);
    Some(Sample {
        rss_kib: status_field(&status, "VmRSS:"),
        fds,
        threads: status_field(&status, "Threads:"),
        checkpoint_bytes: std::fs::metadata(checkpoint).map_or(0, |m| m.len()),
    })
}

fn mean(samples: &[Sample]) -> Sample {
    let n = samples.len().max(1) as u64;
    let sum = |f: fn(&Sample) -> u64| samples.iter().map(f).sum::<u64>() / n;
    Sample {
        rss_kib: sum(|s| s.rss_kib),
        fds: sum(|s| s.fds),
        threads: sum(|s| s.threads),
        checkpoint_bytes: sum(|s| s.checkpoint_bytes),
    }
}

/// Churns for `duration` with enough workers for about five pods a second.
#[must_use]
pub fn run(duration: Duration) -> Row {
    let cluster = VpcCluster::new("csoak", &[("a", "m5.xlarge")], &CHAOS_ENV)
        .unwrap_or_else(|e| panic!("starting the chaos cluster: {e}"));
    let node = cluster.node("a").unwrap_or_else(|e| panic!("{e}"));
    let ledger = Ledger::default();
    let mut samples: Vec<(Duration, Sample)> = Vec::new();
    let started = Instant::now();
    let live = while_churning(&cluster, &ledger, 4, Duration::from_millis(600), || {
        while started.elapsed() < duration {
            std::thread::sleep(SAMPLE_EVERY);
            if let Some(s) = sample(node) {
                samples.push((started.elapsed(), s));
            }
        }
    });
    let refs: Vec<_> = live.iter().collect();
    let mut tally = audit::live_pods(&cluster, &refs, &Default::default());
    ledger.del_all(&cluster, live);
    tally.orphaned += audit::orphans(&cluster, &[]);
    tally.leaked_enis += audit::leaked_enis(&cluster);
    tally.add(&ledger.tally());

    let window = WINDOW.min(duration / 3);
    let first: Vec<Sample> = samples
        .iter()
        .filter(|(t, _)| *t <= window)
        .map(|(_, s)| *s)
        .collect();
    let last: Vec<Sample> = samples
        .iter()
        .filter(|(t, _)| *t + window >= duration)
        .map(|(_, s)| *s)
        .collect();
    let (a, b) = (mean(&first), mean(&last));
    // Flat: memory within a tenth (allocator noise), descriptors and threads within two,
    // and the checkpoint no bigger than twice (it holds only the live pods).
    let flat = b.rss_kib * 10 <= a.rss_kib * 11
        && b.fds <= a.fds + 2
        && b.threads <= a.threads + 2
        && b.checkpoint_bytes <= a.checkpoint_bytes.max(512) * 2;
    let rate = tally.cycles as f64 / duration.as_secs_f64();
    Row::new(
        "soak: steady churn",
        format!("{} min of ADD/DEL on an m5.xlarge, {rate:.1} pods/s", duration.as_secs() / 60),
        tally,
    )
    .with_figures(
        format!(
            "first vs last {} min: RSS {} → {} KiB, fds {} → {}, threads {} → {}, checkpoint {} → {} B",
            window.as_secs() / 60,
            a.rss_kib,
            b.rss_kib,
            a.fds,
            b.fds,
            a.threads,
            b.threads,
            a.checkpoint_bytes,
            b.checkpoint_bytes
        ),
        flat && !first.is_empty() && !last.is_empty(),
    )
}
