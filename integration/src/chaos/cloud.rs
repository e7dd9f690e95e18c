//! A misbehaving cloud while pods churn: throttling bursts, 5xx answers, latency, delayed
//! visibility, the subnet running full; then, under live pods, an ENI detached and deleted
//! and an address unassigned behind ipamd's back. ipamd must converge, report exactly the
//! pods whose address vanished (once EC2 confirms it), and leave nothing leaked.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use vpc_cni_cloud::sim::{CreateEni, FailNext, Faults};
use vpc_cni_testkit::process::wait_for;

use super::churn::{while_churning, Ledger};
use super::{audit, Row, Size, CHAOS_ENV, CONVERGE_LIMIT};
use crate::vpc_cluster::{VpcCluster, VpcPod};

/// What ipamd logs when EC2 confirms that a held address left the node.
const VANISHED_LOG: &str = "EC2 confirms the pod's address left the node's ENIs";

fn fail(actions: &[&str], code: &str, times: u32) -> Vec<FailNext> {
    actions
        .iter()
        .map(|a| FailNext {
            action: (*a).to_string(),
            times,
            code: code.to_string(),
        })
        .collect()
}

/// The faults applied in turn while pods churn.
fn churn_faults() -> Vec<(&'static str, Faults)> {
    let growth = [
        "AssignPrivateIpAddresses",
        "CreateNetworkInterface",
        "AttachNetworkInterface",
    ];
    vec![
        (
            "throttling burst (60% RequestLimitExceeded)",
            Faults {
                throttle_rate: 0.6,
                ..Faults::default()
            },
        ),
        (
            "5xx (InternalError on every growth call, 4 times)",
            Faults {
                fail_next: fail(&growth, "InternalError", 4),
                ..Faults::default()
            },
        ),
        (
            "latency (400 ms per call)",
            Faults {
                latency_ms: 400,
                ..Faults::default()
            },
        ),
        (
            "delayed visibility (3 s)",
            Faults {
                visibility_delay_ms: 3_000,
                ..Faults::default()
            },
        ),
        (
            "subnet full (InsufficientFreeAddressesInSubnet, 3 times)",
            Faults {
                fail_next: fail(&growth[..2], "InsufficientFreeAddressesInSubnet", 3),
                ..Faults::default()
            },
        ),
    ]
}

#[must_use]
pub fn run(size: Size) -> Row {
    let period = size.pick(Duration::from_secs(4), Duration::from_secs(30));
    let workers = size.pick(2, 6);
    let cluster = VpcCluster::new("ccloud", &[("a", "m5.large")], &CHAOS_ENV)
        .unwrap_or_else(|e| panic!("starting the chaos cluster: {e}"));
    let ledger = Ledger::default();
    let mut tally = super::Tally::default();
    let faults = churn_faults();
    for (what, fault) in &faults {
        eprintln!("cloud fault: {what}");
        cluster.sim().set_faults(fault.clone());
        let live = while_churning(
            &cluster,
            &ledger,
            workers,
            Duration::from_millis(500),
            || {
                std::thread::sleep(period);
            },
        );
        cluster.sim().set_faults(Faults::default());
        let refs: Vec<_> = live.iter().collect();
        tally.add(&audit::live_pods(&cluster, &refs, &BTreeSet::new()));
        ledger.del_all(&cluster, live);
        tally.disruptions += 1;
    }

    let (behind, vanished, pods) = behind_the_back(&cluster, &ledger, size);
    tally.add(&behind);
    tally.vanished = vanished.len();
    let node = cluster.node("a").unwrap_or_else(|e| panic!("{e}"));
    let reported = |ips: &BTreeSet<Ipv4Addr>| {
        let log = node.ipamd.log_text();
        ips.iter()
            .filter(|ip| {
                log.lines()
                    .any(|l| l.contains(VANISHED_LOG) && l.contains(&format!("ip={ip} ")))
            })
            .count()
    };
    let _ = wait_for(CONVERGE_LIMIT, || {
        std::thread::sleep(Duration::from_millis(500));
        (reported(&vanished) == vanished.len()).then_some(())
    });
    tally.reported = reported(&vanished);
    if tally.reported != tally.vanished {
        let log = node.ipamd.log_text();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        eprintln!(
            "vanished {vanished:?}, reported {}; ipamd's log ends:\n{}",
            tally.reported,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    ledger.del_all(&cluster, pods);

    tally.orphaned += audit::orphans(&cluster, &[]);
    tally.leaked_enis += audit::leaked_enis(&cluster);
    tally.add(&ledger.tally());
    Row::new(
        "cloud faults while pods churn",
        format!(
            "m5.large; {} for {}s each with {workers} pods churning; then an ENI with pods detached and deleted and one pod's address unassigned behind ipamd's back",
            faults.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", "),
            period.as_secs()
        ),
        tally,
    )
}

/// Live pods on two ENIs; the secondary ENI is detached and deleted and one primary-ENI
/// pod's address unassigned, as another actor would. Returns the audit of the untouched
/// pods, the addresses that vanished, and the pods (still running).
fn behind_the_back(
    cluster: &VpcCluster,
    ledger: &Ledger,
    size: Size,
) -> (super::Tally, BTreeSet<Ipv4Addr>, Vec<VpcPod>) {
    let keep_trying = AtomicBool::new(false);
    // m5.large: 9 pod addresses per ENI, so 12 pods use two ENIs.
    let pods: Vec<VpcPod> = (0..size.pick(12, 16))
        .filter_map(|_| ledger.add(cluster, "a", &keep_trying))
        .collect();
    let device = |p: &VpcPod| p.ip().ok().and_then(|ip| cluster.device_index_of(ip));
    let mut vanished = BTreeSet::new();
    if let Some(eni) = pods
        .iter()
        .find(|p| device(p).is_some_and(|d| d > 0))
        .and_then(|p| cluster.eni_of(p.ip().ok()?))
    {
        for p in &pods {
            if let Ok(ip) = p.ip() {
                if cluster.eni_of(ip).is_some_and(|e| e.id == eni.id) {
                    vanished.insert(ip);
                }
            }
        }
        if let Some(attachment) = &eni.attachment {
            cluster
                .sim()
                .detach_network_interface(&attachment.id, true)
                .unwrap_or_else(|e| panic!("detaching {}: {e:?}", eni.id));
        }
        cluster
            .sim()
            .delete_network_interface(&eni.id)
            .unwrap_or_else(|e| panic!("deleting {}: {e:?}", eni.id));
    }
    if let Some((pod_ip, eni)) = pods
        .iter()
        .filter(|p| device(p) == Some(0))
        .find_map(|p| Some((p.ip().ok()?, cluster.eni_of(p.ip().ok()?)?)))
    {
        cluster
            .sim()
            .unassign_private_ip_addresses(&eni.id, &[pod_ip], &[])
            .unwrap_or_else(|e| panic!("unassigning {pod_ip}: {e:?}"));
        vanished.insert(pod_ip);
    }
    // Another actor takes the freed addresses at once, as EC2 would hand them to whoever
    // asks next: ipamd must not get them back and must report the pods.
    for ip in &vanished {
        cluster
            .sim()
            .create_network_interface(CreateEni {
                subnet_id: cluster.subnet().id.clone(),
                description: "chaos: another actor".to_string(),
                private_ip: Some(*ip),
                ..CreateEni::default()
            })
            .unwrap_or_else(|e| panic!("taking {ip} for another actor: {e:?}"));
    }
    let refs: Vec<_> = pods.iter().collect();
    let tally = audit::live_pods(cluster, &refs, &vanished);
    (tally, vanished, pods)
}
