#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checkpoint;
mod checkpoint_prop_tests;
mod commit;
mod datastore;
mod ranges;

use std::net::Ipv4Addr;

use vpc_cni_proto::Mode;

use super::{AttachmentKey, Datastore, PodIdentity, PoolAddress};

pub(super) const POOL: &str = "pod CIDR 10.1.0.0/16";

pub(super) fn key(i: usize) -> AttachmentKey {
    AttachmentKey {
        container_id: format!("container-{i:05}"),
        ifname: "eth0".to_owned(),
    }
}

pub(super) fn pod(i: usize) -> PodIdentity {
    PodIdentity {
        network_name: "vpc-cni".to_owned(),
        netns: format!("/var/run/netns/cni-{i}"),
        pod_namespace: "default".to_owned(),
        pod_name: format!("pod-{i}"),
        pod_uid: format!("uid-{i}"),
        host_veth: format!("vpc{i:011x}"),
    }
}

/// `n` addresses counting up from 10.1.0.1, alternating between two tables so tests can
/// see that an assignment carries its address's table and device.
pub(super) fn pool(n: u32) -> Vec<PoolAddress> {
    let base = u32::from(Ipv4Addr::new(10, 1, 0, 1));
    (0..n)
        .map(|i| PoolAddress {
            ip: Ipv4Addr::from(base + i),
            route_table: if i % 2 == 0 { 0 } else { 2 },
            device_number: i % 2,
        })
        .collect()
}

pub(super) fn ip(last: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 0)) + last)
}

pub(super) fn datastore(n: u32, cooldown_ms: u64) -> Datastore {
    let mut ds = Datastore::new(POOL.to_owned(), Mode::Overlay, cooldown_ms);
    assert!(ds.set_pool(pool(n)).is_empty());
    ds
}
