//! Bad input: each case gives the spec's JSON on stdout, the right code, a
//! non-zero exit, and leaves no assignment behind. Needs root (namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_testkit::plugin::PluginOutput;
use vpc_cni_testkit::require_root;

fn assert_error(case: &str, out: &PluginOutput, code: u64, msg_part: &str) {
    assert!(!out.success(), "{case}: exited 0: {}", out.stdout);
    let json = out.json();
    assert_eq!(
        json["code"].as_u64(),
        Some(code),
        "{case}: stdout {}",
        out.stdout
    );
    assert!(
        json.get("cniVersion").is_some(),
        "{case}: no cniVersion in {}",
        out.stdout
    );
    let msg = json["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains(msg_part),
        "{case}: message {msg:?} does not name {msg_part:?}"
    );
}

#[test]
fn netlink_bad_input_gives_spec_errors_and_leaks_nothing() {
    require_root();
    let node = TestNode::start("vcb", NodeOptions::new("10.51.0.0/24")).unwrap();
    let pod = node.new_pod("bad").unwrap();
    let conf = node.conf("1.0.0");
    let add = || node.invocation("ADD", &pod, &conf);

    let mut malformed = add();
    malformed.stdin = b"{\"cniVersion\": \"1.0.0\", \"name\": ".to_vec();
    assert_error(
        "malformed JSON",
        &malformed.run(&node.netns).unwrap(),
        6,
        "",
    );

    let mut no_command = add();
    no_command.env_remove.push("CNI_COMMAND".into());
    assert_error(
        "missing CNI_COMMAND",
        &no_command.run(&node.netns).unwrap(),
        4,
        "CNI_COMMAND",
    );

    let mut unknown = add();
    unknown.command = "FROB".into();
    assert_error(
        "unknown command",
        &unknown.run(&node.netns).unwrap(),
        4,
        "FROB",
    );

    let mut old = add();
    old.stdin = json!({"cniVersion": "0.2.0", "name": "n", "type": "vpc-cni"})
        .to_string()
        .into_bytes();
    assert_error(
        "unsupported cniVersion",
        &old.run(&node.netns).unwrap(),
        1,
        "0.2.0",
    );

    let mut no_netns = add();
    no_netns.netns = None;
    assert_error(
        "ADD without CNI_NETNS",
        &no_netns.run(&node.netns).unwrap(),
        4,
        "CNI_NETNS",
    );

    let mut missing_netns = add();
    missing_netns.netns = Some("/run/netns/does-not-exist-vcb".into());
    assert_error(
        "netns path missing",
        &missing_netns.run(&node.netns).unwrap(),
        4,
        "does-not-exist-vcb",
    );

    let mut huge = add();
    let mut big = conf.clone();
    big["padding"] = json!("x".repeat(1 << 20));
    huge.stdin = big.to_string().into_bytes();
    assert_error(
        "stdin over 1 MiB",
        &huge.run(&node.netns).unwrap(),
        6,
        "1 MiB",
    );

    let mut wrong_type = add();
    let mut typed = conf.clone();
    typed["mtu"] = json!("jumbo");
    wrong_type.stdin = typed.to_string().into_bytes();
    assert_error(
        "field of the wrong type",
        &wrong_type.run(&node.netns).unwrap(),
        7,
        "mtu",
    );

    let status = node.ipamd.status().unwrap();
    assert_eq!(
        status.assigned_addresses, 0,
        "a failed ADD left an assignment"
    );
    assert!(
        node.rules_at(512).unwrap().is_empty(),
        "a failed ADD left a rule"
    );
    let links = node.netns.try_ip(&["-o", "link", "show"]).unwrap();
    assert!(!links.contains("vpc"), "a failed ADD left a veth: {links}");
}

#[test]
fn netlink_exhausted_pool_is_try_again_later_naming_the_pool() {
    require_root();
    // A /29 holds six pod addresses.
    let node = TestNode::start("vcb", NodeOptions::new("10.52.0.0/29")).unwrap();
    let pods: Vec<_> = (0..6).map(|i| node.pod(&format!("fill-{i}"))).collect();
    let mut extra = node.new_pod("one-too-many").unwrap();
    let out = node.add(&mut extra).unwrap();
    assert_error("exhausted pool", &out, 11, "10.52.0.0/29");
    assert_eq!(node.ipamd.status().unwrap().assigned_addresses, 6);
    let links = extra.netns.try_ip(&["-o", "link", "show"]).unwrap();
    assert!(
        !links.contains("eth0"),
        "failed ADD wired the pod anyway: {links}"
    );
    drop(pods);
}

#[test]
fn version_command_lists_supported_versions() {
    // VERSION touches no namespace and no ipamd; it runs in this process's
    // namespace like a runtime's version probe (podman passes CNI_NETNS=dummy).
    let out = std::process::Command::new(vpc_cni_testkit::bins::plugin())
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .env("CNI_NETNS", "dummy")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions: Vec<&str> = json["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(versions, ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
}
