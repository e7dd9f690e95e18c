//! Allocation, reserved addresses, prefixes and the per-ENI limit.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::*;

fn in_subnet(ip: Ipv4Addr, base: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX << (32 - len);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(base))
}

#[test]
fn ten_thousand_addresses_unique_and_outside_prefixes() {
    let w = World::new("10.0.0.0/16");
    let mut prefixes_seen = HashSet::new();
    let mut addrs = HashSet::new();
    let mut enis = Vec::new();
    for _ in 0..100 {
        let e = w.eni();
        addrs.insert(e.primary_ip().unwrap());
        enis.push(e.id);
    }
    // 1000 prefixes first, interleaved with addresses so the two kinds of
    // allocation keep meeting in the bitmap.
    for id in &enis {
        let got = w.sim.assign_private_ip_addresses(id, prefixes(10)).unwrap();
        assert_eq!(got.prefixes.len(), 10);
        for p in got.prefixes {
            assert!(prefixes_seen.insert(p.clone()), "duplicate prefix {p}");
        }
        let got = w.sim.assign_private_ip_addresses(id, count(99)).unwrap();
        for a in got.addresses {
            assert!(addrs.insert(a), "duplicate address {a}");
        }
    }
    assert_eq!(addrs.len(), 10_000);
    assert_eq!(prefixes_seen.len(), 1000);
    let mut prefix_addrs = HashSet::new();
    for p in &prefixes_seen {
        let (base, len) = p.split_once('/').unwrap();
        assert_eq!(len, "28");
        let base: Ipv4Addr = base.parse().unwrap();
        assert_eq!(u32::from(base) % 16, 0, "{p} not /28 aligned");
        for a in prefix_addresses(p).unwrap() {
            assert!(prefix_addrs.insert(a), "prefixes overlap at {a}");
        }
    }
    for a in &addrs {
        assert!(in_subnet(*a, [10, 0, 0, 0], 16));
        let last = a.octets()[2] == 255 && a.octets()[3] == 255;
        let first = a.octets()[2] == 0 && a.octets()[3] < 4;
        assert!(!first && !last, "reserved address {a} handed out");
        assert!(
            !prefix_addrs.contains(a),
            "{a} is both secondary and in a prefix"
        );
    }
    let sub = &w
        .sim
        .describe_subnets(std::slice::from_ref(&w.subnet.id))
        .unwrap()[0];
    assert_eq!(sub.available_ip_count, 65536 - 5 - 10_000 - 16_000);
}

#[test]
fn reserved_addresses_never_handed_out_and_slash28_exhausts() {
    let w = World::new("10.0.3.0/28");
    assert_eq!(w.subnet.available_ip_count, 11);
    let e = w.eni();
    let got = w.sim.assign_private_ip_addresses(&e.id, count(10)).unwrap();
    let mut all: Vec<_> = got.addresses;
    all.push(e.primary_ip().unwrap());
    all.sort();
    let want: Vec<Ipv4Addr> = (4..15).map(|i| Ipv4Addr::new(10, 0, 3, i)).collect();
    assert_eq!(all, want);
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&e.id, count(1))),
        ErrorCode::InsufficientFreeAddressesInSubnet
    );
    assert_eq!(
        code(w.sim.create_network_interface(CreateEni {
            subnet_id: w.subnet.id.clone(),
            ..CreateEni::default()
        })),
        ErrorCode::InsufficientFreeAddressesInSubnet
    );
    // Repeated asks keep failing promptly and leave nothing half-taken.
    for _ in 0..100 {
        assert!(w.sim.assign_private_ip_addresses(&e.id, count(3)).is_err());
    }
    assert_eq!(
        w.sim.describe_subnets(&[]).unwrap()[0].available_ip_count,
        0
    );
}

#[test]
fn slash28_subnet_has_no_prefix_and_prefixes_exhaust_with_insufficient_cidr_blocks() {
    let w = World::new("10.0.4.0/28");
    let e = w.eni();
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&e.id, prefixes(1))),
        ErrorCode::InsufficientCidrBlocks
    );

    let w = World::new("10.0.5.0/26");
    let e = w.eni(); // takes .4, so the first block is unusable anyway
    let got = w
        .sim
        .assign_private_ip_addresses(&e.id, prefixes(2))
        .unwrap();
    assert_eq!(got.prefixes, vec!["10.0.5.16/28", "10.0.5.32/28"]);
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&e.id, prefixes(1))),
        ErrorCode::InsufficientCidrBlocks
    );
    // Free addresses remain (in the first and last blocks), just no whole /28.
    assert!(w.sim.assign_private_ip_addresses(&e.id, count(1)).is_ok());
}

