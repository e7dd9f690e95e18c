//! The fast path's tables: what the plan holds (pure), and that `nft` and the kernel take
//! the batch in a namespace with real links (root). Traffic through them is tested end to
//! end in integration/tests/fast_path.rs.

use std::net::Ipv4Addr;

use serde_json::Value;
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::netns::Netns;

use super::plan::{FastEni, FastPathPlan, FastPod};
use crate::kernel::nft;

fn eni(device_number: u32, link: &str, gateway: [u8; 4]) -> FastEni {
    FastEni {
        device_number,
        link: link.into(),
        gateway: Ipv4Addr::from(gateway),
    }
}

fn pod(ip: [u8; 4], veth: &str, device_number: u32) -> FastPod {
    FastPod {
        ip: Ipv4Addr::from(ip),
        veth: veth.into(),
        veth_index: 7,
        device_number,
    }
}

fn plan() -> FastPathPlan {
    FastPathPlan::new(
        [eni(0, "eth0", [10, 0, 0, 1]), eni(1, "eth1", [10, 0, 1, 1])],
        [
            pod([10, 0, 0, 20], "vpcprimary", 0),
            pod([10, 0, 1, 20], "vpcsecond", 1),
            // Its ENI is not wired: left out.
            pod([10, 0, 2, 20], "vpcunwired", 2),
        ],
        &["10.0.0.0/16".parse::<Ipv4Cidr>().unwrap()],
    )
}

/// Every rule of the batch as (family, chain, its statements as JSON).
fn rules(plan: &FastPathPlan) -> Vec<(String, String, Value)> {
    let batch = plan.replace_batch();
    batch["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|cmd| cmd.get("add")?.get("rule"))
        .map(|r| {
            (
                r["family"].as_str().unwrap().to_owned(),
                r["chain"].as_str().unwrap().to_owned(),
                r["expr"].clone(),
            )
        })
        .collect()
}

fn rule_of(plan: &FastPathPlan, chain: &str) -> String {
    let found: Vec<String> = rules(plan)
        .into_iter()
        .filter(|(_, c, _)| c == chain)
        .map(|(_, _, expr)| expr.to_string())
        .collect();
    assert_eq!(found.len(), 1, "one rule in {chain}: {found:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn pods_on_an_eni_without_a_link_are_left_out() {
    let plan = plan();
    let veths: Vec<&str> = plan.pods().iter().map(|p| p.veth.as_str()).collect();
    assert_eq!(veths, ["vpcprimary", "vpcsecond"]);
    assert!(!plan.replace_batch().to_string().contains("vpcunwired"));
}

#[test]
fn a_pod_is_forwarded_only_with_its_own_source_and_through_its_own_eni() {
    let rule = rule_of(&plan(), "pod-vpcsecond-in");
    assert!(
        rule.contains(r#""field":"saddr","protocol":"ip"}},"op":"==","right":"10.0.1.20""#),
        "{rule}"
    );
    assert!(rule.contains(r#""right":"@out-1""#), "{rule}");
    assert!(
        rule.contains(r#""fwd":{"addr":"10.0.1.1","dev":"eth1","family":"ip"}"#),
        "{rule}"
    );
}

#[test]
fn flows_are_admitted_only_when_established_and_untouched_by_nat() {
    let rule = rule_of(&plan(), "admit");
    for part in [
        r#""right":"established""#,
        // ct status & (snat|dnat) == 0
        r#"{"&":[{"ct":{"key":"status"}},48]},"op":"==","right":0"#,
        // tcp flags & (fin|syn|rst) == 0
        r#"{"&":[{"payload":{"field":"flags","protocol":"tcp"}},7]},"op":"==","right":0"#,
        r#""right":"@vpc""#,
    ] {
        assert!(rule.contains(part), "{part} missing from {rule}");
    }
}

#[test]
fn each_eni_admits_into_its_own_set_and_delivers_by_destination() {
    let plan = plan();
    assert!(rule_of(&plan, "eni-1-out").contains(r#""set":"@out-1""#));
    assert!(rule_of(&plan, "pod-vpcprimary-out").contains(r#""set":"@in""#));
    let ingress = rule_of(&plan, "eni-0-in");
    assert!(ingress.contains(r#""data":"@pods""#), "{ingress}");
    let elements: Vec<String> = plan.replace_batch()["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|cmd| cmd.get("add")?.get("element"))
        .map(|e| {
            assert_eq!(e["name"], "pods");
            e["elem"].to_string()
        })
        .collect();
    assert_eq!(
        elements,
        [
            r#"[["10.0.0.20",{"jump":{"target":"deliver-vpcprimary"}}]]"#,
            r#"[["10.0.1.20",{"jump":{"target":"deliver-vpcsecond"}}]]"#,
        ]
    );
    let deliver = rule_of(&plan, "deliver-vpcsecond");
    assert!(
        deliver.contains(r#""fwd":{"addr":"10.0.1.20","dev":"vpcsecond","family":"ip"}"#),
        "{deliver}"
    );
}

/// A node namespace with the links the plan names: two ENI-like veths and two pod veths.
fn node_with_links() -> Netns {
    let node = Netns::unique("fpt-node");
    for (name, peer) in [
        ("eth0", "peer0"),
        ("eth1", "peer1"),
        ("vpcprimary", "pod0"),
        ("vpcsecond", "pod1"),
    ] {
        node.ip(&["link", "add", name, "type", "veth", "peer", "name", peer]);
        node.ip(&["link", "set", name, "up"]);
    }
    node
}

async fn apply(plan: &FastPathPlan) -> Result<(), crate::error::IpamdError> {
    nft::run_streamed(plan.replace_objects(), "replacing", "fast path").await
}

#[test]
fn root_nft_takes_the_batch_and_a_second_apply_replaces_it() {
    let node = node_with_links();
    let plan = plan();
    for _ in 0..2 {
        let plan = plan.clone();
        node.run(|| async move { apply(&plan).await }).unwrap();
    }
    let listed = node
        .nft(&["list", "table", "netdev", "vpc-cni-fast"])
        .unwrap();
    for chain in [
        "eni-0-in",
        "eni-0-out",
        "eni-1-in",
        "eni-1-out",
        "pod-vpcprimary-in",
        "pod-vpcprimary-out",
        "pod-vpcsecond-in",
        "deliver-vpcsecond",
    ] {
        assert!(
            listed.contains(&format!("chain {chain} {{")),
            "{chain} missing:\n{listed}"
        );
    }
    assert_eq!(
        listed.matches("fwd ip to").count(),
        4,
        "two pods, one rule each way:\n{listed}"
    );
    for element in [
        "10.0.0.20 : jump deliver-vpcprimary",
        "10.0.1.20 : jump deliver-vpcsecond",
    ] {
        assert!(listed.contains(element), "{element} missing:\n{listed}");
    }
    assert_eq!(listed.matches("vmap @pods").count(), 2, "{listed}");
    let admit = node.nft(&["list", "table", "ip", "vpc-cni-fast"]).unwrap();
    assert!(admit.contains("hook forward priority 100"), "{admit}");
}

#[test]
fn root_removing_leaves_no_table_and_is_idempotent() {
    let node = node_with_links();
    node.run(|| async { apply(&plan()).await }).unwrap();
    for _ in 0..2 {
        node.run(|| async { super::FastPath::remove().await })
            .unwrap();
    }
    let tables = node.nft(&["list", "tables"]).unwrap();
    assert!(!tables.contains("vpc-cni-fast"), "{tables}");
}
