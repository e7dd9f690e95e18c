//! The fake API server: its state and merge patches, and over raw HTTP/1.1
//! from inside its namespace what kube's requests get back (that test needs
//! root: it creates a network namespace).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

use super::{merge_patch, node_object, Call, FakeKube, KubeApi, TOKEN};
use crate::fabric::in_namespace;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::{require_root, unique_name};

/// Only guards against a hung test; nothing measures speed.
const STUCK: Duration = Duration::from_secs(30);

fn connect(ns: &Netns, addr: SocketAddrV4) -> BufReader<TcpStream> {
    let stream = in_namespace(ns, move || TcpStream::connect(addr)).unwrap();
    stream.set_read_timeout(Some(STUCK)).unwrap();
    BufReader::new(stream)
}

/// Sends one request; returns the status and the headers (lower-cased).
fn send(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>) {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: fake\r\n");
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    conn.get_mut().write_all(head.as_bytes()).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let code = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            return (code, headers);
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

/// One whole-body request with the token; the status and the JSON body.
fn call(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    target: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let extra = [
        ("Authorization", auth.as_str()),
        ("Content-Type", content_type),
    ];
    let (code, headers) = send(conn, method, target, &extra, body);
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("whole bodies carry a length");
    let mut bytes = vec![0; length];
    conn.read_exact(&mut bytes).unwrap();
    (code, serde_json::from_slice(&bytes).unwrap())
}

/// The next chunk of a chunked body; `None` at its end.
fn chunk(conn: &mut BufReader<TcpStream>) -> Option<String> {
    let mut size = String::new();
    conn.read_line(&mut size).unwrap();
    let size = usize::from_str_radix(size.trim(), 16).unwrap();
    let mut data = vec![0; size + 2];
    conn.read_exact(&mut data).unwrap();
    (size > 0).then(|| String::from_utf8(data[..size].to_vec()).unwrap())
}

#[test]
fn serves_list_get_patch_and_a_live_watch() {
    require_root();
    let ns = Netns::try_new(&unique_name("fkube")).unwrap();
    let server = FakeKube::start(&ns, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let api = server.api().clone();
    api.create_node(node_object(
        "n1",
        Ipv4Addr::new(192, 168, 0, 1),
        Some("10.244.1.0/24"),
    ))
    .unwrap();
    let mut conn = connect(&ns, server.addr());

    let (code, _) = send(&mut conn, "GET", "/api/v1/nodes/n1", &[], "");
    assert_eq!(code, 401, "no token, no answer");
    let mut conn = connect(&ns, server.addr());

    let (code, list) = call(&mut conn, "GET", "/api/v1/nodes?limit=500", "", "");
    assert_eq!(code, 200);
    assert_eq!(list["kind"], json!("NodeList"));
    assert_eq!(list["items"][0]["metadata"]["name"], json!("n1"));
    let listed: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(listed, api.version());

    let (code, missing) = call(&mut conn, "GET", "/api/v1/nodes/n9", "", "");
    assert_eq!(
        (code, &missing["kind"], &missing["reason"]),
        (404, &json!("Status"), &json!("NotFound"))
    );

    // A watch from the list's version, then a patch made over HTTP and a
    // delete made by the test must both arrive on it, in order.
    let mut watch = connect(&ns, server.addr());
    let auth = format!("Bearer {TOKEN}");
    let target = format!(
        "/api/v1/nodes?watch=true&timeoutSeconds=30&allowWatchBookmarks=true&resourceVersion={listed}"
    );
    let (code, _) = send(&mut watch, "GET", &target, &[("Authorization", &auth)], "");
    assert_eq!(code, 200);
    vpc_cni_testkit::process::wait_for(STUCK, || (api.open_watches() == 1).then_some(()))
        .expect("the watch never opened");

    let patch = r#"{"metadata":{"annotations":{"vpc-cni.io/underlay-ip":"192.168.0.1"}}}"#;
    let (code, _) = call(
        &mut conn,
        "PATCH",
        "/api/v1/nodes/n1",
        "application/json-patch+json",
        patch,
    );
    assert_eq!(code, 415, "only merge patches are served");
    let (code, patched) = call(
        &mut conn,
        "PATCH",
        "/api/v1/nodes/n1?fieldManager=vpc-cni",
        "application/merge-patch+json",
        patch,
    );
    assert_eq!(code, 200);
    assert_eq!(
        api.annotation("n1", "vpc-cni.io/underlay-ip").as_deref(),
        Some("192.168.0.1")
    );
    assert_eq!(
        patched["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"],
        json!("0"),
        "the merge keeps the other annotations"
    );
    let stale = r#"{"metadata":{"resourceVersion":"1","labels":{"x":"y"}}}"#;
    let (code, conflict) = call(
        &mut conn,
        "PATCH",
        "/api/v1/nodes/n1",
        "application/merge-patch+json",
        stale,
    );
    assert_eq!((code, &conflict["reason"]), (409, &json!("Conflict")));
    api.delete_node("n1").unwrap();

    let mut lines = String::new();
    while lines.matches('\n').count() < 2 {
        lines.push_str(&chunk(&mut watch).expect("the watch ended early"));
    }
    let events: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], json!("MODIFIED"));
    assert_eq!(
        events[0]["object"]["metadata"]["resourceVersion"],
        json!((listed + 1).to_string())
    );
    assert_eq!(events[1]["type"], json!("DELETED"));
    assert_eq!(api.requests(&Call::Patch("n1".into())), 3);
    assert_eq!(api.requests(&Call::Watch), 1);

    // Shutdown ends the open watch: the body terminates instead of hanging.
    drop(server);
    assert_eq!(chunk(&mut watch), None);
}

