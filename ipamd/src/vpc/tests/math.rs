//! The pool math on hand-built snapshots.

use std::net::Ipv4Addr;

use crate::vpc::math::{
    choose_address, decide, max_pods, per_eni, tally, EniView, Limits, PoolConfig, PoolDecision,
    PrefixView, Slot, SlotState,
};

const M5_4XL: Limits = Limits {
    max_enis: 8,
    ipv4_per_eni: 30,
    nitro: true,
    vcpus: 16,
};

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + n)
}

/// An ENI with `free`, `assigned` and `cooling` secondary addresses, from `base`.
fn eni(dev: u32, base: u32, free: usize, assigned: usize, cooling: usize) -> EniView {
    let states = std::iter::repeat_n(SlotState::Assigned, assigned)
        .chain(std::iter::repeat_n(SlotState::Cooling, cooling))
        .chain(std::iter::repeat_n(SlotState::Free, free));
    EniView {
        id: format!("eni-{dev}").into(),
        device_index: dev,
        primary: dev == 0,
        no_manage: false,
        secondary: states
            .enumerate()
            .map(|(i, state)| Slot {
                ip: ip(base + i as u32),
                state,
            })
            .collect(),
        prefixes: Vec::new(),
        subnet_full: false,
    }
}

fn prefix(base: u32, used: usize) -> PrefixView {
    PrefixView {
        prefix: format!("{}/28", ip(base)).parse().unwrap(),
        slots: (0..16)
            .map(|i| Slot {
                ip: ip(base + i),
                state: if (i as usize) < used {
                    SlotState::Assigned
                } else {
                    SlotState::Free
                },
            })
            .collect(),
    }
}

fn pd(dev: u32, prefixes: Vec<PrefixView>) -> EniView {
    EniView {
        prefixes,
        secondary: Vec::new(),
        ..eni(dev, 0, 0, 0, 0)
    }
}

fn warm_ip(w: u32, m: u32) -> PoolConfig {
    PoolConfig {
        warm_ip_target: w,
        minimum_ip_target: m,
        ..PoolConfig::default()
    }
}

#[test]
fn max_pods_follow_the_formula() {
    let d = PoolConfig::default();
    assert_eq!(max_pods(&d, &M5_4XL), 8 * 29 + 2);
    let m5_large = Limits {
        max_enis: 3,
        ipv4_per_eni: 10,
        nitro: true,
        vcpus: 2,
    };
    assert_eq!(max_pods(&d, &m5_large), 29);
    let pd_cfg = PoolConfig {
        prefix_delegation: true,
        ..d
    };
    assert_eq!(max_pods(&pd_cfg, &m5_large), 110);
    let big = Limits {
        max_enis: 15,
        ipv4_per_eni: 50,
        nitro: true,
        vcpus: 72,
    };
    assert_eq!(max_pods(&pd_cfg, &big), 250);
    // Not Nitro: prefix delegation falls back to addresses.
    let m4 = Limits {
        nitro: false,
        ..m5_large
    };
    assert_eq!(max_pods(&pd_cfg, &m4), 29);
    assert_eq!(
        max_pods(&PoolConfig { max_eni: 2, ..d }, &M5_4XL),
        2 * 29 + 2
    );
    assert_eq!(max_pods(&PoolConfig { max_pods: 7, ..d }, &M5_4XL), 7);
    assert_eq!(per_eni(&M5_4XL), 29);
}

#[test]
fn available_excludes_assigned_and_cooling() {
    let t = tally(&[eni(0, 1, 10, 5, 3)], false);
    assert_eq!(
        (t.total, t.assigned, t.cooling, t.available),
        (18, 5, 3, 10)
    );
}

#[test]
fn warm_eni_fills_the_primary_then_whole_new_enis() {
    let d = PoolConfig::default();
    assert_eq!(
        decide(&[eni(0, 1, 0, 0, 0)], &d, &M5_4XL),
        PoolDecision::AssignToExisting {
            eni: "eni-0".into(),
            count: 29
        }
    );
    // 19 available < 29: a whole new ENI.
    assert_eq!(
        decide(&[eni(0, 1, 19, 10, 0)], &d, &M5_4XL),
        PoolDecision::CreateEni { count: 29 }
    );
    assert_eq!(
        decide(&[eni(0, 1, 29, 0, 0)], &d, &M5_4XL),
        PoolDecision::Idle
    );
}

