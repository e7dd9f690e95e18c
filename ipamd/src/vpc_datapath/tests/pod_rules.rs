//! Which pod rules (1536) the store wants, and how the rules found are judged against it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use vpc_cni_proto::Mode;

use crate::store::{AttachmentKey, Datastore, MemoryCheckpoint, PodIdentity, PoolAddress, Store};
use crate::vpc_datapath::pod_rules::{judge, PodRuleTargets, SeenPodRule};
use crate::vpc_datapath::wiring::owned_tables;

pub(super) const T0: u64 = 1_700_000_000_000;

pub(super) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub(super) fn placed(s: &str, device_number: u32) -> PoolAddress {
    PoolAddress {
        ip: ip(s),
        route_table: if device_number == 0 {
            0
        } else {
            vpc_cni_proto::eni_route_table(device_number)
        },
        device_number,
    }
}

/// A store whose pool is `pool` and whose first `pods` addresses (in address order) are
/// assigned, one pod each.
pub(super) fn store(pool: &[PoolAddress], pods: usize) -> Arc<Store> {
    let mut ds = Datastore::new("test pool".into(), Mode::Vpc, 0);
    ds.set_pool(pool.to_vec());
    for i in 0..pods {
        ds.assign(
            AttachmentKey {
                container_id: format!("c{i}"),
                ifname: "eth0".into(),
            },
            PodIdentity::default(),
            T0,
        )
        .unwrap();
    }
    Arc::new(Store::new(ds, Arc::new(MemoryCheckpoint::new())))
}

fn set(items: &[u32]) -> BTreeSet<u32> {
    items.iter().copied().collect()
}

fn rule(from: &str, table: u32) -> SeenPodRule {
    SeenPodRule {
        from: Some(ip(from)),
        table,
        plain: true,
    }
}

#[tokio::test]
async fn targets_want_wired_secondaries_keep_unwired_attached_and_drop_the_rest() {
    let full = [
        placed("10.0.0.50", 0),
        placed("10.0.1.50", 1),
        placed("10.0.2.50", 2),
        placed("10.0.3.50", 3),
        placed("10.0.3.51", 3),
    ];
    // Every address but the last is held.
    let store = store(&full, 4);
    // Device 2's link is away (its addresses left the pool, the ENI is still attached);
    // device 3 was detached.
    let (left, written) = store.set_pool(vec![full[0], full[1], full[4]]).await;
    written.unwrap();
    assert_eq!(left.len(), 2);

    let t = PodRuleTargets::read(&store, &set(&[1]), &set(&[0, 1, 2]));
    assert_eq!(
        t.wanted.into_iter().collect::<Vec<_>>(),
        [(ip("10.0.1.50"), 2)],
        "the primary ENI's pod has no rule; unwired and gone ENIs' pods are not wanted"
    );
    assert_eq!(
        t.kept.into_iter().collect::<Vec<_>>(),
        [(ip("10.0.2.50"), 3)]
    );
}

#[test]
fn judge_keeps_one_wanted_rule_and_removes_everything_else_in_our_tables() {
    let owned = owned_tables(4);
    let mut targets = PodRuleTargets::default();
    targets.wanted.insert(ip("10.0.1.50"), 2);
    targets.wanted.insert(ip("10.0.1.51"), 2);
    targets.kept.insert((ip("10.0.2.50"), 3));
    // Wanted on table 2 now, although the unwired ENI's entry also names it.
    targets.kept.insert((ip("10.0.1.51"), 3));
    let seen = [
        rule("10.0.1.50", 2),
        rule("10.0.1.50", 2),
        rule("10.0.1.51", 3),
        rule("10.0.2.50", 3),
        rule("10.0.2.99", 3),
        rule("10.0.0.99", 150),
        SeenPodRule {
            from: None,
            table: 2,
            plain: true,
        },
        SeenPodRule {
            plain: false,
            ..rule("10.0.1.51", 2)
        },
    ];
    let (stale, present) = judge(&seen, &owned, &targets);
    assert_eq!(
        stale,
        [1, 2, 4, 6, 7],
        "the duplicate, the wrong table, the unassigned address, the rule of no address and \
         the variant go; the kept rule and the foreign table stay"
    );
    assert_eq!(
        present.into_iter().collect::<Vec<_>>(),
        [(ip("10.0.1.50"), 2)]
    );
}
