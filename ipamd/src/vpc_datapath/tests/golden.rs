//! Golden tests of the nftables batch: the exact JSON handed to `nft -j -f -`. The kernel
//! tests check what `nft list table` prints after applying it.

use serde_json::{json, Value};

use super::core::cidr;
use crate::vpc_datapath::ruleset::SnatRuleset;

fn batch_json(ruleset: &SnatRuleset) -> Value {
    serde_json::to_value(ruleset.replace_batch()).unwrap()
}

fn ruleset(external_snat: bool) -> SnatRuleset {
    SnatRuleset::new(
        "eth0",
        "10.0.0.10".parse().unwrap(),
        [cidr("10.0.0.0/16"), cidr("192.0.2.0/24")],
        external_snat,
    )
}

fn table_reset() -> Vec<Value> {
    let table = json!({"table": {"family": "ip", "name": "vpc-cni"}});
    vec![
        json!({"add": table}),
        json!({"delete": table}),
        json!({"add": table}),
    ]
}

fn ct_mark() -> Value {
    json!({"ct": {"key": "mark"}})
}

fn set_connmark() -> Value {
    json!({"mangle": {"key": ct_mark(), "value": {"|": [ct_mark(), 128]}}})
}

fn ct_state_new() -> Value {
    json!({"match": {"left": {"ct": {"key": "state"}}, "right": "new", "op": "in"}})
}

fn iifname(name: &str) -> Value {
    json!({"match": {"left": {"meta": {"key": "iifname"}}, "right": name, "op": "=="}})
}

fn not_exempt() -> Value {
    json!({"match": {
        "left": {"payload": {"protocol": "ip", "field": "daddr"}},
        "right": "@snat-exempt",
        "op": "!="
    }})
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": "ip", "table": "vpc-cni", "chain": chain, "expr": expr}}})
}

fn chain(name: &str, kind: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {
        "family": "ip", "table": "vpc-cni", "name": name,
        "type": kind, "hook": hook, "prio": prio, "policy": "accept"
    }}})
}

fn restore_mark() -> Value {
    rule(
        "prerouting",
        vec![
            json!({"match": {"left": {"&": [ct_mark(), 128]}, "right": 128, "op": "=="}}),
            json!({"mangle": {
                "key": {"meta": {"key": "mark"}},
                "value": {"|": [{"meta": {"key": "mark"}}, 128]}
            }}),
        ],
    )
}

/// An interval set of `vpc-cni` holding `prefixes` (address, length).
fn cidr_set(name: &str, prefixes: &[(&str, u8)]) -> Value {
    let elem: Vec<Value> = prefixes
        .iter()
        .map(|(addr, len)| json!({"prefix": {"addr": addr, "len": len}}))
        .collect();
    json!({"add": {"set": {
        "family": "ip", "table": "vpc-cni", "name": name,
        "type": "ipv4_addr", "flags": ["interval"], "elem": elem
    }}})
}

/// Connections entering through the primary ENI are connmarked.
fn primary_connmark() -> Value {
    rule(
        "prerouting",
        vec![ct_state_new(), iifname("eth0"), set_connmark()],
    )
}

/// Pod connections to outside the exempt destinations are connmarked.
fn pod_connmark() -> Value {
    rule(
        "prerouting",
        vec![
            ct_state_new(),
            iifname("vpc*"),
            not_exempt(),
            set_connmark(),
        ],
    )
}

/// The SNAT chain and its one rule, to the primary address.
fn snat() -> [Value; 2] {
    [
        chain("postrouting", "nat", "postrouting", 100),
        rule(
            "postrouting",
            vec![
                iifname("vpc*"),
                not_exempt(),
                json!({"snat": {"addr": "10.0.0.10", "flags": ["fully-random"]}}),
            ],
        ),
    ]
}

#[test]
fn snat_ruleset_is_exactly_this_batch() {
    let mut want = table_reset();
    want.extend([
        cidr_set("snat-exempt", &[("10.0.0.0", 16), ("192.0.2.0", 24)]),
        chain("prerouting", "filter", "prerouting", -150),
        primary_connmark(),
        pod_connmark(),
        restore_mark(),
    ]);
    want.extend(snat());
    assert_eq!(batch_json(&ruleset(false)), json!({"nftables": want}));
}

#[test]
fn external_snat_batch_has_no_snat_and_no_pod_connmark() {
    let mut want = table_reset();
    want.extend([
        chain("prerouting", "filter", "prerouting", -150),
        primary_connmark(),
        restore_mark(),
    ]);
    assert_eq!(batch_json(&ruleset(true)), json!({"nftables": want}));
}

#[test]
fn a_hybrid_node_keeps_overlay_pods_untranslated_and_routes_them_by_main() {
    let hybrid =
        ruleset(false).with_overlay("vxlan.vpc", [cidr("10.244.2.0/24"), cidr("10.244.1.0/24")]);
    let mut want = table_reset();
    want.extend([
        cidr_set(
            "snat-exempt",
            &[
                ("10.0.0.0", 16),
                ("10.244.1.0", 24),
                ("10.244.2.0", 24),
                ("192.0.2.0", 24),
            ],
        ),
        cidr_set("remote-pods", &[("10.244.1.0", 24), ("10.244.2.0", 24)]),
        chain("prerouting", "filter", "prerouting", -150),
        primary_connmark(),
        pod_connmark(),
        rule(
            "prerouting",
            vec![ct_state_new(), iifname("vxlan.vpc"), set_connmark()],
        ),
        rule(
            "prerouting",
            vec![
                ct_state_new(),
                iifname("vpc*"),
                json!({"match": {
                    "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                    "right": "@remote-pods",
                    "op": "=="
                }}),
                set_connmark(),
            ],
        ),
        restore_mark(),
    ]);
    want.extend(snat());
    assert_eq!(batch_json(&hybrid), json!({"nftables": want}));

    // Before the first overlay node joins: the device's rule only, no empty set.
    let alone = batch_json(&ruleset(false).with_overlay("vxlan.vpc", []));
    assert!(!alone.to_string().contains("remote-pods"), "{alone}");
    assert!(alone.to_string().contains("vxlan.vpc"), "{alone}");
}
