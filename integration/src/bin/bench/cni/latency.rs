//! `latency`: one pod's ADD, DEL and ADD+DEL at a time, alternating plugins and ways of exec;
//! ipamd's own share from its metrics, and what nsenter alone costs.

use std::time::{Duration, Instant};

use anyhow::bail;
use vpc_cni_testkit::netns::Netns;

use super::inside::IpamdTimes;
use super::{Bench, Exec, Plugin, Spread, START_ROUNDS};
use crate::report::say;
use crate::stats::{ms, percentile};

/// Pods ADDed and DELed one at a time per plugin and way of exec.
const ROUNDS: usize = 60;

/// One plugin's samples of one way of exec.
#[derive(Default)]
struct Calls {
    add: Vec<Duration>,
    del: Vec<Duration>,
    both: Vec<Duration>,
}

/// `latency`: ADD, DEL and ADD+DEL of one pod at a time, alternating plugins and ways of
/// exec; nsenter is the headline, the in-child setns figure says what nsenter adds.
pub fn run() -> anyhow::Result<()> {
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
    IpamdTimes::scrape(&bench)?.since(&before).say();
    let node = bench.node()?.netns();
    let nsenter = exec_cost(node, START_ROUNDS)?;
    say!(
        "  nsenter --net=<node> true, exec to exit: {nsenter} ms: what each call pays on top \
         of the plugin when a runtime goes through nsenter"
    );
    Ok(())
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
