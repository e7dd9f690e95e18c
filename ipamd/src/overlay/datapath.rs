//! Overlay mode's [`NodeDatapath`]: the `vxlan.vpc` device, forwarding, the per-peer entries
//! and the SNAT table, kept in step with the peer set the peer loop hands it, and applied
//! again from scratch by the datapath upkeep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::Mutex;
use vpc_cni_proto::Mode;

use vpc_cni_proto::net::{normalize, Ipv4Cidr};

use super::peers::{Peer, PeerKind, PeerSet};
use super::snat::OverlaySnat;
use super::vxlan::{DeviceChange, Overlay, OverlaySpec, ReconcileReport, DEVICE_NAME};
use crate::datapath::{forwarding_damage, LocalDatapath, NodeDatapath};
use crate::error::IpamdError;
use crate::kernel::{self, nft};
use crate::vpc_datapath::{OverlayPods, VpcDatapath};

/// The device and what was last written to the kernel.
struct Applied {
    overlay: Overlay,
    peers: Option<Vec<Peer>>,
    snat: Option<OverlaySnat>,
}

/// Whose nftables table keeps the peers' pods untranslated.
enum PeerSnat {
    /// Overlay mode: ours, masquerading pod traffic to anywhere outside the cluster's pod
    /// CIDRs (all of them under `CLUSTER_CIDR`, else this node's and the peers').
    Own { cluster_cidr: Option<Ipv4Cidr> },
    /// A VPC-mode node of a hybrid cluster: the VPC datapath's, told the overlay peers' pod
    /// CIDRs. Peers that are VPC-mode nodes are left out: their pods are reached through
    /// the VPC.
    Vpc(Arc<VpcDatapath>),
}

pub struct OverlayDatapath {
    spec: OverlaySpec,
    snat: PeerSnat,
    // Held across an apply, so a resync and a peer change cannot interleave their writes.
    applied: Mutex<Applied>,
    /// Peer changes and resyncs that failed, since start (metrics).
    failures: AtomicU64,
}

impl OverlayDatapath {
    /// Creates or adopts `vxlan.vpc` (an unchanged device is left as it is, so a restart does
    /// not interrupt pod traffic).
    pub async fn new(
        spec: OverlaySpec,
        cluster_cidr: Option<Ipv4Cidr>,
    ) -> Result<(Arc<Self>, DeviceChange), IpamdError> {
        if let (Some(cluster), Some(own)) = (cluster_cidr, spec.own_pod_cidr) {
            if !(cluster.prefix_len <= own.prefix_len && cluster.contains(own.network)) {
                return Err(IpamdError::Config {
                    variable: "CLUSTER_CIDR",
                    reason: format!("{cluster} does not hold this node's pod CIDR {own}"),
                });
            }
        }
        Self::with_snat(spec, PeerSnat::Own { cluster_cidr }).await
    }

    /// The overlay of a VPC-mode node in a hybrid cluster: `vxlan.vpc` on its primary ENI,
    /// entries for the overlay nodes only, whose pod CIDRs go to `vpc`'s table.
    pub async fn new_hybrid(
        spec: OverlaySpec,
        vpc: Arc<VpcDatapath>,
    ) -> Result<(Arc<Self>, DeviceChange), IpamdError> {
        Self::with_snat(spec, PeerSnat::Vpc(vpc)).await
    }

    async fn with_snat(
        spec: OverlaySpec,
        snat: PeerSnat,
    ) -> Result<(Arc<Self>, DeviceChange), IpamdError> {
        let (overlay, change) = Overlay::ensure_device(spec.clone()).await?;
        let datapath = Self {
            spec,
            snat,
            applied: Mutex::new(Applied {
                overlay,
                peers: None,
                snat: None,
            }),
            failures: AtomicU64::new(0),
        };
        Ok((Arc::new(datapath), change))
    }

    #[must_use]
    pub fn spec(&self) -> &OverlaySpec {
        &self.spec
    }

    /// The MTU pods get by default: the device's, so an encapsulated frame fits the underlay.
    #[must_use]
    pub fn pod_mtu(&self) -> u32 {
        self.spec().device_mtu()
    }

    /// The peers whose entries were last applied; `None` before the first peer set.
    pub async fn peers(&self) -> Option<Vec<Peer>> {
        self.applied.lock().await.peers.clone()
    }

