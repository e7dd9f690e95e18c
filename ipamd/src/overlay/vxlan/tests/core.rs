//! The pure core: MACs, per-peer entries and the reconcile plan.

use std::net::Ipv4Addr;

use crate::overlay::vxlan::core::Observed;
use crate::overlay::vxlan::{
    desired_entries, peer_entries, vtep_mac, FdbEntry, NeighbourEntry, OverlaySpec, Peer,
    PeerEntries, Plan, RouteEntry, RouteKind,
};
use vpc_cni_proto::net::Ipv4Cidr;

pub(crate) fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

pub(crate) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub(crate) fn peer(name: &str, underlay: &str, pod_cidr: &str) -> Peer {
    Peer::overlay(name, ip(underlay), cidr(pod_cidr))
}

/// The one route of an overlay peer's entries.
fn route(entries: &PeerEntries) -> RouteEntry {
    assert_eq!(entries.routes.len(), 1, "{entries:?}");
    entries.routes[0]
}

pub(crate) fn spec(underlay_iface: &str, underlay_ip: &str, own: &str) -> OverlaySpec {
    OverlaySpec {
        vni: 1,
        port: 8472,
        underlay_iface: underlay_iface.to_owned(),
        underlay_ip: ip(underlay_ip),
        underlay_mtu: 1500,
        own_pod_cidr: Some(cidr(own)),
        direct_routing: false,
        underlay_subnet: None,
    }
}

#[test]
fn vtep_mac_is_prefix_plus_address() {
    assert_eq!(
        vtep_mac(ip("192.168.7.200")).to_string(),
        "0e:56:c0:a8:07:c8"
    );
    // Locally administered, unicast.
    assert_eq!(vtep_mac(ip("1.2.3.4")).0[0] & 0b11, 0b10);
}

#[test]
fn device_mtu_leaves_room_for_the_headers() {
    let mut s = spec("eth0", "192.168.1.1", "10.244.0.0/24");
    assert_eq!(s.device_mtu(), 1450);
    s.underlay_mtu = 9001;
    assert_eq!(s.device_mtu(), 8951);
    s.underlay_mtu = 100;
    assert!(s.validate().is_err());
    s.underlay_mtu = 1500;
    s.vni = 1 << 24;
    assert!(s.validate().is_err());
}

#[test]
fn overlay_peer_gets_neighbour_fdb_and_onlink_route() {
    let s = spec("eth0", "192.168.1.1", "10.244.0.0/24");
    let e = peer_entries(&s, &peer("b", "192.168.1.2", "10.244.1.0/24"));
    let mac = vpc_cni_proto::net::MacAddr([0x0e, 0x56, 192, 168, 1, 2]);
    assert_eq!(
        e.neighbour,
        Some(NeighbourEntry {
            ip: ip("10.244.1.0"),
            mac
        })
    );
    assert_eq!(
        e.fdb,
        Some(FdbEntry {
            mac,
            dst: ip("192.168.1.2")
        })
    );
    assert_eq!(route(&e).kind, RouteKind::Overlay);
    assert_eq!(route(&e).dst, (ip("10.244.1.0"), 24));
    assert_eq!(route(&e).gateway, ip("10.244.1.0"));
    assert_eq!(
        route(&e).to_string(),
        "10.244.1.0/24 via 10.244.1.0 dev vxlan.vpc onlink"
    );
}

#[test]
fn direct_routing_only_for_peers_on_the_underlay_subnet() {
    let mut s = spec("eth0", "192.168.1.1", "10.244.0.0/24");
    s.direct_routing = true;
    s.underlay_subnet = Some(cidr("192.168.1.0/24"));
    let near = peer_entries(&s, &peer("b", "192.168.1.2", "10.244.1.0/24"));
    assert_eq!(route(&near).kind, RouteKind::Direct);
    assert_eq!(route(&near).gateway, ip("192.168.1.2"));
    assert_eq!((near.neighbour, near.fdb), (None, None));
    let far = peer_entries(&s, &peer("c", "192.168.2.2", "10.244.2.0/24"));
    assert_eq!(route(&far).kind, RouteKind::Overlay);
    assert!(far.neighbour.is_some() && far.fdb.is_some());

    s.direct_routing = false;
    let off = peer_entries(&s, &peer("b", "192.168.1.2", "10.244.1.0/24"));
    assert_eq!(route(&off).kind, RouteKind::Overlay);
}

#[test]
fn self_and_clashing_peers_are_skipped() {
    let s = spec("eth0", "192.168.1.1", "10.244.0.0/24");
    let peers = [
        peer("me-by-cidr", "192.168.1.9", "10.244.0.0/24"),
        peer("me-by-ip", "192.168.1.1", "10.244.9.0/24"),
        peer("b", "192.168.1.2", "10.244.1.0/24"),
        peer("b-again", "192.168.1.3", "10.244.1.0/24"),
        peer("c", "192.168.1.4", "10.244.2.0/24"),
    ];
    let d = desired_entries(&s, &peers);
    let dsts: Vec<_> = d.iter().map(|e| route(e).dst.0).collect();
    assert_eq!(dsts, [ip("10.244.1.0"), ip("10.244.2.0")]);
    assert_eq!(d[0].fdb.unwrap().dst, ip("192.168.1.2"));
}

