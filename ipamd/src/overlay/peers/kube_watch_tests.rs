//! The Kubernetes peer source's watch, against the scripted API server of
//! `kube_tests`: initial list, ADDED / MODIFIED / DELETED, errors and re-lists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ::kube::Client;
use http::{Method, StatusCode};
use serde_json::json;

use super::kube_tests::{mock_client, node, peer, ready, set, status, step, PAGE};
use super::{KubePeers, PeerSet, PeerSource};
use crate::error::IpamdError;

/// This node in the tests below: n1, 192.168.0.1, 10.244.1.0/24.
fn own_peers(client: Client) -> KubePeers {
    KubePeers::new(client, "n1", Some("192.168.0.1".parse().unwrap()))
}

#[tokio::test]
async fn list_add_pod_cidr_change_and_delete() {
    let (client, mut api) = mock_client();
    let mut peers = own_peers(client);
    let n1 = ready("n1", 11, "192.168.0.1", "10.244.1.0/24");
    let n2 = ready("n2", 12, "192.168.0.2", "10.244.2.0/24");
    let n3_unannotated = node("n3", 13, "192.168.0.3", Some("10.244.3.0/24"), None);

    let (first, ()) = step("initial list", async {
        tokio::join!(peers.next(), api.list("100", vec![n1, n2, n3_unannotated]))
    })
    .await;
    assert_eq!(
        first.unwrap(),
        set(&[peer("n2", "192.168.0.2", "10.244.2.0/24")]),
        "own node and the unannotated n3 are not peers"
    );

    let n4 = ready("n4", 101, "192.168.0.4", "10.244.4.0/24");
    let (added, ()) = step("ADDED", async {
        tokio::join!(peers.next(), api.watch("100", vec![("ADDED", n4.clone())]))
    })
    .await;
    assert_eq!(
        added.unwrap(),
        set(&[
            peer("n2", "192.168.0.2", "10.244.2.0/24"),
            peer("n4", "192.168.0.4", "10.244.4.0/24"),
        ])
    );

    let n2_moved = ready("n2", 102, "192.168.0.2", "10.244.20.0/24");
    let (modified, ()) = step("MODIFIED", async {
        tokio::join!(
            peers.next(),
            api.watch("101", vec![("MODIFIED", n2_moved.clone())])
        )
    })
    .await;
    assert_eq!(
        modified.unwrap(),
        set(&[
            peer("n2", "192.168.0.2", "10.244.20.0/24"),
            peer("n4", "192.168.0.4", "10.244.4.0/24"),
        ])
    );

    let n4_gone = ready("n4", 103, "192.168.0.4", "10.244.4.0/24");
    let (deleted, ()) = step("DELETED", async {
        tokio::join!(
            peers.next(),
            api.watch("102", vec![("DELETED", n4_gone.clone())])
        )
    })
    .await;
    assert_eq!(
        deleted.unwrap(),
        set(&[peer("n2", "192.168.0.2", "10.244.20.0/24")])
    );
}

#[tokio::test]
async fn node_becomes_a_peer_once_annotated() {
    let (client, mut api) = mock_client();
    let mut peers = own_peers(client);
    let n1 = ready("n1", 11, "192.168.0.1", "10.244.1.0/24");
    let n2_bare = node("n2", 12, "192.168.0.2", None, None);

    let (first, ()) = step("initial list", async {
        tokio::join!(peers.next(), api.list("100", vec![n1, n2_bare]))
    })
    .await;
    assert_eq!(
        first.unwrap(),
        PeerSet::new(),
        "the first set comes even when empty"
    );

    // The pod CIDR arrives first (node IPAM), the annotation later (its
    // ipamd starts): only the second makes a peer, so the first change
    // must not produce a set.
    let n2_cidr = node("n2", 101, "192.168.0.2", Some("10.244.2.0/24"), None);
    let n2_annotated = ready("n2", 102, "192.168.0.2", "10.244.2.0/24");
    let (annotated, ()) = step("annotation", async {
        tokio::join!(
            peers.next(),
            api.watch(
                "100",
                vec![
                    ("MODIFIED", n2_cidr.clone()),
                    ("MODIFIED", n2_annotated.clone())
                ]
            )
        )
    })
    .await;
    assert_eq!(
        annotated.unwrap(),
        set(&[peer("n2", "192.168.0.2", "10.244.2.0/24")])
    );
}

