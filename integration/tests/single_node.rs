//! End to end on one node namespace: real ipamd, real plugin binary, real
//! kernel. Needs root (creates network namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use vpc_cni_integration::node::{NodeOptions, TestNode, NODE_IP};
use vpc_cni_proto::AttachmentRequest;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

const EVENTUAL: Duration = Duration::from_secs(30);

#[test]
fn netlink_two_pods_reach_each_other_and_the_node() {
    require_root();
    let node = TestNode::start("vcn", NodeOptions::new("10.21.0.0/24")).unwrap();
    let a = node.pod("alpha");
    let b = node.pod("beta");
    let (ip_a, ip_b) = (a.ip.unwrap(), b.ip.unwrap());
    assert_ne!(ip_a, ip_b, "two pods got one address");
    let cidr: vpc_cni_proto::net::Ipv4Cidr = "10.21.0.0/24".parse().unwrap();
    assert!(
        cidr.contains(ip_a) && cidr.contains(ip_b),
        "{ip_a} {ip_b} outside POD_CIDR"
    );
    assert!(a.netns.ping(ip_b), "alpha cannot reach beta");
    assert!(b.netns.ping(ip_a), "beta cannot reach alpha");
    assert!(a.netns.ping(NODE_IP), "alpha cannot reach the node");
    assert!(b.netns.ping(NODE_IP), "beta cannot reach the node");
    assert!(node.netns.ping(ip_a), "the node cannot reach alpha");
}

#[test]
fn netlink_repeated_add_is_idempotent_and_del_can_repeat() {
    require_root();
    let node = TestNode::start("vcn", NodeOptions::new("10.22.0.0/24")).unwrap();
    let mut pod = node.pod("gamma");
    let first = pod.ip.unwrap();
    let again = node.add(&mut pod).unwrap();
    assert!(again.success(), "second ADD failed: {}", again.stdout);
    assert_eq!(pod.ip, Some(first), "second ADD changed the address");
    assert_eq!(
        node.rules_at(512).unwrap().len(),
        1,
        "re-ADD duplicated the 512 rule"
    );
    assert!(pod.netns.ping(NODE_IP), "pod unreachable after re-ADD");

    for round in 1..=3 {
        let out = node.del(&pod).unwrap();
        assert!(
            out.success(),
            "DEL #{round} failed: {} {}",
            out.stdout,
            out.stderr
        );
    }
    // containerd's second DEL comes with an empty CNI_NETNS.
    let mut conf = node.conf("1.0.0");
    conf["prevResult"] = pod.result.clone();
    let mut del = node.invocation("DEL", &pod, &conf);
    del.netns = Some(String::new());
    let out = del.run(&node.netns).unwrap();
    assert!(
        out.success(),
        "DEL with CNI_NETNS=\"\" failed: {}",
        out.stdout
    );
    assert_eq!(
        node.ipamd.assigned_ip(&pod.container_id, "eth0").unwrap(),
        None
    );
    assert!(
        node.rules_at(512).unwrap().is_empty(),
        "DEL left the 512 rule"
    );
}

#[test]
fn netlink_del_while_ipamd_is_down_then_address_is_reclaimed() {
    require_root();
    let node = TestNode::start("vcn", NodeOptions::new("10.23.0.0/24")).unwrap();
    let pod = node.pod("delta");
    let veth =
        vpc_cni::dataplane::host_veth_name(Some("default"), Some("delta"), &pod.container_id);
    assert!(
        node.netns.try_ip(&["link", "show", &veth]).is_ok(),
        "host veth {veth} missing after ADD"
    );

    node.ipamd.kill9();
    let out = node.del(&pod).unwrap();
    assert!(
        out.success(),
        "DEL with ipamd down failed: {} {}",
        out.stdout,
        out.stderr
    );
    assert!(
        node.netns.try_ip(&["link", "show", &veth]).is_err(),
        "DEL left the host veth"
    );
    assert!(
        node.rules_at(512).unwrap().is_empty(),
        "DEL left the 512 rule"
    );

    node.ipamd.restart(&node.netns).unwrap();
    let reclaimed = wait_for(EVENTUAL, || {
        node.ipamd
            .assigned_ip(&pod.container_id, "eth0")
            .unwrap()
            .is_none()
            .then_some(())
    });
    assert!(
        reclaimed.is_some(),
        "ipamd never reclaimed the address of the deleted pod"
    );
    assert_eq!(node.ipamd.status().unwrap().assigned_addresses, 0);
}