    /// Peer changes and resyncs that failed since start (each is retried).
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn counted<T>(&self, result: Result<T, IpamdError>) -> Result<T, IpamdError> {
        if result.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Makes the kernel hold exactly what `peers` need: their entries (others' untouched) and
    /// the SNAT table with their pod CIDRs (unless `CLUSTER_CIDR` fixes it).
    pub async fn apply_peers(&self, peers: &PeerSet) -> Result<ReconcileReport, IpamdError> {
        let applied = self.apply_peers_once(peers).await;
        self.counted(applied)
    }

    async fn apply_peers_once(&self, peers: &PeerSet) -> Result<ReconcileReport, IpamdError> {
        let peers: Vec<Peer> = peers
            .values()
            .filter(|p| matches!(self.snat, PeerSnat::Own { .. }) || p.kind == PeerKind::Overlay)
            .cloned()
            .collect();
        let mut applied = self.applied.lock().await;
        // The table first: a route to a new peer's pods is only usable once they are exempt
        // from SNAT (and, on a VPC node, connmarked to the main table).
        match &self.snat {
            PeerSnat::Own { .. } => {
                let snat = self.snat_for(Some(&peers));
                if applied.snat.as_ref() != Some(&snat) {
                    nft::run(&snat.replace_batch(), "replacing").await?;
                    applied.snat = Some(snat);
                }
            }
            PeerSnat::Vpc(vpc) => {
                let remote = peers.iter().flat_map(|p| p.pod_cidrs.iter().copied());
                vpc.overlay_pods_changed(OverlayPods {
                    device: DEVICE_NAME.to_owned(),
                    remote: normalize(remote),
                })
                .await?;
            }
        }
        // A device deleted under us would make every entry fail to apply.
        applied.overlay.refresh_device().await?;
        let report = applied.overlay.reconcile(&peers).await?;
        applied.peers = Some(peers);
        Ok(report)
    }

    /// Re-applies everything from scratch: forwarding, the device, the last peer set's
    /// entries and the SNAT table, repairing what someone changed or removed. Before the first
    /// peer set the entries are left as they are (a restart must not cut pods off), and the
    /// SNAT table is written only when `CLUSTER_CIDR` fixes it: written earlier, it would SNAT
    /// traffic to peers whose pod CIDRs it does not know yet. `None` until a peer set came.
    pub async fn resync(&self) -> Result<Option<ReconcileReport>, IpamdError> {
        let resynced = self.resync_once().await;
        self.counted(resynced)
    }

    async fn resync_once(&self) -> Result<Option<ReconcileReport>, IpamdError> {
        LocalDatapath.apply().await?;
        let mut applied = self.applied.lock().await;
        let change = applied.overlay.refresh_device().await?;
        if change != DeviceChange::Unchanged {
            tracing::warn!(
                ?change,
                "the VXLAN device had been changed and was restored"
            );
        }
        let report = match applied.peers.clone() {
            Some(peers) => Some(applied.overlay.reconcile(&peers).await?),
            None => None,
        };
        let fixed = matches!(
            self.snat,
            PeerSnat::Own {
                cluster_cidr: Some(_)
            }
        );
        if matches!(self.snat, PeerSnat::Own { .. }) && (applied.peers.is_some() || fixed) {
            let snat = self.snat_for(applied.peers.as_deref());
            nft::run(&snat.replace_batch(), "replacing").await?;
            applied.snat = Some(snat);
        }
        Ok(report)
    }

    /// Ends the overlay's netlink connection as a socket error would, and waits until it has.
    #[cfg(test)]
    pub(crate) async fn end_netlink_connection(&self) {
        let applied = self.applied.lock().await;
        let conn = applied.overlay.connection();
        conn.end();
        // The abort lands when the runtime next polls the task; bounded, not timed.
        for _ in 0..1000 {
            if conn.has_ended() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the netlink connection's task did not end");
    }

    /// The pod CIDRs our table leaves untranslated. `CLUSTER_CIDR` stands for every overlay
    /// node's; VPC-mode peers' ranges lie outside it and are added either way.
    fn snat_for(&self, peers: Option<&[Peer]>) -> OverlaySnat {
        let peers = peers.unwrap_or_default();
        let ranges = |kind: Option<PeerKind>| {
            peers
                .iter()
                .filter(move |p| kind.is_none_or(|k| p.kind == k))
                .flat_map(|p| p.pod_cidrs.iter().copied())
        };
        match self.snat {
            PeerSnat::Own {
                cluster_cidr: Some(cluster),
            } => OverlaySnat::new(std::iter::once(cluster).chain(ranges(Some(PeerKind::Vpc)))),
            PeerSnat::Own { cluster_cidr: None } | PeerSnat::Vpc(_) => {
                OverlaySnat::new(self.spec().own_pod_cidr.into_iter().chain(ranges(None)))
            }
        }
    }
}

impl NodeDatapath for OverlayDatapath {
    fn mode(&self) -> Mode {
        Mode::Overlay
    }

    fn apply(&self) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async move {
            if let Some(report) = self.resync().await?.filter(|r| !r.is_unchanged()) {
                tracing::warn!(?report, "overlay entries had drifted and were restored");
            }
            Ok(())
        })
    }

    /// Forwarding, `vxlan.vpc`, and the SNAT table once one was written.
    fn damage(&self) -> BoxFuture<'_, Result<Vec<String>, IpamdError>> {
        Box::pin(async move {
            let mut damage: Vec<String> = forwarding_damage()?.into_iter().collect();
            let handle = kernel::connect()?;
            let device = vpc_cni::netlink::link_by_name(&handle, DEVICE_NAME)
                .await
                .map_err(IpamdError::netlink(format!("looking up {DEVICE_NAME}")))?;
            match device {
                None => damage.push(format!("the VXLAN device {DEVICE_NAME} is missing")),
                Some(link) if !vpc_cni::netlink::link_is_up(&link) => {
                    damage.push(format!("the VXLAN device {DEVICE_NAME} is down"));
                }
                Some(_) => {}
            }
            let table_expected = self.applied.lock().await.snat.is_some();
            if table_expected && !nft::table_exists().await? {
                damage.push(format!("nftables table ip {} is missing", nft::NFT_TABLE));
            }
            Ok(damage)
        })
    }
}
