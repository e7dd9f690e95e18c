//! The pod fast path of VPC mode (`ENABLE_POD_FAST_PATH`, off by default;
//! docs/configuration.md says what it changes). Established TCP flows between a pod and
//! another VPC address, once the node's IP layer (conntrack, NAT, filters, our guard) has
//! let them through, skip that layer on the node: a netdev ingress hook hands their packets
//! from the pod's veth straight to its ENI, and from the ENI straight to the veth. See
//! [`plan`] for the rules and why each is there.
//!
//! Conntrack no longer sees most packets of such a flow, so it must not judge the ones it
//! does see by TCP window: `net.netfilter.nf_conntrack_tcp_be_liberal` is set to 1 (as the
//! kernel's own flowtables do per connection). Without it the packets that come back to the
//! slow path look out of window: conntrack stops refreshing the connection and never sees
//! it close, and rules that drop invalid packets stall it.
//!
//! [`FastPath`] keeps the tables in line with the node's ENIs and the pods whose veths
//! exist: it looks at the store every [`POLL`], lists links when the pods changed (or a
//! pod's veth was not there yet, or [`RESYNC`] passed) and replaces both tables in one
//! transaction when the plan differs from the applied one or, at a resync, when the tables
//! went missing.

pub mod plan;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Mutex};
use tracing::{debug, info, warn};
use vpc_cni_proto::net::Ipv4Cidr;

pub use plan::{FastEni, FastPathPlan, FastPod, FAST_MARK, FAST_PATH_TABLE, FLOW_TIMEOUT_SECS};

use super::netlink::observe_links;
use super::wiring::ObservedLink;
use super::VpcDatapath;
use crate::error::IpamdError;
use crate::kernel::{self, nft, Sysctl};
use crate::store::Store;

/// How often the store is looked at for pods that came or went.
const POLL: Duration = Duration::from_millis(500);
/// How often links are listed and the plan compared even when the store did not change:
/// catches an ENI that moved and tables an operator removed.
const RESYNC: Duration = Duration::from_secs(10);
const BE_LIBERAL: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal";
const PRIMARY_EGRESS: &str = "eni-0-out";
const TABLES: &str = "ip vpc-cni-fast and netdev vpc-cni-fast";

/// One assignment as the fast path needs it: address, host veth, ENI device number.
type Wanted = (Ipv4Addr, String, u32);

/// Keeps the fast path's tables in line with the node.
pub struct FastPath {
    datapath: Arc<VpcDatapath>,
    store: Store,
    primary_gateway: Ipv4Addr,
    vpc_cidrs: Vec<Ipv4Cidr>,
    applied: Mutex<Option<FastPathPlan>>,
    status: Status,
}

/// The latest sync's counts and the running totals, for metrics.
#[derive(Debug, Default)]
struct Status {
    pods: AtomicU64,
    waiting: AtomicU64,
    updates: AtomicU64,
    errors: AtomicU64,
}

/// What metrics show of the fast path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastPathFigures {
    /// Pods in the tables at the latest sync.
    pub pods: u64,
    /// Pods whose veth was missing at the latest sync (on the slow path meanwhile).
    pub waiting: u64,
    /// Times the tables were replaced.
    pub updates: u64,
    /// Syncs that failed (each is retried at the next look).
    pub errors: u64,
}

/// What one [`FastPath::sync`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Pods on the fast path.
    pub pods: usize,
    /// Assignments whose host veth is not there (yet): they keep the slow path for now.
    pub waiting: usize,
    /// Whether the tables were replaced.
    pub replaced: bool,
}

impl FastPath {
    #[must_use]
    pub fn new(
        datapath: Arc<VpcDatapath>,
        store: Store,
        primary_gateway: Ipv4Addr,
        vpc_cidrs: Vec<Ipv4Cidr>,
    ) -> Self {
        Self {
            datapath,
            store,
            primary_gateway,
            vpc_cidrs,
            applied: Mutex::new(None),
            status: Status::default(),
        }
    }

    /// The latest sync's counts and the totals since start.
    #[must_use]
    pub fn figures(&self) -> FastPathFigures {
        let s = &self.status;
        FastPathFigures {
            pods: s.pods.load(Ordering::Relaxed),
            waiting: s.waiting.load(Ordering::Relaxed),
            updates: s.updates.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
        }
    }

    /// Sets conntrack's liberal TCP window (see the module comment) and applies the tables
    /// once: on a kernel without netdev egress hooks (before 5.16) this is where ipamd stops,
    /// naming the setting.
    pub async fn enable(&self) -> Result<SyncReport, IpamdError> {
        let enabled = async {
            kernel::apply_sysctls(&[Sysctl {
                path: BE_LIBERAL.to_owned(),
                value: "1",
            }])?;
            self.sync().await
        };
        enabled.await.map_err(|e| IpamdError::FastPathUnavailable {
            detail: e.to_string(),
        })
    }

