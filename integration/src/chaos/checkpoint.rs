//! The checkpoint lost or damaged under running pods: deleted, torn, garbage, another
//! format. ipamd must start anyway, set an unreadable file aside, say what it rebuilt from
//! the kernel, keep every live pod's address, and hand new pods only free ones. The pods it
//! rebuilt (their runtime ids are not in the kernel) are given back by the veth sweep once
//! they are deleted.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::churn::Ledger;
use super::{audit, Row, Size, CHAOS_ENV};
use crate::vpc_cluster::VpcCluster;

/// What happens to the file while ipamd is down; `None` deletes it.
const DAMAGE: [(&str, Option<&[u8]>); 4] = [
    ("deleted", None),
    ("garbage", Some(b"\x00\x01 this is not json \xff")),
    (
        "torn",
        Some(br#"{"version":"vpc-cni/ipam/v1","mode":"vpc","assignments":[{"key""#),
    ),
    (
        "older format",
        Some(br#"{"version":"vpc-cni/ipam/v0","allocations":{}}"#),
    ),
];

fn set_aside_files(state: &Path) -> usize {
    std::fs::read_dir(state).map_or(0, |dir| {
        dir.flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("ipam.json.unreadable.")
            })
            .count()
    })
}

#[must_use]
pub fn run(size: Size) -> Row {
    let pods = size.pick(4, 30);
    let instance = size.pick("t3.medium", "m5.xlarge");
    let cluster = VpcCluster::new("cckpt", &[("a", instance)], &CHAOS_ENV)
        .unwrap_or_else(|e| panic!("starting the chaos cluster: {e}"));
    let node = cluster.node("a").unwrap_or_else(|e| panic!("{e}"));
    let ledger = Ledger::default();
    let keep_trying = AtomicBool::new(false);
    let mut live: Vec<_> = (0..pods)
        .filter_map(|_| ledger.add(&cluster, "a", &keep_trying))
        .collect();
    let mut tally = super::Tally::default();
    let mut problems = Vec::new();

    for (what, damage) in DAMAGE {
        let state = node.ipamd.state_dir().to_owned();
        let aside_before = set_aside_files(&state);
        node.ipamd.kill9();
        let checkpoint = state.join(ipamd::daemon::CHECKPOINT_FILE);
        let damaged = match damage {
            None => std::fs::remove_file(&checkpoint),
            Some(bytes) => std::fs::write(&checkpoint, bytes),
        };
        damaged.unwrap_or_else(|e| panic!("damaging {}: {e}", checkpoint.display()));
        if let Err(e) = node.ipamd.restart(node.netns()) {
            problems.push(format!("{what}: ipamd did not start: {e}"));
            break;
        }
        tally.disruptions += 1;
        if !node
            .ipamd
            .log_text()
            .contains("rebuilt assignments from the kernel")
        {
            problems.push(format!("{what}: ipamd did not say what it rebuilt"));
        }
        let aside = set_aside_files(&state) - aside_before;
        if aside != usize::from(damage.is_some()) {
            problems.push(format!("{what}: {aside} files set aside"));
        }
        let refs: Vec<_> = live.iter().collect();
        tally.add(&audit::live_pods(&cluster, &refs, &BTreeSet::new()));
        if let Some(pod) = ledger.add(&cluster, "a", &keep_trying) {
            live.push(pod);
        }
    }
    let refs: Vec<_> = live.iter().collect();
    tally.add(&audit::live_pods(&cluster, &refs, &BTreeSet::new()));
    tally.orphaned += audit::orphans(&cluster, &refs);
    ledger.del_all(&cluster, live);
    tally.orphaned += audit::orphans(&cluster, &[]);
    tally.leaked_enis += audit::leaked_enis(&cluster);
    tally.add(&ledger.tally());
    for p in &problems {
        eprintln!("checkpoint scenario: {p}");
    }
    Row::new(
        "checkpoint lost or damaged under running pods",
        format!("{pods} pods on a {instance}; the file deleted, garbage, torn, older format, one new pod after each"),
        tally,
    )
    .with_figures(
        if problems.is_empty() {
            "ipamd started, set each unreadable file aside and said what it rebuilt".to_string()
        } else {
            problems.join("; ")
        },
        problems.is_empty(),
    )
}
