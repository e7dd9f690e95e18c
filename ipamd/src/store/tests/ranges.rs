//! `RangeMap` against a plain per-address map, and what a large pool costs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_proto::Mode;
use vpc_cni_testkit::prop::config;

use super::super::ranges::{AddressRanges, RangeMap};
use super::{key, pod};
use crate::overlay::pool::pod_cidr_pool;
use crate::store::Datastore;

#[derive(Debug, Clone)]
enum Op {
    Insert(u32, u8),
    Remove(u32),
    PopFirst,
}

/// Addresses near both ends of the space, where `ip - 1` and `ip + 1` overflow.
fn address() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..40, (u32::MAX - 40)..=u32::MAX]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (address(), 0u8..3).prop_map(|(ip, v)| Op::Insert(ip, v)),
        2 => address().prop_map(Op::Remove),
        1 => Just(Op::PopFirst),
    ]
}

/// The map's runs are as few as its values allow: no run touches the next one when both
/// have the same value.
fn runs_are_maximal(map: &RangeMap<u8>, model: &BTreeMap<u32, u8>) -> bool {
    let joins = model
        .iter()
        .zip(model.iter().skip(1))
        .filter(|((a, va), (b, vb))| a.checked_add(1) == Some(**b) && va == vb)
        .count();
    map.runs() == model.len() - joins
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn prop_a_range_map_answers_like_a_map_of_single_addresses(ops in prop::collection::vec(op(), 0..200)) {
        let mut map = RangeMap::<u8>::new();
        let mut model = BTreeMap::<u32, u8>::new();
        for op in ops {
            match op {
                Op::Insert(ip, v) => {
                    let is_new = !model.contains_key(&ip);
                    model.insert(ip, v);
                    prop_assert_eq!(map.insert(Ipv4Addr::from(ip), v), is_new);
                }
                Op::Remove(ip) => {
                    prop_assert_eq!(map.remove(Ipv4Addr::from(ip)), model.remove(&ip).is_some());
                }
                Op::PopFirst => {
                    let first = model.pop_first().map(|(ip, _)| Ipv4Addr::from(ip));
                    prop_assert_eq!(map.pop_first(), first);
                }
            }
            prop_assert_eq!(map.len(), model.len());
            prop_assert!(runs_are_maximal(&map, &model));
        }
        let listed: Vec<(u32, u8)> = map.iter().map(|(ip, v)| (u32::from(ip), v)).collect();
        let expected: Vec<(u32, u8)> = model.iter().map(|(ip, v)| (*ip, *v)).collect();
        prop_assert_eq!(listed, expected);
        for ip in (0u32..40).chain((u32::MAX - 40)..=u32::MAX) {
            prop_assert_eq!(map.get(Ipv4Addr::from(ip)), model.get(&ip).copied());
        }
        let keys = map.keys();
        prop_assert_eq!(keys.len(), model.len());
        prop_assert!(keys.addresses_equal(model.keys().copied()));
    }

    #[test]
    fn prop_subset_is_answered_across_runs_of_different_values(
        big in prop::collection::btree_map(address(), 0u8..3, 0..60),
        keep in prop::collection::vec(any::<bool>(), 60),
        extra in prop::option::of(address()),
    ) {
        // Mostly subsets (some of big's addresses), sometimes with one more address.
        let small: Vec<u32> = big
            .keys()
            .zip(&keep)
            .filter(|(_, keep)| **keep)
            .map(|(ip, _)| *ip)
            .chain(extra)
            .collect();
        let small_set: AddressRanges = small.iter().map(|ip| Ipv4Addr::from(*ip)).collect();
        let big_map: RangeMap<u8> = big.iter().map(|(ip, v)| (Ipv4Addr::from(*ip), *v)).collect();
        prop_assert_eq!(
            small_set.is_subset_of(&big_map),
            small.iter().all(|ip| big.contains_key(ip))
        );
    }
}

impl AddressRanges {
    fn addresses_equal(&self, other: impl Iterator<Item = u32>) -> bool {
        self.iter().map(|(ip, ())| u32::from(ip)).eq(other)
    }
}

#[test]
fn a_slash_16_pool_with_250_pods_is_held_in_a_handful_of_runs() {
    let cidr = "10.7.0.0/16".parse().unwrap();
    let mut ds = Datastore::new("pod CIDR 10.7.0.0/16".to_owned(), Mode::Overlay, 0);
    assert!(ds.set_pool(pod_cidr_pool(cidr)).is_empty());
    assert_eq!(ds.counts(0).total, 65_534);
    assert_eq!(ds.pool_runs(), 1);
    for i in 0..250 {
        ds.assign(key(i), pod(i), 0).unwrap();
    }
    // Every tenth pod leaves: each leaves a hole in the free set, and nothing more.
    for i in (0..250).step_by(10) {
        ds.release(&key(i), 0).unwrap();
    }
    assert_eq!(ds.counts(0).available, 65_534 - 225);
    assert_eq!(ds.free_addresses().runs(), 26);
    assert_eq!(ds.pool_runs(), 1);
}

proptest! {
    #![proptest_config(config())]

    /// The blocks hold exactly the set's addresses, each aligned to its size, none touching
    /// another it could merge with into one aligned block.
    #[test]
    fn prop_cidrs_hold_exactly_the_addresses(ips in prop::collection::btree_set(address(), 0..60)) {
        let set: AddressRanges = ips.iter().map(|&ip| (Ipv4Addr::from(ip), ())).collect();
        let cidrs = set.cidrs();
        let mut covered = Vec::new();
        for c in &cidrs {
            let first = u64::from(u32::from(c.network));
            let size = 1u64 << (32 - u32::from(c.prefix_len));
            prop_assert_eq!(first % size, 0, "{} is not aligned", c);
            covered.extend((first..first + size).map(|ip| u32::try_from(ip).unwrap()));
        }
        prop_assert_eq!(covered, ips.iter().copied().collect::<Vec<u32>>());
        for pair in cidrs.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let mergeable = a.prefix_len == b.prefix_len
                && a.prefix_len > 0
                && Ipv4Cidr::containing(a.network, a.prefix_len - 1)
                    == Ipv4Cidr::containing(b.network, b.prefix_len - 1);
            prop_assert!(!mergeable, "{} and {} make one block", a, b);
        }
    }
}

#[test]
fn a_vpc_pool_is_announced_as_its_prefixes_and_single_addresses() {
    let mut ds = Datastore::new("ENIs".to_owned(), Mode::Vpc, 0);
    let address = |ip: [u8; 4]| crate::store::PoolAddress {
        ip: Ipv4Addr::from(ip),
        route_table: 0,
        device_number: 0,
    };
    let addresses = (16..32)
        .map(|d| address([10, 0, 1, d]))
        .chain([address([10, 0, 1, 37]), address([10, 0, 1, 38])]);
    ds.set_pool(addresses);
    let shown: Vec<String> = ds.pool_cidrs().iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.1.16/28", "10.0.1.37/32", "10.0.1.38/32"]);
    assert!(Datastore::new("x".into(), Mode::Vpc, 0)
        .pool_cidrs()
        .is_empty());
}
