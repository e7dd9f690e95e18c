//! A scripted Kubernetes API server for the Kubernetes peer source's tests:
//! kube's client runs over a `tower_test` mock service, and each test answers
//! the requests the watcher and the Node calls make, checking method, path
//! and query. Also the tests of the calls on the own Node (the watch tests
//! are in `kube_watch_tests`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use ::kube::client::Body;
use ::kube::Client;
use http::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tower_test::mock::{self, Handle, SendResponse};

use super::{annotate_own_node, own_pod_cidr, Peer, PeerSet, UNDERLAY_ANNOTATION};
use crate::error::IpamdError;

/// Only guards against a hung test (a request or event that never comes);
/// nothing here measures speed.
pub(super) const STUCK: Duration = Duration::from_secs(60);

/// Page size the watcher lists with (kube's default, as client-go's).
pub(super) const PAGE: &str = "500";

pub(super) async fn step<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(STUCK, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: stuck waiting for a request or a peer set"))
}

pub(super) fn mock_client() -> (Client, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer(handle))
}

/// The scripted API server's end of the mock.
pub(super) struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// One request the client made, ready to be answered.
pub(super) struct Call {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: BTreeMap<String, String>,
    pub(super) content_type: Option<String>,
    pub(super) body: Vec<u8>,
    pub(super) respond: SendResponse<Response<Body>>,
}

impl ApiServer {
    /// Takes the next request and checks its method and path.
    pub(super) async fn expect(&mut self, method: Method, path: &str) -> Call {
        let (request, respond) = self
            .0
            .next_request()
            .await
            .expect("the client went away before making a request");
        let (parts, body) = request.into_parts();
        let query = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.to_string(), String::new()),
            })
            .collect();
        let call = Call {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query,
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string()),
            body: body.collect_bytes().await.unwrap().to_vec(),
            respond,
        };
        assert_eq!(
            (&call.method, call.path.as_str()),
            (&method, path),
            "unexpected request {} {}?{:?}",
            call.method,
            call.path,
            call.query
        );
        call
    }

    /// The watcher's list of all Nodes (one page).
    pub(super) async fn list(&mut self, resource_version: &str, items: Vec<Value>) {
        let call = self.expect(Method::GET, "/api/v1/nodes").await;
        assert_eq!(call.query.get("limit").map(String::as_str), Some(PAGE));
        assert!(
            !call.query.contains_key("watch"),
            "a list, not a watch: {:?}",
            call.query
        );
        call.reply(
            StatusCode::OK,
            &json!({
                "apiVersion": "v1",
                "kind": "NodeList",
                "metadata": { "resourceVersion": resource_version },
                "items": items,
            }),
        );
    }

    /// The watcher's watch from `from` (the list's or the last event's
    /// version), answered with these events; the response then ends, as a
    /// watch does at its timeout, and the watcher watches again.
    pub(super) async fn watch(&mut self, from: &str, events: Vec<(&str, Value)>) {
        let call = self.watch_call(from).await;
        let mut lines = String::new();
        for (kind, object) in &events {
            lines.push_str(&json!({ "type": kind, "object": object }).to_string());
            lines.push('\n');
        }
        call.respond.send_response(
            Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(lines.into_bytes()))
                .unwrap(),
        );
    }

    pub(super) async fn watch_call(&mut self, from: &str) -> Call {
        let call = self.expect(Method::GET, "/api/v1/nodes").await;
        assert_eq!(call.query.get("watch").map(String::as_str), Some("true"));
        assert_eq!(
            call.query.get("resourceVersion").map(String::as_str),
            Some(from),
            "watch resumes from the last version seen: {:?}",
            call.query
        );
        call
    }

    /// A GET of one Node, answered with `node`.
    pub(super) async fn get_node(&mut self, name: &str, node: &Value) {
        self.expect(Method::GET, &format!("/api/v1/nodes/{name}"))
            .await
            .reply(StatusCode::OK, node);
    }
}

impl Call {
    pub(super) fn reply(self, status: StatusCode, body: &Value) {
        self.respond.send_response(
            Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string().into_bytes()))
                .unwrap(),
        );
    }
}

/// A Node as the API server returns it. `ip` is its InternalIP; `underlay`
/// is our annotation's value, when the node's ipamd has set it.
pub(super) fn node(
    name: &str,
    rv: u64,
    ip: &str,
    pod_cidr: Option<&str>,
    underlay: Option<&str>,
) -> Value {
    let mut annotations = json!({
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    });
    if let Some(value) = underlay {
        annotations[UNDERLAY_ANNOTATION] = json!(value);
    }
    let spec = match pod_cidr {
        Some(cidr) => json!({ "podCIDR": cidr, "podCIDRs": [cidr] }),
        None => json!({}),
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": format!("5f0c1a9e-7d3b-4c2a-9e11-{:012x}", name.len() * 7919 + rv as usize),
            "resourceVersion": rv.to_string(),
            "creationTimestamp": "2026-11-20T08:00:00Z",
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            },
            "annotations": annotations,
        },
        "spec": spec,
        "status": {
            "addresses": [
                { "type": "InternalIP", "address": ip },
                { "type": "Hostname", "address": name },
            ],
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": "2026-11-26T10:00:00Z",
                "lastTransitionTime": "2026-11-20T08:01:00Z",
            }],
        },
    })
}