#[test]
fn warm_eni_frees_an_idle_eni_only_with_a_whole_eni_to_spare() {
    let d = PoolConfig::default();
    let enis = [eni(0, 1, 29, 0, 0), eni(1, 100, 29, 0, 0)];
    assert_eq!(
        decide(&enis, &d, &M5_4XL),
        PoolDecision::FreeEni {
            eni: "eni-1".into()
        }
    );
    // A cooling address keeps the ENI.
    let enis = [eni(0, 1, 29, 0, 0), eni(1, 100, 28, 0, 1)];
    assert_eq!(decide(&enis, &d, &M5_4XL), PoolDecision::Idle);
    // 28 + 29 available - 29 < 29: kept as the warm ENI.
    let enis = [eni(0, 1, 28, 1, 0), eni(1, 100, 29, 0, 0)];
    assert_eq!(decide(&enis, &d, &M5_4XL), PoolDecision::Idle);
}

#[test]
fn ip_targets_short_and_over() {
    // short = max(5 - 0, 0) on an empty primary.
    assert_eq!(
        decide(&[eni(0, 1, 0, 0, 0)], &warm_ip(5, 0), &M5_4XL),
        PoolDecision::AssignToExisting {
            eni: "eni-0".into(),
            count: 5
        }
    );
    // short = max(2 - 10, 20 - 10) = 10.
    assert_eq!(
        decide(&[eni(0, 1, 10, 0, 0)], &warm_ip(2, 20), &M5_4XL),
        PoolDecision::AssignToExisting {
            eni: "eni-0".into(),
            count: 10
        }
    );
    // A full primary: the shortfall goes onto a new ENI, sized to it.
    assert_eq!(
        decide(&[eni(0, 1, 0, 29, 0)], &warm_ip(5, 0), &M5_4XL),
        PoolDecision::CreateEni { count: 5 }
    );
    // over = min(12 - 5, 12 - 0) = 7, taken from free addresses only.
    match decide(&[eni(0, 1, 12, 3, 2)], &warm_ip(5, 0), &M5_4XL) {
        PoolDecision::Release {
            eni,
            addresses,
            prefixes,
        } => {
            assert_eq!(eni, "eni-0");
            assert_eq!(addresses.len(), 7);
            assert!(
                addresses.iter().all(|a| *a >= ip(6)),
                "released a held address"
            );
            assert!(prefixes.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // MINIMUM_IP_TARGET holds total up: over = min(20 - 2, 20 - 20) = 0.
    assert_eq!(
        decide(&[eni(0, 1, 20, 0, 0)], &warm_ip(2, 20), &M5_4XL),
        PoolDecision::Idle
    );
}

#[test]
fn ip_target_release_takes_non_primary_enis_first() {
    let enis = [eni(0, 1, 10, 19, 0), eni(1, 100, 5, 11, 0)];
    match decide(&enis, &warm_ip(5, 0), &M5_4XL) {
        PoolDecision::Release { eni, addresses, .. } => {
            assert_eq!((eni.as_str(), addresses.len()), ("eni-1", 5));
        }
        other => panic!("{other:?}"),
    }
    // An ENI with nothing held is freed whole when the targets allow it.
    let enis = [eni(0, 1, 29, 0, 0), eni(1, 100, 16, 0, 0)];
    assert_eq!(
        decide(&enis, &warm_ip(5, 0), &M5_4XL),
        PoolDecision::FreeEni {
            eni: "eni-1".into()
        }
    );
    // The primary is never freed.
    assert!(matches!(
        decide(&[eni(0, 1, 29, 0, 0)], &warm_ip(5, 0), &M5_4XL),
        PoolDecision::Release { .. }
    ));
}

#[test]
fn caps_stop_growth() {
    let full = |dev| eni(dev, dev * 100 + 1, 0, 29, 0);
    let two = [full(0), full(1)];
    let capped = PoolConfig {
        max_eni: 2,
        ..PoolConfig::default()
    };
    assert_eq!(decide(&two, &capped, &M5_4XL), PoolDecision::Idle);
    let pods = PoolConfig {
        max_pods: 40,
        ..PoolConfig::default()
    };
    assert_eq!(
        decide(&[full(0)], &pods, &M5_4XL),
        PoolDecision::CreateEni { count: 11 }
    );
    let no_manage = EniView {
        no_manage: true,
        ..eni(1, 100, 5, 0, 0)
    };
    // The no_manage ENI takes a slot but gives no addresses.
    assert_eq!(
        decide(&[full(0), no_manage], &capped, &M5_4XL),
        PoolDecision::Idle
    );
}

#[test]
fn an_eni_whose_subnet_is_full_gets_no_more_and_growth_takes_a_new_eni() {
    let config = warm_ip(2, 0);
    let roomy = eni(0, 10, 0, 3, 0);
    assert_eq!(
        decide(std::slice::from_ref(&roomy), &config, &M5_4XL),
        PoolDecision::AssignToExisting {
            eni: "eni-0".into(),
            count: 2
        }
    );
    let in_full_subnet = EniView {
        subnet_full: true,
        ..roomy
    };
    assert!(matches!(
        decide(&[in_full_subnet], &config, &M5_4XL),
        PoolDecision::CreateEni { .. }
    ));
}

#[test]
fn prefix_mode_keeps_warm_whole_prefixes() {
    let cfg = PoolConfig {
        prefix_delegation: true,
        warm_prefix_target: 1,
        ..PoolConfig::default()
    };
    assert_eq!(
        decide(&[pd(0, vec![])], &cfg, &M5_4XL),
        PoolDecision::AssignToExisting {
            eni: "eni-0".into(),
            count: 1
        }
    );
    let used = vec![prefix(16, 16), prefix(32, 16), prefix(48, 8)];
    assert_eq!(
        decide(&[pd(0, used)], &cfg, &M5_4XL),
        PoolDecision::AssignToExisting {
            eni: "eni-0".into(),
            count: 1
        }
    );
    let idle = vec![prefix(16, 0), prefix(32, 0), prefix(48, 0), prefix(64, 2)];
    match decide(&[pd(0, idle)], &cfg, &M5_4XL) {
        PoolDecision::Release {
            prefixes,
            addresses,
            ..
        } => {
            assert_eq!(prefixes.len(), 2);
            assert!(addresses.is_empty());
            assert!(!prefixes.contains(&format!("{}/28", ip(64)).parse().unwrap()));
        }
        other => panic!("{other:?}"),
    }
    // IP targets in prefix mode count in prefixes, rounded up.
    let ipt = PoolConfig {
        prefix_delegation: true,
        minimum_ip_target: 20,
        ..PoolConfig::default()
    };
    assert_eq!(
        decide(&[pd(0, vec![])], &ipt, &M5_4XL),
        PoolDecision::AssignToExisting {
            eni: "eni-0".into(),
            count: 2
        }
    );
}

#[test]
fn new_pods_pack_onto_the_fullest_eni_or_prefix() {
    let enis = [eni(0, 1, 20, 9, 0), eni(1, 100, 10, 19, 0)];
    assert_eq!(choose_address(&enis, false), Some(ip(119)));
    // Ties go to the lower device, then the lower address.
    let enis = [eni(1, 100, 29, 0, 0), eni(0, 1, 29, 0, 0)];
    assert_eq!(choose_address(&enis, false), Some(ip(1)));
    let enis = [pd(0, vec![prefix(16, 3), prefix(32, 9), prefix(48, 16)])];
    assert_eq!(choose_address(&enis, true), Some(ip(41)));
    assert_eq!(choose_address(&[eni(0, 1, 0, 29, 0)], false), None);
}

/// Resting addresses (a pod gave them back within the shrink interval) serve pods and count
/// toward the warm target, but only idle ones go back, and an ENI with a resting address stays.
#[test]
fn resting_addresses_are_available_but_not_spare() {
    let rest = |mut e: EniView, n: usize| {
        for slot in e.secondary.iter_mut().rev().take(n) {
            slot.state = SlotState::Resting;
        }
        e
    };
    // 12 free on the primary, 8 of them resting: WARM_IP_TARGET=2 keeps the 4 idle ones but
    // 2, and nothing grows.
    let enis = [rest(eni(0, 0, 12, 3, 0), 8)];
    let t = tally(&enis, false);
    assert_eq!((t.available, t.idle), (12, 4));
    match decide(&enis, &warm_ip(2, 0), &M5_4XL) {
        PoolDecision::Release { addresses, .. } => assert_eq!(addresses.len(), 2),
        other => panic!("{other:?}"),
    }
    // All resting: nothing is spare yet, and nothing is short.
    let enis = [rest(eni(0, 0, 12, 3, 0), 12)];
    assert_eq!(decide(&enis, &warm_ip(2, 0), &M5_4XL), PoolDecision::Idle);
    // A pod may get a resting address.
    assert!(choose_address(&enis, false).is_some());
    // A secondary ENI with one resting address is not freed, whatever the surplus.
    let enis = [eni(0, 0, 29, 0, 0), rest(eni(1, 100, 29, 0, 0), 1)];
    assert_eq!(
        decide(&enis, &PoolConfig::default(), &M5_4XL),
        PoolDecision::Idle
    );
    assert!(matches!(
        decide(
            &[eni(0, 0, 29, 0, 0), eni(1, 100, 29, 0, 0)],
            &PoolConfig::default(),
            &M5_4XL
        ),
        PoolDecision::FreeEni { .. }
    ));
}
