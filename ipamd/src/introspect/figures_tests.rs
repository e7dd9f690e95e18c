#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::Ipv4Addr;

use vpc_cni_cloud::{EniId, ImdsEni, NodeIdentity, SubnetId};

use super::*;
use crate::store::{AttachmentKey, PodIdentity};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn eni(id: &str, device: u32, addresses: &[&str], prefixes: &[&str]) -> ImdsEni {
    ImdsEni {
        mac: format!("02:00:00:00:00:0{device}").parse().unwrap(),
        eni_id: EniId::new(id),
        device_number: device,
        subnet_id: SubnetId::new("subnet-1"),
        vpc_id: "vpc-1".into(),
        security_groups: vec![],
        subnet_cidr: "10.0.0.0/24".parse().unwrap(),
        vpc_cidrs: vec!["10.0.0.0/16".parse().unwrap()],
        addresses: addresses.iter().map(|a| ip(a)).collect(),
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

fn node() -> NodeIdentity {
    NodeIdentity {
        instance_id: "i-1".into(),
        instance_type: "m5.large".into(),
        region: "us-west-2".into(),
        availability_zone: "us-west-2a".into(),
        primary_mac: "02:00:00:00:00:00".parse().unwrap(),
        local_ipv4: ip("10.0.0.10"),
    }
}

/// m5.large: 3 ENIs of 10 addresses. The primary ENI holds two secondaries, eth1 a /28 and
/// eth2 is tagged no_manage.
fn seen() -> Seen {
    Seen {
        enis: vec![
            eni("eni-a", 0, &["10.0.0.10", "10.0.0.11", "10.0.0.12"], &[]),
            eni("eni-b", 1, &["10.0.0.20"], &["10.0.0.32/28"]),
            eni("eni-c", 2, &["10.0.0.30", "10.0.0.31"], &["10.0.0.48/28"]),
        ],
        unmanaged: vec![EniId::new("eni-c")],
        unwired: vec![1],
        pool: vec![],
        at_ms: 42,
    }
}

fn shape(n: &NodeIdentity, prefix_delegation: bool) -> PoolShape<'_> {
    PoolShape {
        node: n,
        limits: Limits {
            max_enis: 3,
            ipv4_per_eni: 10,
            nitro: true,
            vcpus: 2,
        },
        config: PoolConfig {
            prefix_delegation,
            ..PoolConfig::default()
        },
        max_pods: 29,
    }
}

fn states(pairs: &[(&str, AddressState)]) -> HashMap<Ipv4Addr, AddressState> {
    pairs.iter().map(|(a, s)| (ip(a), *s)).collect()
}

#[test]
fn the_pool_counts_managed_enis_and_caps_less_the_unmanaged() {
    let n = node();
    let free: HashMap<Ipv4Addr, AddressState> = (32..48)
        .map(|last| (Ipv4Addr::new(10, 0, 0, last), AddressState::Free))
        .collect();
    let pool = vpc_pool(&seen(), &shape(&n, false), &|a| free.get(&a).copied());
    assert_eq!(pool.enis, 2);
    assert_eq!(pool.unmanaged_enis, 1);
    assert_eq!(pool.unwired_enis, 1);
    assert_eq!(pool.max_enis, 2, "3 for the type, less the no_manage one");
    assert_eq!(pool.addresses_per_eni, 9);
    assert_eq!(pool.ip_max, 18);
    assert!(!pool.prefix_mode);
    assert_eq!(pool.prefixes, 1, "the unmanaged ENI's /28 is not ours");
    assert_eq!(pool.free_prefixes, 1);
    assert_eq!((pool.max_pods, pool.observed_at_ms), (29, 42));
    assert_eq!(pool.instance_id, "i-1");
}

#[test]
fn prefix_mode_counts_sixteen_addresses_a_slot_and_a_used_prefix_is_not_free() {
    let n = node();
    let used = states(&[("10.0.0.40", AddressState::Cooling { until_ms: 99 })]);
    let pool = vpc_pool(&seen(), &shape(&n, true), &|a| {
        Some(used.get(&a).copied().unwrap_or(AddressState::Free))
    });
    assert!(pool.prefix_mode);
    assert_eq!(pool.addresses_per_eni, 9 * 16);
    assert_eq!(pool.ip_max, 2 * 9 * 16);
    assert_eq!((pool.prefixes, pool.free_prefixes), (1, 0));
}

#[test]
fn eni_rows_show_each_address_state_and_its_pod() {
    let st = states(&[
        ("10.0.0.11", AddressState::Assigned),
        ("10.0.0.12", AddressState::Cooling { until_ms: 7 }),
        ("10.0.0.33", AddressState::Assigned),
        ("10.0.0.34", AddressState::Free),
    ]);
    let holder = |a: Ipv4Addr| (a == ip("10.0.0.11")).then(|| "default/web".to_owned());
    let rows = eni_rows(&seen(), &|a| st.get(&a).copied(), &holder);
    assert_eq!(rows.len(), 3);
    let a = &rows[0];
    assert_eq!(
        (a.id.as_str(), a.primary_ip.as_str(), a.managed, a.wired),
        ("eni-a", "10.0.0.10", true, true)
    );
    assert_eq!(
        a.addresses,
        vec![
            AddressRow {
                ip: "10.0.0.11".into(),
                state: SlotStatus::Assigned,
                pod: Some("default/web".into()),
            },
            AddressRow {
                ip: "10.0.0.12".into(),
                state: SlotStatus::Cooling,
                pod: None,
            },
        ]
    );
    let b = &rows[1];
    assert!(!b.wired);
    assert_eq!(
        b.prefixes,
        vec![PrefixRow {
            prefix: "10.0.0.32/28".into(),
            free: 1,
            assigned: 1,
            cooling: 0,
        }]
    );
    assert!(!rows[2].managed);
    assert!(rows[2]
        .addresses
        .iter()
        .all(|r| r.state == SlotStatus::Unavailable));
}

fn assignment(ns: &str, name: &str, container: &str, address: &str) -> Assignment {
    Assignment {
        key: AttachmentKey {
            container_id: container.into(),
            ifname: "eth0".into(),
        },
        pod: PodIdentity {
            network_name: "net".into(),
            pod_namespace: ns.into(),
            pod_name: name.into(),
            host_veth: format!("vpc{container}"),
            ..PodIdentity::default()
        },
        ip: ip(address),
        route_table: 0,
        device_number: 0,
        assigned_at_ms: 5,
    }
}

#[test]
fn pods_come_ordered_and_holders_fall_back_to_the_container() {
    let all = [
        assignment("kube-system", "dns", "c2", "10.0.0.12"),
        assignment("default", "web", "c1", "10.0.0.11"),
        assignment("", "", "c3", "10.0.0.13"),
    ];
    let rows = pod_rows(all.iter());
    let names: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.namespace.as_str(), r.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [("", ""), ("default", "web"), ("kube-system", "dns")]
    );
    assert_eq!(rows[1].container_id, "c1");
    assert_eq!(rows[1].host_veth, "vpcc1");
    let held = holders(all.iter());
    assert_eq!(held[&ip("10.0.0.11")], "default/web");
    assert_eq!(held[&ip("10.0.0.13")], "c3");
}
