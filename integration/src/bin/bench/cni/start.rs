//! `start`: the plugin's own start and exit, a `VERSION` exec, against ptp's.

use std::process::Command;
use std::time::Instant;

use anyhow::bail;
use vpc_cni_testkit::netns::feed;

use super::{Plugin, Spread, START_ROUNDS};
use crate::report::say;
use crate::stats::{ms, percentile};

/// `start`: the plugin's own start and exit, a `VERSION` exec with no namespace involved,
/// alternating.
pub fn run() -> anyhow::Result<()> {
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
