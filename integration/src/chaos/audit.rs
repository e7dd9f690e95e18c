//! Ground truth: which address each live pod namespace really carries, what each node's
//! ipamd has durably assigned (its checkpoint file, which survives kill -9), and which
//! addresses EC2 has on each node's ENIs. The counts every scenario must keep at 0 come
//! from comparing the three.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use ipamd::store::CheckpointData;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::wait_for;

use super::CONVERGE_LIMIT;
use crate::vpc_cluster::{VpcCluster, VpcNode, VpcPod};

/// A scenario's counts. The first five must be 0; the rest say how much was exercised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// An address carried by two live pods, or handed by an ADD to a pod while another held it.
    pub duplicates: usize,
    /// Addresses ipamd still holds for no live pod once its sweep had time to run.
    pub orphaned: usize,
    /// Live pods whose address their node's ipamd does not hold, or no ENI of their node has,
    /// not counting those a fault took away on purpose (`vanished`).
    pub lost: usize,
    /// Our ENIs left unattached once the leaked-ENI cleanup had time to run.
    pub leaked_enis: usize,
    /// DELs that never succeeded within the bound.
    pub failed_dels: usize,
    /// Pods whose address a fault took away behind ipamd's back, and how many of those ipamd
    /// reported (they must match).
    pub vanished: usize,
    pub reported: usize,
    /// ADD+DEL cycles completed, ADDs that failed and were retried (ipamd down), DEL
    /// attempts beyond the first, kills or restarts, pods audited.
    pub cycles: usize,
    pub failed_adds: usize,
    pub del_retries: usize,
    pub disruptions: usize,
    pub pods_audited: usize,
}

impl Tally {
    /// Whether every promise held.
    #[must_use]
    pub fn clean(&self) -> bool {
        self.duplicates == 0
            && self.orphaned == 0
            && self.lost == 0
            && self.leaked_enis == 0
            && self.failed_dels == 0
            && self.vanished == self.reported
    }

    pub fn add(&mut self, other: &Tally) {
        self.duplicates += other.duplicates;
        self.orphaned += other.orphaned;
        self.lost += other.lost;
        self.leaked_enis += other.leaked_enis;
        self.failed_dels += other.failed_dels;
        self.vanished += other.vanished;
        self.reported += other.reported;
        self.cycles += other.cycles;
        self.failed_adds += other.failed_adds;
        self.del_retries += other.del_retries;
        self.disruptions += other.disruptions;
        self.pods_audited += other.pods_audited;
    }
}

/// The address on a pod namespace's eth0, as the kernel has it.
#[must_use]
pub fn pod_address(netns: &Netns) -> Option<Ipv4Addr> {
    let out = netns
        .try_ip(&["-4", "-o", "addr", "show", "dev", "eth0"])
        .ok()?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|ip| ip.parse().ok())
}

/// What a node's ipamd has durably assigned: address -> container id. A missing or
/// unreadable file is empty (ipamd rebuilds it at its next start).
#[must_use]
pub fn checkpointed(node: &VpcNode) -> BTreeMap<Ipv4Addr, String> {
    let path = node.ipamd.state_dir().join(ipamd::daemon::CHECKPOINT_FILE);
    std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<CheckpointData>(&bytes).ok())
        .map(|data| {
            data.assignments
                .into_iter()
                .map(|a| (a.ip, a.key.container_id))
                .collect()
        })
        .unwrap_or_default()
}

/// Audits the live pods against every node's checkpoint and EC2; `exempt` are addresses a
/// fault took away on purpose (not counted as lost). Counts duplicates and lost pods.
#[must_use]
pub fn live_pods(cluster: &VpcCluster, live: &[&VpcPod], exempt: &BTreeSet<Ipv4Addr>) -> Tally {
    let mut tally = Tally {
        pods_audited: live.len(),
        ..Tally::default()
    };
    let mut carriers: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    let held: BTreeMap<&str, BTreeMap<Ipv4Addr, String>> = cluster
        .nodes()
        .iter()
        .map(|n| (n.name.as_str(), checkpointed(n)))
        .collect();
    for pod in live {
        let Some(ip) = pod_address(&pod.netns) else {
            tally.lost += 1;
            eprintln!("audit: pod {} has no address on eth0", pod.name);
            continue;
        };
        *carriers.entry(ip).or_default() += 1;
        if exempt.contains(&ip) {
            continue;
        }
        let node = cluster.node(&pod.node).ok();
        let by_ipamd = held
            .get(pod.node.as_str())
            .is_some_and(|h| h.contains_key(&ip));
        let by_ec2 = node.is_some_and(|n| {
            cluster
                .eni_of(ip)
                .and_then(|e| e.attachment)
                .is_some_and(|a| a.instance_id == n.instance.id)
        });
        if !(by_ipamd && by_ec2) {
            tally.lost += 1;
            eprintln!(
                "audit: pod {} on {} has {ip}; held by ipamd {by_ipamd}, on the node's ENIs {by_ec2}",
                pod.name, pod.node
            );
        }
    }
    tally.duplicates = carriers.values().filter(|n| **n > 1).count();
    tally
}

/// Addresses each node's ipamd holds for no live pod, after waiting up to the bound for
/// the sweep to give them back.
#[must_use]
pub fn orphans(cluster: &VpcCluster, live: &[&VpcPod]) -> usize {
    let count = || -> usize {
        let in_use: BTreeSet<Ipv4Addr> =
            live.iter().filter_map(|p| pod_address(&p.netns)).collect();
        cluster
            .nodes()
            .iter()
            .map(|n| {
                checkpointed(n)
                    .keys()
                    .filter(|ip| !in_use.contains(ip))
                    .count()
            })
            .sum()
    };
    let settled = wait_for(CONVERGE_LIMIT, || {
        std::thread::sleep(Duration::from_millis(500));
        (count() == 0).then_some(())
    });
    if settled.is_some() {
        return 0;
    }
    let left = count();
    for n in cluster.nodes() {
        eprintln!("audit: node {} still holds {:?}", n.name, checkpointed(n));
    }
    left
}

/// Our ENIs (tagged with the creating instance) left unattached, after waiting up to the
/// bound for ipamd to delete what it detached and for the leaked-ENI cleanup.
#[must_use]
pub fn leaked_enis(cluster: &VpcCluster) -> usize {
    let count = || {
        cluster
            .sim()
            .fabric_view()
            .enis
            .iter()
            .filter(|e| e.attachment.is_none())
            .filter(|e| e.tags.contains_key(ipamd::vpc::INSTANCE_ID_TAG))
            .count()
    };
    let settled = wait_for(CONVERGE_LIMIT, || {
        std::thread::sleep(Duration::from_millis(500));
        (count() == 0).then_some(())
    });
    if settled.is_some() {
        0
    } else {
        count()
    }
}