#[test]
fn secondary_address_blocks_a_prefix_and_prefix_blocks_addresses() {
    // Blocks .0/28 and .48/28 hold reserved addresses; .16 and .32 are usable.
    let w = World::new("10.0.6.0/26");
    let e = w.eni(); // .4
                     // One address in each usable block makes both undelegatable.
    w.sim
        .assign_private_ip_addresses(
            &e.id,
            AssignIps {
                addresses: vec![Ipv4Addr::new(10, 0, 6, 20), Ipv4Addr::new(10, 0, 6, 36)],
                ..AssignIps::default()
            },
        )
        .unwrap();
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&e.id, prefixes(1))),
        ErrorCode::InsufficientCidrBlocks
    );
    let explicit = AssignIps {
        prefixes: vec!["10.0.6.16/28".into()],
        ..AssignIps::default()
    };
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&e.id, explicit.clone())),
        ErrorCode::InvalidParameterValue
    );
    w.sim
        .unassign_private_ip_addresses(&e.id, &[Ipv4Addr::new(10, 0, 6, 20)], &[])
        .unwrap();
    w.sim.assign_private_ip_addresses(&e.id, explicit).unwrap();
    // Now the prefix's addresses cannot be taken as secondaries.
    let taken = AssignIps {
        addresses: vec![Ipv4Addr::new(10, 0, 6, 21)],
        ..AssignIps::default()
    };
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&e.id, taken)),
        ErrorCode::InvalidParameterValue
    );
    // 11 + 15 + 15 addresses remain, none of them inside the prefix.
    let got = w.sim.assign_private_ip_addresses(&e.id, count(41)).unwrap();
    assert!(got
        .addresses
        .iter()
        .all(|a| !(16..32).contains(&a.octets()[3])));
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&e.id, count(1))),
        ErrorCode::InsufficientFreeAddressesInSubnet
    );
}

#[test]
fn per_eni_limit_counts_primary_secondaries_and_prefixes() {
    let w = World::new("10.0.0.0/20");
    let i = w.instance("t3.medium"); // 6 per ENI
    let primary = i.primary_eni.clone();
    w.sim
        .assign_private_ip_addresses(&primary, count(3))
        .unwrap(); // 4 used
    w.sim
        .assign_private_ip_addresses(&primary, prefixes(1))
        .unwrap(); // 5 used
    let before = w.sim.describe_subnets(&[]).unwrap()[0].available_ip_count;
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&primary, count(2))),
        ErrorCode::PrivateIpAddressLimitExceeded
    );
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&primary, prefixes(2))),
        ErrorCode::PrivateIpAddressLimitExceeded
    );
    // Refusals take nothing from the subnet.
    assert_eq!(
        w.sim.describe_subnets(&[]).unwrap()[0].available_ip_count,
        before
    );
    w.sim
        .assign_private_ip_addresses(&primary, prefixes(1))
        .unwrap(); // 6
    let e = w.eni_by_id(&primary);
    assert_eq!(e.private_ips.len() + e.prefixes.len(), 6);
}

#[test]
fn unattached_eni_is_limited_by_the_subnet_only() {
    let w = World::new("10.0.0.0/24");
    let e = w.eni();
    w.sim
        .assign_private_ip_addresses(&e.id, count(100))
        .unwrap();
    assert_eq!(w.eni_by_id(&e.id).private_ips.len(), 101);
}

#[test]
fn prefixes_need_a_nitro_instance() {
    let w = World::new("10.0.0.0/24");
    let i = w.instance("m4.large");
    assert_eq!(
        code(
            w.sim
                .assign_private_ip_addresses(&i.primary_eni, prefixes(1))
        ),
        ErrorCode::InvalidParameterValue
    );
    let i = w.instance("t2.medium");
    assert_eq!(
        code(
            w.sim
                .assign_private_ip_addresses(&i.primary_eni, prefixes(1))
        ),
        ErrorCode::InvalidParameterValue
    );
    assert!(w
        .sim
        .assign_private_ip_addresses(&i.primary_eni, count(1))
        .is_ok());
}

#[test]
fn parameter_combinations_and_missing_parameters() {
    let w = World::new("10.0.0.0/24");
    let e = w.eni();
    let both = AssignIps {
        count: 1,
        addresses: vec![Ipv4Addr::new(10, 0, 0, 50)],
        ..AssignIps::default()
    };
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&e.id, both)),
        ErrorCode::InvalidParameterCombination
    );
    let mixed = AssignIps {
        count: 1,
        prefix_count: 1,
        ..AssignIps::default()
    };
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&e.id, mixed)),
        ErrorCode::InvalidParameterCombination
    );
    assert_eq!(
        code(
            w.sim
                .assign_private_ip_addresses(&e.id, AssignIps::default())
        ),
        ErrorCode::MissingParameter
    );
    assert_eq!(
        code(w.sim.unassign_private_ip_addresses(&e.id, &[], &[])),
        ErrorCode::MissingParameter
    );
    assert_eq!(
        code(
            w.sim
                .assign_private_ip_addresses("eni-00000000000000000", count(1))
        ),
        ErrorCode::InvalidNetworkInterfaceIdNotFound
    );
}

