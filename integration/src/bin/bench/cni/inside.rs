//! ipamd's own share of the calls, from the sums and counts of its request and
//! checkpoint-write histograms, scraped before and after.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use vpc_cni_integration::prometheus::scrape;

use super::Bench;
use crate::report::say;

/// ipamd's default metrics address, reached from inside the node.
const METRICS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 61678);

const WRITES_SUM: &str = "vpc_cni_checkpoint_write_seconds_sum";

const WRITES_COUNT: &str = "vpc_cni_checkpoint_write_seconds_count";

/// `vpc_cni_request_duration_seconds_<part>` of one command.
fn requests(command: &str, part: &str) -> String {
    format!("vpc_cni_request_duration_seconds_{part}{{command=\"{command}\"}}")
}

/// The sums and counts of ipamd's request and checkpoint-write histograms.
pub(super) struct IpamdTimes(BTreeMap<String, f64>);

impl IpamdTimes {
    pub(super) fn scrape(bench: &Bench) -> anyhow::Result<Self> {
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
    pub(super) fn since(mut self, earlier: &Self) -> Self {
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

    /// One line: mean AddNetwork and DelNetwork, and the checkpoint writes they took (fewer
    /// writes than calls: group commit).
    pub(super) fn say(&self) {
        say!(
            "  inside ipamd (its metrics, mean over vpc-cni's calls): AddNetwork {:.2} ms, \
             DelNetwork {:.2} ms; {} checkpoint writes for {} calls, {:.2} ms each",
            self.mean("ADD"),
            self.mean("DEL"),
            self.get(WRITES_COUNT),
            self.get(&requests("ADD", "count")) + self.get(&requests("DEL", "count")),
            self.mean_write(),
        );
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
