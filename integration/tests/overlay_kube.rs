//! The overlay's Kubernetes peer source end to end (issue 6, acceptance 4,
//! with the real ipamd): nodes on a plain underlay whose ipamd has no peers
//! file and no POD_CIDR, only a kubeconfig for a fake API server in the
//! outside host. Each ipamd takes its pod CIDR from its Node, annotates the
//! Node with its underlay address and follows every other Node: a Node that
//! joins, one whose pod CIDR changes and one that is deleted. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use ipamd::overlay::peers::UNDERLAY_ANNOTATION;
use vpc_cni_integration::fake_kube::{node_object, Call};
use vpc_cni_integration::overlay_cluster::{
    is_peer_line, pod_cidr, underlay_ip, OverlayCluster, OverlayPod, OverlaySnapshot,
};
use vpc_cni_integration::vpc_cluster::reachable;
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);

fn ip(pod: &OverlayPod) -> Ipv4Addr {
    pod.ip().unwrap()
}

fn vtep_mac(underlay: Ipv4Addr) -> String {
    let [a, b, c, d] = underlay.octets();
    format!("0e:56:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Whether a snapshot line names `cidr` or its network address.
fn mentions(line: &str, cidr: &str) -> bool {
    let network = cidr.split('/').next().unwrap_or(cidr);
    line.split_whitespace().any(|t| t == cidr || t == network)
}

/// The stored Node's `spec.podCIDR`.
fn node_pod_cidr(cluster: &OverlayCluster, name: &str) -> String {
    let node = cluster.kube().unwrap().api().node(name).unwrap();
    node["spec"]["podCIDR"].as_str().unwrap().to_string()
}

/// Waits until `name`'s ipamd has put its underlay address on its Node, then
/// checks the patch touched nothing else and came once.
fn assert_annotated(cluster: &OverlayCluster, name: &str) {
    let node = cluster.node(name).unwrap();
    let api = cluster.kube().unwrap().api();
    let underlay = node.underlay_ip.to_string();
    wait_for(EVENTUAL, || {
        (api.annotation(name, UNDERLAY_ANNOTATION)? == underlay).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{name} never got {UNDERLAY_ANNOTATION}={underlay}\n{}",
            cluster.all_diagnostics()
        )
    });
    let stored = api.node(name).unwrap();
    let registered = node_object(name, node.underlay_ip, Some(&node.pod_cidr));
    for field in ["/metadata/labels", "/spec", "/status"] {
        assert_eq!(
            stored.pointer(field),
            registered.pointer(field),
            "{name}: the annotation patch changed {field}"
        );
    }
    let mut annotations = stored["metadata"]["annotations"].clone();
    annotations
        .as_object_mut()
        .unwrap()
        .remove(UNDERLAY_ANNOTATION);
    assert_eq!(
        annotations, registered["metadata"]["annotations"],
        "{name}: the kubelet's annotations must survive the patch"
    );
    assert_eq!(
        api.requests(&Call::Patch(name.into())),
        1,
        "{name}: one PATCH of its own Node\n{}",
        cluster.all_diagnostics()
    );
}

/// A pod on `node` whose address comes from the Node's `spec.podCIDR`.
fn pod_from_node_cidr(cluster: &OverlayCluster, node: &str, name: &str) -> OverlayPod {
    let pod = cluster.pod(node, name);
    let cidr: Ipv4Cidr = node_pod_cidr(cluster, node).parse().unwrap();
    assert!(
        cidr.contains(ip(&pod)) && ip(&pod) != cidr.network,
        "{name} on {node} got {}, not a pod address of its Node's podCIDR {cidr}",
        ip(&pod)
    );
    pod
}

fn assert_reach(cluster: &OverlayCluster, pairs: &[(&OverlayPod, &OverlayPod)], when: &str) {
    for (from, to) in pairs {
        wait_for(EVENTUAL, || reachable(&from.netns, ip(to)).then_some(())).unwrap_or_else(|| {
            panic!(
                "{when}: {} on {} never reached {} ({}) on {}\n{}",
                from.name,
                from.node,
                to.name,
                ip(to),
                to.node,
                cluster.all_diagnostics()
            )
        });
    }
}

/// Waits until `node` holds exactly one neighbour, FDB and route line for
/// each of `peers` (`(vtep MAC, pod CIDR)`) and no other; returns that state.
fn converged(cluster: &OverlayCluster, node: &str, peers: &[(String, String)]) -> OverlaySnapshot {
    let n = cluster.node(node).unwrap();
    let mut last = None;
    wait_for(EVENTUAL, || {
        let snapshot = n.snapshot().ok()?;
        let each = peers.iter().all(|(mac, cidr)| {
            snapshot
                .lines
                .iter()
                .filter(|l| is_peer_line(l, mac, cidr))
                .count()
                == 3
        });
        let ok = each
            && ["neigh", "fdb", "route"]
                .iter()
                .all(|tag| snapshot.section(tag).len() == peers.len());
        last = Some(snapshot.clone());
        ok.then_some(snapshot)
    })
    .unwrap_or_else(|| {
        panic!(
            "{node} did not converge on peers {peers:?}; last snapshot:\n{}\n{}",
            last.map(|s| s.to_string()).unwrap_or_default(),
            cluster.all_diagnostics()
        )
    })
}

/// `(vtep MAC, pod CIDR)` of every started node but `except`.
fn peers_of(cluster: &OverlayCluster, except: &str) -> Vec<(String, String)> {
    cluster
        .nodes()
        .iter()
        .filter(|n| n.name != except)
        .map(|n| (n.vtep_mac(), n.pod_cidr.clone()))
        .collect()
}

#[test]
fn nodes_from_the_api_annotate_join_and_leave() {
    require_root();
    let mut cluster = OverlayCluster::with_kube("ovk", 3, 1500)
        .unwrap_or_else(|e| panic!("starting the Kubernetes overlay cluster: {e}"));
    for name in ["node-1", "node-2", "node-3"] {
        assert_annotated(&cluster, name);
    }
    let p1 = pod_from_node_cidr(&cluster, "node-1", "p1");
    let p2 = pod_from_node_cidr(&cluster, "node-2", "p2");
    let p3 = pod_from_node_cidr(&cluster, "node-3", "p3");
    let pods = [&p1, &p2, &p3];
    let matrix: Vec<_> = pods
        .iter()
        .flat_map(|a| pods.iter().map(move |b| (*a, *b)))
        .filter(|(a, b)| a.name != b.name)
        .collect();
    assert_reach(&cluster, &matrix, "three Nodes");

    // A fourth Node registers; it is no peer until its ipamd annotates it.
    let fourth = cluster.register_next_node(Some(&pod_cidr(4))).unwrap();
    assert_eq!(fourth, "node-4");
    let early = cluster.node("node-1").unwrap().snapshot().unwrap();
    assert!(
        !early
            .lines
            .iter()
            .any(|l| is_peer_line(l, &vtep_mac(underlay_ip(4)), &pod_cidr(4))),
        "node-1 peers with node-4 before node-4's ipamd announced its address:\n{early}"
    );
    cluster.start_kube_node().unwrap();
    assert_annotated(&cluster, "node-4");
    let p4 = pod_from_node_cidr(&cluster, "node-4", "p4");
    assert_reach(
        &cluster,
        &[(&p1, &p4), (&p4, &p1), (&p2, &p4), (&p4, &p3), (&p3, &p4)],
        "after node-4 joined",
    );

    // Node 3's Node is deleted (its ipamd keeps running): the others drop
    // exactly its neighbour, FDB and route entries.
    let survivors = ["node-1", "node-2", "node-4"];
    let before: Vec<(&str, OverlaySnapshot)> = survivors
        .iter()
        .map(|name| (*name, converged(&cluster, name, &peers_of(&cluster, name))))
        .collect();
    let node3 = cluster.node("node-3").unwrap();
    let (mac3, cidr3) = (node3.vtep_mac(), node3.pod_cidr.clone());
    let is_node3 = |l: &str| is_peer_line(l, &mac3, &cidr3);
    cluster.kube().unwrap().api().delete_node("node-3").unwrap();
    for (name, snapshot) in &before {
        let expected = snapshot.without(is_node3);
        assert_eq!(
            snapshot.lines.len() - expected.lines.len(),
            3,
            "{name}: node-3 should account for one neighbour, FDB and route line:\n{snapshot}"
        );
        let node = cluster.node(name).unwrap();
        let after = wait_for(EVENTUAL, || {
            let now = node.snapshot().ok()?;
            (!now.lines.iter().any(|l| is_node3(l))).then_some(now)
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} still holds node-3's entries after its Node was deleted\n{}",
                cluster.all_diagnostics()
            )
        });
        assert!(
            after == expected,
            "{name}: deleting node-3 changed more than its entries:\n{}\nafter:\n{after}\n{}",
            expected.difference(&after),
            cluster.all_diagnostics()
        );
    }
    assert!(
        !reachable(&p1.netns, ip(&p3)),
        "p1 still reaches p3 after node-3's Node was deleted\n{}",
        cluster.all_diagnostics()
    );
    assert_reach(
        &cluster,
        &[(&p1, &p4), (&p4, &p2), (&p2, &p1)],
        "after node-3 left",
    );
}