#[test]
fn explicit_addresses_are_checked_and_all_or_nothing() {
    let w = World::new("10.0.0.0/24");
    let e = w.eni(); // .4
    let ask = |ips: Vec<Ipv4Addr>| AssignIps {
        addresses: ips,
        ..AssignIps::default()
    };
    let ip = |d| Ipv4Addr::new(10, 0, 0, d);
    for bad in [
        ip(0),
        ip(1),
        ip(3),
        ip(255),
        Ipv4Addr::new(10, 0, 1, 9),
        ip(4),
    ] {
        assert_eq!(
            code(w.sim.assign_private_ip_addresses(&e.id, ask(vec![bad]))),
            ErrorCode::InvalidParameterValue,
            "{bad}"
        );
    }
    // The good one in a bad list is not kept.
    assert!(w
        .sim
        .assign_private_ip_addresses(&e.id, ask(vec![ip(9), ip(2)]))
        .is_err());
    assert_eq!(w.eni_by_id(&e.id).private_ips.len(), 1);
    let got = w
        .sim
        .assign_private_ip_addresses(&e.id, ask(vec![ip(9), ip(10)]))
        .unwrap();
    assert_eq!(got.addresses, vec![ip(9), ip(10)]);
    assert_eq!(
        code(
            w.sim
                .assign_private_ip_addresses(&e.id, ask(vec![ip(11), ip(11)]))
        ),
        ErrorCode::InvalidParameterValue
    );
}

#[test]
fn reassignment_moves_a_secondary_but_never_a_primary() {
    let w = World::new("10.0.0.0/24");
    let a = w.eni(); // .4
    let b = w.eni(); // .5
    let moved = w
        .sim
        .assign_private_ip_addresses(&a.id, count(1))
        .unwrap()
        .addresses[0];
    let ask = |ip, allow| AssignIps {
        addresses: vec![ip],
        allow_reassignment: allow,
        ..AssignIps::default()
    };
    assert_eq!(
        code(w.sim.assign_private_ip_addresses(&b.id, ask(moved, false))),
        ErrorCode::InvalidParameterValue
    );
    w.sim
        .assign_private_ip_addresses(&b.id, ask(moved, true))
        .unwrap();
    assert!(!w
        .eni_by_id(&a.id)
        .private_ips
        .iter()
        .any(|p| p.address == moved));
    assert!(w
        .eni_by_id(&b.id)
        .private_ips
        .iter()
        .any(|p| p.address == moved));
    let a_primary = a.primary_ip().unwrap();
    assert_eq!(
        code(
            w.sim
                .assign_private_ip_addresses(&b.id, ask(a_primary, true))
        ),
        ErrorCode::InvalidParameterValue
    );
}

#[test]
fn unassign_rules_and_freed_addresses_come_back_lowest_first() {
    let w = World::new("10.0.0.0/24");
    let e = w.eni();
    let got = w.sim.assign_private_ip_addresses(&e.id, count(3)).unwrap();
    let primary = e.primary_ip().unwrap();
    assert_eq!(
        code(w.sim.unassign_private_ip_addresses(&e.id, &[primary], &[])),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        code(
            w.sim
                .unassign_private_ip_addresses(&e.id, &[Ipv4Addr::new(10, 0, 0, 200)], &[])
        ),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        code(
            w.sim
                .unassign_private_ip_addresses(&e.id, &[], &["10.0.0.32/28".into()])
        ),
        ErrorCode::InvalidParameterValue
    );
    w.sim
        .unassign_private_ip_addresses(&e.id, &[got.addresses[0]], &[])
        .unwrap();
    let again = w.sim.assign_private_ip_addresses(&e.id, count(1)).unwrap();
    assert_eq!(again.addresses, vec![got.addresses[0]]);
    let p = w
        .sim
        .assign_private_ip_addresses(&e.id, prefixes(1))
        .unwrap()
        .prefixes;
    w.sim.unassign_private_ip_addresses(&e.id, &[], &p).unwrap();
    assert!(w.eni_by_id(&e.id).prefixes.is_empty());
    assert_eq!(
        w.sim
            .assign_private_ip_addresses(&e.id, prefixes(1))
            .unwrap()
            .prefixes,
        p
    );
}
