//! Addresses EC2 hands back soon after we released them: ours again at
//! once, not hidden for the released-address quarantine (vpc-sim always
//! allocates the lowest free address, as EC2 often does).

use super::harness::{config, Node, IDLE_MS};
use crate::vpc::math::PoolConfig;

#[tokio::test]
async fn addresses_handed_back_after_a_release_join_the_pool() {
    let mut node = Node::new(config(PoolConfig {
        warm_ip_target: 5,
        ..PoolConfig::default()
    }))
    .await;
    node.idle().await;
    node.add_pods(20).await;
    node.idle().await;
    assert_eq!(node.shape().addresses, 25);

    node.remove_all_pods().await;
    node.advance(IDLE_MS);
    node.idle().await;
    assert_eq!(node.shape().addresses, 5);

    // Well within the quarantine: the top-ups get the released addresses.
    node.add_pods(20).await;
    node.idle().await;
    assert_eq!(node.shape().addresses, 25);
    assert_eq!(node.store.counts(node.now()).total, 25);
}
