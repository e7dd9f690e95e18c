//! Pods added and deleted the way a runtime does it: a failed ADD is followed by DEL and a
//! fresh sandbox; a failed DEL is retried until it succeeds. Every ADD's address is checked
//! against the addresses live pods hold at that moment.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::Tally;
use crate::vpc_cluster::{VpcCluster, VpcPod};

/// Attempts before a DEL counts as failed (with a pause between: ipamd may be restarting).
const DEL_ATTEMPTS: usize = 300;
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What the churn saw, shared by its workers.
#[derive(Default)]
pub struct Ledger {
    live: Mutex<HashMap<Ipv4Addr, String>>,
    cycles: AtomicUsize,
    failed_adds: AtomicUsize,
    del_retries: AtomicUsize,
    failed_dels: AtomicUsize,
    duplicates: AtomicUsize,
    names: AtomicUsize,
}

impl Ledger {
    /// The counts so far.
    #[must_use]
    pub fn tally(&self) -> Tally {
        Tally {
            cycles: self.cycles.load(Ordering::SeqCst),
            failed_adds: self.failed_adds.load(Ordering::SeqCst),
            del_retries: self.del_retries.load(Ordering::SeqCst),
            failed_dels: self.failed_dels.load(Ordering::SeqCst),
            duplicates: self.duplicates.load(Ordering::SeqCst),
            ..Tally::default()
        }
    }

    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.names.fetch_add(1, Ordering::SeqCst))
    }

    /// Records an ADD's address; a second live holder is a duplicate.
    fn claim(&self, ip: Ipv4Addr, pod: &str) {
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(holder) = live.insert(ip, pod.to_string()) {
            self.duplicates.fetch_add(1, Ordering::SeqCst);
            eprintln!("churn: {ip} was given to {pod} while {holder} held it");
        }
    }

    fn unclaim(&self, ip: Ipv4Addr) {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&ip);
    }

    /// ADD on `node` as a runtime does it, until it succeeds or `stop` is set: after a failed
    /// ADD the sandbox is DELeted and a new one tried.
    pub fn add(&self, cluster: &VpcCluster, node: &str, stop: &AtomicBool) -> Option<VpcPod> {
        while !stop.load(Ordering::SeqCst) {
            let name = self.unique("c");
            let mut pod = cluster.new_pod(node, &name).ok()?;
            match cluster.add(&mut pod) {
                Ok(out) if out.success() => {
                    if let Ok(ip) = pod.ip() {
                        self.claim(ip, &name);
                    }
                    return Some(pod);
                }
                _ => {
                    self.failed_adds.fetch_add(1, Ordering::SeqCst);
                    self.del(cluster, &pod);
                    std::thread::sleep(RETRY_PAUSE);
                }
            }
        }
        None
    }

    /// DEL until it succeeds (bounded); the pod's address leaves the ledger first, since the
    /// runtime considers it gone from the moment it asks.
    pub fn del(&self, cluster: &VpcCluster, pod: &VpcPod) -> bool {
        if let Ok(ip) = pod.ip() {
            self.unclaim(ip);
        }
        for attempt in 0..DEL_ATTEMPTS {
            if matches!(cluster.del(pod), Ok(out) if out.success()) {
                return true;
            }
            if attempt == 0 {
                self.del_retries.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(RETRY_PAUSE);
        }
        self.failed_dels.fetch_add(1, Ordering::SeqCst);
        eprintln!("churn: DEL of {} never succeeded", pod.name);
        false
    }

    /// Worker loop: ADD, hold for `hold`, DEL, until `stop`; the pod alive when `stop` came is
    /// kept alive and returned, so the audit has live pods to check.
    pub fn churn(
        &self,
        cluster: &VpcCluster,
        node: &str,
        hold: Duration,
        stop: &AtomicBool,
    ) -> Option<VpcPod> {
        loop {
            let pod = self.add(cluster, node, stop)?;
            std::thread::sleep(hold.mul_f64(fastrand::f64()));
            if stop.load(Ordering::SeqCst) {
                return Some(pod);
            }
            self.del(cluster, &pod);
            self.cycles.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// DELs every pod (the end of a scenario).
    pub fn del_all(&self, cluster: &VpcCluster, pods: Vec<VpcPod>) {
        for pod in pods {
            self.del(cluster, &pod);
        }
    }
}

/// Runs `workers` churn workers per node while `during` runs on this thread, then stops
/// them; returns the pods left alive.
pub fn while_churning(
    cluster: &VpcCluster,
    ledger: &Ledger,
    workers_per_node: usize,
    hold: Duration,
    during: impl FnOnce(),
) -> Vec<VpcPod> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = cluster
            .nodes()
            .iter()
            .flat_map(|n| std::iter::repeat_n(n.name.clone(), workers_per_node))
            .map(|node| {
                let stop = &stop;
                scope.spawn(move || ledger.churn(cluster, &node, hold, stop))
            })
            .collect();
        during();
        stop.store(true, Ordering::SeqCst);
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect()
    })
}
