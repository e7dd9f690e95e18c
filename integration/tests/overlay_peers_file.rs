//! The peers file drives the overlay (issue 6, acceptance 2): three listed
//! nodes and a fourth that runs but is not listed; listing it makes its pods
//! reachable both ways, and unlisting node 3 removes exactly node 3's
//! neighbour, FDB and route entries on every other node while every other
//! entry stays as it was; a file that vanishes changes nothing. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use vpc_cni_integration::overlay_cluster::{
    is_peer_line, OverlayCluster, OverlayNode, OverlayPod, OverlaySnapshot,
};
use vpc_cni_integration::vpc_cluster::reachable;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);

fn ip(pod: &OverlayPod) -> Ipv4Addr {
    pod.ip().unwrap()
}

/// The neighbour, FDB and route lines `peer` accounts for in a snapshot.
fn peer_lines<'a>(snapshot: &'a OverlaySnapshot, peer: &OverlayNode) -> Vec<&'a String> {
    let mac = peer.vtep_mac();
    snapshot
        .lines
        .iter()
        .filter(|l| is_peer_line(l, &mac, &peer.pod_cidr))
        .collect()
}

/// Waits until `node` holds entries for exactly `peers` (one neighbour, FDB
/// and route line each) and returns that snapshot.
fn converged(
    cluster: &OverlayCluster,
    node: &OverlayNode,
    peers: &[&OverlayNode],
) -> OverlaySnapshot {
    let mut last = None;
    wait_for(EVENTUAL, || {
        let snapshot = node.snapshot().ok()?;
        let ok = peers.iter().all(|p| peer_lines(&snapshot, p).len() == 3)
            && snapshot.section("neigh").len() == peers.len()
            && snapshot.section("fdb").len() == peers.len()
            && snapshot.section("route").len() == peers.len();
        last = Some(snapshot.clone());
        ok.then_some(snapshot)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} did not converge on peers {:?}; last snapshot:\n{}\n{}",
            node.name,
            peers.iter().map(|p| &p.name).collect::<Vec<_>>(),
            last.map(|s| s.to_string()).unwrap_or_default(),
            cluster.all_diagnostics()
        )
    })
}

