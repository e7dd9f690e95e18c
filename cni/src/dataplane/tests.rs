//! Kernel tests: every link, address, route and rule lives in namespaces made by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use super::*;
use crate::CniError;
use vpc_cni_testkit::netns::Netns;

fn wiring(pod: &Netns, ip: Ipv4Addr, route_table: u32) -> PodWiring {
    PodWiring {
        netns_path: pod.path(),
        ifname: "eth0".into(),
        host_veth: host_veth_name(Some("test"), Some(pod.name()), "unused"),
        ip,
        route_table,
        mtu: 1500,
    }
}

fn wire_in(node: &Netns, w: &PodWiring) -> Result<WiredPod, CniError> {
    let w = w.clone();
    node.run(move || async move { wire_pod(&w).await })
}

fn check_in(node: &Netns, w: &PodWiring) -> Result<(), CniError> {
    let w = w.clone();
    node.run(move || async move { check_pod(&w).await })
}

fn unwire_in(node: &Netns, ip: Ipv4Addr, veth: Option<&str>) -> Result<(), CniError> {
    let veth = veth.map(str::to_owned);
    node.run(move || async move { unwire_host(ip, veth.as_deref()).await })
}

/// Lines of `ip rule show` in the node that mention `ip` as a whole word.
fn rules_for(node: &Netns, ip: Ipv4Addr) -> Vec<String> {
    let needle = format!(" {ip} ");
    node.ip(&["rule", "show"])
        .lines()
        .map(|l| format!("{} ", l.trim_end()))
        .filter(|l| l.contains(&needle))
        .map(|l| l.trim_end().to_owned())
        .collect()
}

fn link_names(ns: &Netns) -> Vec<String> {
    ns.ip(&["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// A node namespace with forwarding on and `addr` on lo, like a node's own address.
fn node_with(addr: &str) -> Netns {
    let node = Netns::unique("dpt");
    node.enable_forwarding();
    node.ip(&["addr", "add", addr, "dev", "lo"]);
    node
}

#[test]
fn two_pods_reach_each_other_and_the_node() {
    let node = node_with("10.99.1.1/32");
    let (pod_a, pod_b) = (Netns::unique("dpt"), Netns::unique("dpt"));
    let wa = wiring(&pod_a, Ipv4Addr::new(10, 99, 1, 2), 0);
    let wb = wiring(&pod_b, Ipv4Addr::new(10, 99, 1, 3), 0);
    let macs_a = wire_in(&node, &wa).unwrap();
    wire_in(&node, &wb).unwrap();

    assert!(pod_a.ping(Ipv4Addr::new(10, 99, 1, 3)), "pod a -> pod b");
    assert!(pod_b.ping(Ipv4Addr::new(10, 99, 1, 2)), "pod b -> pod a");
    assert!(pod_a.ping(Ipv4Addr::new(10, 99, 1, 1)), "pod a -> node");
    assert!(pod_b.ping(Ipv4Addr::new(10, 99, 1, 1)), "pod b -> node");

    // The pod side is what the design says, seen by iproute2.
    let routes = pod_a.ip(&["route", "show"]);
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0"),
        "{routes}"
    );
    assert!(routes.contains("169.254.1.1 dev eth0"), "{routes}");
    let neigh = pod_a.neighbour("169.254.1.1", "eth0").unwrap_or_default();
    let host_mac = macs_a.host_mac.to_string();
    assert!(
        neigh.contains(&host_mac) && neigh.contains("PERMANENT"),
        "{neigh}"
    );
    let link = node.ip(&["link", "show", &wa.host_veth]);
    assert!(link.contains("mtu 1500") && link.contains(",UP"), "{link}");
    // The host end does not speak ARP; it knows the pod by a permanent entry instead.
    assert!(link.contains("NOARP"), "{link}");
    let host_neigh = node
        .neighbour("10.99.1.2", &wa.host_veth)
        .unwrap_or_default();
    let pod_mac = macs_a.pod_mac.to_string();
    assert!(
        host_neigh.contains(&pod_mac) && host_neigh.contains("PERMANENT"),
        "{host_neigh}"
    );
    let addr = pod_a.ip(&["addr", "show", "eth0"]);
    assert!(addr.contains("inet 10.99.1.2/32"), "{addr}");

    check_in(&node, &wa).unwrap();
    check_in(&node, &wb).unwrap();
}

#[test]
fn rewiring_the_same_pod_works_without_duplicate_rules() {
    let node = node_with("10.99.2.1/32");
    let pod = Netns::unique("dpt");
    let w = wiring(&pod, Ipv4Addr::new(10, 99, 2, 2), 7);
    let first = wire_in(&node, &w).unwrap();
    let second = wire_in(&node, &w).unwrap();
    assert_eq!(first, second);

    let rules = rules_for(&node, w.ip);
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules.iter().any(|r| r.starts_with("512:")), "{rules:?}");
    assert!(rules.iter().any(|r| r.starts_with("1536:")), "{rules:?}");
    assert_eq!(
        link_names(&node)
            .iter()
            .filter(|n| **n == w.host_veth)
            .count(),
        1
    );
    assert!(
        pod.ping(Ipv4Addr::new(10, 99, 2, 1)),
        "pod -> node after re-ADD"
    );
    check_in(&node, &w).unwrap();
}

#[test]
fn route_table_selects_the_from_rule() {
    let node = node_with("10.99.3.1/32");
    let pod = Netns::unique("dpt");
    let mut w = wiring(&pod, Ipv4Addr::new(10, 99, 3, 2), 5);
    wire_in(&node, &w).unwrap();
    let rules = rules_for(&node, w.ip);
    assert!(
        rules
            .iter()
            .any(|r| r.starts_with("1536:") && r.contains("from 10.99.3.2 lookup 5")),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|r| r.starts_with("512:") && r.contains("to 10.99.3.2 lookup main")),
        "{rules:?}"
    );

    // The address moving to another table replaces the rule instead of adding a second one.
    w.route_table = 6;
    wire_in(&node, &w).unwrap();
    let rules = rules_for(&node, w.ip);
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules.iter().any(|r| r.contains("lookup 6")), "{rules:?}");
    check_in(&node, &w).unwrap();

    // And to main: no 1536 rule at all.
    w.route_table = 0;
    wire_in(&node, &w).unwrap();
    let rules = rules_for(&node, w.ip);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].starts_with("512:"), "{rules:?}");
    check_in(&node, &w).unwrap();
}

