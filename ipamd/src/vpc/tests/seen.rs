//! What the controller keeps of each pass for introspection and metrics: the latest picture
//! of the node, and the changes passes found, added up.

use super::harness::{config, Node, IDLE_MS};
use crate::vpc::math::PoolConfig;

#[tokio::test]
async fn the_latest_pass_is_kept_and_reconcile_counts_add_up_to_it() {
    let mut node = Node::new(config(PoolConfig {
        warm_ip_target: 5,
        ..PoolConfig::default()
    }))
    .await;
    assert!(node.ctl.seen().is_none(), "nothing seen before a pass");
    node.idle().await;
    let seen = node.ctl.seen().unwrap();
    assert_eq!(seen.enis.len(), 1);
    assert_eq!(seen.pool.len(), 5);
    assert!(seen.pool.windows(2).all(|w| w[0] < w[1]), "sorted");
    let counts = node.ctl.reconcile_counts();
    assert_eq!((counts.enis_added, counts.addresses_added), (0, 5));

    // Grow past the primary ENI, then give most of it back.
    node.add_pods(40).await;
    node.idle().await;
    let pods = node.pods()[..30].to_vec();
    node.remove_pods(&pods).await;
    node.advance(IDLE_MS);
    node.idle().await;

    let seen = node.ctl.seen().unwrap();
    let counts = node.ctl.reconcile_counts();
    assert!(counts.enis_added >= 1, "{counts:?}");
    assert!(counts.addresses_removed > 0, "{counts:?}");
    // The first pass saw one ENI and no secondary address: every change since adds up to now.
    assert_eq!(
        counts.enis_added - counts.enis_removed,
        u64::try_from(seen.enis.len() - 1).unwrap()
    );
    assert_eq!(
        counts.addresses_added - counts.addresses_removed,
        u64::try_from(seen.pool.len()).unwrap()
    );
    assert_eq!(seen.at_ms, node.now());
}
