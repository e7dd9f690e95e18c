//! The overlay's node side on the real kernel: finding the underlay, and the datapath that
//! applies peer sets, writes the SNAT table and repairs drift. Each test needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::peers::PeerSet;
use super::underlay::{discover, Underlay};
use super::vxlan::tests::core::{cidr, ip, peer, spec};
use vpc_cni_testkit::netns::Netns;

use super::vxlan::tests::entries::overlay_entries;
use super::OverlayDatapath;
use crate::error::IpamdError;
use vpc_cni_proto::net::Ipv4Cidr;

/// A node with `eth0` (192.168.50.1/24, MTU 9000, default route) and `eth1` (10.9.0.1/24).
pub(super) fn node() -> Netns {
    let ns = Netns::unique("ovx-und");
    for (dev, peer, addr, mtu) in [
        ("eth0", "eth0p", "192.168.50.1/24", "9000"),
        ("eth1", "eth1p", "10.9.0.1/24", "1500"),
    ] {
        ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", peer]);
        ns.ip(&["link", "set", dev, "mtu", mtu, "up"]);
        ns.ip(&["link", "set", peer, "up"]);
        ns.ip(&["addr", "add", addr, "dev", dev]);
    }
    ns
}

fn discover_in(ns: &Netns, named: Option<&str>) -> Result<Underlay, IpamdError> {
    let named = named.map(str::to_owned);
    ns.run(|| async move { discover(named.as_deref()).await })
}

#[test]
fn underlay_is_the_default_route_interface_unless_named() {
    let ns = node();
    let err = discover_in(&ns, None).unwrap_err().to_string();
    assert!(
        err.contains("VXLAN_UNDERLAY_IFACE") && err.contains("default route"),
        "{err}"
    );

    // A lower metric wins, as in the kernel's own lookup.
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "10.9.0.254",
        "metric",
        "200",
    ]);
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "192.168.50.254",
        "metric",
        "100",
    ]);
    let found = discover_in(&ns, None).unwrap();
    assert_eq!(
        found,
        Underlay {
            iface: "eth0".into(),
            mtu: 9000,
            ip: ip("192.168.50.1"),
            subnet: cidr("192.168.50.0/24"),
        }
    );

    let named = discover_in(&ns, Some("eth1")).unwrap();
    assert_eq!((named.iface.as_str(), named.mtu), ("eth1", 1500));
    assert_eq!(named.ip, ip("10.9.0.1"));

    let err = discover_in(&ns, Some("eth7")).unwrap_err().to_string();
    assert!(
        err.contains("VXLAN_UNDERLAY_IFACE") && err.contains("eth7"),
        "{err}"
    );
    ns.ip(&[
        "link", "add", "bare", "type", "veth", "peer", "name", "barep",
    ]);
    let err = discover_in(&ns, Some("bare")).unwrap_err().to_string();
    assert!(err.contains("no IPv4 address"), "{err}");
}

pub(super) fn set(peers: &[(&str, &str, &str)]) -> PeerSet {
    peers
        .iter()
        .map(|(n, u, c)| ((*n).to_owned(), peer(n, u, c)))
        .collect()
}

fn nft_table(ns: &Netns) -> String {
    ns.nft(&["list", "table", "ip", "vpc-cni"])
        .unwrap_or_default()
}

/// Runs `f` against a datapath adopted afresh in `ns`, as a restarted ipamd would.
pub(super) fn with_datapath<T: Send + 'static>(
    ns: &Netns,
    cluster: Option<Ipv4Cidr>,
    f: impl FnOnce(std::sync::Arc<OverlayDatapath>) -> futures::future::BoxFuture<'static, T>
        + Send
        + 'static,
) -> T {
    ns.run(move || async move {
        let s = spec("eth0", "192.168.50.1", "10.244.0.0/24");
        let (datapath, _) = OverlayDatapath::new(s, cluster).await.unwrap();
        f(datapath).await
    })
}

#[test]
fn datapath_programs_peers_snat_and_repairs_drift() {
    use crate::datapath::NodeDatapath;
    let ns = node();
    let two = set(&[
        ("b", "192.168.50.2", "10.244.1.0/24"),
        ("c", "192.168.50.3", "10.244.2.0/24"),
    ]);
    let peers = two.clone();
    with_datapath(&ns, None, move |dp| {
        Box::pin(async move {
            dp.apply().await.unwrap();
            dp.apply_peers(&peers).await.unwrap();
        })
    });
    // Without CLUSTER_CIDR the set is this node's pod CIDR and its peers'.
    let table = nft_table(&ns);
    for want in [
        "10.244.0.0/24",
        "10.244.1.0/24",
        "10.244.2.0/24",
        "iifname \"vpc*\" ip daddr != @cluster masquerade fully-random",
    ] {
        assert!(table.contains(want), "{want:?} missing from:\n{table}");
    }
    let entries = overlay_entries(&ns);
    assert_eq!(entries.len(), 6, "{entries:#?}");

    // Outside damage is repaired by a resync; a smaller set removes exactly one peer's lines.
    ns.ip(&["route", "del", "10.244.2.0/24"]);
    ns.exec_ok(&["nft", "delete", "table", "ip", "vpc-cni"]);
    let one = set(&[("b", "192.168.50.2", "10.244.1.0/24")]);
    let (peers, smaller) = (two.clone(), one.clone());
    let repaired = with_datapath(&ns, None, move |dp| {
        Box::pin(async move {
            // A fresh datapath knows no peers yet: nothing to resync.
            assert!(dp.resync().await.unwrap().is_none());
            dp.apply_peers(&peers).await.unwrap();
            dp.route_and_table_after_resync(&smaller).await
        })
    });
    assert_eq!(repaired.added.routes, 0, "{repaired:?}");
    assert_eq!(repaired.removed.total(), 3, "{repaired:?}");
    let after = overlay_entries(&ns);
    let gone: Vec<_> = entries.difference(&after).collect();
    assert_eq!(gone.len(), 3, "{gone:#?}");
    assert!(gone
        .iter()
        .all(|l| l.contains("10.244.2.0") || l.contains("192.168.50.3")));
    assert!(after.is_subset(&entries));
    let table = nft_table(&ns);
    assert!(
        table.contains("10.244.1.0/24") && !table.contains("10.244.2.0/24"),
        "{table}"
    );
}

