//! The pure core: MACs, per-peer entries and the reconcile plan.

use std::net::Ipv4Addr;

use crate::overlay::vxlan::core::Observed;
use crate::overlay::vxlan::{
    desired_entries, peer_entries, vtep_mac, FdbEntry, NeighbourEntry, OverlaySpec, Peer, Plan,
    RouteKind,
};
use vpc_cni_proto::net::Ipv4Cidr;

pub(crate) fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

pub(crate) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub(crate) fn peer(name: &str, underlay: &str, pod_cidr: &str) -> Peer {
    Peer {
        name: name.to_owned(),
        underlay: ip(underlay),
        pod_cidr: cidr(pod_cidr),
    }
}

pub(crate) fn spec(underlay_iface: &str, underlay_ip: &str, own: &str) -> OverlaySpec {
    OverlaySpec {
        vni: 1,
        port: 8472,
        underlay_iface: underlay_iface.to_owned(),
        underlay_ip: ip(underlay_ip),
        underlay_mtu: 1500,
        own_pod_cidr: cidr(own),
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
    assert_eq!(e.route.kind, RouteKind::Overlay);
    assert_eq!(e.route.dst, (ip("10.244.1.0"), 24));
    assert_eq!(e.route.gateway, ip("10.244.1.0"));
    assert_eq!(
        e.route.to_string(),
        "10.244.1.0/24 via 10.244.1.0 dev vxlan.vpc onlink"
    );
}

#[test]
fn direct_routing_only_for_peers_on_the_underlay_subnet() {
    let mut s = spec("eth0", "192.168.1.1", "10.244.0.0/24");
    s.direct_routing = true;
    s.underlay_subnet = Some(cidr("192.168.1.0/24"));
    let near = peer_entries(&s, &peer("b", "192.168.1.2", "10.244.1.0/24"));
    assert_eq!(near.route.kind, RouteKind::Direct);
    assert_eq!(near.route.gateway, ip("192.168.1.2"));
    assert_eq!((near.neighbour, near.fdb), (None, None));
    let far = peer_entries(&s, &peer("c", "192.168.2.2", "10.244.2.0/24"));
    assert_eq!(far.route.kind, RouteKind::Overlay);
    assert!(far.neighbour.is_some() && far.fdb.is_some());

    s.direct_routing = false;
    let off = peer_entries(&s, &peer("b", "192.168.1.2", "10.244.1.0/24"));
    assert_eq!(off.route.kind, RouteKind::Overlay);
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
    let dsts: Vec<_> = d.iter().map(|e| e.route.dst.0).collect();
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
        routes: vec![Some(b.route), None, Some(gone.route)],
    };
    let plan = Plan::new(&[b, c], &observed);
    assert_eq!(plan.remove_neighbours, [1]);
    // b's FDB entry listed twice is one kernel entry (a dump of a table that changes under it
    // can repeat one): deleting "the duplicate" would delete b's only entry.
    assert_eq!(plan.remove_fdb, [0], "the stale one only");
    assert_eq!(plan.remove_routes, [1, 2]);
    assert_eq!(plan.add_neighbours, [c.neighbour.unwrap()]);
    assert_eq!(plan.add_fdb, [c.fdb.unwrap()]);
    assert_eq!(plan.add_routes, [c.route]);

    let settled = Observed {
        neighbours: vec![b.neighbour.unwrap(), c.neighbour.unwrap()],
        fdb: vec![c.fdb.unwrap(), b.fdb.unwrap()],
        routes: vec![Some(c.route), Some(b.route)],
    };
    assert!(Plan::new(&[b, c], &settled).report().is_unchanged());
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
        routes: vec![Some(b.route), Some(c.route)],
    };
    let plan = Plan::new(&[b, c], &missed_b_neighbour);
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
        routes: vec![Some(b.route), Some(c.route)],
    };
    assert!(Plan::new(&[b, c], &repeated).report().is_unchanged());
}
