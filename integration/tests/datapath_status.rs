//! STATUS answers 51 while a part of ipamd's node datapath is missing, names the part, and
//! succeeds again once ipamd has repaired it: in overlay mode (the VXLAN device, the SNAT
//! table, forwarding) and in VPC mode (the connmark rule, the SNAT table, forwarding), and
//! in both the pod guard's tables (deleted, or emptied of their rules). Needs root
//! (namespaces).
//!
//! ipamd runs with `DATAPATH_RESYNC_INTERVAL=1h`, so its periodic re-apply cannot repair the
//! damage before STATUS looks: the repair these tests wait for is the one STATUS asks for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use vpc_cni_integration::overlay_cluster::OverlayCluster;
use vpc_cni_integration::vpc_cluster::VpcCluster;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::plugin::{Invocation, PluginOutput};
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Bound for ipamd to finish a repair (a harness bound, not an assertion).
const REPAIR: Duration = Duration::from_secs(30);

const NO_PERIODIC_REPAIR: (&str, &str) = ("DATAPATH_RESYNC_INTERVAL", "1h");

fn status(node: &Netns, conf: &Value) -> PluginOutput {
    let mut conf = conf.clone();
    conf["cniVersion"] = "1.1.0".into();
    Invocation {
        command: "STATUS".into(),
        stdin: conf.to_string().into_bytes(),
        ..Invocation::default()
    }
    .run(node)
    .unwrap()
}

fn wait_healthy(node: &Netns, conf: &Value, after: &str) {
    let healthy = wait_for(REPAIR, || status(node, conf).success().then_some(()));
    assert!(
        healthy.is_some(),
        "STATUS still fails {after}: {:?}",
        status(node, conf)
    );
}

/// Breaks one part by `break_it`, sees STATUS answer 51 naming `named`, then sees ipamd repair
/// it (STATUS succeeds again and `restored` holds).
fn break_and_repair(
    node: &Netns,
    conf: &Value,
    what: &str,
    break_it: impl FnOnce(),
    named: &str,
    restored: impl Fn() -> bool,
) {
    break_it();
    let out = status(node, conf);
    assert!(!out.success(), "STATUS succeeded with {what}: {out:?}");
    assert_eq!(out.error_code(), Some(51), "{what}: {out:?}");
    let msg = out.json()["msg"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains(named),
        "{what}: {msg:?} does not name {named:?}"
    );

    wait_healthy(node, conf, &format!("after {what}"));
    assert!(restored(), "ipamd reported {what} repaired, but it is not");
}

/// What both modes have: our nftables tables and IPv4 forwarding.
fn break_and_repair_table_and_forwarding(node: &Netns, conf: &Value) {
    break_and_repair(
        node,
        conf,
        "the IPv4 guard table deleted",
        || {
            node.exec_ok(&["nft", "delete", "table", "ip", "vpc-cni-guard"]);
        },
        "nftables table ip vpc-cni-guard is missing",
        || node.nft(&["list", "table", "ip", "vpc-cni-guard"]).is_ok(),
    );
    break_and_repair(
        node,
        conf,
        "the ARP guard's checks flushed",
        || {
            node.exec_ok(&["nft", "flush", "chain", "arp", "vpc-cni-guard", "from-pod"]);
        },
        "nftables table arp vpc-cni-guard holds 1 rules instead of 3",
        || {
            node.nft(&["list", "table", "arp", "vpc-cni-guard"])
                .is_ok_and(|t| t.contains("arp saddr ip 169.254.1.1"))
        },
    );
    break_and_repair(
        node,
        conf,
        "the nftables table deleted",
        || {
            node.exec_ok(&["nft", "delete", "table", "ip", "vpc-cni"]);
        },
        "nftables table ip vpc-cni",
        || has_table(node),
    );
    break_and_repair(
        node,
        conf,
        "forwarding turned off",
        || forwarding_off(node),
        "forwarding",
        || node.sysctl("net.ipv4.ip_forward") == "1",
    );
}

fn has_table(node: &Netns) -> bool {
    node.nft(&["list", "table", "ip", "vpc-cni"]).is_ok()
}

fn forwarding_off(node: &Netns) {
    node.write_sysctls(&[("net.ipv4.ip_forward", "0")]).unwrap();
}

#[test]
fn overlay_status_is_51_while_the_vxlan_device_snat_table_or_forwarding_is_missing() {
    require_root();
    let cluster = OverlayCluster::with_env("ostat", 1, 1500, &[NO_PERIODIC_REPAIR]).unwrap();
    let node = &cluster.nodes()[0];
    let (ns, conf) = (node.netns(), node.conf());
    // The SNAT table comes with the first peer set.
    wait_healthy(ns, &conf, "at start");
    let restored_table = wait_for(REPAIR, || has_table(ns).then_some(()));
    assert!(restored_table.is_some(), "no SNAT table at start");

    break_and_repair(
        ns,
        &conf,
        "vxlan.vpc deleted",
        || {
            ns.ip(&["link", "del", "vxlan.vpc"]);
        },
        "vxlan.vpc",
        || ns.try_ip(&["link", "show", "vxlan.vpc"]).is_ok(),
    );
    break_and_repair_table_and_forwarding(ns, &conf);
}

#[test]
fn vpc_status_is_51_while_the_connmark_rule_snat_table_or_forwarding_is_missing() {
    require_root();
    let cluster = VpcCluster::new("vstat", &[("a", "t3.medium")], &[NO_PERIODIC_REPAIR])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let node = cluster.node("a").unwrap();
    let (ns, conf) = (node.netns().as_ref(), node.conf("1.1.0"));
    wait_healthy(ns, &conf, "at start");
    let connmark_rule = || {
        ns.ip(&["rule", "show", "priority", "1024"])
            .contains("fwmark 0x80/0x80 lookup main")
    };
    assert!(connmark_rule(), "no connmark rule at start");

    break_and_repair(
        ns,
        &conf,
        "rule 1024 deleted",
        || {
            ns.ip(&["rule", "del", "priority", "1024"]);
        },
        "policy rule 1024",
        connmark_rule,
    );
    break_and_repair_table_and_forwarding(ns, &conf);
}