#[tokio::test]
async fn unusable_values_leave_out_only_their_node() {
    let (client, mut api) = mock_client();
    let mut peers = own_peers(client);
    let nodes = [
        ready("n1", 11, "192.168.0.1", "10.244.1.0/24"),
        ready("n2", 12, "192.168.0.2", "10.244.2.0/24"),
        node("n3", 13, "192.168.0.3", Some("banana"), Some("192.168.0.3")),
        node(
            "n4",
            14,
            "192.168.0.4",
            Some("10.244.4.0/24"),
            Some("not-an-ip"),
        ),
        node(
            "n5",
            15,
            "192.168.0.5",
            Some("10.244.5.1/24"),
            Some("192.168.0.5"),
        ),
        node(
            "n6",
            16,
            "192.168.0.6",
            Some("10.244.6.0/24"),
            Some("224.0.0.6"),
        ),
        node(
            "n7",
            17,
            "192.168.0.7",
            Some("0.0.0.0/0"),
            Some("192.168.0.7"),
        ),
    ];
    let (first, ()) = step("initial list", async {
        tokio::join!(peers.next(), api.list("100", nodes.to_vec()))
    })
    .await;
    assert_eq!(
        first.unwrap(),
        set(&[peer("n2", "192.168.0.2", "10.244.2.0/24")])
    );

    let n3_fixed = ready("n3", 101, "192.168.0.3", "10.244.3.0/24");
    let (fixed, ()) = step("fix", async {
        tokio::join!(
            peers.next(),
            api.watch("100", vec![("MODIFIED", n3_fixed.clone())])
        )
    })
    .await;
    assert_eq!(
        fixed.unwrap(),
        set(&[
            peer("n2", "192.168.0.2", "10.244.2.0/24"),
            peer("n3", "192.168.0.3", "10.244.3.0/24"),
        ])
    );
}

#[tokio::test]
async fn clashes_are_resolved_by_name_whatever_the_order() {
    let (client, mut api) = mock_client();
    let mut peers = own_peers(client);
    // Listed in an order unlike name order, so the outcome cannot come
    // from arrival order.
    let nodes = [
        ready("z", 20, "192.168.0.26", "10.247.0.0/24"),
        ready("d", 14, "192.168.0.14", "10.244.0.0/16"),
        ready("c", 13, "192.168.0.11", "10.245.0.0/16"),
        ready("b", 12, "192.168.0.12", "10.244.2.128/25"),
        ready("a", 11, "192.168.0.11", "10.244.2.0/24"),
        ready("y", 19, "192.168.0.25", "10.247.0.0/25"),
        ready("e", 15, "192.168.0.15", "10.246.0.0/24"),
        ready("n1", 10, "192.168.0.1", "10.244.1.0/24"),
        ready("n1-old", 9, "192.168.0.1", "10.248.0.0/24"),
    ];
    let (first, ()) = step("initial list", async {
        tokio::join!(peers.next(), api.list("100", nodes.to_vec()))
    })
    .await;
    // b overlaps a, c shares a's underlay, d holds our own 10.244.1.0/24,
    // y and z overlap (y is smaller), n1-old has our underlay address.
    assert_eq!(
        first.unwrap(),
        set(&[
            peer("a", "192.168.0.11", "10.244.2.0/24"),
            peer("e", "192.168.0.15", "10.246.0.0/24"),
            peer("y", "192.168.0.25", "10.247.0.0/25"),
        ])
    );

    // With a gone, b and c no longer clash with anything; d still holds
    // our pod CIDR.
    let a_gone = ready("a", 101, "192.168.0.11", "10.244.2.0/24");
    let (after, ()) = step("DELETED a", async {
        tokio::join!(
            peers.next(),
            api.watch("100", vec![("DELETED", a_gone.clone())])
        )
    })
    .await;
    assert_eq!(
        after.unwrap(),
        set(&[
            peer("b", "192.168.0.12", "10.244.2.128/25"),
            peer("c", "192.168.0.11", "10.245.0.0/16"),
            peer("e", "192.168.0.15", "10.246.0.0/24"),
            peer("y", "192.168.0.25", "10.247.0.0/25"),
        ])
    );
}

#[tokio::test]
async fn a_paged_list_makes_one_set() {
    let (client, mut api) = mock_client();
    let mut peers = own_peers(client);
    let n2 = ready("n2", 12, "192.168.0.2", "10.244.2.0/24");
    let n3 = ready("n3", 13, "192.168.0.3", "10.244.3.0/24");
    let (first, ()) = step("paged list", async {
        tokio::join!(peers.next(), async {
            let page1 = api.expect(Method::GET, "/api/v1/nodes").await;
            assert_eq!(page1.query.get("limit").map(String::as_str), Some(PAGE));
            assert!(!page1.query.contains_key("continue"));
            page1.reply(
                StatusCode::OK,
                &json!({
                    "apiVersion": "v1",
                    "kind": "NodeList",
                    "metadata": { "resourceVersion": "100", "continue": "eyJydiI6MTAwfQ" },
                    "items": [n2],
                }),
            );
            let page2 = api.expect(Method::GET, "/api/v1/nodes").await;
            assert_eq!(
                page2.query.get("continue").map(String::as_str),
                Some("eyJydiI6MTAwfQ")
            );
            page2.reply(
                StatusCode::OK,
                &json!({
                    "apiVersion": "v1",
                    "kind": "NodeList",
                    "metadata": { "resourceVersion": "100" },
                    "items": [n3],
                }),
            );
        })
    })
    .await;
    assert_eq!(
        first.unwrap(),
        set(&[
            peer("n2", "192.168.0.2", "10.244.2.0/24"),
            peer("n3", "192.168.0.3", "10.244.3.0/24"),
        ]),
        "the first set waits for the last page"
    );
}

