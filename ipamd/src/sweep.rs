//! The veth-presence sweep: an assignment whose pod's host veth is gone and
//! which is older than the grace period is released. This is how an address
//! whose DEL never reached ipamd (ipamd down, node crash mid-DEL) comes back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use vpc_cni::dataplane::{host_links_with_prefix, unwire_host};
use vpc_cni_proto::HOST_VETH_PREFIX;

use vpc_cni_proto::time::{millis, now_ms};

use crate::error::IpamdError;
use crate::store::Store;

/// One pass; returns how many assignments were released.
pub async fn sweep_once(store: &Store, grace: Duration) -> Result<usize, IpamdError> {
    let grace_ms = millis(grace);
    let present: HashSet<String> = host_links_with_prefix(HOST_VETH_PREFIX)
        .await?
        .into_iter()
        .collect();
    let now = now_ms();
    let stale: Vec<_> = store.read(|ds| {
        ds.assignments()
            .filter(|a| {
                let last_add = ds.last_add_ms(&a.key).unwrap_or(a.assigned_at_ms);
                now.saturating_sub(last_add) >= grace_ms
            })
            .filter(|a| !present.contains(&a.pod.host_veth))
            .cloned()
            .collect()
    });
    if stale.is_empty() {
        return Ok(0);
    }
    for a in &stale {
        // The pod is gone; rules left by a DEL that never ran would otherwise
        // point the next holder's traffic at a dead veth.
        if let Err(e) = unwire_host(a.ip, None).await {
            warn!(ip = %a.ip, error = %e, "removing rules of a vanished pod failed");
        }
        info!(
            container = %a.key.container_id, ip = %a.ip, veth = %a.pod.host_veth,
            "releasing address of a pod whose host veth is gone"
        );
    }
    let count = stale.len();
    store
        .release_many(stale.into_iter().map(|a| a.key).collect(), now)
        .await?;
    Ok(count)
}

/// Runs `sweep_once` every `interval` until `shutdown` flips to true.
pub async fn run_sweeper(
    store: Arc<Store>,
    grace: Duration,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = sweep_once(&store, grace).await {
                    warn!(error = %e, "veth sweep failed");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
