//! A VPC-mode node with `ENABLE_HYBRID_OVERLAY` (issue 15, its VPC side): from a peers file it
//! programs `vxlan.vpc` on its primary ENI, sized for the site link, with entries for the
//! overlay nodes only, keeps their pods untranslated in its table, shows them in `ipamd
//! inspect peers` and the peer metrics, repairs `vxlan.vpc` when it is deleted behind its
//! back, removes exactly a leaving overlay node's entries, and removes `vxlan.vpc` and the
//! exemptions when restarted with the setting off. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ipamd::introspect::PeersReport;
use serde_json::json;
use vpc_cni_integration::hybrid_cluster::write_peers_file;
use vpc_cni_integration::prometheus::scrape;
use vpc_cni_integration::vpc_cluster::VpcCluster;
use vpc_cni_testkit::bins;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);

#[test]
fn a_hybrid_vpc_node_follows_the_overlay_nodes_of_its_peers_file() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let peers_file = dir.path().join("peers.json");
    let onprem_1 =
        json!({"name": "onprem-1", "underlayIP": "172.20.0.11", "podCIDR": "10.244.1.0/24"});
    let onprem_2 =
        json!({"name": "onprem-2", "underlayIP": "172.20.0.12", "podCIDR": "10.244.2.0/24"});
    // Another VPC-mode node: reached through the VPC, never through the overlay.
    let vpc_b = json!({"name": "b", "underlayIP": "10.0.0.250", "vpcPodRanges": ["10.0.0.224/28"]});
    write_peers_file(&peers_file, &json!([onprem_1, onprem_2, vpc_b])).unwrap();
    let file = peers_file.to_string_lossy().into_owned();
    let mut cluster = VpcCluster::new(
        "hybv",
        &[("a", "t3.medium")],
        &[
            ("ENABLE_HYBRID_OVERLAY", "true"),
            ("HYBRID_PATH_MTU", "1400"),
            ("MY_NODE_NAME", "a"),
            ("PEERS_FILE", file.as_str()),
            ("PEERS_FILE_POLL_INTERVAL", "200ms"),
        ],
    )
    .unwrap_or_else(|e| panic!("starting the cluster: {e}"));
    let node = cluster.node("a").unwrap();
    let ns = node.netns();
    let state = || {
        let routes = ns.try_ip(&["route", "show", "dev", "vxlan.vpc"]).ok()?;
        let table = ns.nft(&["list", "table", "ip", "vpc-cni"]).ok()?;
        Some((routes, table))
    };

    let (routes, table) = wait_for(EVENTUAL, || {
        state().filter(|(routes, table)| {
            routes.contains("10.244.1.0/24")
                && routes.contains("10.244.2.0/24")
                && table.contains("10.244.2.0/24")
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no overlay routes; {:?}\n{}",
            state(),
            cluster.all_diagnostics()
        )
    });
    assert!(!routes.contains("10.0.0.224"), "{routes}");
    assert!(table.contains("set remote-pods"), "{table}");
    assert!(table.contains("iifname \"vxlan.vpc\""), "{table}");
    let link = ns.ip(&["link", "show", "vxlan.vpc"]);
    assert!(
        link.contains("mtu 1350"),
        "the site link's MTU less 50: {link}"
    );
    let device = ns.ip(&["-d", "link", "show", "vxlan.vpc"]);
    assert!(
        device.contains(&format!("local {}", node.primary_ip())),
        "the VTEP is the primary ENI's address: {device}"
    );

    // What an operator sees: the two overlay nodes as peers, in `inspect` and the metrics.
    let inspect_peers = || {
        let out = ns
            .command(bins::ipamd())
            .args(["inspect", "peers", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<PeersReport>(&out.stdout).ok()
    };
    let peers = wait_for(EVENTUAL, || inspect_peers().filter(|p| p.applied)).unwrap();
    let names: Vec<&str> = peers.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["onprem-1", "onprem-2"], "{peers:?}");
    let metrics = scrape(ns, "127.0.0.1:61678".parse().unwrap()).unwrap();
    assert_eq!(
        metrics.get("vpc_cni_overlay_peers"),
        Some(&2.0),
        "{metrics:?}"
    );

    // vxlan.vpc deleted behind ipamd's back: STATUS reports it and the upkeep restores the
    // device and its entries.
    ns.ip(&["link", "del", "vxlan.vpc"]);
    let status = node.ipamd.status().unwrap();
    assert!(
        status
            .datapath_damage
            .iter()
            .any(|d| d.contains("vxlan.vpc")),
        "{status:?}"
    );
    wait_for(EVENTUAL, || {
        state().filter(|(routes, _)| routes.contains("10.244.1.0/24"))
    })
    .unwrap_or_else(|| {
        panic!(
            "vxlan.vpc was not restored; {:?}\n{}",
            state(),
            cluster.all_diagnostics()
        )
    });

    // onprem-2 leaves: its route and its exemption go, onprem-1's stay.
    write_peers_file(&peers_file, &json!([onprem_1, vpc_b])).unwrap();
    let (routes, table) = wait_for(EVENTUAL, || {
        state().filter(|(routes, _)| !routes.contains("10.244.2.0/24"))
    })
    .unwrap_or_else(|| {
        panic!(
            "onprem-2 stayed; {:?}\n{}",
            state(),
            cluster.all_diagnostics()
        )
    });
    assert!(routes.contains("10.244.1.0/24"), "{routes}");
    assert!(!table.contains("10.244.2.0/24"), "{table}");
    assert!(table.contains("10.244.1.0/24"), "{table}");
    assert!(
        cluster.follower_error().is_none(),
        "{:?}",
        cluster.follower_error()
    );

    // Restarted with the setting off: the device, its entries and the exemptions go.
    let node = cluster.node_mut("a").unwrap();
    let ns = std::sync::Arc::clone(node.netns());
    node.ipamd.set_env("ENABLE_HYBRID_OVERLAY", "false");
    node.ipamd.restart(&ns).unwrap();
    node.ipamd.status().unwrap();
    assert!(ns.try_ip(&["link", "show", "vxlan.vpc"]).is_err());
    let table = ns.nft(&["list", "table", "ip", "vpc-cni"]).unwrap();
    assert!(
        !table.contains("10.244.1.0/24") && !table.contains("remote-pods"),
        "{table}"
    );
    let routes = ns.ip(&["route"]);
    assert!(!routes.contains("10.244.1.0"), "{routes}");
}