    /// Removes both tables (a no-op when they are absent): ipamd runs without the fast
    /// path, and one left by an earlier configuration must not keep forwarding.
    pub async fn remove() -> Result<(), IpamdError> {
        let mut batch = nftables::batch::Batch::new();
        for family in [
            nftables::types::NfFamily::IP,
            nftables::types::NfFamily::NetDev,
        ] {
            let table = nftables::schema::NfListObject::Table(nftables::schema::Table {
                family,
                name: FAST_PATH_TABLE.into(),
                handle: None,
            });
            batch.add(table.clone());
            batch.delete(table);
        }
        nft::run_on(&batch.to_nftables(), "removing", TABLES).await
    }

    /// Lists the links, computes the plan and replaces the tables when it changed or when
    /// they went missing.
    pub async fn sync(&self) -> Result<SyncReport, IpamdError> {
        let synced = self.sync_checking(true).await;
        self.count(&synced);
        synced
    }

    fn count(&self, synced: &Result<SyncReport, IpamdError>) {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let s = &self.status;
        match synced {
            Ok(report) => {
                s.pods.store(wide(report.pods), Ordering::Relaxed);
                s.waiting.store(wide(report.waiting), Ordering::Relaxed);
                if report.replaced {
                    s.updates.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// [`FastPath::sync`]; with `check_tables` false an unchanged plan is trusted to be in
    /// place, without asking `nft`.
    async fn sync_checking(&self, check_tables: bool) -> Result<SyncReport, IpamdError> {
        let wanted = self.wanted();
        let links = observe_links().await?;
        let (plan, waiting) = self.plan(&wanted, &links).await;
        let mut applied = self.applied.lock().await;
        // Every plan has the primary ENI's egress chain: without it the tables are gone.
        let intact = applied.as_ref() == Some(&plan)
            && (!check_tables
                || nft::chain_exists("netdev", FAST_PATH_TABLE, PRIMARY_EGRESS).await?);
        let report = SyncReport {
            pods: plan.pods().len(),
            waiting,
            replaced: !intact,
        };
        if !intact {
            // Forgotten first: if the run fails the next sync tries again.
            *applied = None;
            nft::run_streamed(plan.replace_objects(), "replacing", TABLES).await?;
            debug!(pods = report.pods, waiting, "fast path tables replaced");
            *applied = Some(plan);
        }
        Ok(report)
    }

    /// Keeps the tables in line until `stop`; failures are logged and retried at the next
    /// look.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut last_wanted: Option<Vec<Wanted>> = None;
        let mut last_sync = Instant::now();
        let mut waiting = 0;
        loop {
            let wanted = self.wanted();
            let changed = last_wanted.as_ref() != Some(&wanted);
            let resync = last_sync.elapsed() >= RESYNC;
            if changed || waiting > 0 || resync {
                if resync {
                    last_sync = Instant::now();
                }
                let synced = self.sync_checking(resync).await;
                self.count(&synced);
                match synced {
                    Ok(report) => {
                        waiting = report.waiting;
                        last_wanted = Some(wanted);
                        if report.replaced {
                            info!(pods = report.pods, waiting, "fast path updated");
                        }
                    }
                    Err(error) => {
                        warn!(%error, "fast path tables not brought in line; retrying");
                        last_wanted = None;
                    }
                }
            }
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// The store's assignments, sorted.
    fn wanted(&self) -> Vec<Wanted> {
        let mut wanted: Vec<Wanted> = self.store.read(|ds| {
            ds.assignments()
                .map(|a| (a.ip, a.pod.host_veth.clone(), a.device_number))
                .collect()
        });
        wanted.sort();
        wanted
    }

    /// The plan for `wanted` on `links`, and how many assignments lack their veth.
    async fn plan(&self, wanted: &[Wanted], links: &[ObservedLink]) -> (FastPathPlan, usize) {
        let spec = self.datapath.spec().await;
        let by_mac = |mac| links.iter().find(|l| l.mac == mac);
        let mut enis = Vec::new();
        if let Some(link) = by_mac(spec.primary.mac) {
            enis.push(FastEni {
                device_number: 0,
                link: link.name.clone(),
                gateway: self.primary_gateway,
            });
        }
        for eni in &spec.secondaries {
            if let Some(link) = by_mac(eni.mac) {
                enis.push(FastEni {
                    device_number: eni.device_number,
                    link: link.name.clone(),
                    gateway: eni.gateway(),
                });
            }
        }
        let mut waiting = 0;
        let mut pods = Vec::new();
        for (ip, veth, device_number) in wanted {
            match links.iter().find(|l| &l.name == veth) {
                Some(link) => pods.push(FastPod {
                    ip: *ip,
                    veth: veth.clone(),
                    veth_index: link.index,
                    device_number: *device_number,
                }),
                None => waiting += 1,
            }
        }
        (FastPathPlan::new(enis, pods, &self.vpc_cidrs), waiting)
    }
}
