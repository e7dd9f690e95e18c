//! Tests of VPC-mode node wiring: the pure plan and ruleset here without root, the apply
//! layer against the real kernel in throwaway namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod core;
mod golden;
mod kernel;
mod pod_rules;
mod traffic;

use vpc_cni_proto::net::MacAddr;
use vpc_cni_testkit::netns::Netns;

/// A veth whose end `name` (with `mac`) is in `ns`, its peer `peer` in `peer_ns` (or left
/// down in `ns` when `peer_ns` is `None`): an ENI stand-in.
fn add_eni_link(ns: &Netns, name: &str, mac: MacAddr, peer: &str, peer_ns: Option<&Netns>) {
    let mac = mac.to_string();
    let mut args = vec![
        "link", "add", name, "address", &mac, "type", "veth", "peer", "name", peer,
    ];
    if let Some(other) = peer_ns {
        args.extend_from_slice(&["netns", other.name()]);
    }
    ns.ip(&args);
}
