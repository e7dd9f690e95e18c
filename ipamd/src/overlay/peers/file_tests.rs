//! Tests of the peers file source: parsing and validation (pure), then the
//! watcher against real files in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// Generous bound so a slow machine cannot fail a test that is correct;
/// nothing asserts how long a poll took.
const BOUND: Duration = Duration::from_secs(20);

fn entry(name: &str, underlay: &str, cidr: &str) -> String {
    format!(r#"{{"name":"{name}","underlayIP":"{underlay}","podCIDR":"{cidr}"}}"#)
}

fn doc(entries: &[String]) -> String {
    format!(r#"{{"peers":[{}]}}"#, entries.join(","))
}

/// Nodes n1..=n{count}: n{i} has underlay 192.168.0.{i} and pod CIDR 10.244.{i}.0/24.
fn nodes(count: u8) -> Vec<String> {
    (1..=count)
        .map(|i| {
            entry(
                &format!("n{i}"),
                &format!("192.168.0.{i}"),
                &format!("10.244.{i}.0/24"),
            )
        })
        .collect()
}

fn names(set: &PeerSet) -> Vec<&str> {
    set.keys().map(String::as_str).collect()
}

fn parse(contents: &str) -> Result<PeerSet, IpamdError> {
    parse_peers_file(
        Path::new("/etc/peers.json"),
        contents.as_bytes(),
        "n1",
        None,
        &[],
    )
}

fn parse_err(contents: &str) -> String {
    parse(contents)
        .expect_err("file must be rejected")
        .to_string()
}

#[test]
fn parses_peers_and_skips_own_entry_by_name() {
    let set = parse(&doc(&nodes(3))).unwrap();
    assert_eq!(names(&set), ["n2", "n3"]);
    let n3 = &set["n3"];
    assert_eq!(n3.name, "n3");
    assert_eq!(n3.underlay, Ipv4Addr::new(192, 168, 0, 3));
    assert_eq!(n3.pod_cidrs_text(), "10.244.3.0/24");
    assert_eq!(n3.kind, PeerKind::Overlay);
}

#[test]
fn skips_own_entry_by_underlay_address() {
    let contents = doc(&nodes(3));
    let own = Some(Ipv4Addr::new(192, 168, 0, 2));
    let set = parse_peers_file(Path::new("p.json"), contents.as_bytes(), "me", own, &[]).unwrap();
    assert_eq!(names(&set), ["n1", "n3"]);
}

#[test]
fn empty_peer_list_is_an_empty_set_but_an_empty_file_is_invalid() {
    assert!(parse(r#"{"peers":[]}"#).unwrap().is_empty());
    let msg = parse_err("");
    assert!(msg.contains("/etc/peers.json"), "{msg}");
}

#[test]
fn unknown_fields_are_tolerated() {
    let contents = r#"{"peers":[{"name":"n2","underlayIP":"192.168.0.2",
        "podCIDR":"10.244.2.0/24","zone":"rack-3"}],"version":2}"#;
    assert_eq!(names(&parse(contents).unwrap()), ["n2"]);
}

#[test]
fn invalid_entries_reject_the_whole_file_naming_path_and_entry() {
    let mut base = nodes(3);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![entry("bad", "192.168.0.300", "10.244.9.0/24")], "bad"),
        (vec![entry("bad", "192.168.0.9", "10.244.9.1/24")], "bad"),
        (vec![entry("bad", "192.168.0.9", "10.244.9.0/33")], "bad"),
        (vec![entry("bad", "192.168.0.9", "10.244.9.0")], "bad"),
        (vec![entry("bad", "0.0.0.0", "10.244.9.0/24")], "bad"),
        (vec![entry("bad", "224.0.0.1", "10.244.9.0/24")], "bad"),
        (vec![entry("bad", "192.168.0.9", "0.0.0.0/0")], "bad"),
        (
            vec![entry("", "192.168.0.9", "10.244.9.0/24")],
            "empty name",
        ),
        (
            vec![r#"{"name":"bad","underlayIP":"192.168.0.9"}"#.to_string()],
            "bad",
        ),
        // Duplicate name.
        (vec![entry("n2", "192.168.0.9", "10.244.9.0/24")], "n2"),
        // Duplicate pod CIDR.
        (vec![entry("bad", "192.168.0.9", "10.244.2.0/24")], "bad"),
        // Overlapping pod CIDRs, either way round.
        (vec![entry("bad", "192.168.0.9", "10.244.0.0/16")], "bad"),
        (vec![entry("bad", "192.168.0.9", "10.244.3.128/25")], "bad"),
        // Duplicate underlay address.
        (vec![entry("bad", "192.168.0.2", "10.244.9.0/24")], "bad"),
        // Conflicts with the node's own entry count too.
        (vec![entry("bad", "192.168.0.9", "10.244.1.0/24")], "bad"),
        // Larger than any node's pod CIDR may be.
        (vec![entry("bad", "192.168.0.9", "0.0.0.0/1")], "bad"),
        (vec![entry("bad", "192.168.0.9", "10.0.0.0/15")], "bad"),
        // Holds an underlay address: another node's, or its own.
        (vec![entry("bad", "172.16.0.9", "192.168.0.0/24")], "bad"),
        (vec![entry("bad", "10.244.9.1", "10.244.9.0/24")], "bad"),
    ];
    for (extra, culprit) in cases {
        base.truncate(3);
        base.extend(extra);
        let contents = doc(&base);
        let msg = parse_err(&contents);
        assert!(msg.contains("/etc/peers.json"), "{contents}: {msg}");
        assert!(msg.contains(culprit), "{contents}: {msg}");
    }
    for garbage in ["not json", r#"{"peers":{}}"#, r#"{"nodes":[]}"#, "[]"] {
        let msg = parse_err(garbage);
        assert!(msg.contains("/etc/peers.json"), "{garbage}: {msg}");
    }
}

