#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::introspect::{
    AddressRow, ConfigReport, EniRow, EnisReport, PeerRow, PeersReport, PodRow, PodsReport,
    PoolReport, PrefixRow, SettingRow, SlotStatus, VpcPool,
};
use serde::Serialize;

use super::*;

fn shown<T: Serialize>(what: What, report: &T, now_ms: u64) -> String {
    render(what, &serde_json::to_vec(report).unwrap(), now_ms).unwrap()
}

fn vpc_pool(prefix_mode: bool) -> PoolReport {
    PoolReport {
        mode: "vpc".into(),
        pool: "ENIs of i-1".into(),
        total: 10,
        assigned: 7,
        cooling: 1,
        available: 2,
        outside_pool: 0,
        vpc: Some(VpcPool {
            instance_id: "i-1".into(),
            instance_type: "t3.medium".into(),
            enis: 2,
            unmanaged_enis: 0,
            unwired_enis: 1,
            max_enis: 3,
            addresses_per_eni: 5,
            ip_max: 15,
            prefix_mode,
            prefixes: 3,
            free_prefixes: 1,
            max_pods: 17,
            observed_at_ms: 1,
        }),
    }
}

#[test]
fn the_pool_reads_as_name_value_lines() {
    assert_eq!(
        shown(What::Pool, &vpc_pool(false), 0),
        "\
MODE               vpc
POOL               ENIs of i-1
TOTAL              10
ASSIGNED           7
AVAILABLE          2
COOLING            1
OUTSIDE POOL       0
INSTANCE           i-1 (t3.medium)
ENIS               2 of 3 (0 unmanaged, 1 not wired yet)
ADDRESSES PER ENI  5
IP MAX             15
MAX PODS           17
"
    );
    assert!(
        shown(What::Pool, &vpc_pool(true), 0).ends_with("PREFIXES           3 (1 wholly free)\n")
    );
}

#[test]
fn an_overlay_pool_has_no_eni_lines() {
    let mut pool = vpc_pool(false);
    pool.mode = "overlay".into();
    pool.vpc = None;
    let text = shown(What::Pool, &pool, 0);
    assert!(text.starts_with("MODE          overlay\n"), "{text}");
    assert!(!text.contains("ENIS"));
}

#[test]
fn enis_show_a_summary_then_every_address() {
    let report = EnisReport {
        mode: "vpc".into(),
        enis: vec![EniRow {
            id: "eni-a".into(),
            device_number: 0,
            mac: "02:00:00:00:00:01".into(),
            subnet_id: "subnet-1".into(),
            subnet_cidr: "10.0.0.0/24".into(),
            primary_ip: "10.0.0.10".into(),
            managed: true,
            wired: true,
            addresses: vec![
                AddressRow {
                    ip: "10.0.0.11".into(),
                    state: SlotStatus::Assigned,
                    pod: Some("default/web".into()),
                },
                AddressRow {
                    ip: "10.0.0.12".into(),
                    state: SlotStatus::Free,
                    pod: None,
                },
            ],
            prefixes: vec![PrefixRow {
                prefix: "10.0.0.32/28".into(),
                free: 14,
                assigned: 1,
                cooling: 1,
            }],
        }],
    };
    assert_eq!(
        shown(What::Enis, &report, 0),
        "\
ENI    DEVICE  PRIMARY IP  SUBNET       MANAGED  WIRED  ASSIGNED  FREE  COOLING  PREFIXES
eni-a  0       10.0.0.10   10.0.0.0/24  yes      yes    2         15    1        1

ENI    ADDRESS       STATE                           POD
eni-a  10.0.0.11     assigned                        default/web
eni-a  10.0.0.12     free
eni-a  10.0.0.32/28  1 assigned, 14 free, 1 cooling
"
    );
    let none = EnisReport {
        mode: "overlay".into(),
        enis: vec![],
    };
    assert_eq!(shown(What::Enis, &none, 0), "no ENIs (overlay mode)\n");
}

#[test]
fn pods_show_their_age() {
    let report = PodsReport {
        pods: vec![PodRow {
            namespace: "default".into(),
            name: "web".into(),
            container_id: "0123456789abcdef0123".into(),
            ifname: "eth0".into(),
            network: "vpc-cni".into(),
            ip: "10.0.0.11".into(),
            device_number: 1,
            route_table: 2,
            host_veth: "vpc0123456789a".into(),
            assigned_at_ms: 1_000,
        }],
    };
    assert_eq!(
        shown(What::Pods, &report, 1_000 + 300_000),
        "\
NAMESPACE  NAME  IP         DEVICE  TABLE  HOST VETH       CONTAINER     IFNAME  AGE
default    web   10.0.0.11  1       2      vpc0123456789a  0123456789ab  eth0    5m
"
    );
    assert_eq!(
        shown(What::Pods, &PodsReport { pods: vec![] }, 0),
        "no pod holds an address\n"
    );
}

#[test]
fn peers_say_when_none_was_applied() {
    let mut report = PeersReport {
        mode: "vpc".into(),
        applied: false,
        peers: vec![],
    };
    assert_eq!(
        shown(What::Peers, &report, 0),
        "no peer set applied (vpc mode)\n"
    );
    report.mode = "overlay".into();
    report.applied = true;
    report.peers.push(PeerRow {
        name: "node-b".into(),
        kind: "overlay".into(),
        underlay_ip: "192.0.2.2".into(),
        pod_cidr: "10.244.2.0/24".into(),
        vtep_mac: "0e:56:c0:00:02:02".into(),
    });
    assert_eq!(
        shown(What::Peers, &report, 0),
        "\
NAME    UNDERLAY IP  POD CIDR       VTEP MAC
node-b  192.0.2.2    10.244.2.0/24  0e:56:c0:00:02:02
"
    );
}

#[test]
fn config_lists_every_setting_and_its_source() {
    let report = ConfigReport {
        mode: "vpc".into(),
        pool: "ENIs of i-1".into(),
        settings: vec![
            SettingRow {
                variable: "POD_CIDR".into(),
                flag: "--pod-cidr".into(),
                value: None,
                source: "unset".into(),
            },
            SettingRow {
                variable: "WARM_IP_TARGET".into(),
                flag: "--warm-ip-target".into(),
                value: Some("5".into()),
                source: "env".into(),
            },
        ],
    };
    assert_eq!(
        shown(What::Config, &report, 0),
        "\
MODE  vpc
POOL  ENIs of i-1

VARIABLE        VALUE  SOURCE
POD_CIDR        -      unset
WARM_IP_TARGET  5      env
"
    );
}

#[test]
fn json_of_another_shape_is_refused_naming_the_path() {
    let err = render(What::Pool, br#"{"pods": []}"#, 0).unwrap_err();
    assert!(format!("{err:#}").contains("/v1/pool"), "{err:#}");
}
