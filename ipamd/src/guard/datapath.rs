//! The guard riding along with a mode's node datapath, so the upkeep that keeps the mode's
//! tables applied (every `DATAPATH_RESYNC_INTERVAL`, and at once after STATUS found damage)
//! keeps the guard applied too, and STATUS names a broken guard like any other damage.

use std::sync::Arc;

use futures::future::BoxFuture;
use vpc_cni_proto::Mode;

use super::PodGuard;
use crate::datapath::NodeDatapath;
use crate::error::IpamdError;

/// A node datapath with the pod guard in front of it.
pub struct GuardedDatapath {
    inner: Arc<dyn NodeDatapath>,
    guard: PodGuard,
}

impl GuardedDatapath {
    #[must_use]
    pub fn new(inner: Arc<dyn NodeDatapath>, guard: PodGuard) -> Self {
        Self { inner, guard }
    }

    #[must_use]
    pub fn guard(&self) -> PodGuard {
        self.guard
    }
}

impl NodeDatapath for GuardedDatapath {
    fn mode(&self) -> Mode {
        self.inner.mode()
    }

    /// The guard, then the mode's datapath; both run even when one fails (an ENI whose link
    /// has not appeared yet must not leave pods unguarded), and the first error is returned.
    fn apply(&self) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async move {
            let guard = self.guard.apply().await;
            let inner = self.inner.apply().await;
            guard.and(inner)
        })
    }

    fn damage(&self) -> BoxFuture<'_, Result<Vec<String>, IpamdError>> {
        Box::pin(async move {
            let mut damage = self.inner.damage().await?;
            damage.extend(self.guard.damage().await?);
            Ok(damage)
        })
    }
}
