//! The node datapath of a VPC-mode node in a hybrid cluster: the VPC datapath (ENI tables,
//! rules, the SNAT table with the overlay nodes' pod CIDRs exempt) and the overlay beside it
//! (`vxlan.vpc` and the entries for the overlay nodes), kept applied together by the
//! datapath upkeep. A VPC node that is not hybrid (any more) has no `vxlan.vpc`.

use std::sync::Arc;

use futures::future::BoxFuture;
use vpc_cni_proto::Mode;

use super::vxlan::DEVICE_NAME;
use super::OverlayDatapath;
use crate::datapath::NodeDatapath;
use crate::error::IpamdError;
use crate::kernel;
use crate::vpc_datapath::VpcDatapath;

pub struct HybridDatapath {
    vpc: Arc<VpcDatapath>,
    overlay: Arc<OverlayDatapath>,
}

impl HybridDatapath {
    #[must_use]
    pub fn new(vpc: Arc<VpcDatapath>, overlay: Arc<OverlayDatapath>) -> Self {
        Self { vpc, overlay }
    }
}

impl NodeDatapath for HybridDatapath {
    fn mode(&self) -> Mode {
        Mode::Vpc
    }

    /// The VPC datapath first, so the overlay nodes' pods are exempt from SNAT and routed by
    /// the main table before their routes are restored; both run even when one fails, and
    /// the first error is returned.
    fn apply(&self) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async move {
            let vpc = self.vpc.apply().await;
            let overlay = self.overlay.apply().await;
            vpc.and(overlay)
        })
    }

    fn damage(&self) -> BoxFuture<'_, Result<Vec<String>, IpamdError>> {
        Box::pin(async move {
            let mut damage = self.vpc.damage().await?;
            for item in self.overlay.damage().await? {
                // Forwarding is checked by both.
                if !damage.contains(&item) {
                    damage.push(item);
                }
            }
            Ok(damage)
        })
    }
}

/// Deletes `vxlan.vpc` (and with it every route, neighbour and FDB entry on it) from a
/// VPC-mode node that no longer joins the overlay; `true` when there was one.
pub async fn remove_device() -> Result<bool, IpamdError> {
    let handle = kernel::connect()?;
    let present = vpc_cni::netlink::link_by_name(&handle, DEVICE_NAME)
        .await
        .map_err(IpamdError::netlink(format!("looking up {DEVICE_NAME}")))?
        .is_some();
    if present {
        vpc_cni::netlink::delete_link_by_name(&handle, DEVICE_NAME)
            .await
            .map_err(IpamdError::netlink(format!("deleting {DEVICE_NAME}")))?;
    }
    Ok(present)
}
