//! Introspection: read-only JSON over HTTP about a running ipamd, on
//! `INTROSPECTION_BIND_ADDRESS` (loopback by default), with the AWS VPC CNI's paths where they
//! mean the same (`/v1/enis`, `/v1/ipamd-env-settings`, `/v1/networkutils-env-settings`) and
//! ours for the pods, the pool, the overlay's peers and the settings in force. `ipamd inspect`
//! is its client.
//!
//! - `reports`: the JSON of each path (shared with the client).
//! - `figures`: the reports computed from the pool controller's latest look and the datastore.
//! - `settings`: the settings as ipamd parsed them at start.
//! - `server`: the HTTP side.
//!
//! Pod names and container ids appear here, never in metric labels.

mod figures;
pub mod reports;
mod server;
mod settings;

use std::sync::Arc;

use vpc_cni_proto::time::now_ms;
use vpc_cni_proto::Mode;

pub use figures::PoolShape;
pub use reports::{
    AddressRow, ConfigReport, EniRow, EnisReport, EnvSettings, PeerRow, PeersReport, PodRow,
    PodsReport, PoolReport, PrefixRow, SettingRow, SlotStatus, VpcPool,
};
pub use server::{router, PATHS};
pub use settings::{env_settings, settings_rows, NETWORKING_VARIABLES};

use crate::overlay::vxlan::vtep_mac;
use crate::overlay::OverlayDatapath;
use crate::store::Store;
use crate::vpc::{PoolController, ReconcileCounts};
use crate::vpc_datapath::fast_path::{FastPath, FastPathFigures};

/// What fills the mode-specific parts of the reports.
#[derive(Clone)]
pub enum ModeSource {
    /// The pool controller, which knows the ENIs, the fast path when it is on, and the
    /// overlay with `ENABLE_HYBRID_OVERLAY`, which knows the on-prem peers.
    Vpc {
        controller: Arc<PoolController>,
        fast_path: Option<Arc<FastPath>>,
        overlay: Option<Arc<OverlayDatapath>>,
    },
    /// The overlay datapath, which knows the peers (none on a standalone node).
    Overlay(Option<Arc<OverlayDatapath>>),
}

/// A running ipamd, seen read-only: every report and the figures metrics expose.
pub struct NodeView {
    mode: Mode,
    pool_name: String,
    store: Arc<Store>,
    source: ModeSource,
    settings: Vec<SettingRow>,
}

/// What metrics read at each scrape, besides the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub pool: PoolReport,
    /// VPC mode.
    pub reconciled: Option<ReconcileCounts>,
    /// Overlay mode: peers programmed, and applies that failed.
    pub peers: Option<u64>,
    pub overlay_failures: Option<u64>,
    /// VPC mode with `ENABLE_POD_FAST_PATH`.
    pub fast_path: Option<FastPathFigures>,
}

impl NodeView {
    #[must_use]
    pub fn new(
        mode: Mode,
        pool_name: String,
        store: Arc<Store>,
        source: ModeSource,
        settings: Vec<SettingRow>,
    ) -> Self {
        Self {
            mode,
            pool_name,
            store,
            source,
            settings,
        }
    }

    #[must_use]
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `/v1/pool`.
    #[must_use]
    pub fn pool(&self) -> PoolReport {
        let now = now_ms();
        let seen = match &self.source {
            ModeSource::Vpc { controller, .. } => controller.seen().map(|seen| (controller, seen)),
            ModeSource::Overlay(_) => None,
        };
        self.store.read(|ds| {
            let counts = ds.counts(now);
            let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            let vpc = seen.map(|(controller, seen)| {
                let shape = PoolShape {
                    node: controller.node(),
                    limits: controller.limits(),
                    config: controller.pool_config(),
                    max_pods: controller.max_pods(),
                };
                figures::vpc_pool(&seen, &shape, &|ip| ds.address_state(ip, now))
            });
            PoolReport {
                mode: self.mode.name().to_owned(),
                pool: self.pool_name.clone(),
                total: wide(counts.total),
                assigned: wide(counts.assigned),
                cooling: wide(counts.cooling),
                available: wide(counts.available),
                outside_pool: wide(counts.outside_pool),
                vpc,
            }
        })
    }

    /// `/v1/enis`.
    #[must_use]
    pub fn enis(&self) -> EnisReport {
        let now = now_ms();
        let seen = match &self.source {
            ModeSource::Vpc { controller, .. } => controller.seen(),
            ModeSource::Overlay(_) => None,
        };
        let enis = seen.map_or_else(Vec::new, |seen| {
            self.store.read(|ds| {
                let holders = figures::holders(ds.assignments());
                figures::eni_rows(&seen, &|ip| ds.address_state(ip, now), &|ip| {
                    holders.get(&ip).cloned()
                })
            })
        });
        EnisReport {
            mode: self.mode.name().to_owned(),
            enis,
        }
    }

    /// `/v1/pods`.
    #[must_use]
    pub fn pods(&self) -> PodsReport {
        PodsReport {
            pods: self.store.read(|ds| figures::pod_rows(ds.assignments())),
        }
    }

    /// `/v1/peers`.
    pub async fn peers(&self) -> PeersReport {
        let applied = match self.overlay() {
            Some(datapath) => datapath.peers().await,
            None => None,
        };
        PeersReport {
            mode: self.mode.name().to_owned(),
            applied: applied.is_some(),
            peers: applied
                .unwrap_or_default()
                .into_iter()
                .map(|p| PeerRow {
                    vtep_mac: vtep_mac(p.underlay).to_string(),
                    underlay_ip: p.underlay.to_string(),
                    pod_cidr: p.pod_cidrs_text(),
                    kind: p.kind.name().to_owned(),
                    name: p.name,
                })
                .collect(),
        }
    }

    /// The overlay this node runs: overlay mode's, or a hybrid VPC node's.
    fn overlay(&self) -> Option<&Arc<OverlayDatapath>> {
        match &self.source {
            ModeSource::Overlay(overlay) | ModeSource::Vpc { overlay, .. } => overlay.as_ref(),
        }
    }

    /// `/v1/config`.
    #[must_use]
    pub fn config(&self) -> ConfigReport {
        ConfigReport {
            mode: self.mode.name().to_owned(),
            pool: self.pool_name.clone(),
            settings: self.settings.clone(),
        }
    }

    /// `/v1/ipamd-env-settings` (`only` = `None`) and `/v1/networkutils-env-settings`.
    #[must_use]
    pub fn env_settings(&self, only: Option<&[&str]>) -> EnvSettings {
        env_settings(&self.settings, only)
    }

    /// The figures metrics expose, read now.
    pub async fn figures(&self) -> Figures {
        let pool = self.pool();
        let fast_path = match &self.source {
            ModeSource::Vpc {
                fast_path: Some(fast_path),
                ..
            } => Some(fast_path.figures()),
            ModeSource::Vpc { .. } | ModeSource::Overlay(_) => None,
        };
        let reconciled = match &self.source {
            ModeSource::Vpc { controller, .. } => Some(controller.reconcile_counts()),
            ModeSource::Overlay(_) => None,
        };
        let (peers, overlay_failures) = match (self.overlay(), &self.source) {
            (Some(datapath), _) => {
                let peers = datapath.peers().await.map_or(0, |p| p.len());
                let peers = u64::try_from(peers).unwrap_or(u64::MAX);
                (Some(peers), Some(datapath.failures()))
            }
            (None, ModeSource::Overlay(None)) => (Some(0), Some(0)),
            (None, _) => (None, None),
        };
        Figures {
            pool,
            reconciled,
            peers,
            overlay_failures,
            fast_path,
        }
    }
}
