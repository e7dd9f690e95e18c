//! ipamd restarted again and again (kill -9 and SIGTERM in turn) under steady pod-to-pod
//! pings, in both modes: at most one packet lost per ping per restart, no pod's address
//! changes, and no route, rule, neighbour or FDB entry (the VXLAN entries) of the node is
//! deleted meanwhile, not even for a moment.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use vpc_cni_testkit::netns::Netns;

use std::sync::atomic::AtomicBool;

use super::audit::pod_address;
use super::churn::Ledger;
use super::{Row, Size, Tally};
use crate::ipamd_proc::IpamdProcess;
use crate::node::ClusterPod;
use crate::overlay_cluster::OverlayCluster;
use crate::ping::{KillOnDrop, Ping};
use crate::vpc_cluster::VpcCluster;

const PING_BEFORE: Duration = Duration::from_secs(1);
const PING_AFTER: Duration = Duration::from_secs(2);

/// The node whose ipamd restarts, the pods it serves, and a pod elsewhere that pings them.
struct Bed<'a> {
    node: &'a Netns,
    ipamd: &'a IpamdProcess,
    targets: Vec<&'a ClusterPod>,
    from: &'a ClusterPod,
}

/// What the restarts did.
#[derive(Default)]
struct Seen {
    worst_loss: u64,
    total_loss: u64,
    deletions: Vec<String>,
    moved: usize,
}

/// Watches the node's IPv4 routes, rules and neighbours, and its bridge FDB (the VXLAN
/// device's forwarding entries), for deletions.
fn monitors(node: &Netns) -> Vec<KillOnDrop> {
    [
        (
            "ip",
            vec!["-n", node.name(), "-4", "monitor", "route", "rule", "neigh"],
        ),
        ("bridge", vec!["-n", node.name(), "monitor", "fdb"]),
    ]
    .into_iter()
    .map(|(program, args)| {
        let child = std::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} monitor: {e}"));
        KillOnDrop(Some(child))
    })
    .collect()
}

fn restarts(bed: &Bed<'_>, count: usize) -> Seen {
    let addresses: Vec<(Ipv4Addr, &ClusterPod)> = bed
        .targets
        .iter()
        .filter_map(|p| Some((pod_address(&p.netns)?, *p)))
        .collect();
    let mut seen = Seen::default();
    let mut watches = monitors(bed.node);
    for i in 0..count {
        let pings: Vec<Ping> = addresses
            .iter()
            .map(|(ip, p)| {
                Ping::start(&format!("restart {i}: to {}", p.name), &bed.from.netns, *ip)
            })
            .collect();
        std::thread::sleep(PING_BEFORE);
        if i % 2 == 0 {
            bed.ipamd.kill9();
        } else {
            let _ = bed.ipamd.terminate();
        }
        bed.ipamd
            .restart(bed.node)
            .unwrap_or_else(|e| panic!("restarting ipamd: {e}"));
        std::thread::sleep(PING_AFTER);
        for outcome in pings.into_iter().map(Ping::stop) {
            seen.worst_loss = seen.worst_loss.max(outcome.lost);
            seen.total_loss += outcome.lost;
            if outcome.lost > 1 {
                eprintln!(
                    "{}: {} lost\n{}",
                    outcome.what, outcome.lost, outcome.output
                );
            }
        }
        for (ip, p) in &addresses {
            let held = bed
                .ipamd
                .assigned_ip(&p.container_id, "eth0")
                .ok()
                .flatten();
            if pod_address(&p.netns) != Some(*ip) || held != Some(ip.to_string()) {
                seen.moved += 1;
                eprintln!(
                    "restart {i}: {} had {ip}, now kernel {:?} ipamd {held:?}",
                    p.name,
                    pod_address(&p.netns)
                );
            }
        }
    }
    for watch in &mut watches {
        let out = watch.stop(Signal::SIGTERM);
        seen.deletions.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("Deleted"))
                .map(str::to_string),
        );
    }
    seen
}

fn row(mode: &str, setup: String, count: usize, pods: usize, seen: &Seen) -> Row {
    let tally = Tally {
        lost: seen.moved,
        disruptions: count,
        pods_audited: pods,
        ..Tally::default()
    };
    let ok = seen.worst_loss <= 1 && seen.deletions.is_empty();
    for d in &seen.deletions {
        eprintln!("{mode}: deleted during restarts: {d}");
    }
    Row::new(&format!("ipamd restarted under pod-to-pod traffic ({mode})"), setup, tally).with_figures(
        format!(
            "worst {} packet(s) lost per ping per restart, {} lost in all; {} route/rule/neighbour/FDB deletions",
            seen.worst_loss,
            seen.total_loss,
            seen.deletions.len()
        ),
        ok,
    )
}

/// The VPC row: pods on a node's primary and a secondary ENI, pinged from another node.
#[must_use]
pub fn vpc(size: Size) -> Row {
    let count = size.pick(2, 10);
    let cluster = VpcCluster::new("crst", &[("a", "t3.medium"), ("b", "t3.medium")], &[])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    // t3.medium: 5 pod addresses per ENI; the sixth pod lands on a secondary ENI. Added as
    // a runtime adds them: an ADD that finds the pool empty ("try again later") is retried.
    let ledger = Ledger::default();
    let keep_trying = AtomicBool::new(false);
    let add = |node: &str| {
        ledger
            .add(&cluster, node, &keep_trying)
            .unwrap_or_else(|| panic!("no pod on {node}"))
    };
    let pods: Vec<ClusterPod> = (0..6).map(|_| add("a")).collect();
    let from = add("b");
    let a = cluster.node("a").unwrap_or_else(|e| panic!("{e}"));
    let targets = vec![&pods[0], &pods[5]];
    let seen = restarts(
        &Bed {
            node: a.netns(),
            ipamd: &a.ipamd,
            targets,
            from: &from,
        },
        count,
    );
    row(
        "VPC",
        format!("{count} restarts of node a's ipamd (kill -9 and SIGTERM in turn), pings from node b to a primary-ENI and a secondary-ENI pod"),
        count,
        2,
        &seen,
    )
}

/// The overlay row: pods on one node pinged from a pod on another, across VXLAN.
#[must_use]
pub fn overlay(size: Size) -> Row {
    let count = size.pick(2, 10);
    let cluster = OverlayCluster::new("crso", 2, 1500)
        .unwrap_or_else(|e| panic!("starting the overlay cluster: {e}"));
    let pods: Vec<ClusterPod> = (0..2)
        .map(|i| cluster.pod("node-1", &format!("p{i}")))
        .collect();
    let from = cluster.pod("node-2", "q0");
    let n1 = cluster.node("node-1").unwrap_or_else(|e| panic!("{e}"));
    let seen = restarts(
        &Bed {
            node: n1.netns(),
            ipamd: &n1.ipamd,
            targets: pods.iter().collect(),
            from: &from,
        },
        count,
    );
    row(
        "overlay",
        format!("{count} restarts of node-1's ipamd (kill -9 and SIGTERM in turn), pings from node-2 across VXLAN"),
        count,
        2,
        &seen,
    )
}
