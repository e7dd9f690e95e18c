//! The exact JSON handed to `nft -j -f -`.

use serde_json::{json, Value};

use crate::guard::PodGuard;

/// The batch, with each `fib` expression's flags sorted: the crate keeps them in a set,
/// whose order `nft` does not care about.
fn batch_json(guard: PodGuard) -> Value {
    let mut value = serde_json::to_value(guard.replace_batch()).unwrap();
    sort_fib_flags(&mut value);
    value
}

fn sort_fib_flags(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(flags)) = map.get_mut("fib").and_then(|f| f.get_mut("flags")) {
                flags.sort_by_key(ToString::to_string);
            }
            map.values_mut().for_each(sort_fib_flags);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_fib_flags),
        _ => {}
    }
}

fn table_reset(family: &str) -> Vec<Value> {
    let table = json!({"table": {"family": family, "name": "vpc-cni-guard"}});
    vec![
        json!({"add": table}),
        json!({"delete": table}),
        json!({"add": table}),
    ]
}

fn base_chain(family: &str, name: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {
        "family": family, "table": "vpc-cni-guard", "name": name,
        "type": "filter", "hook": hook, "prio": prio, "policy": "accept"
    }}})
}

fn chain(family: &str, name: &str) -> Value {
    json!({"add": {"chain": {"family": family, "table": "vpc-cni-guard", "name": name}}})
}

fn rule(family: &str, chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {
        "family": family, "table": "vpc-cni-guard", "chain": chain, "expr": expr
    }}})
}

fn from_pod_jump() -> Vec<Value> {
    vec![
        json!({"match": {"left": {"meta": {"key": "iifname"}}, "right": "vpc*", "op": "=="}}),
        json!({"jump": {"target": "from-pod"}}),
    ]
}

fn counted_drop(matched: Value) -> Vec<Value> {
    vec![
        matched,
        json!({"counter": {"packets": 0, "bytes": 0}}),
        json!({"drop": null}),
    ]
}

fn want(block_imds: bool) -> Value {
    let mut want = table_reset("ip");
    want.extend(table_reset("arp"));
    want.extend([
        base_chain("ip", "prerouting", "prerouting", -300),
        chain("ip", "from-pod"),
        rule("ip", "prerouting", from_pod_jump()),
        rule(
            "ip",
            "from-pod",
            counted_drop(json!({"match": {
                "left": {"fib": {"result": "oif", "flags": ["iif", "saddr"]}},
                "right": false,
                "op": "=="
            }})),
        ),
    ]);
    if block_imds {
        want.push(rule(
            "ip",
            "from-pod",
            counted_drop(json!({"match": {
                "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                "right": "169.254.169.254",
                "op": "=="
            }})),
        ));
    }
    want.extend([
        base_chain("arp", "input", "input", 0),
        chain("arp", "from-pod"),
        rule("arp", "input", from_pod_jump()),
        rule(
            "arp",
            "from-pod",
            counted_drop(json!({"match": {
                "left": {"payload": {"protocol": "arp", "field": "operation"}},
                "right": "reply",
                "op": "!="
            }})),
        ),
        rule(
            "arp",
            "from-pod",
            counted_drop(json!({"match": {
                "left": {"payload": {"protocol": "arp", "field": "saddr ip"}},
                "right": "169.254.1.1",
                "op": "=="
            }})),
        ),
    ]);
    json!({"nftables": want})
}

#[test]
fn the_guard_with_imds_blocked_is_exactly_this_batch() {
    assert_eq!(batch_json(PodGuard::new(true)), want(true));
}

#[test]
fn without_the_imds_block_only_that_rule_goes() {
    assert_eq!(batch_json(PodGuard::new(false)), want(false));
}
