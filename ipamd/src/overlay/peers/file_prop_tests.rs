//! Properties of the peers file parser on any contents: it never panics; it answers a peer
//! set that passes validation and leaves this node out, or a `PEERS_FILE` error naming the
//! file; and every valid file reads back as the peers it lists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::prop::json_edit;
use vpc_cni_testkit::prop::{config, gen};

use super::{parse_peers_file, validate, Peer, PeerSet};
use crate::error::IpamdError;

const PATH: &str = "/etc/vpc-cni/peers.json";
const OWN_NAME: &str = "n0";
const OWN_UNDERLAY: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);

/// The parser as the daemon calls it, for this node (`n0`, 192.168.0.1).
fn parse(contents: &[u8]) -> Result<PeerSet, IpamdError> {
    parse_peers_file(Path::new(PATH), contents, OWN_NAME, Some(OWN_UNDERLAY), &[])
}

/// Up to 12 peers with distinct names, underlay addresses and /24 pod CIDRs, this node's
/// own entry among them or not.
fn peers() -> impl Strategy<Value = Vec<Peer>> {
    let peer = (1u8..=250, "[a-z][a-z0-9.-]{0,20}");
    (prop::collection::vec(peer, 0..12), any::<bool>()).prop_map(|(list, with_own)| {
        let mut seen = BTreeSet::new();
        let mut peers: Vec<Peer> = list
            .into_iter()
            .filter(|(n, name)| seen.insert(*n) && name != OWN_NAME)
            .map(|(n, name)| {
                Peer::overlay(
                    format!("{name}-{n}"),
                    Ipv4Addr::new(192, 168, 1, n),
                    Ipv4Cidr {
                        network: Ipv4Addr::new(10, 244, n, 0),
                        prefix_len: 24,
                    },
                )
            })
            .collect();
        if with_own {
            peers.push(Peer::overlay(
                OWN_NAME,
                OWN_UNDERLAY,
                "10.244.0.0/24".parse().unwrap(),
            ));
        }
        peers
    })
}

fn document(peers: &[Peer]) -> Value {
    let entries: Vec<Value> = peers
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "underlayIP": p.underlay.to_string(),
                "podCIDR": p.pod_cidrs_text(),
            })
        })
        .collect();
    json!({ "peers": entries })
}

/// What every answer must be: a valid set without this node, or a `PEERS_FILE` error
/// naming the file.
fn check_answer(result: &Result<PeerSet, IpamdError>) -> Result<(), TestCaseError> {
    match result {
        Ok(set) => {
            let peers: Vec<Peer> = set.values().cloned().collect();
            prop_assert_eq!(validate(&peers), Ok(()));
            prop_assert!(!set.contains_key(OWN_NAME));
            prop_assert!(set.values().all(|p| p.underlay != OWN_UNDERLAY));
            prop_assert!(set.iter().all(|(name, p)| *name == p.name));
        }
        Err(err @ IpamdError::Config { variable, .. }) => {
            prop_assert_eq!(*variable, "PEERS_FILE");
            let msg = err.to_string();
            prop_assert!(msg.contains("PEERS_FILE") && msg.contains(PATH), "{}", msg);
        }
        Err(other) => prop_assert!(false, "untyped answer {:?}", other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes, and valid files with bytes flipped, inserted, removed, cut off or
    /// repeated (an editor's half-written save).
    #[test]
    fn prop_peers_file_any_bytes_answer_a_valid_set_or_name_the_file(
        bytes in gen::bytes_around(peers().prop_map(|p| document(&p).to_string().into_bytes()).boxed()),
    ) {
        check_answer(&parse(&bytes))?;
    }

    /// Valid files with any node (an entry, a field, an address) removed or replaced by
    /// any value, huge numbers and deep nesting included.
    #[test]
    fn prop_peers_file_edited_entries_answer_a_valid_set_or_name_the_file(
        peers in peers(),
        edits in json_edit::edits(3),
    ) {
        let bytes = json_edit::apply(document(&peers), &edits);
        let result = parse(&bytes);
        check_answer(&result)?;
    }

    /// Every valid file reads back as its peers less this node, whatever unknown fields
    /// a newer writer added to the entries.
    #[test]
    fn prop_peers_file_valid_files_read_back(
        peers in peers(),
        extra in prop::option::of((gen::string(), gen::value())),
    ) {
        let mut doc = document(&peers);
        if let Some((key, value)) = extra {
            for entry in doc["peers"].as_array_mut().unwrap() {
                if !["name", "underlayIP", "podCIDR"].contains(&key.as_str()) {
                    entry[key.as_str()] = value.clone();
                }
            }
        }
        let set = parse(doc.to_string().as_bytes()).unwrap();
        let expected: PeerSet = peers
            .into_iter()
            .filter(|p| p.name != OWN_NAME)
            .map(|p| (p.name.clone(), p))
            .collect();
        prop_assert_eq!(set, expected);
    }
}