#[test]
fn merge_patch_follows_rfc_7386() {
    // The example of RFC 7386 section 3.
    let mut target = json!({
        "title": "Goodbye!",
        "author": { "givenName": "John", "familyName": "Doe" },
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    });
    let patch = json!({
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": { "familyName": null },
        "tags": ["example"],
    });
    merge_patch(&mut target, &patch);
    assert_eq!(
        target,
        json!({
            "title": "Hello!",
            "author": { "givenName": "John" },
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890",
        })
    );
    let mut scalar = json!("a");
    merge_patch(&mut scalar, &json!({ "b": { "c": null, "d": 1 } }));
    assert_eq!(scalar, json!({ "b": { "d": 1 } }));
}

#[test]
fn changes_bump_the_version_and_reach_watchers_in_order() {
    let api = KubeApi::new();
    let start = api.version();
    let node = json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": "n1" } });
    api.create_node(node.clone()).unwrap();
    assert!(api.create_node(node).is_err(), "a second create must fail");
    let (backlog, mut live) = api.subscribe(start);
    assert_eq!(backlog.len(), 1);
    api.annotate("n1", "vpc-cni.io/underlay-ip", "172.20.0.11")
        .unwrap();
    // Unchanged: no new version, no event.
    api.annotate("n1", "vpc-cni.io/underlay-ip", "172.20.0.11")
        .unwrap();
    api.delete_node("n1").unwrap();
    let modified = live.try_recv().unwrap();
    let deleted = live.try_recv().unwrap();
    assert!(live.try_recv().is_err());
    assert_eq!(
        (
            modified.kind,
            modified.version,
            deleted.kind,
            deleted.version
        ),
        ("MODIFIED", start + 2, "DELETED", start + 3)
    );
    assert_eq!(
        modified.object["metadata"]["annotations"]["vpc-cni.io/underlay-ip"],
        json!("172.20.0.11")
    );
    assert_eq!(
        deleted.object["metadata"]["resourceVersion"],
        json!((start + 3).to_string())
    );
    assert!(api.node("n1").is_none());
    assert_eq!(api.subscribe(start + 1).0.len(), 2);
}

fn node_event(reason: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "generateName": "n1." },
        "involvedObject": { "kind": "Node", "name": "n1", "apiVersion": "v1" },
        "reason": reason,
        "message": "m",
        "type": "Warning",
    })
}

#[test]
fn events_are_created_as_the_api_server_creates_them() {
    let api = KubeApi::new();
    let a = api.create_event("default", node_event("A")).unwrap();
    let b = api.create_event("default", node_event("B")).unwrap();
    let (na, nb) = (
        a["metadata"]["name"].as_str().unwrap(),
        b["metadata"]["name"].as_str().unwrap(),
    );
    assert!(
        na.starts_with("n1.") && nb.starts_with("n1.") && na != nb,
        "{na} {nb}"
    );
    assert_eq!(a["metadata"]["namespace"], "default");
    assert!(a["metadata"]["uid"].is_string() && a["metadata"]["resourceVersion"].is_string());
    // A Node's events live in `default`; the body's namespace must be the request's.
    assert!(matches!(
        api.create_event("kube-system", node_event("C")),
        Err(super::api::Refused::Invalid(_))
    ));
    let mut other = node_event("D");
    other["metadata"]["namespace"] = json!("kube-system");
    assert!(matches!(
        api.create_event("default", other),
        Err(super::api::Refused::Mismatch(_))
    ));
    let mut named = node_event("E");
    named["metadata"] = json!({ "name": "n1.fixed" });
    api.create_event("default", named.clone()).unwrap();
    assert!(matches!(
        api.create_event("default", named),
        Err(super::api::Refused::Exists(_))
    ));
    let mut nameless = node_event("F");
    nameless["metadata"] = json!({});
    assert!(matches!(
        api.create_event("default", nameless),
        Err(super::api::Refused::Invalid(_))
    ));
    let listed = api.events(Some("default"));
    let mut got: Vec<String> = listed
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["A", "B", "E"]);
    assert_eq!(api.events(None).len(), 3);
    assert!(api.events(Some("kube-system")).is_empty());
}