#[test]
fn a_peer_covering_this_node_s_underlay_address_or_pod_cidr_is_refused_naming_it() {
    let own_underlay = Some(Ipv4Addr::new(192, 168, 7, 1));
    let own_cidr = ["10.244.7.0/24".parse().unwrap()];
    let parse_own = |extra: String| {
        let mut entries = nodes(3);
        entries.push(extra);
        parse_peers_file(
            Path::new("/etc/peers.json"),
            doc(&entries).as_bytes(),
            "me",
            own_underlay,
            &own_cidr,
        )
    };
    for (bad, what) in [
        (entry("bad", "192.168.0.9", "192.168.7.0/24"), "192.168.7.1"),
        (
            entry("bad", "192.168.0.9", "10.244.7.128/25"),
            "10.244.7.0/24",
        ),
    ] {
        let msg = parse_own(bad).expect_err("must be refused").to_string();
        assert!(msg.contains("/etc/peers.json"), "{msg}");
        assert!(msg.contains("\"bad\""), "{msg}");
        assert!(msg.contains(what), "{msg}");
    }
    // The node's own entry is not a peer, so its own pod CIDR is no overlap.
    let own_entry = entry("me", "192.168.7.1", "10.244.7.0/24");
    assert_eq!(names(&parse_own(own_entry).unwrap()), ["n1", "n2", "n3"]);
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.json");
        Self { _dir: dir, path }
    }

    fn source(&self) -> FilePeers {
        FilePeers::new(&self.path, "n1").with_poll_interval(Duration::from_millis(5))
    }

    /// Replaces the file the way a careful writer does (temp file + rename).
    fn replace(&self, contents: &str) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    /// Rewrites the file in place (truncate + write), as many editors do.
    fn overwrite(&self, contents: &str) {
        std::fs::write(&self.path, contents).unwrap();
    }
}

async fn next(source: &mut FilePeers) -> Result<PeerSet, IpamdError> {
    tokio::time::timeout(BOUND, PeerSource::next(source))
        .await
        .expect("the peer source never reported")
}

#[tokio::test]
async fn a_file_missing_from_the_start_is_no_peers_yet_and_its_creation_is_seen() {
    let fx = Fixture::new();
    let mut source = fx.source();
    assert!(next(&mut source).await.unwrap().is_empty());
    assert!(source.poll_once().await.is_none(), "reported once");

    fx.replace(&doc(&nodes(2)));
    assert_eq!(names(&next(&mut source).await.unwrap()), ["n2"]);
}