impl OverlayDatapath {
    /// Test helper: breaks a route and the table from inside the namespace (this thread is
    /// in it), lets a resync repair them, then applies `next`.
    async fn route_and_table_after_resync(&self, next: &PeerSet) -> super::vxlan::ReconcileReport {
        for cmd in [
            &["ip", "route", "del", "10.244.2.0/24"][..],
            &["nft", "delete", "table", "ip", "vpc-cni"][..],
        ] {
            let out = std::process::Command::new(cmd[0])
                .args(&cmd[1..])
                .output()
                .unwrap();
            assert!(out.status.success(), "{cmd:?}: {out:?}");
        }
        let report = self.resync().await.unwrap().unwrap();
        assert_eq!(report.added.routes, 1, "{report:?}");
        assert_eq!(report.added.total(), 1, "{report:?}");
        let table = std::process::Command::new("nft")
            .args(["list", "table", "ip", "vpc-cni"])
            .output()
            .unwrap();
        assert!(table.status.success(), "resync did not restore the table");
        self.apply_peers(next).await.unwrap()
    }
}

#[test]
fn cluster_cidr_fixes_the_snat_set_at_setup_and_must_hold_the_own_pod_cidr() {
    use crate::datapath::NodeDatapath;
    let ns = node();
    with_datapath(&ns, Some(cidr("10.244.0.0/16")), |dp| {
        Box::pin(async move { dp.apply().await.unwrap() })
    });
    let table = nft_table(&ns);
    assert!(table.contains("elements = { 10.244.0.0/16 }"), "{table}");

    let err = ns.run(|| async {
        let s = spec("eth0", "192.168.50.1", "10.244.0.0/24");
        OverlayDatapath::new(s, Some(cidr("10.245.0.0/16")))
            .await
            .err()
            .unwrap()
            .to_string()
    });
    assert!(
        err.contains("CLUSTER_CIDR") && err.contains("10.244.0.0/24"),
        "{err}"
    );
}

#[test]
fn a_deleted_device_is_recreated_with_its_entries() {
    let ns = node();
    let two = set(&[
        ("b", "192.168.50.2", "10.244.1.0/24"),
        ("c", "192.168.50.3", "10.244.2.0/24"),
    ]);
    let peers = two.clone();
    with_datapath(&ns, None, move |dp| {
        Box::pin(async move {
            dp.apply_peers(&peers).await.unwrap();
            let before = std::process::Command::new("ip")
                .args(["-d", "link", "show", "vxlan.vpc"])
                .output()
                .unwrap();
            let gone = std::process::Command::new("ip")
                .args(["link", "del", "vxlan.vpc"])
                .output()
                .unwrap();
            assert!(gone.status.success(), "{gone:?}");
            let report = dp.resync().await.unwrap().unwrap();
            assert_eq!(report.added.total(), 6, "{report:?}");
            let after = std::process::Command::new("ip")
                .args(["-d", "link", "show", "vxlan.vpc"])
                .output()
                .unwrap();
            assert!(after.status.success());
            // Same settings; only the index (first field) differs.
            let settings = |o: &std::process::Output| {
                String::from_utf8_lossy(&o.stdout)
                    .split_once(": ")
                    .map(|(_, rest)| rest.to_owned())
                    .unwrap()
            };
            assert_eq!(settings(&before), settings(&after));
        })
    });
    assert_eq!(overlay_entries(&ns).len(), 6);
}

#[test]
fn with_cluster_cidr_a_vpc_mode_peers_ranges_stay_untranslated_too() {
    let ns = node();
    let mut peers = set(&[("b", "192.168.50.2", "10.244.1.0/24")]);
    let vpc = super::peers::Peer::vpc("vpc-a", ip("10.0.0.15"), [cidr("10.0.1.16/28")]);
    peers.insert(vpc.name.clone(), vpc);
    with_datapath(&ns, Some(cidr("10.244.0.0/16")), move |dp| {
        Box::pin(async move {
            dp.apply_peers(&peers).await.unwrap();
        })
    });
    let table = nft_table(&ns);
    assert!(
        table.contains("elements = { 10.0.1.16/28, 10.244.0.0/16 }"),
        "{table}"
    );
    let routes = ns.ip(&["route", "show", "dev", "vxlan.vpc"]);
    assert!(routes.contains("10.0.1.16/28 via 10.0.0.15"), "{routes}");
}
