//! The apply layer against the real kernel, in a node namespace whose veth `eth0` stands in
//! for the underlay.

use super::core::{cidr, peer, spec};
use vpc_cni_testkit::netns::Netns;

use super::entries::{overlay_entries, snapshot};
use crate::overlay::vxlan::{DeviceChange, Overlay, OverlaySpec, Peer, ReconcileReport};

/// A node namespace with `eth0` (192.168.50.1/24, MTU `mtu`) as underlay.
pub(super) fn node(mtu: u32) -> (Netns, OverlaySpec) {
    let ns = Netns::unique("ovx-node");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ns.ip(&["link", "set", "eth0", "mtu", &mtu.to_string(), "up"]);
    ns.ip(&["link", "set", "eth0p", "up"]);
    ns.ip(&["addr", "add", "192.168.50.1/24", "dev", "eth0"]);
    let mut s = spec("eth0", "192.168.50.1", "10.244.0.0/24");
    s.underlay_mtu = mtu;
    (ns, s)
}

pub(super) fn ensure(ns: &Netns, spec: &OverlaySpec) -> DeviceChange {
    let spec = spec.clone();
    ns.run(|| async move { Overlay::ensure_device(spec).await.map(|(_, c)| c) })
        .unwrap()
}

pub(super) fn reconcile(ns: &Netns, spec: &OverlaySpec, peers: &[Peer]) -> ReconcileReport {
    let (spec, peers) = (spec.clone(), peers.to_vec());
    ns.run(|| async move {
        let (overlay, _) = Overlay::ensure_device(spec).await?;
        overlay.reconcile(&peers).await
    })
    .unwrap()
}

fn remove_peer(ns: &Netns, spec: &OverlaySpec, p: &Peer) {
    let (spec, p) = (spec.clone(), p.clone());
    ns.run(|| async move {
        let (overlay, _) = Overlay::ensure_device(spec).await?;
        overlay.remove_peer(&p).await
    })
    .unwrap();
}

fn three_peers() -> Vec<Peer> {
    vec![
        peer("b", "192.168.50.2", "10.244.1.0/24"),
        peer("c", "192.168.60.3", "10.244.2.0/24"),
        peer("d", "192.168.50.4", "10.244.3.0/24"),
    ]
}

#[test]
fn device_has_our_settings_and_is_reused() {
    let (ns, s) = node(1500);
    assert_eq!(ensure(&ns, &s), DeviceChange::Created);
    let link = ns.ip(&["-d", "link", "show", "vxlan.vpc"]);
    for want in [
        "vxlan id 1 ",
        "local 192.168.50.1 ",
        "dev eth0 ",
        "dstport 8472 ",
        "nolearning",
        "mtu 1450 ",
        "link/ether 0e:56:c0:a8:32:01",
        ",UP",
    ] {
        assert!(link.contains(want), "{want:?} missing from:\n{link}");
    }
    let addrs = ns.ip(&["-4", "-o", "addr", "show", "dev", "vxlan.vpc"]);
    assert!(addrs.contains("inet 10.244.0.0/32"), "{addrs}");
    assert_eq!(addrs.lines().count(), 1, "{addrs}");
    assert_eq!(ensure(&ns, &s), DeviceChange::Unchanged);

    // A changed MTU is fixed in place; a changed VNI needs a new device.
    let mut bigger = s.clone();
    bigger.underlay_mtu = 1400;
    ns.ip(&["link", "set", "eth0", "mtu", "1400"]);
    assert_eq!(ensure(&ns, &bigger), DeviceChange::Updated);
    assert!(ns.ip(&["link", "show", "vxlan.vpc"]).contains("mtu 1350 "));
    let mut other_vni = bigger.clone();
    other_vni.vni = 7;
    other_vni.port = 4789;
    assert_eq!(ensure(&ns, &other_vni), DeviceChange::Recreated);
    let link = ns.ip(&["-d", "link", "show", "vxlan.vpc"]);
    assert!(
        link.contains("vxlan id 7 ") && link.contains("dstport 4789 "),
        "{link}"
    );
}

