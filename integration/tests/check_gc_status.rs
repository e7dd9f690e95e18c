//! CNI 0.4/1.1 commands: CHECK, GC and STATUS. Needs root (namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_testkit::plugin::Invocation;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Bound for a pod to pass the test nodes' 2 s grace period and be collected.
const GC_BOUND: Duration = Duration::from_secs(30);

#[test]
fn netlink_check_reports_a_route_deleted_by_hand() {
    require_root();
    let node = TestNode::start("vcc", NodeOptions::new("10.61.0.0/24")).unwrap();
    let pod = node.pod("checked");
    let mut conf = node.conf("1.0.0");
    conf["prevResult"] = pod.result.clone();
    let ok = node
        .invocation("CHECK", &pod, &conf)
        .run(&node.netns)
        .unwrap();
    assert!(ok.success(), "CHECK of a healthy pod failed: {}", ok.stdout);
    assert!(ok.stdout.trim().is_empty(), "CHECK printed {}", ok.stdout);

    let ip = pod.ip.unwrap();
    node.netns
        .try_ip(&["route", "del", &format!("{ip}/32")])
        .unwrap();
    let broken = node
        .invocation("CHECK", &pod, &conf)
        .run(&node.netns)
        .unwrap();
    assert!(!broken.success(), "CHECK missed the deleted route");
    let msg = broken.json()["msg"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains(&ip.to_string()),
        "CHECK message does not name {ip}: {msg}"
    );
}

#[test]
fn netlink_gc_releases_attachments_missing_from_valid_list() {
    require_root();
    let node = TestNode::start("vcc", NodeOptions::new("10.62.0.0/24")).unwrap();
    let keep = node.pod("keep");
    let stale = node.pod("stale");
    let mut conf = node.conf("1.1.0");
    conf["cni.dev/valid-attachments"] =
        json!([{"containerID": keep.container_id, "ifname": "eth0"}]);
    let gc = Invocation {
        command: "GC".into(),
        stdin: conf.to_string().into_bytes(),
        ..Invocation::default()
    };
    // GC leaves assignments younger than ASSIGNMENT_GRACE_PERIOD (2 s here) alone, so the
    // runtime's next GC is the one that catches a pod it has just seen go.
    let released = wait_for(GC_BOUND, || {
        let out = gc.run(&node.netns).unwrap();
        assert!(out.success(), "GC failed: {} {}", out.stdout, out.stderr);
        let gone = node
            .ipamd
            .assigned_ip(&stale.container_id, "eth0")
            .unwrap()
            .is_none();
        gone.then_some(())
    });
    assert!(released.is_some(), "GC never released the stale pod");
    assert!(node
        .ipamd
        .assigned_ip(&keep.container_id, "eth0")
        .unwrap()
        .is_some());
    assert_eq!(
        node.rules_at(512).unwrap().len(),
        1,
        "GC left the stale pod's rule"
    );

    // libcni's spelling of the key works the same.
    let mut conf = node.conf("1.1.0");
    conf["cni.dev/attachments"] = json!([]);
    let gc = Invocation {
        command: "GC".into(),
        stdin: conf.to_string().into_bytes(),
        ..Invocation::default()
    };
    assert!(gc.run(&node.netns).unwrap().success());
    assert!(node
        .ipamd
        .assigned_ip(&keep.container_id, "eth0")
        .unwrap()
        .is_none());
}

#[test]
fn netlink_status_fails_only_when_ipamd_is_down() {
    require_root();
    // A /30 holds two pod addresses: fill them to make the pool empty.
    let node = TestNode::start("vcc", NodeOptions::new("10.63.0.0/30")).unwrap();
    let status = || Invocation {
        command: "STATUS".into(),
        stdin: node.conf("1.1.0").to_string().into_bytes(),
        ..Invocation::default()
    };
    assert!(
        status().run(&node.netns).unwrap().success(),
        "STATUS failed on a healthy node"
    );
    let _pods = [node.pod("one"), node.pod("two")];
    assert_eq!(node.ipamd.status().unwrap().assigned_addresses, 2);
    let full = status().run(&node.netns).unwrap();
    assert!(
        full.success(),
        "STATUS failed on a merely full pool: {}",
        full.stdout
    );

    let stdin = status().stdin;
    node.ipamd.kill9();
    let down = Invocation {
        command: "STATUS".into(),
        stdin,
        ..Invocation::default()
    }
    .run(&node.netns)
    .unwrap();
    assert!(!down.success());
    assert_eq!(
        down.error_code(),
        Some(50),
        "STATUS with ipamd down: {}",
        down.stdout
    );
}