/// A Node that has a pod CIDR and our annotation (= its InternalIP).
pub(super) fn ready(name: &str, rv: u64, ip: &str, pod_cidr: &str) -> Value {
    node(name, rv, ip, Some(pod_cidr), Some(ip))
}

pub(super) fn peer(name: &str, underlay: &str, cidr: &str) -> Peer {
    Peer::overlay(name, underlay.parse().unwrap(), cidr.parse().unwrap())
}

pub(super) fn set(peers: &[Peer]) -> PeerSet {
    peers.iter().map(|p| (p.name.clone(), p.clone())).collect()
}

pub(super) fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

#[tokio::test]
async fn own_annotation_is_merge_patched_once() {
    let (client, mut api) = mock_client();
    let bare = node("n1", 11, "192.168.0.1", Some("10.244.1.0/24"), None);
    let annotated = ready("n1", 12, "192.168.0.1", "10.244.1.0/24");
    let underlay = "192.168.0.1".parse().unwrap();

    let (done, ()) = step("first annotate", async {
        tokio::join!(annotate_own_node(&client, "n1", underlay), async {
            api.get_node("n1", &bare).await;
            let patch = api.expect(Method::PATCH, "/api/v1/nodes/n1").await;
            assert_eq!(
                patch.content_type.as_deref(),
                Some("application/merge-patch+json")
            );
            assert_eq!(
                patch.query.get("fieldManager").map(String::as_str),
                Some("vpc-cni")
            );
            let body: Value = serde_json::from_slice(&patch.body).unwrap();
            assert_eq!(
                body,
                json!({ "metadata": { "annotations": { UNDERLAY_ANNOTATION: "192.168.0.1" } } }),
                "the patch sets our annotation and nothing else"
            );
            patch.reply(StatusCode::OK, &annotated);
        })
    })
    .await;
    done.unwrap();

    // Already right: one GET, no PATCH. The next request must be the
    // sentinel GET of the call after it, not a PATCH.
    let (again_then_cidr, ()) = step("second annotate", async {
        tokio::join!(
            async {
                annotate_own_node(&client, "n1", underlay).await.unwrap();
                own_pod_cidr(&client, "n2").await
            },
            async {
                api.get_node("n1", &annotated).await;
                let sentinel = api.expect(Method::GET, "/api/v1/nodes/n2").await;
                sentinel.reply(
                    StatusCode::OK,
                    &ready("n2", 5, "192.168.0.2", "10.244.2.0/24"),
                );
            }
        )
    })
    .await;
    assert_eq!(
        again_then_cidr.unwrap(),
        Some("10.244.2.0/24".parse().unwrap())
    );

    // A new underlay address (the node was re-addressed) is written over
    // the old one.
    let moved = "192.168.7.1".parse().unwrap();
    let (rewritten, ()) = step("re-annotate", async {
        tokio::join!(annotate_own_node(&client, "n1", moved), async {
            api.get_node("n1", &annotated).await;
            let patch = api.expect(Method::PATCH, "/api/v1/nodes/n1").await;
            let body: Value = serde_json::from_slice(&patch.body).unwrap();
            assert_eq!(
                body,
                json!({ "metadata": { "annotations": { UNDERLAY_ANNOTATION: "192.168.7.1" } } })
            );
            patch.reply(
                StatusCode::OK,
                &node(
                    "n1",
                    13,
                    "192.168.7.1",
                    Some("10.244.1.0/24"),
                    Some("192.168.7.1"),
                ),
            );
        })
    })
    .await;
    rewritten.unwrap();
}

#[tokio::test]
async fn annotate_reports_a_missing_node() {
    let (client, mut api) = mock_client();
    let underlay = "192.168.0.1".parse().unwrap();
    let (result, ()) = step("annotate", async {
        tokio::join!(annotate_own_node(&client, "n9", underlay), async {
            api.expect(Method::GET, "/api/v1/nodes/n9").await.reply(
                StatusCode::NOT_FOUND,
                &status(404, "NotFound", "nodes \"n9\" not found"),
            );
        })
    })
    .await;
    match result {
        Err(IpamdError::Kubernetes { action, reason }) => {
            assert_eq!(action, "getting Node n9");
            assert!(reason.contains("not found"), "{reason}");
        }
        other => panic!("expected a Kubernetes error, got {other:?}"),
    }
}

