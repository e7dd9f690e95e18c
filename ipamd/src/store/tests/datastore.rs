use std::collections::HashSet;

use vpc_cni_proto::Mode;

use super::{datastore, ip, key, pod, pool, POOL};
use crate::error::IpamdError;
use crate::store::{
    AddressState, CheckpointData, CoolingAddress, Datastore, PoolCounts, ADOPTED_PREFIX,
    CHECKPOINT_VERSION,
};

#[test]
fn assign_is_idempotent_per_key() {
    let mut ds = datastore(4, 0);
    let (first, newly) = ds.assign(key(1), pod(1), 100).unwrap();
    assert!(newly);
    assert_eq!(first.ip, ip(1));
    assert_eq!(first.assigned_at_ms, 100);
    assert_eq!(first.pod, pod(1));

    // A repeated ADD, even with other pod details and a later time, gets the same assignment.
    let (again, newly) = ds.assign(key(1), pod(7), 200).unwrap();
    assert!(!newly);
    assert_eq!(again, first);
    assert_eq!(ds.counts(200).assigned, 1);

    // Same container, other interface: a different attachment.
    let mut other_if = key(1);
    other_if.ifname = "net1".to_owned();
    let (second, newly) = ds.assign(other_if, pod(1), 200).unwrap();
    assert!(newly);
    assert_eq!(second.ip, ip(2));
}

#[test]
fn assignment_carries_table_and_device_of_its_address() {
    let mut ds = datastore(4, 0);
    let (a, _) = ds.assign(key(1), pod(1), 0).unwrap();
    let (b, _) = ds.assign(key(2), pod(2), 0).unwrap();
    assert_eq!((a.route_table, a.device_number), (0, 0));
    assert_eq!((b.route_table, b.device_number), (2, 1));
}

#[test]
fn a_thousand_keys_get_distinct_addresses_lowest_first() {
    let mut ds = datastore(1024, 30_000);
    let mut seen = HashSet::new();
    for i in 0..1000 {
        let (a, newly) = ds.assign(key(i), pod(i), 0).unwrap();
        assert!(newly);
        assert!(seen.insert(a.ip), "{} handed out twice", a.ip);
        assert_eq!(a.ip, ip(1 + i as u32), "not lowest-first at {i}");
    }
    assert_eq!(
        ds.counts(0),
        PoolCounts {
            total: 1024,
            assigned: 1000,
            outside_pool: 0,
            cooling: 0,
            available: 24
        }
    );
    assert_eq!(ds.assignments().count(), 1000);
}

