//! Controller behaviour beyond the table: release order, caps, no_manage,
//! what a new ENI is created with, IMDS lag, and the event-driven loop.

use std::collections::BTreeMap;
use std::time::Duration;

use vpc_cni_cloud::sim::Faults;

use super::harness::{config, world, Node, IDLE_MS, SETTLE_MS};
use crate::vpc::math::{PoolConfig, PoolDecision};
use crate::vpc::{CLUSTER_TAG, CREATED_AT_TAG, INSTANCE_ID_TAG, NO_MANAGE_TAG};

fn warm_ip(n: u32) -> PoolConfig {
    PoolConfig {
        warm_ip_target: n,
        ..PoolConfig::default()
    }
}

#[tokio::test]
async fn surplus_leaves_non_primary_enis_first() {
    let mut node = Node::new(config(warm_ip(5))).await;
    node.idle().await;
    node.add_pods(40).await;
    node.idle().await;
    let view = node.sim.imds_instance(&node.instance_id).unwrap();
    let (primary, second) = (&view.interfaces[0], &view.interfaces[1]);
    assert_eq!(
        (primary.local_ipv4s.len(), second.local_ipv4s.len()),
        (30, 17)
    );

    // Free 10 addresses on the primary: ENI 2's free ones go back first.
    let on_primary: Vec<_> = node.pods()[..10].to_vec();
    node.remove_pods(&on_primary).await;
    node.advance(IDLE_MS);
    let report = node.idle().await;
    let releases: Vec<&str> = report
        .actions
        .iter()
        .filter_map(|a| match a {
            PoolDecision::Release { eni, .. } => Some(eni.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        releases,
        [second.interface_id.as_str(), primary.interface_id.as_str()]
    );
    let view = node.sim.imds_instance(&node.instance_id).unwrap();
    // 15 available - 5 warm = 10 over: ENI 2's 5 free, then 5 of the primary's.
    assert_eq!(view.interfaces[0].local_ipv4s.len() - 1, 24);
    assert_eq!(view.interfaces[1].local_ipv4s.len() - 1, 11);
    node.print_counts("release order");
}

#[tokio::test]
async fn max_pods_caps_the_pool() {
    let mut node = Node::new(config(PoolConfig {
        max_pods: 40,
        ..PoolConfig::default()
    }))
    .await;
    assert_eq!(node.ctl.max_pods(), 40);
    node.idle().await;
    node.add_pods(10).await;
    node.idle().await;
    let s = node.shape();
    assert_eq!((s.enis, s.addresses), (2, 40));
    node.add_pods(30).await;
    node.idle().await;
    assert_eq!(node.shape().addresses, 40);
    assert!(
        !node.try_add_pod().await,
        "pod 41 got an address past max pods"
    );
    assert_eq!(node.shape().addresses, 40);
}

#[tokio::test]
async fn max_eni_caps_growth_even_when_short() {
    let mut node = Node::new(config(PoolConfig {
        max_eni: 2,
        warm_ip_target: 10,
        ..PoolConfig::default()
    }))
    .await;
    node.add_pods(58).await;
    node.idle().await;
    assert_eq!(node.shape().enis, 2);
    assert!(!node.try_add_pod().await);
    assert_eq!(
        node.sim.request_counts().get("AttachNetworkInterface"),
        Some(&1)
    );
}

#[tokio::test]
async fn no_manage_enis_are_left_alone() {
    let (sim, instance_id, subnet_id) = world(9);
    let tags = BTreeMap::from([(NO_MANAGE_TAG.to_string(), "true".to_string())]);
    let node = Node::on(sim, instance_id, subnet_id, config(PoolConfig::default())).await;
    let theirs = node.foreign_eni(tags, "someone else's", 5, Some(1));
    let before = node
        .sim
        .imds_instance(&node.instance_id)
        .unwrap()
        .interfaces[1]
        .clone();
    let mut node = node;

    node.idle().await;
    node.add_pods(10).await;
    node.idle().await;
    let view = node.sim.imds_instance(&node.instance_id).unwrap();
    // Ours went to device 2; theirs kept its addresses and device.
    let devices: Vec<(u32, &str)> = view
        .interfaces
        .iter()
        .map(|i| (i.device_number, i.interface_id.as_str()))
        .collect();
    assert_eq!(devices.len(), 3);
    assert_eq!(devices[1], (1, theirs.as_str()));
    assert_eq!(view.interfaces[1], before);
    let pool = node.ctl.snapshot().await.unwrap().pool;
    assert!(pool.iter().all(|a| !before.local_ipv4s.contains(&a.ip)));
    assert!(pool
        .iter()
        .any(|a| a.device_number == 2 && a.route_table == 3));

    node.remove_all_pods().await;
    node.advance(SETTLE_MS);
    node.idle().await;
    let view = node.sim.imds_instance(&node.instance_id).unwrap();
    assert_eq!(view.interfaces.len(), 2);
    assert_eq!(view.interfaces[1], before);
}

#[tokio::test]
async fn new_enis_carry_our_tags_and_the_primary_subnet_and_groups() {
    let mut cfg = config(PoolConfig::default());
    cfg.cluster_name = "prod".to_string();
    cfg.additional_eni_tags = BTreeMap::from([
        ("team".to_string(), "net".to_string()),
        (INSTANCE_ID_TAG.to_string(), "spoofed".to_string()),
    ]);
    let mut node = Node::new(cfg).await;
    node.add_pods(10).await;
    node.idle().await;
    let enis = node.world_enis();
    let primary = enis
        .iter()
        .find(|e| e.attachment.as_ref().unwrap().device_index == 0)
        .unwrap();
    let ours = enis
        .iter()
        .find(|e| e.attachment.as_ref().unwrap().device_index == 1)
        .unwrap();
    assert_eq!(ours.description, format!("vpc-cni-{}", node.instance_id));
    assert_eq!(ours.tags.get(INSTANCE_ID_TAG), Some(&node.instance_id));
    assert_eq!(ours.tags.get(CLUSTER_TAG).map(String::as_str), Some("prod"));
    assert_eq!(ours.tags.get("team").map(String::as_str), Some("net"));
    assert_eq!(
        ours.tags.get(CREATED_AT_TAG).map(String::as_str),
        Some("2023-11-14T22:13:20Z")
    );
    assert_eq!(ours.subnet_id, primary.subnet_id);
    assert_eq!(ours.security_groups, primary.security_groups);
    assert!(ours.attachment.as_ref().unwrap().delete_on_termination);
    // Secondary ENI at device 1 routes through table 2.
    let pool = node.ctl.snapshot().await.unwrap().pool;
    let on_second = pool.iter().filter(|a| a.device_number == 1).count();
    assert_eq!(on_second, 29);
    assert!(pool
        .iter()
        .all(|a| a.route_table == if a.device_number == 0 { 0 } else { 2 }));
}

#[tokio::test]
async fn waits_for_imds_to_show_what_ec2_assigned() {
    let node = Node::new(config(PoolConfig::default())).await;
    node.sim.set_faults(Faults {
        visibility_delay_ms: 200,
        ..Faults::default()
    });
    node.idle().await;
    assert_eq!(node.shape().addresses, 29);
    // One top-up, no repeats while IMDS lagged.
    assert_eq!(
        node.sim.request_counts().get("AssignPrivateIpAddresses"),
        Some(&1)
    );
}

#[tokio::test]
async fn run_wakes_on_demand_and_stops_on_shutdown() {
    let node = Node::new(config(warm_ip(2))).await;
    let ctl = node.ctl.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        ctl.run(async {
            let _ = stopped.await;
        })
        .await;
    });
    // Wait for the first pass to fill the pool, then drain it and wake.
    let filled = wait_for(|| node.store.counts(node.now()).total == 2).await;
    assert!(filled, "first pass did not run");
    for i in 0..2 {
        assert!(node.try_add_pod_without_reconcile(i).await);
    }
    node.ctl.wake();
    let grew = wait_for(|| node.store.counts(node.now()).available == 2).await;
    assert!(grew, "wake did not grow the pool");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run did not stop")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn wakes_do_not_cut_an_error_backoff_short() {
    let node = Node::new(config(warm_ip(2))).await;
    // Every top-up fails, as under sustained throttling.
    node.sim.set_faults(Faults {
        fail_next: vec![vpc_cni_cloud::sim::FailNext {
            action: "AssignPrivateIpAddresses".into(),
            times: 1000,
            code: "RequestLimitExceeded".into(),
        }],
        ..Faults::default()
    });
    let ctl = node.ctl.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        ctl.run(async {
            let _ = stopped.await;
        })
        .await;
    });
    let attempts = || {
        node.sim
            .request_counts()
            .get("AssignPrivateIpAddresses")
            .copied()
            .unwrap_or(0)
    };
    let first = wait_for(|| attempts() > 0).await;
    assert!(first, "the first pass made no top-up call");
    let after_first = attempts();
    // A burst of ADDs on the empty pool, all inside the first backoff: the paused clock
    // does not move while this task keeps running.
    for _ in 0..50 {
        node.ctl.wake();
        tokio::task::yield_now().await;
    }
    assert_eq!(
        attempts(),
        after_first,
        "wakes retried the failing call during the backoff"
    );
    // Once the backoff has passed, the controller tries again.
    let retried = wait_for(|| attempts() > after_first).await;
    assert!(retried, "no retry after the backoff");
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// Polls `f` for up to 10 s (a bound for a hung controller, not a timing check).
async fn wait_for(f: impl Fn() -> bool) -> bool {
    for _ in 0..1000 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

impl Node {
    async fn try_add_pod_without_reconcile(&self, i: usize) -> bool {
        let key = crate::store::AttachmentKey {
            container_id: format!("w{i}"),
            ifname: "eth0".to_string(),
        };
        self.store
            .assign(key, crate::store::PodIdentity::default(), self.now())
            .await
            .is_ok()
    }
}

#[tokio::test]
async fn the_primary_enis_security_groups_are_copied_to_ours_once_per_change() {
    let node = Node::new(config(warm_ip(40))).await;
    node.idle().await;
    let enis = node.world_enis();
    let primary = enis
        .iter()
        .find(|e| e.attachment.as_ref().is_some_and(|a| a.device_index == 0))
        .unwrap()
        .clone();
    assert!(enis.len() > 1, "the pool took a second ENI");
    let vpc = primary.vpc_id.clone();
    let group = node
        .sim
        .create_security_group(&vpc, "nodes", "nodes")
        .unwrap();
    let groups = vec![group.id.clone(), primary.security_groups[0].clone()];
    node.sim.set_security_groups(&primary.id, &groups).unwrap();
    let modifies = |node: &Node| {
        node.sim
            .request_counts()
            .get("ModifyNetworkInterfaceAttribute")
            .copied()
            .unwrap_or(0)
    };
    let before = modifies(&node);

    node.idle().await;
    let mut want = groups.clone();
    want.sort();
    for eni in node.world_enis().iter().filter(|e| e.id != primary.id) {
        let mut have = eni.security_groups.clone();
        have.sort();
        assert_eq!(have, want, "{}", eni.id);
    }
    let copied = modifies(&node) - before;
    assert_eq!(copied, enis.len() as u64 - 1, "one call per ENI of ours");
    // Nothing changed since: no more calls.
    node.idle().await;
    assert_eq!(modifies(&node) - before, copied);
}