#[test]
fn a_route_held_to_a_peers_mtu_is_programmed_read_back_and_updated() {
    let (ns, s) = node(1500);
    let vpc = |mtu| {
        Peer::vpc(
            "vpc-a",
            "192.168.50.7".parse().unwrap(),
            [cidr("10.0.1.16/28")],
        )
        .with_mtu(mtu)
    };
    reconcile(&ns, &s, &[vpc(Some(1350))]);
    let routes = ns.ip(&["-4", "route", "show", "dev", "vxlan.vpc"]);
    assert!(
        routes.contains("10.0.1.16/28 via 192.168.50.7 proto 86 onlink mtu 1350"),
        "{routes}"
    );
    // Read back as programmed: nothing to do.
    assert!(reconcile(&ns, &s, &[vpc(Some(1350))]).is_unchanged());
    // The peer announces another MTU: its route is replaced, nothing else moves.
    let report = reconcile(&ns, &s, &[vpc(Some(1300))]);
    assert_eq!((report.added.routes, report.removed.routes), (1, 1));
    assert_eq!(report.added.total() + report.removed.total(), 2);
    let routes = ns.ip(&["-4", "route", "show", "dev", "vxlan.vpc"]);
    assert!(routes.contains("onlink mtu 1300"), "{routes}");
    assert_eq!(routes.lines().count(), 1, "{routes}");
    // No longer announced: the device's MTU holds again.
    reconcile(&ns, &s, &[vpc(None)]);
    let routes = ns.ip(&["-4", "route", "show", "dev", "vxlan.vpc"]);
    assert!(!routes.contains("mtu"), "{routes}");
    assert_eq!(routes.lines().count(), 1, "{routes}");
}

#[test]
fn reconcile_programs_each_peer_and_is_idempotent() {
    let (ns, s) = node(1500);
    let peers = three_peers();
    let report = reconcile(&ns, &s, &peers);
    assert_eq!(
        (
            report.added.neighbours,
            report.added.fdb,
            report.added.routes
        ),
        (3, 3, 3)
    );
    assert_eq!(report.removed.total(), 0);

    let neigh = ns.ip(&["-4", "neigh", "show", "dev", "vxlan.vpc"]);
    assert!(
        neigh.contains("10.244.1.0 lladdr 0e:56:c0:a8:32:02 PERMANENT"),
        "{neigh}"
    );
    let fdb = ns.bridge(&["fdb", "show", "dev", "vxlan.vpc"]);
    assert!(
        fdb.contains("0e:56:c0:a8:3c:03 dst 192.168.60.3 self permanent"),
        "{fdb}"
    );
    let routes = ns.ip(&["-4", "route", "show", "dev", "vxlan.vpc"]);
    assert!(
        routes.contains("10.244.3.0/24 via 10.244.3.0 proto 86 onlink"),
        "{routes}"
    );

    let before = snapshot(&ns);
    assert!(reconcile(&ns, &s, &peers).is_unchanged());
    assert_eq!(snapshot(&ns), before);
}

#[test]
fn removing_a_peer_removes_exactly_its_three_entries() {
    let (ns, s) = node(1500);
    let peers = three_peers();
    reconcile(&ns, &s, &peers);
    let before = snapshot(&ns);

    // Through reconcile with the peer gone from the list...
    let report = reconcile(&ns, &s, &peers[1..]);
    assert_eq!(report.added.total(), 0);
    assert_eq!(
        (
            report.removed.neighbours,
            report.removed.fdb,
            report.removed.routes
        ),
        (1, 1, 1)
    );
    let after = snapshot(&ns);
    let gone: Vec<_> = before.difference(&after).cloned().collect();
    assert!(after.is_subset(&before), "new entries: {after:?}");
    assert_eq!(gone.len(), 3, "{gone:#?}");
    assert!(gone.iter().any(|l| l.starts_with("neigh: 10.244.1.0 ")));
    assert!(gone
        .iter()
        .any(|l| l.starts_with("fdb: 0e:56:c0:a8:32:02 ")));
    assert!(gone.iter().any(|l| l.starts_with("route: 10.244.1.0/24 ")));

    // ...and through remove_peer.
    remove_peer(&ns, &s, &peers[1]);
    let last = snapshot(&ns);
    let gone: Vec<_> = after.difference(&last).collect();
    assert!(last.is_subset(&after));
    assert_eq!(gone.len(), 3, "{gone:#?}");
    assert!(gone
        .iter()
        .all(|l| l.contains("10.244.2.0") || l.contains("0e:56:c0:a8:3c:03")));
    // Removing it again finds nothing to do and is no error.
    remove_peer(&ns, &s, &peers[1]);
    assert_eq!(snapshot(&ns), last);
}