#[test]
fn exhaustion_names_the_pool_and_the_counts() {
    let mut ds = datastore(3, 10_000);
    ds.assign(key(1), pod(1), 0).unwrap();
    ds.assign(key(2), pod(2), 0).unwrap();
    ds.assign(key(3), pod(3), 0).unwrap();
    ds.release(&key(3), 0).unwrap();

    let err = ds.assign(key(4), pod(4), 5).unwrap_err();
    match &err {
        IpamdError::PoolExhausted {
            pool,
            total,
            assigned,
            cooling,
        } => {
            assert_eq!(pool, POOL);
            assert_eq!((*total, *assigned, *cooling), (3, 2, 1));
        }
        other => panic!("expected PoolExhausted, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(POOL), "{msg}");
    assert!(msg.contains("3 in the pool"), "{msg}");
    assert!(msg.contains("2 assigned"), "{msg}");
    assert!(msg.contains("1 cooling"), "{msg}");
}

#[test]
fn empty_pool_is_exhausted() {
    let mut ds = Datastore::new("empty".to_owned(), Mode::Overlay, 0);
    assert!(matches!(
        ds.assign(key(1), pod(1), 0),
        Err(IpamdError::PoolExhausted { total: 0, .. })
    ));
}

#[test]
fn cooling_address_is_not_reused_before_expiry() {
    let mut ds = datastore(2, 1_000);
    let (a, _) = ds.assign(key(1), pod(1), 0).unwrap();
    assert_eq!(a.ip, ip(1));
    let released = ds.release(&key(1), 500).unwrap();
    assert_eq!(released, a);
    assert_eq!(
        ds.address_state(ip(1), 500),
        Some(AddressState::Cooling { until_ms: 1_500 })
    );
    assert_eq!(ds.next_cooldown_expiry(500), Some(1_500));

    // The lower address is cooling, so the next one is handed out instead.
    let (b, _) = ds.assign(key(2), pod(2), 600).unwrap();
    assert_eq!(b.ip, ip(2));
    let err = ds.assign(key(3), pod(3), 1_499).unwrap_err();
    assert!(matches!(
        err,
        IpamdError::PoolExhausted {
            assigned: 1,
            cooling: 1,
            ..
        }
    ));
    assert_eq!(ds.counts(1_499).available, 0);

    // At the end of the cooldown it is free again.
    assert_eq!(ds.counts(1_500).available, 1);
    assert_eq!(ds.next_cooldown_expiry(1_500), None);
    let (c, _) = ds.assign(key(3), pod(3), 1_500).unwrap();
    assert_eq!(c.ip, ip(1));
}

#[test]
fn zero_cooldown_reuses_at_once() {
    let mut ds = datastore(2, 0);
    ds.assign(key(1), pod(1), 0).unwrap();
    ds.release(&key(1), 10).unwrap();
    assert_eq!(ds.counts(10).cooling, 0);
    assert_eq!(ds.assign(key(2), pod(2), 10).unwrap().0.ip, ip(1));
}

#[test]
fn release_is_idempotent_and_without_cooldown_frees_at_once() {
    let mut ds = datastore(2, 60_000);
    assert!(ds.release(&key(1), 0).is_none());
    ds.assign(key(1), pod(1), 0).unwrap();
    assert!(ds.release_without_cooldown(&key(1)).is_some());
    assert!(ds.release_without_cooldown(&key(1)).is_none());
    assert!(ds.get(&key(1)).is_none());
    assert_eq!(ds.address_state(ip(1), 0), Some(AddressState::Free));
    assert_eq!(ds.assign(key(2), pod(2), 0).unwrap().0.ip, ip(1));
}

#[test]
fn set_pool_keeps_assignments_outside_it_and_forgets_their_cooldowns() {
    let mut ds = datastore(4, 1_000);
    for i in 1..=3 {
        ds.assign(key(i), pod(i), 0).unwrap();
    }
    ds.release(&key(2), 0).unwrap(); // ip(2) cooling

    // Keep ip(1) and ip(4); add ip(9).
    let mut next = pool(4);
    next.retain(|a| a.ip == ip(1) || a.ip == ip(4));
    next.extend(pool(9).into_iter().filter(|a| a.ip == ip(9)));
    let left = ds.set_pool(next);

    // key(3)'s address left the pool; the pod keeps it.
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, key(3));
    assert_eq!(ds.get(&key(3)).unwrap().ip, ip(3));
    assert_eq!(
        ds.outside_pool().map(|a| a.ip).collect::<Vec<_>>(),
        vec![ip(3)]
    );
    assert_eq!(ds.address_state(ip(3), 0), Some(AddressState::Assigned));
    assert!(ds.get(&key(1)).is_some());
    assert_eq!(ds.address_state(ip(2), 0), None);
    assert_eq!(
        ds.counts(0),
        PoolCounts {
            total: 3,
            assigned: 2,
            outside_pool: 1,
            cooling: 0,
            available: 2
        }
    );
    assert_eq!(ds.next_cooldown_expiry(0), None);
    assert_eq!(ds.assign(key(5), pod(5), 0).unwrap().0.ip, ip(4));
    assert_eq!(ds.assign(key(6), pod(6), 0).unwrap().0.ip, ip(9));
    // A second set without change reports nothing new.
    let same: Vec<_> = pool(9)
        .into_iter()
        .filter(|a| [ip(1), ip(4), ip(9)].contains(&a.ip))
        .collect();
    assert!(ds.set_pool(same).is_empty());
}

/// Regression: one pool without a pod's address (IMDS lagging, an ENI's link briefly gone)
/// used to drop the assignment, and the next ADD got the address while the pod still used
/// it.
#[test]
fn an_address_missing_from_one_pool_is_not_handed_out_when_it_returns() {
    let mut ds = datastore(6, 1_000);
    let (a, _) = ds.assign(key(1), pod(1), 0).unwrap();
    let (b, _) = ds.assign(key(2), pod(2), 0).unwrap();

    let without: Vec<_> = pool(6)
        .into_iter()
        .filter(|p| p.ip != a.ip && p.ip != b.ip)
        .collect();
    ds.set_pool(without);
    assert!(ds.set_pool(pool(6)).is_empty(), "nothing left this time");

    let mut handed = HashSet::new();
    for i in 3..=6 {
        let (c, newly) = ds.assign(key(i), pod(i), 10).unwrap();
        assert!(newly);
        assert!(c.ip != a.ip && c.ip != b.ip, "{} handed out twice", c.ip);
        assert!(handed.insert(c.ip));
    }
    assert_eq!(ds.get(&key(1)).unwrap().ip, a.ip);
    assert_eq!(ds.get(&key(2)).unwrap().ip, b.ip);
    assert!(matches!(
        ds.assign(key(7), pod(7), 10),
        Err(IpamdError::PoolExhausted { .. })
    ));

    // Only a release frees it.
    ds.release(&key(1), 10).unwrap();
    assert_eq!(
        ds.address_state(a.ip, 10),
        Some(AddressState::Cooling { until_ms: 1_010 })
    );
}

#[test]
fn a_held_address_outside_the_pool_is_not_withdrawn() {
    let mut ds = datastore(4, 0);
    let (a, _) = ds.assign(key(1), pod(1), 0).unwrap();
    ds.set_pool(
        pool(4)
            .into_iter()
            .filter(|p| p.ip != a.ip)
            .collect::<Vec<_>>(),
    );
    assert!(!ds.withdraw_if_free(&[a.ip], 0));
    assert!(ds.withdraw_if_free(&[ip(4)], 0));
}

#[test]
fn adopt_holds_kernel_pods_no_assignment_accounts_for() {
    let mut ds = datastore(4, 1_000);
    ds.assign(key(1), pod(1), 0).unwrap(); // ip(1)
    ds.assign(key(2), pod(2), 0).unwrap();
    ds.release(&key(2), 0).unwrap(); // ip(2) cooling

    assert!(ds.adopt(ip(1), "vpcaaaa", 5).is_none(), "already held");
    let cooling = ds.adopt(ip(2), "vpcbbbb", 5).unwrap();
    assert_eq!(cooling.ip, ip(2));
    assert_eq!(cooling.key.container_id, format!("{ADOPTED_PREFIX}vpcbbbb"));
    assert_eq!(cooling.pod.host_veth, "vpcbbbb");
    assert_eq!(cooling.pod.network_name, "", "GC must never match it");
    assert_eq!((cooling.route_table, cooling.device_number), (2, 1));
    // An address outside the pool is held too.
    let outside = ds.adopt(ip(40), "vpccccc", 5).unwrap();
    assert_eq!((outside.route_table, outside.device_number), (0, 0));
    assert_eq!(ds.address_state(ip(40), 5), Some(AddressState::Assigned));

    assert_eq!(ds.assign(key(3), pod(3), 5).unwrap().0.ip, ip(3));
    assert_eq!(ds.assign(key(4), pod(4), 5).unwrap().0.ip, ip(4));
    assert!(ds.assign(key(5), pod(5), 5).is_err());
    // The snapshot carries adopted assignments, so a restart keeps them.
    assert_eq!(ds.snapshot().assignments.len(), 5);
}

#[test]
fn snapshot_restore_round_trip() {
    let mut ds = datastore(8, 1_000);
    for i in 1..=4 {
        ds.assign(key(i), pod(i), 10).unwrap();
    }
    ds.release(&key(2), 100).unwrap();
    let snap = ds.snapshot();
    assert_eq!(snap.version, CHECKPOINT_VERSION);
    assert_eq!(snap.mode, Mode::Overlay);
    assert_eq!(snap.assignments.len(), 3);
    assert_eq!(
        snap.cooling,
        vec![CoolingAddress {
            ip: ip(2),
            until_ms: 1_100
        }]
    );

    let mut fresh = datastore(8, 1_000);
    let report = fresh.restore(snap.clone(), 200);
    assert_eq!(report.restored, 3);
    assert_eq!(report.cooling_restored, 1);
    assert_eq!(report.checkpoint_mode, Some(Mode::Overlay));
    assert_eq!(fresh.snapshot(), snap);
    assert_eq!(fresh.counts(200), ds.counts(200));
    // The restored cooldown still holds, and restored addresses are not handed out again.
    assert_eq!(fresh.assign(key(9), pod(9), 200).unwrap().0.ip, ip(5));
}

#[test]
fn restore_keeps_what_left_the_pool_and_drops_clashes() {
    let mut old = datastore(8, 1_000);
    for i in 1..=4 {
        old.assign(key(i), pod(i), 0).unwrap();
    }
    old.release(&key(3), 0).unwrap(); // ip(3) cooling until 1_000
    old.release(&key(4), 500).unwrap(); // ip(4) cooling until 1_500
    let mut snap = old.snapshot();
    // A damaged file: a second key claiming ip(1), and a duplicate of key(2).
    let mut dup_ip = snap.assignments[0].clone();
    dup_ip.key = key(77);
    let dup_key = snap.assignments[1].clone();
    snap.assignments.push(dup_ip);
    snap.assignments.push(dup_key);

    // The new pool no longer holds ip(2).
    let mut ds = Datastore::new(POOL.to_owned(), Mode::Overlay, 1_000);
    ds.set_pool(
        pool(8)
            .into_iter()
            .filter(|a| a.ip != ip(2))
            .collect::<Vec<_>>(),
    );
    let report = ds.restore(snap, 1_200);

    // key(2)'s address is not in the pool: it is kept, held outside it. The duplicate of
    // key(2) and key(77)'s claim on ip(1) clash and are dropped.
    assert_eq!(report.restored, 2);
    assert_eq!(report.outside_pool.len(), 1);
    assert_eq!(report.outside_pool[0].key, key(2));
    assert_eq!(ds.get(&key(2)).unwrap().ip, ip(2));
    assert_eq!(report.dropped_conflicts.len(), 2);
    assert!(report.dropped_conflicts.iter().any(|a| a.key == key(77)));
    // ip(3)'s cooldown had passed at 1_200; ip(4)'s had not.
    assert_eq!(report.cooling_dropped, 1);
    assert_eq!(report.cooling_restored, 1);
    assert_eq!(ds.address_state(ip(3), 1_200), Some(AddressState::Free));
    assert_eq!(
        ds.address_state(ip(4), 1_200),
        Some(AddressState::Cooling { until_ms: 1_500 })
    );
    assert_eq!(ds.get(&key(1)).unwrap().ip, ip(1));
    assert_eq!(ds.assign(key(9), pod(9), 1_200).unwrap().0.ip, ip(3));
}

#[test]
fn restore_caps_cooldowns_from_a_clock_that_stepped_back() {
    let mut ds = datastore(2, 1_000);
    let data = CheckpointData {
        version: CHECKPOINT_VERSION.to_owned(),
        mode: Mode::Vpc,
        assignments: Vec::new(),
        cooling: vec![CoolingAddress {
            ip: ip(1),
            until_ms: 10_000_000,
        }],
    };
    ds.restore(data, 50);
    assert_eq!(ds.next_cooldown_expiry(50), Some(1_050));
    assert_eq!(ds.mode(), Mode::Overlay, "restore must not change the mode");
}

#[test]
fn large_pool_with_churn() {
    // A /16's worth of addresses and a node's worth of pods, with releases and reuse.
    let mut ds = Datastore::new(POOL.to_owned(), Mode::Overlay, 100);
    ds.set_pool(pool(65_534));
    let mut now = 0;
    for i in 0..300 {
        ds.assign(key(i), pod(i), now).unwrap();
    }
    for round in 0..20 {
        now += 50;
        for i in (round..300).step_by(20) {
            ds.release(&key(i), now).unwrap();
            ds.assign(key(1000 + round * 300 + i), pod(i), now).unwrap();
        }
    }
    let counts = ds.counts(now);
    assert_eq!(counts.total, 65_534);
    assert_eq!(counts.assigned, 300);
    assert_eq!(counts.assigned + counts.cooling + counts.available, 65_534);
    let ips: HashSet<_> = ds.assignments().map(|a| a.ip).collect();
    assert_eq!(ips.len(), 300);
}

#[test]
fn withdraw_if_free_takes_all_or_nothing() {
    let mut ds = datastore(6, 1_000);
    let (a, _) = ds.assign(key(1), pod(1), 0).unwrap();
    let (b, _) = ds.assign(key(2), pod(2), 0).unwrap();
    ds.release(&key(2), 0);
    assert_eq!((a.ip, b.ip), (ip(1), ip(2)));

    // One address in use or cooling: nothing is withdrawn.
    let before = ds.counts(0);
    assert!(!ds.withdraw_if_free(&[ip(3), ip(1)], 0));
    assert!(!ds.withdraw_if_free(&[ip(3), ip(2)], 500));
    assert_eq!(ds.counts(0), before);
    assert_eq!(ds.address_state(ip(3), 0), Some(AddressState::Free));

    // Free ones, an expired cooldown and an address already gone are all withdrawn.
    assert!(ds.withdraw_if_free(&[ip(2), ip(3), ip(99)], 1_000));
    assert_eq!(ds.address_state(ip(2), 1_000), None);
    assert_eq!(ds.address_state(ip(3), 1_000), None);
    assert_eq!(
        ds.counts(1_000),
        PoolCounts {
            total: 4,
            assigned: 1,
            outside_pool: 0,
            cooling: 0,
            available: 3
        }
    );
    assert!(ds.snapshot().cooling.is_empty());
    // Withdrawn addresses are never handed out.
    for i in 10..13 {
        let (c, _) = ds.assign(key(i), pod(i), 1_000).unwrap();
        assert!(![ip(2), ip(3)].contains(&c.ip), "{} came back", c.ip);
    }
}
