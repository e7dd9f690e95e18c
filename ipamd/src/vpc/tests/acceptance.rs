//! Issue 5's acceptance table: warm pools on an m5.4xlarge (8 ENIs, 30 IPv4
//! each, so 29 pod addresses per ENI), counted once the controller is idle.

use super::harness::{config, Node, Shape, SETTLE_MS};
use crate::vpc::math::PoolConfig;

/// (ENIs, addresses or prefixes) at 0 pods, 10, 40, and back to 0.
type Row = [(usize, usize); 4];

async fn row(label: &str, pool: PoolConfig, want: Row) {
    let prefix = pool.prefix_delegation;
    let units = |s: Shape| (s.enis, if prefix { s.prefixes } else { s.addresses });
    let mut node = Node::new(config(pool)).await;

    node.idle().await;
    assert_eq!(units(node.shape()), want[0], "{label}: 0 pods");

    node.add_pods(10).await;
    node.idle().await;
    assert_eq!(units(node.shape()), want[1], "{label}: 10 pods");

    node.add_pods(30).await;
    node.idle().await;
    let at_40 = node.shape();
    assert_eq!(units(at_40), want[2], "{label}: 40 pods");

    // Released addresses cool down first: nothing shrinks yet.
    node.remove_all_pods().await;
    node.idle().await;
    assert_eq!(
        node.shape(),
        at_40,
        "{label}: cooling addresses were given back"
    );

    node.advance(SETTLE_MS);
    node.idle().await;
    assert_eq!(units(node.shape()), want[3], "{label}: back to 0");
    // Freed ENIs were deleted, not left behind.
    assert_eq!(
        node.world_enis().len(),
        want[3].0,
        "{label}: ENIs left in the VPC"
    );
    if prefix {
        assert_eq!(
            node.shape().addresses,
            0,
            "{label}: prefix mode took addresses"
        );
    } else {
        assert_eq!(
            node.shape().prefixes,
            0,
            "{label}: address mode took prefixes"
        );
    }
    node.print_counts(label);
}

#[tokio::test]
async fn defaults_keep_one_warm_eni() {
    row(
        "defaults",
        PoolConfig::default(),
        [(1, 29), (2, 58), (3, 87), (1, 29)],
    )
    .await;
}

#[tokio::test]
async fn warm_ip_target_5() {
    row(
        "WARM_IP_TARGET=5",
        PoolConfig {
            warm_ip_target: 5,
            ..PoolConfig::default()
        },
        [(1, 5), (1, 15), (2, 45), (1, 5)],
    )
    .await;
}

#[tokio::test]
async fn minimum_ip_target_20_warm_ip_target_2() {
    row(
        "MINIMUM_IP_TARGET=20 WARM_IP_TARGET=2",
        PoolConfig {
            minimum_ip_target: 20,
            warm_ip_target: 2,
            ..PoolConfig::default()
        },
        [(1, 20), (1, 20), (2, 42), (1, 20)],
    )
    .await;
}

#[tokio::test]
async fn prefix_delegation_warm_prefix_target_1() {
    row(
        "prefix delegation WARM_PREFIX_TARGET=1",
        PoolConfig {
            prefix_delegation: true,
            warm_prefix_target: 1,
            ..PoolConfig::default()
        },
        [(1, 1), (1, 2), (1, 4), (1, 1)],
    )
    .await;
}

#[tokio::test]
async fn max_eni_2() {
    row(
        "MAX_ENI=2",
        PoolConfig {
            max_eni: 2,
            ..PoolConfig::default()
        },
        [(1, 29), (2, 58), (2, 58), (1, 29)],
    )
    .await;
}
