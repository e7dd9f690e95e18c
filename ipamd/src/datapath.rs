//! Node datapaths: what ipamd sets up on the node itself, beside each pod's wiring, behind one
//! small seam that every mode implements (the shape of flannel's backends): VPC mode's ENI
//! tables, rules and SNAT ([`crate::vpc_datapath`]), the VXLAN overlay
//! ([`crate::overlay::OverlayDatapath`]), and forwarding alone for a node without peers
//! ([`LocalDatapath`]). [`Upkeep`] keeps whichever one runs applied and reports its damage.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};
use vpc_cni_proto::Mode;

use crate::error::IpamdError;
use crate::kernel::{apply_sysctls, read_sysctl, Sysctl, IP_FORWARD};

/// Node-wide network setup for one mode.
pub trait NodeDatapath: Send + Sync {
    /// The mode reported to the plugin.
    fn mode(&self) -> Mode;

    /// Makes the node's kernel state what this datapath needs now, from scratch: at start,
    /// and again to repair what someone changed. Idempotent: an intact node is not touched.
    fn apply(&self) -> BoxFuture<'_, Result<(), IpamdError>>;

    /// The parts that should be there and are not, named for STATUS and logs; empty when the
    /// datapath is intact. Only reads.
    fn damage(&self) -> BoxFuture<'_, Result<Vec<String>, IpamdError>>;
}

/// Pods reachable within the node only: routing between pod veths and the node needs IPv4
/// forwarding in the node's namespace, nothing else.
pub struct LocalDatapath;

impl NodeDatapath for LocalDatapath {
    fn mode(&self) -> Mode {
        Mode::Overlay
    }

    fn apply(&self) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async { apply_sysctls(&[Sysctl::ip_forward()]) })
    }

    fn damage(&self) -> BoxFuture<'_, Result<Vec<String>, IpamdError>> {
        Box::pin(async { Ok(forwarding_damage()?.into_iter().collect()) })
    }
}

/// "IPv4 forwarding is off" when it is; every mode routes pod traffic through the node.
pub fn forwarding_damage() -> Result<Option<String>, IpamdError> {
    let value = read_sysctl(IP_FORWARD)?;
    Ok((value != "1").then(|| format!("IPv4 forwarding is off ({IP_FORWARD})")))
}

/// How often a node datapath is applied again from scratch, repairing outside damage
/// (`DATAPATH_RESYNC_INTERVAL`).
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(60);

/// Keeps a node datapath applied: every `interval`, and at once after a check found damage.
pub struct Upkeep {
    datapath: Arc<dyn NodeDatapath>,
    interval: Duration,
    repair: Notify,
}

impl Upkeep {
    #[must_use]
    pub fn new(datapath: Arc<dyn NodeDatapath>, interval: Duration) -> Self {
        Self {
            datapath,
            interval,
            repair: Notify::new(),
        }
    }

    #[must_use]
    pub fn datapath(&self) -> &Arc<dyn NodeDatapath> {
        &self.datapath
    }

    /// The datapath's damage now (see [`NodeDatapath::damage`]); damage found also asks the
    /// upkeep loop for a repair, so what STATUS reports broken is mended right after.
    pub async fn check(&self) -> Result<Vec<String>, IpamdError> {
        let damage = self.datapath.damage().await?;
        if !damage.is_empty() {
            warn!(?damage, "node datapath damaged; repairing");
            self.repair.notify_one();
        }
        Ok(damage)
    }

    /// Applies the datapath every `interval` and whenever a check asked for it, until `stop`
    /// turns true. A failed apply is retried at the next turn.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = self.repair.notified() => {}
                () = tokio::time::sleep(self.interval) => {}
            }
            match self.datapath.apply().await {
                Ok(()) => debug!("node datapath applied"),
                Err(e) => warn!(error = %e, "applying the node datapath failed"),
            }
        }
    }
}