#[test]
fn peers_file_edits_add_and_remove_exactly_one_node() {
    require_root();
    let mut cluster = OverlayCluster::new("ovpf", 3, 1500)
        .unwrap_or_else(|e| panic!("starting the overlay cluster: {e}"));
    let fourth = cluster
        .add_node(false)
        .unwrap_or_else(|e| panic!("starting the unlisted node: {e}"));
    assert_eq!(fourth, "node-4");
    let p1 = cluster.pod("node-1", "p1");
    let p2 = cluster.pod("node-2", "p2");
    let p3 = cluster.pod("node-3", "p3");
    let p4 = cluster.pod("node-4", "p4");

    // Controls: the overlay among the listed nodes works, and node 4 serves
    // its own pod; what is missing is only node 4 in the others' peers.
    for target in [&p2, &p3] {
        wait_for(EVENTUAL, || reachable(&p1.netns, ip(target)).then_some(())).unwrap_or_else(
            || {
                panic!(
                    "p1 never reached {} among listed nodes\n{}",
                    target.name,
                    cluster.all_diagnostics()
                )
            },
        );
    }
    let n4 = cluster.node("node-4").unwrap();
    assert!(
        reachable(n4.netns(), ip(&p4)),
        "node-4 cannot reach its own pod\n{}",
        cluster.diagnostics("node-4")
    );
    assert!(
        !reachable(&p1.netns, ip(&p4)),
        "p1 reached p4 on the unlisted node-4\n{}",
        cluster.all_diagnostics()
    );

    cluster.list("node-4").unwrap();
    for (from, to) in [(&p1, &p4), (&p4, &p1), (&p2, &p4), (&p4, &p3)] {
        wait_for(EVENTUAL, || reachable(&from.netns, ip(to)).then_some(())).unwrap_or_else(|| {
            panic!(
                "after listing node-4, {} on {} never reached {} on {}\n{}",
                from.name,
                from.node,
                to.name,
                to.node,
                cluster.all_diagnostics()
            )
        });
    }

    // Every node peers with the three others; remember what the survivors hold.
    let survivors = ["node-1", "node-2", "node-4"];
    let node3 = cluster.node("node-3").unwrap();
    let (mac3, cidr3) = (node3.vtep_mac(), node3.pod_cidr.clone());
    let mut before = Vec::new();
    for name in survivors {
        let node = cluster.node(name).unwrap();
        let peers: Vec<&OverlayNode> = cluster.nodes().iter().filter(|n| n.name != name).collect();
        let snapshot = converged(&cluster, node, &peers);
        eprintln!("{name} before unlisting node-3:\n{snapshot}");
        before.push((name, snapshot));
    }

    cluster.unlist("node-3").unwrap();
    let node3 = |l: &str| is_peer_line(l, &mac3, &cidr3);
    for (name, snapshot) in &before {
        let node = cluster.node(name).unwrap();
        let expected = snapshot.without(node3);
        assert_eq!(
            snapshot.lines.len() - expected.lines.len(),
            3,
            "{}: node-3 should account for one neighbour, FDB and route line:\n{snapshot}",
            node.name
        );
        let gone = wait_for(EVENTUAL, || {
            let now = node.snapshot().ok()?;
            (!now.lines.iter().any(|l| node3(l))).then_some(now)
        });
        let after = gone.unwrap_or_else(|| {
            panic!(
                "{} still holds node-3's entries\n{}",
                node.name,
                cluster.all_diagnostics()
            )
        });
        assert!(
            after == expected,
            "{}: unlisting node-3 changed more than node-3's entries:\n{}\nafter:\n{after}\n{}",
            node.name,
            expected.difference(&after),
            cluster.all_diagnostics()
        );
    }
    assert!(
        !reachable(&p1.netns, ip(&p3)),
        "p1 still reaches p3 after node-3 was unlisted\n{}",
        cluster.all_diagnostics()
    );
    assert!(
        reachable(&p1.netns, ip(&p4)) && reachable(&p4.netns, ip(&p2)),
        "unlisting node-3 cut pods of the remaining nodes off\n{}",
        cluster.all_diagnostics()
    );
}

/// A peers file that disappears (a ConfigMap being replaced, a file moved aside to edit)
/// is not an edit to "no peers": every node keeps its overlay entries and its traffic.
#[test]
fn a_vanished_peers_file_keeps_every_overlay_entry() {
    require_root();
    let cluster = OverlayCluster::new("ovpg", 2, 1500)
        .unwrap_or_else(|e| panic!("starting the overlay cluster: {e}"));
    let p1 = cluster.pod("node-1", "p1");
    let p2 = cluster.pod("node-2", "p2");
    wait_for(EVENTUAL, || reachable(&p1.netns, ip(&p2)).then_some(()))
        .unwrap_or_else(|| panic!("p1 never reached p2\n{}", cluster.all_diagnostics()));
    let mut before = Vec::new();
    for node in cluster.nodes() {
        let peers: Vec<&OverlayNode> = cluster
            .nodes()
            .iter()
            .filter(|n| n.name != node.name)
            .collect();
        before.push(converged(&cluster, node, &peers));
    }

    std::fs::remove_file(cluster.peers_file()).unwrap();
    // Each ipamd says when it saw the file go; only then is "nothing changed" meaningful.
    // A change to its entries ends the wait as well, and fails below with the difference.
    for (node, before) in cluster.nodes().iter().zip(&before) {
        let after = wait_for(EVENTUAL, || {
            let now = node.snapshot().ok()?;
            let reported = node.log_tail().contains("keeping the last good set");
            (reported || now != *before).then_some(now)
        })
        .unwrap_or_else(|| {
            panic!(
                "{} never reported the vanished peers file\n{}",
                node.name,
                cluster.all_diagnostics()
            )
        });
        assert!(
            after == *before,
            "{}: the vanished peers file changed the overlay:\n{}\n{}",
            node.name,
            before.difference(&after),
            cluster.all_diagnostics()
        );
    }
    assert!(
        reachable(&p1.netns, ip(&p2)) && reachable(&p2.netns, ip(&p1)),
        "pods lost each other when the peers file vanished\n{}",
        cluster.all_diagnostics()
    );
}