#[test]
fn pod_cidr_changes_move_routes_and_a_node_waits_for_its_pod_cidr() {
    require_root();
    let mut cluster = OverlayCluster::with_kube("ovkc", 2, 1500)
        .unwrap_or_else(|e| panic!("starting the Kubernetes overlay cluster: {e}"));
    let api = cluster.kube().unwrap().api().clone();

    // A Node without an ipamd of ours, annotated as its ipamd would: only
    // its entries on the other nodes are at stake.
    let ghost_ip = Ipv4Addr::new(172, 20, 0, 200);
    let ghost_mac = vtep_mac(ghost_ip);
    let (old_cidr, new_cidr) = ("10.244.50.0/24", "10.244.51.0/24");
    api.create_node(node_object("ghost", ghost_ip, Some(old_cidr)))
        .unwrap();
    api.annotate("ghost", UNDERLAY_ANNOTATION, &ghost_ip.to_string())
        .unwrap();
    let with_ghost = |name: &str, cidr: &str| {
        let mut peers = peers_of(&cluster, name);
        peers.push((ghost_mac.clone(), cidr.to_string()));
        converged(&cluster, name, &peers)
    };
    let before: Vec<(&str, OverlaySnapshot)> = ["node-1", "node-2"]
        .into_iter()
        .map(|name| (name, with_ghost(name, old_cidr)))
        .collect();

    api.set_pod_cidr("ghost", Some(new_cidr)).unwrap();
    let is_ghost =
        |l: &str| is_peer_line(l, &ghost_mac, old_cidr) || is_peer_line(l, &ghost_mac, new_cidr);
    for (name, snapshot) in &before {
        let after = with_ghost(name, new_cidr);
        let routes: Vec<&str> = after
            .section("route")
            .into_iter()
            .filter(|l| is_ghost(l))
            .collect();
        assert!(
            routes.len() == 1 && routes[0].starts_with(&format!("{new_cidr} ")),
            "{name}: the ghost's route did not move to {new_cidr}: {routes:?}\n{after}"
        );
        assert!(
            !after.lines.iter().any(|l| mentions(l, old_cidr)),
            "{name}: entries for the old pod CIDR {old_cidr} remain:\n{after}"
        );
        let (kept, now) = (snapshot.without(is_ghost), after.without(is_ghost));
        assert!(
            kept == now,
            "{name}: moving the ghost's pod CIDR changed other entries:\n{}",
            kept.difference(&now)
        );
    }

    // A Node the controller manager has not given a pod CIDR yet: its ipamd
    // asks, waits without serving or annotating, and starts once one is set.
    let third = cluster.register_next_node(None).unwrap();
    let (name, waited) = cluster
        .start_kube_node_while(|starting| {
            let asked_again = wait_for(EVENTUAL, || {
                (starting.api.requests(&Call::Get(starting.name.clone())) >= 2).then_some(())
            });
            let observed = (
                asked_again.is_some(),
                starting.serving(),
                starting.api.annotation(&starting.name, UNDERLAY_ANNOTATION),
            );
            starting
                .api
                .set_pod_cidr(&starting.name, Some(&pod_cidr(3)))
                .unwrap();
            observed
        })
        .unwrap_or_else(|e| panic!("starting {third} without a pod CIDR: {e}"));
    assert_eq!(name, third);
    assert_eq!(
        waited,
        (true, false, None),
        "(asked for its Node again, served, annotated) while {third} had no podCIDR\n{}",
        cluster.all_diagnostics()
    );
    let log = cluster.node(&third).unwrap().ipamd.log_text();
    assert!(
        log.contains("waiting for the Node's spec.podCIDR"),
        "{third}'s ipamd did not say it waited:\n{log}"
    );
    assert_eq!(node_pod_cidr(&cluster, &third), pod_cidr(3));
    assert_annotated(&cluster, &third);
    let p1 = pod_from_node_cidr(&cluster, "node-1", "p1");
    let p3 = pod_from_node_cidr(&cluster, &third, "p3");
    assert_reach(
        &cluster,
        &[(&p1, &p3), (&p3, &p1)],
        "after the late pod CIDR",
    );
}

