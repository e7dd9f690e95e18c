//! kill -9 of ipamd at random moments while pods churn on two nodes. EC2 answers slowly, so
//! kills land in the middle of EC2 calls as well as checkpoint writes and RPCs.

use std::collections::BTreeSet;
use std::time::Duration;

use vpc_cni_cloud::sim::Faults;

use super::churn::{while_churning, Ledger};
use super::{audit, Row, Size, CHAOS_ENV};
use crate::vpc_cluster::VpcCluster;

/// Runs the scenario; panics only when the harness itself cannot run.
#[must_use]
pub fn run(size: Size) -> Row {
    let kills = size.pick(3, 20);
    let workers = size.pick(3, 25);
    let instance = size.pick("m5.large", "m5.xlarge");
    let cluster = VpcCluster::new("ckill", &[("a", instance), ("b", instance)], &CHAOS_ENV)
        .unwrap_or_else(|e| panic!("starting the chaos cluster: {e}"));
    cluster.sim().set_faults(Faults {
        latency_ms: 50,
        ..Faults::default()
    });
    let ledger = Ledger::default();
    let live = while_churning(
        &cluster,
        &ledger,
        workers,
        Duration::from_millis(800),
        || {
            for _ in 0..kills {
                std::thread::sleep(Duration::from_millis(300 + fastrand::u64(0..2_000)));
                let node = &cluster.nodes()[fastrand::usize(0..cluster.nodes().len())];
                node.ipamd.kill9();
                std::thread::sleep(Duration::from_millis(fastrand::u64(0..300)));
                node.ipamd
                    .restart(node.netns())
                    .unwrap_or_else(|e| panic!("restarting ipamd on {}: {e}", node.name));
            }
        },
    );
    cluster.sim().set_faults(Faults::default());

    let refs: Vec<_> = live.iter().collect();
    let mut tally = audit::live_pods(&cluster, &refs, &BTreeSet::new());
    tally.orphaned += audit::orphans(&cluster, &refs);
    ledger.del_all(&cluster, live);
    tally.orphaned += audit::orphans(&cluster, &[]);
    tally.leaked_enis += audit::leaked_enis(&cluster);
    tally.add(&ledger.tally());
    tally.disruptions = kills;
    Row::new(
        "kill -9 during ADD/DEL churn",
        format!(
            "{kills} kills at random moments, 2 {instance} nodes, {} pods churning at once, EC2 at 50 ms per call",
            workers * 2
        ),
        tally,
    )
}
