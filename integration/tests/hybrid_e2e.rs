//! A hybrid cluster on the two-site fabric (issue 15, a first slice of acceptance 1): a
//! VPC-mode node with `ENABLE_HYBRID_OVERLAY` and an overlay node on the on-prem site's LAN,
//! both following one peers file. TCP both ways between an on-prem pod and VPC pods on the
//! primary and on a secondary ENI, with each pod's own address seen; the on-prem pod to a
//! VPC host (the documented translation: the on-prem node's address) and to the internet
//! through the site's own NAT; the site link cut and restored, the paths come back with
//! nothing restarted. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use vpc_cni_integration::fabric::{SiteSpec, INTERNET_ADDR, SITE_NAT_ADDR};
use vpc_cni_integration::ipamd_proc::IpamdProcess;
use vpc_cni_integration::node::{plugin_conf, test_ipamd_env};
use vpc_cni_integration::vpc_cluster::{tcp_peer, VpcCluster};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::pod::TestPod;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);
const ONPREM_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 11);
const ONPREM_PODS: &str = "10.244.1.0/24";
/// t3.medium: 5 pod addresses per ENI, and the primary ENI fills first: the sixth and
/// seventh pods sit on a secondary ENI.
const VPC_PODS: usize = 7;

/// The peers file both nodes follow: the on-prem node, and the VPC node with the ranges its
/// ENIs hold as EC2 shows them (what an operator's tool would write).
fn write_peers(path: &Path, cluster: &VpcCluster) {
    let node = cluster.node("a").unwrap();
    let view = cluster.sim().fabric_view();
    let mut ranges: Vec<String> = Vec::new();
    for eni in view.enis.iter().filter(|e| {
        e.attachment
            .as_ref()
            .is_some_and(|a| a.instance_id == node.instance.id)
    }) {
        ranges.extend(
            eni.private_ips
                .iter()
                .filter(|p| !p.primary)
                .map(|p| format!("{}/32", p.address)),
        );
        ranges.extend(eni.prefixes.iter().cloned());
    }
    let peers = json!({ "peers": [
        { "name": "onprem-1", "underlayIP": ONPREM_IP.to_string(), "podCIDR": ONPREM_PODS },
        { "name": "a", "underlayIP": node.primary_ip().to_string(), "vpcPodRanges": ranges },
    ]});
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, peers.to_string()).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[test]
fn vpc_and_onprem_pods_reach_each_other_with_their_own_addresses() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let peers_file = dir.path().join("peers.json");
    let file = peers_file.to_string_lossy().into_owned();
    let cluster = VpcCluster::new(
        "hybe",
        &[("a", "t3.medium")],
        &[
            ("ENABLE_HYBRID_OVERLAY", "true"),
            ("MY_NODE_NAME", "a"),
            ("PEERS_FILE", file.as_str()),
            ("PEERS_FILE_POLL_INTERVAL", "200ms"),
        ],
    )
    .unwrap_or_else(|e| panic!("starting the VPC node: {e}"));
    let fabric = cluster.fabric();
    fabric
        .attach_site(SiteSpec {
            lan: "172.20.0.0/24".parse().unwrap(),
            lan_mtu: 1500,
            link_mtu: 1500,
        })
        .unwrap();
    let onprem = Netns::unique("hybop");
    fabric.plug_site_node(&onprem, ONPREM_IP).unwrap();
    let onprem_dir = tempfile::tempdir().unwrap();
    let onprem_ipamd = IpamdProcess::start(
        &onprem,
        onprem_dir.path(),
        test_ipamd_env(
            "overlay",
            &[
                ("POD_CIDR", ONPREM_PODS.to_string()),
                ("MY_NODE_NAME", "onprem-1".to_string()),
                ("PEERS_FILE", file.clone()),
                ("PEERS_FILE_POLL_INTERVAL", "200ms".to_string()),
            ],
        ),
    )
    .unwrap_or_else(|e| panic!("starting the on-prem node: {e}"));
    let vpc_pods: Vec<_> = (0..VPC_PODS)
        .map(|i| cluster.pod("a", &format!("vp{i}")))
        .collect();
    let on_device = |device: u32| {
        vpc_pods
            .iter()
            .find(|p| cluster.device_index_of(p.ip.unwrap()) == Some(device))
            .unwrap_or_else(|| panic!("no pod on ENI {device}\n{}", cluster.all_diagnostics()))
    };
    let tested = [
        ("primary ENI", on_device(0)),
        ("secondary ENI", on_device(1)),
    ];
    let mut onprem_pod = TestPod::create("op", "hybp").unwrap();
    let out = onprem_pod
        .add_in(&onprem, &plugin_conf("1.1.0", "hybrid", &onprem_ipamd))
        .unwrap();
    assert!(out.success(), "{} {}", out.stdout, out.stderr);
    let onprem_ip = onprem_pod.ip.unwrap();
    // Written once both pods have their addresses, so the ranges hold the VPC pod's.
    write_peers(&peers_file, &cluster);

    let diagnostics = || {
        format!(
            "{}\n--- on-prem ipamd ---\n{}\n--- on-prem routes ---\n{}",
            cluster.all_diagnostics(),
            onprem_ipamd.log_text(),
            onprem.ip(&["route"])
        )
    };
    // Both nodes have read the file: the on-prem node routes the VPC pod into the overlay,
    // the VPC node the on-prem pods.
    let vpc_node = cluster.node("a").unwrap();
    wait_for(EVENTUAL, || {
        let onprem_routes = onprem.try_ip(&["route", "show", "dev", "vxlan.vpc"]).ok()?;
        let vpc_routes = vpc_node
            .netns()
            .try_ip(&["route", "show", "dev", "vxlan.vpc"])
            .ok()?;
        let routed = tested
            .iter()
            .all(|(_, pod)| onprem_routes.contains(&pod.ip.unwrap().to_string()));
        (routed && vpc_routes.contains(ONPREM_PODS)).then_some(())
    })
    .unwrap_or_else(|| panic!("the overlay did not converge\n{}", diagnostics()));

    // On-prem pod -> VPC pod, and back, untranslated; from a secondary ENI's pod the replies
    // and connections must go into the overlay, not out of its ENI.
    for (what, pod) in tested {
        let vpc_ip = pod.ip.unwrap();
        let seen = tcp_peer(&pod.netns, vpc_ip, &onprem_pod.netns).unwrap_or_else(|e| {
            panic!(
                "on-prem pod -> VPC pod on the {what}: {e}\n{}",
                diagnostics()
            )
        });
        assert_eq!(seen.ip(), onprem_ip, "on-prem pod -> VPC pod on the {what}");
        let seen = tcp_peer(&onprem_pod.netns, onprem_ip, &pod.netns).unwrap_or_else(|e| {
            panic!(
                "VPC pod on the {what} -> on-prem pod: {e}\n{}",
                diagnostics()
            )
        });
        assert_eq!(seen.ip(), vpc_ip, "VPC pod on the {what} -> on-prem pod");
    }

    // On-prem pod -> a VPC host, which cannot route back to on-prem pod CIDRs: it sees the
    // on-prem node's address.
    let (host, host_ip) = cluster.attach_host("alb").unwrap();
    let seen = tcp_peer(&host, host_ip, &onprem_pod.netns)
        .unwrap_or_else(|e| panic!("on-prem pod -> VPC host: {e}\n{}", diagnostics()));
    assert_eq!(seen.ip(), ONPREM_IP);

    // Each side to the internet: through the site's NAT, and through the VPC as today.
    let seen = tcp_peer(fabric.internet(), INTERNET_ADDR, &onprem_pod.netns)
        .unwrap_or_else(|e| panic!("on-prem pod -> internet: {e}\n{}", diagnostics()));
    assert_eq!(seen.ip(), SITE_NAT_ADDR);
    let seen = tcp_peer(fabric.internet(), INTERNET_ADDR, &tested[0].1.netns)
        .unwrap_or_else(|e| panic!("VPC pod -> internet: {e}\n{}", diagnostics()));
    assert_eq!(seen.ip(), cluster.node("a").unwrap().primary_ip());

    // The site link goes down and comes back: the paths return with nothing restarted.
    let (_, pod) = tested[1];
    fabric.set_site_link(false).unwrap();
    assert!(
        tcp_peer(&pod.netns, pod.ip.unwrap(), &onprem_pod.netns).is_err(),
        "the link is cut"
    );
    fabric.set_site_link(true).unwrap();
    let seen = tcp_peer(&pod.netns, pod.ip.unwrap(), &onprem_pod.netns)
        .unwrap_or_else(|e| panic!("after the link came back: {e}\n{}", diagnostics()));
    assert_eq!(seen.ip(), onprem_ip);
    let seen = tcp_peer(&onprem_pod.netns, onprem_ip, &pod.netns)
        .unwrap_or_else(|e| panic!("after the link came back: {e}\n{}", diagnostics()));
    assert_eq!(seen.ip(), pod.ip.unwrap());
}