#[test]
fn wiring_replaces_every_rule_an_earlier_owner_of_the_address_left() {
    let node = node_with("10.99.9.1/32");
    let pod = Netns::unique("dpt");
    let w = wiring(&pod, Ipv4Addr::new(10, 99, 9, 2), 4);
    node.ip_batch(
        &[
            "rule add priority 512 to 10.99.9.2/32 lookup 9",
            "rule add priority 512 to 10.99.9.2/32 lookup main",
            "rule add priority 512 to 10.99.9.2/32 iif lo lookup main",
            "rule add priority 1536 from 10.99.9.2/32 lookup 3",
            "rule add priority 1536 from 10.99.9.2/32 lookup 4",
            "rule add priority 1536 from 10.99.9.2/32 fwmark 0x1 lookup 4",
            "rule add priority 1536 from 10.99.9.0/24 lookup 3",
        ]
        .map(String::from),
        false,
    )
    .unwrap();

    wire_in(&node, &w).unwrap();
    assert_eq!(
        rules_for(&node, w.ip),
        [
            "512:\tfrom all to 10.99.9.2 lookup main",
            "1536:\tfrom 10.99.9.2 lookup 4",
        ]
    );
    check_in(&node, &w).unwrap();
    assert!(
        node.ip(&["rule", "show"])
            .contains("1536:\tfrom 10.99.9.0/24 lookup 3"),
        "a rule for a wider source is not the pod's"
    );
}

#[test]
fn unwire_host_removes_rules_route_and_veth_and_is_idempotent() {
    let node = node_with("10.99.4.1/32");
    let pod = Netns::unique("dpt");
    let w = wiring(&pod, Ipv4Addr::new(10, 99, 4, 2), 3);
    wire_in(&node, &w).unwrap();
    assert_eq!(rules_for(&node, w.ip).len(), 2);

    unwire_in(&node, w.ip, Some(&w.host_veth)).unwrap();
    assert!(rules_for(&node, w.ip).is_empty());
    assert!(!node.ip(&["route", "show"]).contains("10.99.4.2"));
    assert!(!link_names(&node).contains(&w.host_veth));
    assert!(
        !link_names(&pod).contains(&"eth0".to_owned()),
        "pod end goes with the pair"
    );

    unwire_in(&node, w.ip, Some(&w.host_veth)).unwrap();
    unwire_in(&node, w.ip, None).unwrap();
}

#[test]
fn unwire_host_without_veth_keeps_the_link() {
    let node = node_with("10.99.5.1/32");
    let pod = Netns::unique("dpt");
    let w = wiring(&pod, Ipv4Addr::new(10, 99, 5, 2), 0);
    wire_in(&node, &w).unwrap();

    unwire_in(&node, w.ip, None).unwrap();
    assert!(rules_for(&node, w.ip).is_empty());
    assert!(!node.ip(&["route", "show"]).contains("10.99.5.2"));
    assert!(link_names(&node).contains(&w.host_veth));
    assert!(matches!(check_in(&node, &w), Err(CniError::CheckFailed(_))));
}

