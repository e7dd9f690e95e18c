//! A thousand peers programmed and removed again.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::entries::{overlay_entries, snapshot};
use super::kernel::{node, reconcile};
use crate::overlay::vxlan::{Peer, DEVICE_NAME};
use vpc_cni_proto::net::Ipv4Cidr;

#[test]
fn thousand_peers_programmed_then_removed_without_leftovers() {
    let (ns, s) = node(1500);
    let empty = reconcile(&ns, &s, &[]);
    assert!(empty.is_unchanged());
    let before = snapshot(&ns);

    let peers: Vec<Peer> = (0..1000u32)
        .map(|i| {
            Peer::overlay(
                format!("n{i}"),
                Ipv4Addr::new(172, 16, (i / 250) as u8, (i % 250 + 1) as u8),
                Ipv4Cidr {
                    network: Ipv4Addr::new(10, 128 + (i / 256) as u8, (i % 256) as u8, 0),
                    prefix_len: 24,
                },
            )
        })
        .collect();
    let start = Instant::now();
    let added = reconcile(&ns, &s, &peers);
    let add_time = start.elapsed();
    assert_eq!(
        (added.added.neighbours, added.added.fdb, added.added.routes),
        (1000, 1000, 1000)
    );
    // A thousand neighbours fill several dump messages, and a dump resumed at a position that
    // other namespaces' changes shifted can skip one: the neighbours are looked up one by one.
    let gateways: Vec<Ipv4Addr> = peers.iter().map(Peer::gateway).collect();
    assert_eq!(ns.neighbours_among(DEVICE_NAME, &gateways).len(), 1000);
    let others = overlay_entries(&ns)
        .into_iter()
        .filter(|l| !l.starts_with("neigh: "))
        .count();
    assert_eq!(others, 2000, "one FDB entry and one route per peer");

    let start = Instant::now();
    let removed = reconcile(&ns, &s, &[]);
    let remove_time = start.elapsed();
    assert_eq!(
        (
            removed.removed.neighbours,
            removed.removed.fdb,
            removed.removed.routes
        ),
        (1000, 1000, 1000)
    );
    println!("1000 peers: programmed in {add_time:?}, removed in {remove_time:?}");
    assert_eq!(snapshot(&ns), before);
}
