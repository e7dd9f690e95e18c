//! A thousand peers programmed and removed again.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::kernel::{node, reconcile};
use crate::overlay::vxlan::Peer;
use vpc_cni_proto::net::Ipv4Cidr;

#[test]
fn thousand_peers_programmed_then_removed_without_leftovers() {
    let (ns, s) = node(1500);
    let empty = reconcile(&ns, &s, &[]);
    assert!(empty.is_unchanged());
    let before = ns.snapshot();

    let peers: Vec<Peer> = (0..1000u32)
        .map(|i| Peer {
            name: format!("n{i}"),
            underlay: Ipv4Addr::new(172, 16, (i / 250) as u8, (i % 250 + 1) as u8),
            pod_cidr: Ipv4Cidr {
                network: Ipv4Addr::new(10, 128 + (i / 256) as u8, (i % 256) as u8, 0),
                prefix_len: 24,
            },
        })
        .collect();
    let start = Instant::now();
    let added = reconcile(&ns, &s, &peers);
    let add_time = start.elapsed();
    assert_eq!(
        (added.added.neighbours, added.added.fdb, added.added.routes),
        (1000, 1000, 1000)
    );
    assert_eq!(ns.overlay_entries().len(), 3000);

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
    assert_eq!(ns.snapshot(), before);
}