/// A Node whose underlay annotation names an address its kubelet does not report (as
/// whoever could annotate another Node would do to draw its traffic) is left out by every
/// ipamd, and joins once the Node really has that address.
#[test]
fn a_node_annotated_with_an_address_it_does_not_have_is_not_routed_to() {
    require_root();
    let cluster = OverlayCluster::with_kube("ovks", 2, 1500)
        .unwrap_or_else(|e| panic!("starting the Kubernetes overlay cluster: {e}"));
    let api = cluster.kube().unwrap().api().clone();
    let (reported, claimed) = (
        Ipv4Addr::new(172, 20, 0, 201),
        Ipv4Addr::new(172, 20, 0, 202),
    );
    let spoof_cidr = "10.244.60.0/24";
    api.create_node(node_object("spoof", reported, Some(spoof_cidr)))
        .unwrap();
    api.annotate("spoof", UNDERLAY_ANNOTATION, &claimed.to_string())
        .unwrap();
    // A valid Node registered after it: a watch delivers events in order, so a node that
    // routes to the ghost has seen the spoof too.
    let ghost_ip = Ipv4Addr::new(172, 20, 0, 200);
    let ghost_cidr = "10.244.50.0/24";
    api.create_node(node_object("ghost", ghost_ip, Some(ghost_cidr)))
        .unwrap();
    api.annotate("ghost", UNDERLAY_ANNOTATION, &ghost_ip.to_string())
        .unwrap();
    for name in ["node-1", "node-2"] {
        let mut peers = peers_of(&cluster, name);
        peers.push((vtep_mac(ghost_ip), ghost_cidr.to_string()));
        let snapshot = converged(&cluster, name, &peers);
        assert!(
            !snapshot.lines.iter().any(|l| mentions(l, spoof_cidr)),
            "{name} routes the spoofed Node's pod CIDR:\n{snapshot}"
        );
        let log = cluster.node(name).unwrap().ipamd.log_text();
        assert!(
            log.lines()
                .any(|l| l.contains("spoof") && l.contains("does not have")),
            "{name} did not say why it left the spoofed Node out:\n{log}"
        );
    }

    // Its kubelet now reports the address too: a peer like any other.
    api.update_node("spoof", |node| {
        node["status"]["addresses"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({ "type": "InternalIP", "address": claimed.to_string() }));
    })
    .unwrap();
    for name in ["node-1", "node-2"] {
        let mut peers = peers_of(&cluster, name);
        peers.push((vtep_mac(ghost_ip), ghost_cidr.to_string()));
        peers.push((vtep_mac(claimed), spoof_cidr.to_string()));
        converged(&cluster, name, &peers);
    }
}