#[test]
fn check_pod_passes_then_fails_on_each_missing_piece() {
    let node = node_with("10.99.6.1/32");
    let pod = Netns::unique("dpt");
    let w = wiring(&pod, Ipv4Addr::new(10, 99, 6, 2), 9);
    wire_in(&node, &w).unwrap();
    check_in(&node, &w).unwrap();

    node.ip(&["route", "del", "10.99.6.2/32"]);
    match check_in(&node, &w) {
        Err(CniError::CheckFailed(msg)) => assert!(msg.contains("10.99.6.2"), "{msg}"),
        other => panic!("expected CheckFailed, got {other:?}"),
    }

    wire_in(&node, &w).unwrap();
    check_in(&node, &w).unwrap();
    pod.ip(&["neigh", "del", "169.254.1.1", "dev", "eth0"]);
    match check_in(&node, &w) {
        Err(CniError::CheckFailed(msg)) => assert!(msg.contains("169.254.1.1"), "{msg}"),
        other => panic!("expected CheckFailed, got {other:?}"),
    }

    wire_in(&node, &w).unwrap();
    node.ip(&["rule", "del", "priority", "1536"]);
    match check_in(&node, &w) {
        Err(CniError::CheckFailed(msg)) => assert!(msg.contains("1536"), "{msg}"),
        other => panic!("expected CheckFailed, got {other:?}"),
    }

    // A CHECK that expects another table fails too.
    wire_in(&node, &w).unwrap();
    let other_table = PodWiring {
        route_table: 10,
        ..w.clone()
    };
    assert!(matches!(
        check_in(&node, &other_table),
        Err(CniError::CheckFailed(_))
    ));

    wire_in(&node, &w).unwrap();
    node.ip(&["neigh", "del", "10.99.6.2", "dev", &w.host_veth]);
    match check_in(&node, &w) {
        Err(CniError::CheckFailed(msg)) => {
            assert!(msg.contains("neighbour 10.99.6.2"), "{msg}");
            assert!(msg.contains(&w.host_veth), "{msg}");
        }
        other => panic!("expected CheckFailed, got {other:?}"),
    }

    wire_in(&node, &w).unwrap();
    node.ip(&["link", "set", &w.host_veth, "arp", "on"]);
    match check_in(&node, &w) {
        Err(CniError::CheckFailed(msg)) => assert!(msg.contains("NOARP"), "{msg}"),
        other => panic!("expected CheckFailed, got {other:?}"),
    }

    wire_in(&node, &w).unwrap();
    node.ip(&["link", "set", &w.host_veth, "down"]);
    match check_in(&node, &w) {
        Err(CniError::CheckFailed(msg)) => assert!(msg.contains(&w.host_veth), "{msg}"),
        other => panic!("expected CheckFailed, got {other:?}"),
    }
}

#[test]
fn missing_netns_is_a_netns_error_and_leaves_nothing() {
    let node = node_with("10.99.7.1/32");
    let missing = Netns::unique("dpt");
    let w = wiring(&missing, Ipv4Addr::new(10, 99, 7, 2), 4);
    drop(missing);

    let links_before = link_names(&node);
    match wire_in(&node, &w) {
        Err(CniError::Netns { path, .. }) => assert_eq!(path, w.netns_path),
        other => panic!("expected a Netns error, got {other:?}"),
    }
    assert_eq!(link_names(&node), links_before);
    assert!(rules_for(&node, w.ip).is_empty());
    assert!(!node.ip(&["route", "show"]).contains("10.99.7.2"));
    assert!(matches!(check_in(&node, &w), Err(CniError::Netns { .. })));
}

#[test]
fn failed_wiring_removes_what_it_created() {
    let node = node_with("10.99.8.1/32");
    let pod = Netns::unique("dpt");
    // The veth and the rules get made, then the pod address is refused: the kernel does not
    // take a multicast address on an interface.
    let w = PodWiring {
        ip: Ipv4Addr::new(224, 0, 0, 99),
        ..wiring(&pod, Ipv4Addr::UNSPECIFIED, 4)
    };
    let links_before = link_names(&node);
    let err = wire_in(&node, &w).unwrap_err();
    match &err {
        CniError::Netlink { operation, .. } => {
            assert!(
                operation.contains("adding 224.0.0.99/32 to eth0"),
                "{err:?}"
            );
        }
        other => panic!("expected the address step to fail, got {other:?}"),
    }
    assert_eq!(link_names(&node), links_before, "host veth removed");
    assert!(
        !link_names(&pod).contains(&"eth0".to_owned()),
        "pod end removed"
    );
    assert!(rules_for(&node, w.ip).is_empty(), "rules removed");
}

#[test]
fn host_link_listing_and_lookup() {
    let node = node_with("10.99.9.1/32");
    let pod = Netns::unique("dpt");
    let w = wiring(&pod, Ipv4Addr::new(10, 99, 9, 2), 0);
    wire_in(&node, &w).unwrap();

    let veth = w.host_veth.clone();
    let (listed, exists, absent) = node.run(move || async move {
        (
            host_links_with_prefix("vpc").await.unwrap(),
            link_exists(&veth).await.unwrap(),
            link_exists("vpcnonexistent").await.unwrap(),
        )
    });
    assert_eq!(listed, vec![w.host_veth.clone()]);
    assert!(exists);
    assert!(!absent);
}