#[tokio::test]
async fn an_unchanged_set_is_not_returned_again() {
    let (client, mut api) = mock_client();
    let mut peers = own_peers(client);
    let n2 = ready("n2", 12, "192.168.0.2", "10.244.2.0/24");
    let (first, ()) = step("initial list", async {
        tokio::join!(peers.next(), api.list("100", vec![n2.clone()]))
    })
    .await;
    assert_eq!(
        first.unwrap(),
        set(&[peer("n2", "192.168.0.2", "10.244.2.0/24")])
    );

    // A label edit and a heartbeat change nothing the overlay uses. Had
    // either produced a set, `next` would return the unchanged one here
    // instead of the later real change.
    let mut labelled = ready("n2", 101, "192.168.0.2", "10.244.2.0/24");
    labelled["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!("rack-7");
    let mut heartbeat = labelled.clone();
    heartbeat["metadata"]["resourceVersion"] = json!("102");
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = json!("2026-11-26T10:05:00Z");
    // The API server's periodic bookmark: the watch resumes from it.
    let bookmark = json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": { "resourceVersion": "150" },
    });
    let n2_moved = ready("n2", 151, "192.168.0.2", "10.244.22.0/24");
    let (next, ()) = step("no-op then change", async {
        tokio::join!(peers.next(), async {
            api.watch("100", vec![("MODIFIED", labelled.clone())]).await;
            api.watch(
                "101",
                vec![
                    ("MODIFIED", heartbeat.clone()),
                    ("BOOKMARK", bookmark.clone()),
                ],
            )
            .await;
            api.watch("150", vec![("MODIFIED", n2_moved.clone())]).await;
        })
    })
    .await;
    assert_eq!(
        next.unwrap(),
        set(&[peer("n2", "192.168.0.2", "10.244.22.0/24")])
    );
}

#[tokio::test]
async fn a_failed_watch_is_reported_and_watching_goes_on() {
    let (client, mut api) = mock_client();
    let mut peers = own_peers(client);
    let n2 = ready("n2", 12, "192.168.0.2", "10.244.2.0/24");
    let (first, ()) = step("initial list", async {
        tokio::join!(peers.next(), api.list("100", vec![n2.clone()]))
    })
    .await;
    assert_eq!(
        first.unwrap(),
        set(&[peer("n2", "192.168.0.2", "10.244.2.0/24")])
    );

    let (failed, ()) = step("failing watch", async {
        tokio::join!(peers.next(), async {
            api.watch_call("100").await.reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                &status(500, "InternalError", "etcdserver: request timed out"),
            );
        })
    })
    .await;
    match failed {
        Err(IpamdError::Kubernetes { action, reason }) => {
            assert_eq!(action, "watching Nodes");
            assert!(reason.contains("etcdserver: request timed out"), "{reason}");
        }
        other => panic!("expected a Kubernetes error, got {other:?}"),
    }

    // After kube's backoff the watch is retried from the same version.
    let n3 = ready("n3", 101, "192.168.0.3", "10.244.3.0/24");
    let (recovered, ()) = step("retried watch", async {
        tokio::join!(peers.next(), api.watch("100", vec![("ADDED", n3.clone())]))
    })
    .await;
    assert_eq!(
        recovered.unwrap(),
        set(&[
            peer("n2", "192.168.0.2", "10.244.2.0/24"),
            peer("n3", "192.168.0.3", "10.244.3.0/24"),
        ])
    );
}

#[tokio::test]
async fn an_expired_watch_relists_and_drops_nodes_gone_meanwhile() {
    let (client, mut api) = mock_client();
    let mut peers = own_peers(client);
    let n2 = ready("n2", 12, "192.168.0.2", "10.244.2.0/24");
    let n3 = ready("n3", 13, "192.168.0.3", "10.244.3.0/24");
    let (first, ()) = step("initial list", async {
        tokio::join!(peers.next(), api.list("100", vec![n2.clone(), n3]))
    })
    .await;
    assert_eq!(first.unwrap().len(), 2);

    let expired = status(410, "Expired", "too old resource version: 100 (250)");
    let (failed, ()) = step("expired watch", async {
        tokio::join!(
            peers.next(),
            api.watch("100", vec![("ERROR", expired.clone())])
        )
    })
    .await;
    assert!(
        matches!(&failed, Err(IpamdError::Kubernetes { reason, .. }) if reason.contains("too old")),
        "{failed:?}"
    );

    // n3 was deleted while we were not watching, n5 joined.
    let n5 = ready("n5", 240, "192.168.0.5", "10.244.5.0/24");
    let (relisted, ()) = step("relist", async {
        tokio::join!(peers.next(), api.list("250", vec![n2, n5]))
    })
    .await;
    assert_eq!(
        relisted.unwrap(),
        set(&[
            peer("n2", "192.168.0.2", "10.244.2.0/24"),
            peer("n5", "192.168.0.5", "10.244.5.0/24"),
        ])
    );
}
