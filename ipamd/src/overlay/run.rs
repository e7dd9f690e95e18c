//! The peer loop: follows a peer source and keeps the overlay datapath in step with it.
//!
//! The source runs in a task of its own and publishes each whole set on a watch channel, so
//! a slow apply never makes the source drop a change (only intermediate sets coalesce, which
//! is fine for level-triggered state) and the source's `next` is never cancelled mid-way.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

use super::datapath::OverlayDatapath;
use super::peers::{PeerSet, PeerSource};

/// How often the last peer set is re-applied from scratch, repairing outside damage.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(60);
/// Wait before retrying a failed apply.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Runs until `stop` turns true.
pub async fn run_peer_loop(
    datapath: Arc<OverlayDatapath>,
    mut source: Box<dyn PeerSource>,
    mut stop: watch::Receiver<bool>,
) {
    let (tx, mut rx) = watch::channel::<Option<PeerSet>>(None);
    let follower = tokio::spawn(async move {
        loop {
            match source.next().await {
                Ok(set) => {
                    if tx.send(Some(set)).is_err() {
                        return;
                    }
                }
                // The source keeps its last good set; so does the datapath.
                Err(e) => {
                    warn!(error = %e, "peer source reported an error; keeping the current peers")
                }
            }
        }
    });

    let mut pending = false;
    let mut wait = RESYNC_INTERVAL;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                pending = true;
            }
            () = tokio::time::sleep(wait) => {}
        }
        let outcome = if pending {
            let set = rx.borrow_and_update().clone();
            match set {
                Some(set) => datapath.apply_peers(&set).await.map(|report| {
                    debug!(peers = set.len(), ?report, "overlay peers applied");
                }),
                None => Ok(()),
            }
        } else {
            datapath.resync().await.map(|report| {
                if let Some(report) = report.filter(|r| !r.is_unchanged()) {
                    warn!(?report, "overlay entries had drifted and were restored");
                }
            })
        };
        match outcome {
            Ok(()) => {
                pending = false;
                wait = RESYNC_INTERVAL;
            }
            Err(e) => {
                warn!(error = %e, retry_in = ?RETRY_INTERVAL, "applying overlay peers failed");
                wait = RETRY_INTERVAL;
            }
        }
    }
    follower.abort();
}