#[tokio::test]
async fn own_pod_cidr_set_unset_dual_stack_and_garbage() {
    let (client, mut api) = mock_client();

    let set_node = ready("n1", 11, "192.168.0.1", "10.244.1.0/24");
    let (got, ()) = step("set", async {
        tokio::join!(own_pod_cidr(&client, "n1"), api.get_node("n1", &set_node))
    })
    .await;
    assert_eq!(got.unwrap(), Some("10.244.1.0/24".parse().unwrap()));

    let unset = node("n1", 12, "192.168.0.1", None, None);
    let (got, ()) = step("unset", async {
        tokio::join!(own_pod_cidr(&client, "n1"), api.get_node("n1", &unset))
    })
    .await;
    assert_eq!(got.unwrap(), None);

    // IPv6-first dual stack: podCIDR is the IPv6 one.
    let mut dual = node("n1", 13, "192.168.0.1", None, None);
    dual["spec"] = json!({
        "podCIDR": "fd00:10:244:1::/64",
        "podCIDRs": ["fd00:10:244:1::/64", "10.244.1.0/24"],
    });
    let (got, ()) = step("dual stack", async {
        tokio::join!(own_pod_cidr(&client, "n1"), api.get_node("n1", &dual))
    })
    .await;
    assert_eq!(got.unwrap(), Some("10.244.1.0/24".parse().unwrap()));

    let garbage = node("n1", 14, "192.168.0.1", Some("10.244.1.7/24"), None);
    let (got, ()) = step("garbage", async {
        tokio::join!(own_pod_cidr(&client, "n1"), api.get_node("n1", &garbage))
    })
    .await;
    match got {
        Err(IpamdError::Config { variable, reason }) => {
            assert_eq!(variable, "POD_CIDR");
            assert!(
                reason.contains("n1") && reason.contains("10.244.1.7/24"),
                "{reason}"
            );
        }
        other => panic!("expected a POD_CIDR error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_vpc_node_announces_its_ranges_and_rewrites_only_what_changed() {
    use super::{announce_vpc_node, OVERLAY_MTU_ANNOTATION, VPC_POD_RANGES_ANNOTATION};
    let (client, mut api) = mock_client();
    let bare = node("vpc-a", 21, "10.0.0.15", None, None);
    let underlay = "10.0.0.15".parse().unwrap();
    let ranges: Vec<vpc_cni_proto::net::Ipv4Cidr> = vec![
        "10.0.1.16/28".parse().unwrap(),
        "10.0.1.37/32".parse().unwrap(),
    ];
    let mut announced = node("vpc-a", 22, "10.0.0.15", None, Some("10.0.0.15"));
    announced["metadata"]["annotations"][VPC_POD_RANGES_ANNOTATION] =
        "10.0.1.16/28,10.0.1.37/32".into();
    announced["metadata"]["annotations"][OVERLAY_MTU_ANNOTATION] = "1350".into();

    let (done, ()) = step("first announce", async {
        tokio::join!(
            announce_vpc_node(&client, "vpc-a", underlay, &ranges, 1350),
            async {
                api.get_node("vpc-a", &bare).await;
                let patch = api.expect(Method::PATCH, "/api/v1/nodes/vpc-a").await;
                let body: Value = serde_json::from_slice(&patch.body).unwrap();
                assert_eq!(
                    body,
                    json!({ "metadata": { "annotations": {
                    UNDERLAY_ANNOTATION: "10.0.0.15",
                    VPC_POD_RANGES_ANNOTATION: "10.0.1.16/28,10.0.1.37/32",
                    OVERLAY_MTU_ANNOTATION: "1350",
                } } })
                );
                patch.reply(StatusCode::OK, &announced);
            }
        )
    })
    .await;
    done.unwrap();

    // The pool grew: only the ranges are written.
    let grown: Vec<vpc_cni_proto::net::Ipv4Cidr> = vec!["10.0.1.16/28".parse().unwrap()];
    let (rewritten, ()) = step("re-announce", async {
        tokio::join!(
            announce_vpc_node(&client, "vpc-a", underlay, &grown, 1350),
            async {
                api.get_node("vpc-a", &announced).await;
                let patch = api.expect(Method::PATCH, "/api/v1/nodes/vpc-a").await;
                let body: Value = serde_json::from_slice(&patch.body).unwrap();
                assert_eq!(
                    body,
                    json!({ "metadata": { "annotations": {
                    VPC_POD_RANGES_ANNOTATION: "10.0.1.16/28",
                } } })
                );
                patch.reply(StatusCode::OK, &announced);
            }
        )
    })
    .await;
    rewritten.unwrap();
}