#[tokio::test]
async fn a_file_that_disappears_keeps_the_last_good_set() {
    let fx = Fixture::new();
    fx.replace(&doc(&nodes(3)));
    let mut source = fx.source();
    assert_eq!(names(&next(&mut source).await.unwrap()), ["n2", "n3"]);

    std::fs::remove_file(&fx.path).unwrap();
    assert!(
        source.poll_once().await.is_none(),
        "a vanished file is not an empty peer set"
    );
    assert!(source.poll_once().await.is_none());

    // Back with the same peers: nothing changed. Back with others: that is the change.
    fx.replace(&doc(&nodes(3)));
    assert!(source.poll_once().await.is_none());
    std::fs::remove_file(&fx.path).unwrap();
    assert!(source.poll_once().await.is_none());
    fx.replace(&doc(&nodes(4)));
    assert_eq!(names(&next(&mut source).await.unwrap()), ["n2", "n3", "n4"]);
}

#[tokio::test]
async fn edits_are_seen_and_unchanged_rewrites_are_not() {
    let fx = Fixture::new();
    fx.overwrite(&doc(&nodes(3)));
    let mut source = fx.source();
    assert_eq!(names(&next(&mut source).await.unwrap()), ["n2", "n3"]);

    // A fourth node joins.
    fx.overwrite(&doc(&nodes(4)));
    assert_eq!(names(&next(&mut source).await.unwrap()), ["n2", "n3", "n4"]);

    // Same bytes rewritten, then the same set reformatted: nothing to report.
    fx.overwrite(&doc(&nodes(4)));
    assert!(source.poll_once().await.is_none());
    fx.replace(&format!(
        "{{\n  \"peers\": [\n{}\n]}}",
        nodes(4).join(",\n")
    ));
    assert!(source.poll_once().await.is_none());

    // A removal; because nothing was reported for the rewrites above, the
    // next report must be exactly this one.
    let mut three = nodes(4);
    three.remove(2);
    fx.overwrite(&doc(&three));
    assert_eq!(names(&next(&mut source).await.unwrap()), ["n2", "n4"]);

    // A same-size edit inside one timestamp tick: pin the mtime to what it
    // was, so only the contents tell the two versions apart.
    let before = doc(&three);
    let after = before.replace("192.168.0.4", "192.168.0.5");
    assert_eq!(before.len(), after.len());
    let mtime = std::fs::metadata(&fx.path).unwrap().modified().unwrap();
    fx.overwrite(&after);
    std::fs::File::options()
        .write(true)
        .open(&fx.path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let set = next(&mut source).await.unwrap();
    assert_eq!(set["n4"].underlay, Ipv4Addr::new(192, 168, 0, 5));
}

#[tokio::test]
async fn invalid_file_keeps_previous_set_and_reports_once() {
    let fx = Fixture::new();
    fx.overwrite(&doc(&nodes(3)));
    let mut source = fx.source();
    let good = next(&mut source).await.unwrap();

    let mut bad = nodes(3);
    bad.push(entry("n9", "192.168.0.9", "10.244.2.0/24"));
    fx.overwrite(&doc(&bad));
    let msg = next(&mut source).await.unwrap_err().to_string();
    assert!(msg.contains(&fx.path.display().to_string()), "{msg}");
    assert!(msg.contains("n9"), "{msg}");

    // The same bad file is not reported again, and fixing it back to the
    // previous set is not a change either: the good set was never dropped.
    assert!(source.poll_once().await.is_none());
    fx.overwrite(&doc(&nodes(3)));
    assert!(source.poll_once().await.is_none());

    // Half-written (truncated) JSON is just another invalid file.
    let full = doc(&nodes(4));
    fx.overwrite(&full[..full.len() / 2]);
    assert!(next(&mut source).await.is_err());
    fx.overwrite(&full);
    let now = next(&mut source).await.unwrap();
    assert_eq!(names(&now), ["n2", "n3", "n4"]);
    assert!(diff(&good, &now).added.iter().any(|p| p.name == "n4"));
}

#[tokio::test]
async fn invalid_at_start_reports_and_waits_for_a_valid_file() {
    let fx = Fixture::new();
    fx.overwrite("{");
    let mut source = fx.source();
    let msg = next(&mut source).await.unwrap_err().to_string();
    assert!(msg.contains(&fx.path.display().to_string()), "{msg}");
    assert!(source.poll_once().await.is_none());

    fx.replace(&doc(&nodes(2)));
    assert_eq!(names(&next(&mut source).await.unwrap()), ["n2"]);
}

#[tokio::test]
async fn unreadable_path_is_an_io_error_naming_it() {
    let fx = Fixture::new();
    // A directory where the file should be: reading it fails, not NotFound.
    std::fs::create_dir(&fx.path).unwrap();
    let mut source = fx.source();
    let err = next(&mut source).await.unwrap_err();
    assert!(matches!(err, IpamdError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&fx.path.display().to_string()),
        "{err}"
    );
    assert!(source.poll_once().await.is_none(), "reported once");

    std::fs::remove_dir(&fx.path).unwrap();
    assert!(next(&mut source).await.unwrap().is_empty());
}

#[test]
fn a_vpc_mode_node_lists_its_pod_ranges_instead_of_a_pod_cidr() {
    let vpc = r#"{"name":"vpc-a","underlayIP":"10.0.0.15","vpcPodRanges":["10.0.1.37/32","10.0.1.16/28"]}"#;
    let empty = r#"{"name":"vpc-b","underlayIP":"10.0.0.16","vpcPodRanges":[]}"#;
    let mut entries = nodes(2);
    entries.push(vpc.to_string());
    entries.push(empty.to_string());
    let set = parse(&doc(&entries)).unwrap();
    assert_eq!(names(&set), ["n2", "vpc-a", "vpc-b"]);
    let a = &set["vpc-a"];
    assert_eq!(a.kind, PeerKind::Vpc);
    assert_eq!(a.pod_cidrs_text(), "10.0.1.16/28,10.0.1.37/32", "sorted");
    assert_eq!(a.gateway(), Ipv4Addr::new(10, 0, 0, 15));
    assert!(
        set["vpc-b"].pod_cidrs.is_empty(),
        "an empty pool is no error"
    );

    for (bad, culprit) in [
        (
            r#"{"name":"x","underlayIP":"10.0.0.9","podCIDR":"10.244.9.0/24","vpcPodRanges":[]}"#,
            "both podCIDR",
        ),
        (r#"{"name":"x","underlayIP":"10.0.0.9"}"#, "neither podCIDR"),
        (
            r#"{"name":"x","underlayIP":"10.0.0.9","vpcPodRanges":["10.0.1.300/32"]}"#,
            "vpcPodRanges",
        ),
        // Another node's pod CIDR.
        (
            r#"{"name":"x","underlayIP":"10.0.0.9","vpcPodRanges":["10.244.2.7/32"]}"#,
            "10.244.2.0/24",
        ),
    ] {
        let mut entries = nodes(2);
        entries.push(bad.to_string());
        let msg = parse_err(&doc(&entries));
        assert!(msg.contains(culprit), "{bad}: {msg}");
    }
}

#[test]
fn an_entry_may_carry_the_mtu_of_the_path_to_it() {
    let vpc =
        r#"{"name":"vpc-a","underlayIP":"10.0.0.15","vpcPodRanges":["10.0.1.16/28"],"mtu":1350}"#;
    let mut entries = nodes(2);
    entries.push(vpc.to_string());
    let set = parse(&doc(&entries)).unwrap();
    assert_eq!(set["vpc-a"].mtu, Some(1350));
    assert_eq!(set["n2"].mtu, None, "none given");
    for (bad, culprit) in [
        (r#""mtu":100"#, "MTU 100"),
        (r#""mtu":9216"#, "MTU 9216"),
        (r#""mtu":"1350""#, "entry 2"),
    ] {
        let mut entries = nodes(2);
        entries.push(format!(
            r#"{{"name":"vpc-a","underlayIP":"10.0.0.15","vpcPodRanges":[],{bad}}}"#
        ));
        let err = parse_err(&doc(&entries));
        assert!(
            err.contains(culprit) && err.contains("vpc-a"),
            "{bad}: {err}"
        );
    }
}
