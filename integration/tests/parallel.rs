//! Concurrency: 100 ADDs and 100 DELs at once through the real plugin.
//! Needs root (creates network namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_testkit::pod::TestPod;
use vpc_cni_testkit::process::{all_at_once, wait_for};
use vpc_cni_testkit::require_root;

#[test]
fn netlink_100_parallel_adds_then_dels() {
    require_root();
    let node = TestNode::start("vcp", NodeOptions::new("10.41.0.0/24")).unwrap();
    let start = node.ipamd.status().unwrap();
    let mut pods: Vec<TestPod> = (0..100)
        .map(|i| node.new_pod(&format!("par-{i}")).unwrap())
        .collect();

    let outputs = all_at_once(pods.iter_mut(), |pod| node.add(pod).unwrap());
    for out in &outputs {
        assert!(
            out.success(),
            "parallel ADD failed: {} {}",
            out.stdout,
            out.stderr
        );
    }
    let ips: BTreeSet<_> = pods.iter().map(|p| p.ip.unwrap()).collect();
    assert_eq!(
        ips.len(),
        100,
        "parallel ADDs handed out duplicate addresses"
    );
    assert_eq!(node.rules_at(512).unwrap().len(), 100);

    let outputs = all_at_once(pods.iter(), |pod| node.del(pod).unwrap());
    for out in &outputs {
        assert!(
            out.success(),
            "parallel DEL failed: {} {}",
            out.stdout,
            out.stderr
        );
    }
    assert!(
        node.rules_at(512).unwrap().is_empty(),
        "DELs left 512 rules behind"
    );

    // IP_COOLDOWN_PERIOD=1 in the harness: wait until nothing is cooling.
    let settled = wait_for(Duration::from_secs(30), || {
        let s = node.ipamd.status().unwrap();
        (s.cooling_addresses == 0).then_some(s)
    })
    .expect("addresses never left cooldown");
    assert_eq!(settled.assigned_addresses, 0);
    assert_eq!(settled.total_addresses, start.total_addresses);
    assert_eq!(settled.assigned_addresses, start.assigned_addresses);
}