#[test]
fn plan_adds_missing_and_removes_stale_only() {
    let s = spec("eth0", "192.168.1.1", "10.244.0.0/24");
    let b = peer_entries(&s, &peer("b", "192.168.1.2", "10.244.1.0/24"));
    let c = peer_entries(&s, &peer("c", "192.168.1.3", "10.244.2.0/24"));
    let gone = peer_entries(&s, &peer("x", "192.168.1.4", "10.244.3.0/24"));
    let observed = Observed {
        neighbours: vec![b.neighbour.unwrap(), gone.neighbour.unwrap()],
        fdb: vec![gone.fdb.unwrap(), b.fdb.unwrap(), b.fdb.unwrap()],
        routes: vec![Some(route(&b)), None, Some(route(&gone))],
    };
    let plan = Plan::new(&[b.clone(), c.clone()], &observed);
    assert_eq!(plan.remove_neighbours, [1]);
    // b's FDB entry listed twice is one kernel entry (a dump of a table that changes under it
    // can repeat one): deleting "the duplicate" would delete b's only entry.
    assert_eq!(plan.remove_fdb, [0], "the stale one only");
    assert_eq!(plan.remove_routes, [1, 2]);
    assert_eq!(plan.add_neighbours, [c.neighbour.unwrap()]);
    assert_eq!(plan.add_fdb, [c.fdb.unwrap()]);
    assert_eq!(plan.add_routes, [route(&c)]);

    let settled = Observed {
        neighbours: vec![b.neighbour.unwrap(), c.neighbour.unwrap()],
        fdb: vec![c.fdb.unwrap(), b.fdb.unwrap()],
        routes: vec![Some(route(&c)), Some(route(&b))],
    };
    assert!(Plan::new(&[b.clone(), c.clone()], &settled)
        .report()
        .is_unchanged());
}

#[test]
fn what_a_dump_missed_is_added_again_and_nothing_is_removed_for_it() {
    // The neighbour table is shared by every namespace; a dump overlapping its resize can miss
    // entries. A missed entry is planned as an addition, which the apply layer makes with
    // NLM_F_REPLACE: rewriting an entry that is there after all changes nothing.
    let s = spec("eth0", "192.168.1.1", "10.244.0.0/24");
    let b = peer_entries(&s, &peer("b", "192.168.1.2", "10.244.1.0/24"));
    let c = peer_entries(&s, &peer("c", "192.168.1.3", "10.244.2.0/24"));
    let missed_b_neighbour = Observed {
        neighbours: vec![c.neighbour.unwrap()],
        fdb: vec![b.fdb.unwrap(), c.fdb.unwrap()],
        routes: vec![Some(route(&b)), Some(route(&c))],
    };
    let plan = Plan::new(&[b.clone(), c.clone()], &missed_b_neighbour);
    assert_eq!(plan.add_neighbours, [b.neighbour.unwrap()]);
    assert!(plan.add_fdb.is_empty() && plan.add_routes.is_empty());
    assert_eq!(plan.report().removed.total(), 0);

    // Listed twice: nothing to do.
    let repeated = Observed {
        neighbours: vec![
            b.neighbour.unwrap(),
            c.neighbour.unwrap(),
            b.neighbour.unwrap(),
        ],
        fdb: vec![b.fdb.unwrap(), c.fdb.unwrap(), c.fdb.unwrap()],
        routes: vec![Some(route(&b)), Some(route(&c))],
    };
    assert!(Plan::new(&[b.clone(), c.clone()], &repeated)
        .report()
        .is_unchanged());
}

#[test]
fn a_vpc_mode_peer_gets_a_route_per_range_via_its_underlay_address() {
    let s = spec("eth0", "172.20.0.11", "10.244.1.0/24");
    let vpc = Peer::vpc(
        "vpc-a",
        ip("10.0.0.15"),
        [cidr("10.0.1.37/32"), cidr("10.0.1.16/28")],
    );
    let e = peer_entries(&s, &vpc);
    let mac = vtep_mac(ip("10.0.0.15"));
    assert_eq!(
        e.neighbour,
        Some(NeighbourEntry {
            ip: ip("10.0.0.15"),
            mac
        })
    );
    assert_eq!(e.fdb.map(|f| f.dst), Some(ip("10.0.0.15")));
    let routes: Vec<String> = e.routes.iter().map(ToString::to_string).collect();
    assert_eq!(
        routes,
        [
            "10.0.1.16/28 via 10.0.0.15 dev vxlan.vpc onlink",
            "10.0.1.37/32 via 10.0.0.15 dev vxlan.vpc onlink",
        ]
    );
    // A second peer with a clashing range is left out whole.
    let other = Peer::vpc("vpc-b", ip("10.0.0.16"), [cidr("10.0.1.37/32")]);
    let d = desired_entries(&s, &[vpc, other]);
    assert_eq!(d.len(), 1);
}

#[test]
fn a_peer_announcing_a_smaller_mtu_gets_routes_held_to_it() {
    let s = spec("eth0", "172.20.0.11", "10.244.1.0/24");
    let ranges = [cidr("10.0.1.16/28")];
    let smaller = Peer::vpc("vpc-a", ip("10.0.0.15"), ranges).with_mtu(Some(1350));
    let routes: Vec<String> = peer_entries(&s, &smaller)
        .routes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        routes,
        ["10.0.1.16/28 via 10.0.0.15 dev vxlan.vpc onlink mtu 1350"]
    );
    // As large as this node's device (1450) or larger: the device's MTU already holds.
    for mtu in [None, Some(1450), Some(8951)] {
        let peer = Peer::vpc("vpc-a", ip("10.0.0.15"), ranges).with_mtu(mtu);
        assert_eq!(route(&peer_entries(&s, &peer)).mtu, None, "{mtu:?}");
    }
}