#[test]
fn entries_of_others_survive_and_stale_ones_of_ours_go() {
    let (ns, s) = node(1500);
    ensure(&ns, &s);
    // Someone else's: on eth0, and a route to a pod-like CIDR via the underlay.
    ns.ip(&[
        "neigh",
        "add",
        "192.168.50.77",
        "lladdr",
        "02:00:00:00:00:77",
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    ns.ip(&[
        "route",
        "add",
        "10.99.0.0/16",
        "via",
        "192.168.50.254",
        "dev",
        "eth0",
    ]);
    ns.bridge(&[
        "fdb",
        "add",
        "02:00:00:00:00:78",
        "dev",
        "eth0p",
        "self",
        "permanent",
    ]);
    // Stale ones of ours on the device, as a crashed ipamd might leave them.
    ns.ip(&[
        "neigh",
        "add",
        "10.244.9.0",
        "lladdr",
        "0e:56:01:02:03:04",
        "dev",
        "vxlan.vpc",
        "nud",
        "permanent",
    ]);
    ns.bridge(&[
        "fdb",
        "add",
        "0e:56:01:02:03:04",
        "dev",
        "vxlan.vpc",
        "dst",
        "1.2.3.4",
        "self",
        "permanent",
    ]);
    ns.ip(&[
        "route",
        "add",
        "10.244.9.0/24",
        "via",
        "10.244.9.0",
        "dev",
        "vxlan.vpc",
        "onlink",
    ]);
    let foreign: Vec<String> = snapshot(&ns)
        .into_iter()
        .filter(|l| !l.contains("vxlan.vpc"))
        .collect();

    let report = reconcile(&ns, &s, &three_peers());
    assert_eq!(
        (
            report.removed.neighbours,
            report.removed.fdb,
            report.removed.routes
        ),
        (1, 1, 1)
    );
    let after = snapshot(&ns);
    for line in &foreign {
        assert!(after.contains(line), "{line} was removed");
    }
    assert!(!after
        .iter()
        .any(|l| l.contains("10.244.9.0") || l.contains("01:02:03:04")));
    assert_eq!(overlay_entries(&ns).len(), 9, "{:#?}", overlay_entries(&ns));
}

#[test]
fn direct_routing_gives_plain_routes_for_near_peers() {
    let (ns, mut s) = node(1500);
    s.direct_routing = true;
    s.underlay_subnet = Some(cidr("192.168.50.0/24"));
    let peers = three_peers();
    let report = reconcile(&ns, &s, &peers);
    // b and d share the underlay subnet; only c goes through the tunnel.
    assert_eq!(
        (
            report.added.neighbours,
            report.added.fdb,
            report.added.routes
        ),
        (1, 1, 3)
    );
    let main = ns.ip(&["-4", "route", "show"]);
    assert!(
        main.contains("10.244.1.0/24 via 192.168.50.2 dev eth0 proto 86"),
        "{main}"
    );
    assert!(
        main.contains("10.244.3.0/24 via 192.168.50.4 dev eth0 proto 86"),
        "{main}"
    );
    assert!(
        main.contains("10.244.2.0/24 via 10.244.2.0 dev vxlan.vpc proto 86 onlink"),
        "{main}"
    );
    assert!(reconcile(&ns, &s, &peers).is_unchanged());

    // Turning direct routing off moves b and d into the tunnel.
    s.direct_routing = false;
    let report = reconcile(&ns, &s, &peers);
    assert_eq!(report.removed.routes, 2);
    assert_eq!(
        (
            report.added.neighbours,
            report.added.fdb,
            report.added.routes
        ),
        (2, 2, 2)
    );
    assert!(!ns
        .ip(&["-4", "route", "show", "dev", "eth0"])
        .contains("proto 86"));
    assert_eq!(overlay_entries(&ns).len(), 9, "{:#?}", overlay_entries(&ns));
}
