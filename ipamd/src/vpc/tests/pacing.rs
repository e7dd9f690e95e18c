//! The pacing rules as the controller applies them: young ENIs are kept, shrinking waits
//! between passes, and a full subnet pauses growth. Time is the harness's stepped clock.

use vpc_cni_cloud::sim::SimVpc;

use super::harness::{config, Node, COOLDOWN_MS, IDLE_MS, START_MS};
use crate::store::AttachmentKey;
use crate::vpc::math::PoolConfig;
use crate::vpc::pacing::{MIN_ENI_AGE_MS, SHRINK_INTERVAL_MS, SUBNET_FULL_PAUSE_MS};
use crate::vpc::PoolDecision;

#[tokio::test]
async fn young_enis_wait_a_minute_before_they_are_freed() {
    // A shorter shrink interval, so the addresses are idle before the ENIs are a minute old.
    let mut cfg = config(PoolConfig::default());
    cfg.pacing.shrink_interval_ms = 10_000;
    let mut node = Node::new(cfg).await;
    node.idle().await;
    node.add_pods(40).await;
    node.idle().await;
    assert_eq!(node.shape().enis, 3);
    node.remove_all_pods().await;

    // Out of cooldown at 30 s and unused for 10 s more, but the ENIs are younger than a
    // minute.
    node.advance(COOLDOWN_MS + 10_001);
    let report = node.ctl.reconcile_once().await.unwrap();
    let (held, until) = report.held.expect("freeing a young ENI was not held back");
    assert!(matches!(held, PoolDecision::FreeEni { .. }), "{held:?}");
    assert!(until > node.now() && until <= START_MS + MIN_ENI_AGE_MS + 10_000);
    assert_eq!(node.shape().enis, 3);
    assert_eq!(
        node.sim.request_counts().get("DetachNetworkInterface"),
        None
    );

    node.advance(until - node.now());
    node.idle().await;
    assert_eq!(node.shape().enis, 1);
}

#[tokio::test]
async fn shrinking_waits_thirty_seconds_between_passes() {
    let mut node = Node::new(config(PoolConfig {
        warm_ip_target: 2,
        ..PoolConfig::default()
    }))
    .await;
    node.idle().await;
    node.add_pods(20).await;
    node.idle().await;
    assert_eq!(node.shape().addresses, 22);
    let pods: Vec<AttachmentKey> = node.pods().to_vec();

    // Two batches leave cooldown 10 s apart.
    node.remove_pods(&pods[..10]).await;
    node.advance(10_000);
    node.remove_pods(&pods[10..]).await;
    node.advance(IDLE_MS - 10_000);
    let first = node.ctl.reconcile_once().await.unwrap();
    assert!(
        !first.actions.is_empty() && first.held.is_none(),
        "{first:?}"
    );
    let shrunk_at = node.now();
    assert_eq!(node.shape().addresses, 12);

    node.advance(10_000);
    let second = node.ctl.reconcile_once().await.unwrap();
    assert!(second.actions.is_empty(), "{second:?}");
    let (held, until) = second.held.expect("a second shrink within 30 s ran");
    assert!(matches!(held, PoolDecision::Release { .. }), "{held:?}");
    assert_eq!(until, shrunk_at + SHRINK_INTERVAL_MS);
    assert_eq!(node.shape().addresses, 12);

    node.advance(until - node.now());
    node.idle().await;
    assert_eq!(node.shape().addresses, 2);
}

#[tokio::test]
async fn a_full_subnet_pauses_growth_for_two_minutes() {
    // A /27 holds 27 usable addresses; the node's own takes one, 26 are left for a pool
    // that wants 29 (WARM_ENI_TARGET=1 on an m5.4xlarge).
    let sim = SimVpc::with_seed(7);
    let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
    let sub = sim
        .create_subnet(&vpc.id, "10.0.0.0/27", "us-west-2a")
        .unwrap();
    let inst = sim.run_instance(&sub.id, "m5.4xlarge", "node-a").unwrap();
    let node = Node::on(sim, inst.id, sub.id, config(PoolConfig::default())).await;
    let assigns = || {
        node.sim
            .request_counts()
            .get("AssignPrivateIpAddresses")
            .copied()
            .unwrap_or(0)
    };

    let err = node.ctl.reconcile_once().await.unwrap_err();
    assert!(
        matches!(
            err.cloud_error(),
            Some(vpc_cni_cloud::CloudError::SubnetFull { .. })
        ),
        "{err}"
    );
    let tried = assigns();
    assert!(tried >= 1);

    // Passes during the pause make no growth call.
    for _ in 0..5 {
        node.advance(10_000);
        let report = node.ctl.reconcile_once().await.unwrap();
        let (held, until) = report.held.expect("growth was not paused");
        assert!(
            matches!(
                held,
                PoolDecision::AssignToExisting { .. } | PoolDecision::CreateEni { .. }
            ),
            "{held:?}"
        );
        assert!(until > node.now());
    }
    assert_eq!(assigns(), tried, "growth retried into a full subnet");

    node.advance(SUBNET_FULL_PAUSE_MS);
    assert!(node.ctl.reconcile_once().await.is_err());
    assert!(assigns() > tried, "growth did not resume after the pause");
}

/// Pods that come and go one at a time (one every 1.5 s on average, irregularly; a 30 s
/// cooldown): the pool grows to what the churn holds (pods, cooling addresses, the warm target)
/// and then stays, rather than giving back each moment's spare address and asking EC2 for it
/// again with the next pods.
#[tokio::test]
async fn churn_keeps_the_pool_it_needs() {
    const CHURNS: usize = 400;
    // Seeded: the same irregular pace every run.
    let mut pace = fastrand::Rng::with_seed(7);
    let mut node = Node::new(config(PoolConfig {
        warm_ip_target: 5,
        ..PoolConfig::default()
    }))
    .await;
    node.idle().await;
    let calls = |node: &Node| -> u64 { node.sim.request_counts().values().sum() };
    let mut before = 0;
    for churn in 0..CHURNS {
        if churn == CHURNS / 4 {
            // Steady state from here: the pool has grown to what the churn holds.
            before = calls(&node);
        }
        node.add_pods(1).await;
        let pod = node.pods().to_vec();
        node.remove_pods(&pod).await;
        node.advance(pace.u64(100..=2_900));
        node.ctl.reconcile_once().await.unwrap();
    }
    let during = calls(&node) - before;
    node.print_counts("churn");
    // Giving back each moment's spare made about one call per four pods here; growth to each
    // new peak of pods and cooling addresses still costs a call (the pool math grows by the
    // shortfall, as AWS's does).
    let steady = u64::try_from(CHURNS - CHURNS / 4).unwrap();
    assert!(
        during * 10 <= steady,
        "{during} EC2 calls for {steady} pods that came and went in steady state"
    );

    // Once the churn stops, what it held goes back.
    node.advance(IDLE_MS);
    node.idle().await;
    assert_eq!(node.shape().addresses, 5);
}
