//! Addresses pods hold that one pass's pool does not show: kept, never handed out again,
//! never given back with their ENI, and reported only once EC2 confirms they left.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use vpc_cni_cloud::EniId;

use super::harness::{config, Node};
use crate::store::AttachmentKey;
use crate::vpc::controller::{Step, QUARANTINE_MS};
use crate::vpc::math::PoolConfig;

/// A node with its primary ENI full and a few pods on a second ENI; returns that ENI and
/// its pods' addresses.
async fn pods_on_a_second_eni() -> (Node, EniId, Vec<(AttachmentKey, Ipv4Addr)>) {
    let mut node = Node::new(config(PoolConfig {
        warm_ip_target: 2,
        ..PoolConfig::default()
    }))
    .await;
    node.idle().await;
    node.add_pods(35).await;
    node.idle().await;
    let snap = node.ctl.snapshot().await.unwrap();
    let eni = snap
        .imds
        .iter()
        .find(|e| e.device_number == 1)
        .expect("a second ENI")
        .eni_id
        .clone();
    let on_it: Vec<_> = node
        .store
        .assignments()
        .into_iter()
        .filter(|a| a.device_number == 1)
        .map(|a| (a.key, a.ip))
        .collect();
    assert!(!on_it.is_empty(), "no pod on the second ENI");
    (node, eni, on_it)
}

fn assert_pods_keep(node: &Node, pods: &[(AttachmentKey, Ipv4Addr)]) {
    for (key, ip) in pods {
        assert_eq!(
            node.store.get(key).map(|a| a.ip),
            Some(*ip),
            "pod {} lost its address",
            key.container_id
        );
    }
}

/// Regression: one pass in which IMDS did not show an ENI dropped its pods' assignments;
/// when the ENI showed again its addresses were free and new pods got them.
#[tokio::test]
async fn a_pass_that_misses_an_eni_keeps_its_pods_addresses() {
    let (mut node, eni, on_it) = pods_on_a_second_eni().await;

    node.imds.hide(Some(eni));
    node.ctl.snapshot().await.unwrap();
    assert_pods_keep(&node, &on_it);
    // A whole pass may also try to grow into the device index IMDS does not show; EC2
    // refuses that and the pass fails, which must not touch the assignments either.
    let _ = node.ctl.reconcile_once().await;
    assert_pods_keep(&node, &on_it);
    node.imds.hide(None);

    node.add_pods(10).await;
    assert_pods_keep(&node, &on_it);
    let mut seen = HashSet::new();
    for a in node.store.assignments() {
        assert!(seen.insert(a.ip), "{} is held twice", a.ip);
    }
    assert_eq!(node.store.counts(node.now()).outside_pool, 0);
}

/// An ENI whose addresses IMDS does not show looks empty to the pool math; it must not be
/// detached while pods hold addresses on it.
#[tokio::test]
async fn an_eni_carrying_held_addresses_is_not_freed() {
    let (node, eni, on_it) = pods_on_a_second_eni().await;

    node.imds.strip(Some(eni.clone()));
    let snap = node.ctl.snapshot().await.unwrap();
    let view = snap.view(&eni).expect("the ENI is still shown");
    assert!(view.secondary.is_empty());
    assert_eq!(
        node.store.counts(node.now()).outside_pool,
        on_it.len(),
        "its pods' addresses are held outside the pool"
    );

    let step = node.ctl.free_eni(&snap, &eni).await.unwrap();
    assert_eq!(step, Step::Declined);
    let still = node
        .world_enis()
        .into_iter()
        .find(|e| e.id == eni.as_str())
        .expect("the ENI exists");
    assert!(still.attachment.is_some(), "the ENI was detached");
    assert_pods_keep(&node, &on_it);
}

/// EC2, not IMDS, says whether a held address left the node: asked once per quarantine for
/// all that are due, and a pod is reported only when EC2 no longer shows its address. The
/// assignment stays either way.
#[tokio::test]
async fn ec2_confirms_before_a_missing_address_is_reported() {
    let (node, eni, on_it) = pods_on_a_second_eni().await;
    let describes = || {
        node.sim
            .request_counts()
            .get("DescribeNetworkInterfaces")
            .copied()
            .unwrap_or(0)
    };
    let reported = || {
        let c = node.ctl.caches();
        let mut ips: Vec<Ipv4Addr> = c
            .outside_pool
            .iter()
            .filter(|(_, w)| w.reported)
            .map(|(ip, _)| *ip)
            .collect();
        ips.sort();
        ips
    };

    node.imds.strip(Some(eni.clone()));
    let before = describes();
    node.ctl.snapshot().await.unwrap();
    assert_eq!(
        describes(),
        before,
        "nothing is due before the quarantine ends"
    );

    // EC2 still shows every address: IMDS lags; nothing is reported.
    node.advance(QUARANTINE_MS);
    node.ctl.snapshot().await.unwrap();
    assert_eq!(describes(), before + 1);
    assert!(reported().is_empty());
    node.ctl.snapshot().await.unwrap();
    assert_eq!(
        describes(),
        before + 1,
        "asked again only after another quarantine"
    );

    // One address is unassigned behind ipamd's back.
    let gone = on_it[0].1;
    node.sim
        .unassign_private_ip_addresses(eni.as_str(), &[gone], &[])
        .unwrap();
    node.advance(QUARANTINE_MS);
    node.ctl.snapshot().await.unwrap();
    assert_eq!(describes(), before + 2);
    assert_eq!(reported(), vec![gone]);
    assert_pods_keep(&node, &on_it);

    // IMDS catches up: the others are back in the pool; the unassigned one stays held and
    // is not reported again.
    node.imds.strip(None);
    node.ctl.snapshot().await.unwrap();
    assert_eq!(reported(), vec![gone]);
    assert_eq!(node.store.counts(node.now()).outside_pool, 1);
    assert_eq!(node.ctl.caches().outside_pool.len(), 1);
}