#[test]
fn unwired_assignment_survives_kill9_within_grace_and_is_released_after() {
    require_root();
    let options = NodeOptions::new("10.24.0.0/24").with("ASSIGNMENT_GRACE_PERIOD", "600");
    let mut node = TestNode::start("vcn", options).unwrap();
    let request = AttachmentRequest {
        container_id: "never-wired".into(),
        ifname: "eth0".into(),
        netns: "/run/netns/nowhere".into(),
        network_name: "vpc-test".into(),
        pod_namespace: "default".into(),
        pod_name: "epsilon".into(),
        ..AttachmentRequest::default()
    };
    let ip = node.ipamd.add_network(request).unwrap();

    // Younger than the grace period: a crash must not lose it, because the
    // plugin may be wiring the pod right now.
    // ipamd sweeps once before it serves, so once it answers the sweep has
    // already looked at this assignment.
    node.ipamd.restart(&node.netns).unwrap();
    assert_eq!(
        node.ipamd
            .assigned_ip("never-wired", "eth0")
            .unwrap()
            .as_deref(),
        Some(ip.as_str()),
        "an assignment younger than the grace period was dropped at restart"
    );

    // Past the grace period (now 1 s) it has no veth and must go.
    node.ipamd.set_env("ASSIGNMENT_GRACE_PERIOD", "1");
    node.ipamd.restart(&node.netns).unwrap();
    let released = wait_for(EVENTUAL, || {
        (node
            .ipamd
            .assigned_ip("never-wired", "eth0")
            .unwrap()
            .is_none())
        .then_some(())
    });
    assert!(
        released.is_some(),
        "the unwired assignment outlived its grace period"
    );
}

#[test]
fn netlink_ipamd_stops_cleanly_on_sigterm() {
    require_root();
    let node = TestNode::start("vcn", NodeOptions::new("10.25.0.0/24")).unwrap();
    let socket = node.ipamd.socket().to_path_buf();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode is {mode:o}");
    assert!(
        node.ipamd.terminate().unwrap(),
        "ipamd exited non-zero on SIGTERM"
    );
    assert!(!socket.exists(), "ipamd left its socket behind");
    let checkpoint = std::fs::read_to_string(node.ipamd.state_dir().join("ipam.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&checkpoint).unwrap();
    assert_eq!(parsed["mode"], "overlay", "checkpoint: {checkpoint}");
}

/// A StatefulSet pod whose DEL was lost: its successor has the same name, so the same host
/// veth name, and the ADD replaced the old veth. The sweep tells the two apart by the
/// veth's /32 route and gives the old address back; the successor keeps its own.
#[test]
fn netlink_a_statefulset_pod_that_lost_its_del_gets_its_address_reclaimed() {
    require_root();
    let node = TestNode::start("vcn", NodeOptions::new("10.26.0.0/24")).unwrap();
    let first = node.pod("web-0");
    let second = node.pod("web-0");
    let (old_ip, new_ip) = (first.ip.unwrap(), second.ip.unwrap());
    assert_ne!(old_ip, new_ip);

    let reclaimed = wait_for(EVENTUAL, || {
        node.ipamd
            .assigned_ip(&first.container_id, "eth0")
            .unwrap()
            .is_none()
            .then_some(())
    });
    assert!(
        reclaimed.is_some(),
        "the first web-0's address {old_ip} was never reclaimed"
    );
    assert_eq!(
        node.ipamd
            .assigned_ip(&second.container_id, "eth0")
            .unwrap()
            .as_deref(),
        Some(new_ip.to_string().as_str()),
        "the successor lost its address"
    );
    let rules = node.rules_at(512).unwrap().join("\n");
    assert!(!rules.contains(&format!("{old_ip} ")), "{rules}");
    assert!(rules.contains(&format!("{new_ip} ")), "{rules}");
    assert!(second.netns.ping(NODE_IP), "the successor lost the node");
}
