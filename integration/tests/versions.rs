//! Results shaped for each CNI version, chaining, and ipamd's health service.
//! Needs root (creates network namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_testkit::process::block_on;
use vpc_cni_testkit::require_root;

#[test]
fn netlink_add_result_is_shaped_for_each_cni_version() {
    require_root();
    let node = TestNode::start("vcv", NodeOptions::new("10.71.0.0/24")).unwrap();
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let pod = node
            .new_pod(&format!("v{}", version.replace('.', "")))
            .unwrap();
        let conf = node.conf(version);
        let out = node
            .invocation("ADD", &pod, &conf)
            .run(&node.netns)
            .unwrap();
        assert!(
            out.success(),
            "ADD {version}: {} {}",
            out.stdout,
            out.stderr
        );
        let result = out.json();
        assert_eq!(result["cniVersion"], version);
        let ip = &result["ips"][0];
        assert!(
            ip["address"].as_str().unwrap().ends_with("/32"),
            "{version}: {ip}"
        );
        assert_eq!(ip["gateway"], "169.254.1.1");
        let pod_if = &result["interfaces"][ip["interface"].as_u64().unwrap() as usize];
        assert_eq!(pod_if["name"], "eth0");
        assert_eq!(pod_if["sandbox"], pod.netns.path().display().to_string());
        let legacy = version.starts_with("0.");
        assert_eq!(
            ip.get("version").is_some(),
            legacy,
            "{version}: ips[].version in {ip}"
        );
        assert_eq!(
            pod_if.get("mtu").is_some(),
            version == "1.1.0",
            "{version}: interface mtu in {pod_if}"
        );
        let mut del_conf = conf.clone();
        del_conf["prevResult"] = result;
        assert!(node
            .invocation("DEL", &pod, &del_conf)
            .run(&node.netns)
            .unwrap()
            .success());
    }
}

#[test]
fn netlink_cni_versions_list_picks_the_highest_supported() {
    require_root();
    let node = TestNode::start("vcv", NodeOptions::new("10.72.0.0/24")).unwrap();
    let pod = node.new_pod("listed").unwrap();
    let mut conf = node.conf("1.0.0");
    conf.as_object_mut().unwrap().remove("cniVersion");
    conf["cniVersions"] = json!(["0.4.0", "1.1.0", "9.9.9"]);
    let out = node
        .invocation("ADD", &pod, &conf)
        .run(&node.netns)
        .unwrap();
    assert!(out.success(), "{} {}", out.stdout, out.stderr);
    assert_eq!(out.json()["cniVersion"], "1.1.0");
}

#[test]
fn netlink_chained_add_keeps_prev_result_and_del_finds_our_address() {
    require_root();
    let node = TestNode::start("vcv", NodeOptions::new("10.73.0.0/24")).unwrap();
    let mut pod = node.new_pod("chained").unwrap();
    let earlier: Value = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "br-earlier", "mac": "02:00:00:00:00:01"}],
        "ips": [{"address": "172.16.5.5/24", "interface": 0}],
        "routes": [],
        "dns": {"nameservers": ["10.0.0.10"]}
    });
    let mut conf = node.conf("1.0.0");
    conf["prevResult"] = earlier;
    let out = node
        .invocation("ADD", &pod, &conf)
        .run(&node.netns)
        .unwrap();
    assert!(out.success(), "{} {}", out.stdout, out.stderr);
    let result = out.json();
    assert_eq!(result["interfaces"][0]["name"], "br-earlier");
    assert_eq!(result["ips"][0]["address"], "172.16.5.5/24");
    assert_eq!(result["dns"]["nameservers"][0], "10.0.0.10");
    let ours = &result["ips"][1];
    assert_eq!(
        result["interfaces"][ours["interface"].as_u64().unwrap() as usize]["name"],
        "eth0"
    );
    pod.ip = ours["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .ok();
    pod.result = result;

    // With ipamd down, DEL must pick our address out of the chained result.
    node.ipamd.kill9();
    let out = node.del(&pod).unwrap();
    assert!(out.success(), "{} {}", out.stdout, out.stderr);
    assert!(
        node.rules_at(512).unwrap().is_empty(),
        "rule of our address left behind"
    );
}

#[test]
fn netlink_health_service_reports_serving() {
    require_root();
    let node = TestNode::start("vcv", NodeOptions::new("10.74.0.0/24")).unwrap();
    let socket = node.ipamd.socket().to_path_buf();
    let status = block_on(async move {
        let channel = vpc_cni::client::connect_channel(&socket).await.unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: vpc_cni_proto::HEALTH_SERVICE_NAME.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    });
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
