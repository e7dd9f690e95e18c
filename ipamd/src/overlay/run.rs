//! The peer loop: follows a peer source and hands each peer set to the overlay datapath.
//! (Re-applying from scratch, which repairs outside damage, is the datapath upkeep's job.)
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
use crate::daemon::supervise::panic_message;
use crate::error::IpamdError;

/// Wait before retrying a failed apply.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Runs until `stop` turns true. Returns an error when the source's task ends first (it can
/// only panic: a source never ends and reports its errors as items), so the daemon's
/// supervisor reports the overlay as no longer following its peers.
pub async fn run_peer_loop(
    datapath: Arc<OverlayDatapath>,
    mut source: Box<dyn PeerSource>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), IpamdError> {
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

    'sets: loop {
        tokio::select! {
            _ = stop.changed() => break,
            changed = rx.changed() => {
                if changed.is_err() {
                    return Err(follower_ended(follower).await);
                }
            }
        }
        // A failed apply is retried until it succeeds or a newer set replaces it.
        loop {
            let Some(set) = rx.borrow_and_update().clone() else {
                break;
            };
            match datapath.apply_peers(&set).await {
                Ok(report) => {
                    debug!(peers = set.len(), ?report, "overlay peers applied");
                    break;
                }
                Err(e) => {
                    warn!(error = %e, retry_in = ?RETRY_INTERVAL, "applying overlay peers failed");
                }
            }
            tokio::select! {
                _ = stop.changed() => break 'sets,
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(follower_ended(follower).await);
                    }
                }
                () = tokio::time::sleep(RETRY_INTERVAL) => {}
            }
        }
    }
    follower.abort();
    Ok(())
}

/// Why the follower ended: it dropped its sender, so it has returned or panicked.
async fn follower_ended(follower: tokio::task::JoinHandle<()>) -> IpamdError {
    let reason = match follower.await {
        Ok(()) => "the task that follows it returned".to_owned(),
        Err(e) => format!("the task that follows it {}", panic_message(e)),
    };
    IpamdError::PeerSourceEnded { reason }
}
