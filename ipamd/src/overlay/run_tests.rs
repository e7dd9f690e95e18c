//! What keeps the overlay following its peers on the real kernel: a netlink connection that
//! ended is opened again, and a peer loop whose source died says so instead of returning
//! silently. Each test needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::peers::{PeerSet, PeerSource};
use super::run_peer_loop;
use super::tests::{node, set, with_datapath};
use super::vxlan::tests::entries::overlay_entries;
use crate::datapath::NodeDatapath;
use crate::error::IpamdError;

#[test]
fn peer_changes_and_resyncs_go_through_after_the_netlink_connection_ended() {
    let ns = node();
    let one = set(&[("b", "192.168.50.2", "10.244.1.0/24")]);
    let two = set(&[
        ("b", "192.168.50.2", "10.244.1.0/24"),
        ("c", "192.168.50.3", "10.244.2.0/24"),
    ]);
    with_datapath(&ns, None, move |dp| {
        Box::pin(async move {
            dp.apply_peers(&one).await.unwrap();

            dp.end_netlink_connection().await;
            let report = dp
                .apply_peers(&two)
                .await
                .unwrap_or_else(|e| panic!("peer change after the connection ended: {e:?}"));
            assert_eq!(report.added.total(), 3, "{report:?}");

            dp.end_netlink_connection().await;
            dp.apply()
                .await
                .unwrap_or_else(|e| panic!("resync after the connection ended: {e:?}"));
        })
    });
    let entries = overlay_entries(&ns);
    assert_eq!(entries.len(), 6, "{entries:#?}");
}

/// Yields one set, then panics, as a source with a bug would.
struct PanicsAfterOneSet {
    first: Option<PeerSet>,
}

impl PeerSource for PanicsAfterOneSet {
    fn next(&mut self) -> BoxFuture<'_, Result<PeerSet, IpamdError>> {
        let first = self.first.take();
        Box::pin(async move {
            match first {
                Some(set) => Ok(set),
                None => panic!("the source broke"),
            }
        })
    }
}

#[test]
fn the_peer_loop_reports_a_source_that_died() {
    let ns = node();
    let one = set(&[("b", "192.168.50.2", "10.244.1.0/24")]);
    let ended = with_datapath(&ns, None, move |dp| {
        Box::pin(async move {
            let (_stop_tx, stop) = watch::channel(false);
            let source = Box::new(PanicsAfterOneSet { first: Some(one) });
            run_peer_loop(dp, source, stop).await
        })
    });
    match ended {
        Err(IpamdError::PeerSourceEnded { reason }) => {
            assert!(reason.contains("panicked: the source broke"), "{reason}")
        }
        other => panic!("the peer loop ended with {other:?}"),
    }
    // The set it had was applied before the source died.
    assert_eq!(overlay_entries(&ns).len(), 3);
}
