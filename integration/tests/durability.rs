//! Crash safety: the checkpoint is durable before an ADD is acknowledged.
//! Needs root (creates network namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_testkit::require_root;

#[test]
fn netlink_kill9_after_50_adds_keeps_every_assignment() {
    require_root();
    let node = TestNode::start("vcd", NodeOptions::new("10.31.0.0/24")).unwrap();
    let first: Vec<_> = (0..50).map(|i| node.pod(&format!("first-{i}"))).collect();
    let before: BTreeMap<String, String> = first
        .iter()
        .map(|p| (p.container_id.clone(), p.ip.unwrap().to_string()))
        .collect();
    assert_eq!(
        before.values().collect::<BTreeSet<_>>().len(),
        50,
        "duplicates among the first 50"
    );

    node.ipamd.kill9();
    node.ipamd.restart(&node.netns).unwrap();

    for (container, ip) in &before {
        let held = node.ipamd.assigned_ip(container, "eth0").unwrap();
        assert_eq!(
            held.as_deref(),
            Some(ip.as_str()),
            "{container} lost or changed its address"
        );
    }
    assert_eq!(node.ipamd.status().unwrap().assigned_addresses, 50);

    let second: Vec<_> = (0..50).map(|i| node.pod(&format!("second-{i}"))).collect();
    let mut all: BTreeSet<String> = before.values().cloned().collect();
    for pod in &second {
        let ip = pod.ip.unwrap().to_string();
        assert!(
            all.insert(ip.clone()),
            "{ip} handed out twice across the restart"
        );
    }
    assert_eq!(all.len(), 100);
    assert_eq!(node.ipamd.status().unwrap().assigned_addresses, 100);
}
