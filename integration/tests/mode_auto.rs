//! `VPC_CNI_MODE=auto`: VPC mode where IMDS answers, overlay where it does
//! not, and the choice written into the checkpoint so later boots keep it.
//! Needs root (namespaces; IMDS is only ever probed inside them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_integration::vpc_cluster::VpcCluster;
use vpc_cni_testkit::require_root;

fn checkpoint_mode(state_dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(state_dir.join("ipam.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["mode"].as_str().unwrap_or_default().to_string()
}

#[test]
fn auto_picks_vpc_where_imds_answers() {
    require_root();
    let cluster = VpcCluster::new("vauto", &[("a", "t3.medium")], &[("VPC_CNI_MODE", "auto")])
        .unwrap_or_else(|e| panic!("starting the cluster: {e}"));
    let pod = cluster.pod("a", "p0");
    let ip = pod.ip().unwrap();
    assert!(
        cluster.eni_of(ip).is_some(),
        "{ip} is not a VPC address of the node"
    );
    let a = cluster.node("a").unwrap();
    assert_eq!(checkpoint_mode(a.ipamd.state_dir()), "vpc");
}

#[test]
fn auto_picks_overlay_without_imds_and_keeps_it_across_restarts() {
    require_root();
    let options = NodeOptions::new("10.27.0.0/24").with("VPC_CNI_MODE", "auto");
    let mut node = TestNode::start("vam", options).unwrap();
    assert_eq!(checkpoint_mode(node.ipamd.state_dir()), "overlay");
    let pod = node.pod("overlaid");
    assert!(pod.ip.is_some());
    node.ipamd.restart(&node.netns).unwrap();
    assert_eq!(checkpoint_mode(node.ipamd.state_dir()), "overlay");
    // An explicit setting that contradicts the checkpoint is refused.
    node.ipamd.set_env("VPC_CNI_MODE", "vpc");
    let err = node.ipamd.restart(&node.netns).unwrap_err().to_string();
    assert!(err.contains("VPC_CNI_MODE"), "{err}");
}
