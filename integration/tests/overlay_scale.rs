//! A thousand peers through the real daemon (issue 6, acceptance 5): one node's ipamd reads a
//! peers file listing 1,000 other nodes, programs a neighbour, an FDB entry and a route for
//! each plus their pod CIDRs in the SNAT set, and removes all of it again when the file lists
//! only the node itself. The times are printed, never asserted. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vpc_cni_integration::overlay_cluster::{
    write_peers_file, OverlayCluster, OverlaySnapshot, PeerEntry,
};
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

const PEERS: u32 = 1_000;
/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(120);

/// Peers on another underlay subnet (never routed directly) with /24s from 10.128.0.0/14.
fn fake_peer(i: u32) -> PeerEntry {
    PeerEntry {
        name: format!("rack-{i}"),
        underlay_ip: Ipv4Addr::new(172, 24, (i / 250) as u8, (i % 250 + 1) as u8),
        pod_cidr: format!("10.{}.{}.0/24", 128 + i / 256, i % 256),
    }
}

/// Neighbour, FDB and route lines on the node.
fn counts(snapshot: &OverlaySnapshot) -> (usize, usize, usize) {
    (
        snapshot.section("neigh").len(),
        snapshot.section("fdb").len(),
        snapshot.section("route").len(),
    )
}

#[test]
fn a_thousand_peers_from_the_peers_file_are_programmed_and_removed() {
    require_root();
    let cluster = OverlayCluster::new("oscale", 1, 1500).unwrap();
    let node = &cluster.nodes()[0];
    let own = PeerEntry {
        name: node.name.clone(),
        underlay_ip: node.underlay_ip,
        pod_cidr: node.pod_cidr.clone(),
    };
    let empty = wait_for(EVENTUAL, || {
        let s = node.snapshot().ok()?;
        (s.device.is_some() && counts(&s) == (0, 0, 0)).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "the node did not settle alone\n{}",
            cluster.all_diagnostics()
        )
    });

    let mut all: Vec<PeerEntry> = (0..PEERS).map(fake_peer).collect();
    all.push(own.clone());
    let start = Instant::now();
    write_peers_file(&cluster.peers_file(), &all).unwrap();
    let full = wait_for(EVENTUAL, || {
        let s = node.snapshot().ok()?;
        let n = PEERS as usize;
        (counts(&s) == (n, n, n)).then_some(s)
    });
    let programmed = start.elapsed();
    let full = full.unwrap_or_else(|| {
        panic!(
            "1,000 peers were not programmed: {:?}\n{}",
            node.snapshot().map(|s| counts(&s)),
            cluster.diagnostics(&node.name)
        )
    });
    // Spot checks: the first and last peer's entries are exact.
    for i in [0, PEERS - 1] {
        let p = fake_peer(i);
        let [a, b, c, d] = p.underlay_ip.octets();
        let mac = format!("0e:56:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
        let gateway = p.pod_cidr.trim_end_matches("/24");
        assert!(
            full.section("neigh")
                .iter()
                .any(|l| l.starts_with(&format!("{gateway} ")) && l.contains(&mac)),
            "no neighbour for {}",
            p.name
        );
        assert!(
            full.section("fdb")
                .iter()
                .any(|l| l.starts_with(&mac) && l.contains(&format!("dst {}", p.underlay_ip))),
            "no FDB entry for {}",
            p.name
        );
        assert!(
            full.section("route")
                .iter()
                .any(|l| l.starts_with(&format!("{} via {gateway} ", p.pod_cidr))),
            "no route for {}",
            p.name
        );
    }

    let start = Instant::now();
    write_peers_file(&cluster.peers_file(), &[own]).unwrap();
    let removed = wait_for(EVENTUAL, || {
        let s = node.snapshot().ok()?;
        (s == empty).then_some(())
    });
    let removal = start.elapsed();
    assert!(
        removed.is_some(),
        "entries were left behind: {:?}\n{}",
        node.snapshot().map(|s| counts(&s)),
        cluster.diagnostics(&node.name)
    );
    println!(
        "{PEERS} peers through the peers file: programmed in {programmed:?}, removed in \
         {removal:?} (each including up to one poll interval of the file)"
    );
}
