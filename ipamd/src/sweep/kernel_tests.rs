//! The sweep against the real kernel, in a throwaway namespace (root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use vpc_cni::dataplane::host_veth_name;
use vpc_cni_proto::Mode;
use vpc_cni_testkit::netns::Netns;

use super::{confirm, sweep_with, Candidate, NodeHost};
use crate::store::{
    Assignment, AttachmentKey, Datastore, MemoryCheckpoint, PodIdentity, PoolAddress, Store,
};

const GRACE: Duration = Duration::from_secs(60);
const T0: u64 = 1_700_000_000_000;
const LATER: u64 = T0 + 61_000;

fn identity(pod: &str, container: &str) -> PodIdentity {
    PodIdentity {
        pod_namespace: "default".into(),
        pod_name: pod.into(),
        host_veth: host_veth_name(Some("default"), Some(pod), container),
        ..PodIdentity::default()
    }
}

fn key(container: &str) -> AttachmentKey {
    AttachmentKey {
        container_id: container.into(),
        ifname: "eth0".into(),
    }
}

/// The host side of a wired pod: its veth (the pod end left in the same namespace, which
/// the sweep never looks at), the /32 route and the 512 rule.
fn wire(ns: &Netns, veth: &str, peer: &str, ip: Ipv4Addr) {
    ns.ip(&["link", "add", veth, "type", "veth", "peer", "name", peer]);
    ns.ip(&["link", "set", veth, "up"]);
    let dst = format!("{ip}/32");
    ns.ip(&["route", "add", &dst, "dev", veth, "scope", "link"]);
    rule_512(ns, ip);
}

fn rule_512(ns: &Netns, ip: Ipv4Addr) {
    let dst = format!("{ip}/32");
    ns.ip(&["rule", "add", "to", &dst, "lookup", "main", "pref", "512"]);
}

fn rules_512(ns: &Netns) -> Vec<String> {
    ns.ip(&["rule", "show", "pref", "512"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn store(addresses: &[Ipv4Addr]) -> Arc<Store> {
    let mut ds = Datastore::new("test pool".into(), Mode::Overlay, 0);
    ds.set_pool(
        addresses
            .iter()
            .map(|&ip| PoolAddress {
                ip,
                route_table: 0,
                device_number: 0,
            })
            .collect::<Vec<_>>(),
    );
    Arc::new(Store::new(ds, Arc::new(MemoryCheckpoint::new())))
}

#[test]
fn netlink_sweep_keeps_live_pods_and_releases_vanished_and_superseded_ones() {
    let ns = Netns::unique("sweep");
    let [live, vanished, old, new] = [1, 2, 3, 4].map(|i| Ipv4Addr::new(10, 9, 0, i));
    let live_id = identity("live", "c-live");
    let stateful_id = identity("web-0", "c-old");
    wire(&ns, &live_id.host_veth, "plive", live);
    // web-0's first incarnation lost its DEL; its veth was replaced by its successor's.
    wire(&ns, &stateful_id.host_veth, "pweb", new);
    rule_512(&ns, old);
    // The vanished pod's veth went with its namespace; its rule did not.
    rule_512(&ns, vanished);

    let (left, rules) = ns.run(move || async move {
        // One address each, in the order they are handed out.
        let store = store(&[live, vanished, old, new]);
        for (container, pod, at) in [
            ("c-live", "live", T0),
            ("c-vanished", "vanished", T0),
            ("c-old", "web-0", T0),
            ("c-new", "web-0", T0 + 1_000),
        ] {
            store
                .assign(key(container), identity(pod, container), at)
                .await
                .unwrap();
        }
        let host = NodeHost::connect().unwrap();
        let released = sweep_with(&store, GRACE, LATER, &host).await.unwrap();
        let left: Vec<(String, Ipv4Addr)> = store
            .assignments()
            .into_iter()
            .map(|a| (a.key.container_id, a.ip))
            .collect();
        (left, released)
    });
    assert_eq!(rules, 2);
    assert_eq!(
        left,
        [("c-live".to_owned(), live), ("c-new".to_owned(), new)]
    );
    let rules = rules_512(&ns).join("\n");
    assert!(rules.contains(&live.to_string()), "{rules}");
    assert!(rules.contains(&new.to_string()), "{rules}");
    assert!(!rules.contains(&old.to_string()), "{rules}");
    assert!(!rules.contains(&vanished.to_string()), "{rules}");
}

#[test]
fn netlink_a_candidate_whose_veth_exists_by_name_is_not_stale() {
    let ns = Netns::unique("sweepc");
    let ip = Ipv4Addr::new(10, 9, 0, 1);
    let id = identity("live", "c-live");
    wire(&ns, &id.host_veth, "plive", ip);
    let candidate = Candidate {
        host_veth: id.host_veth.clone(),
        holders: vec![(
            Assignment {
                key: key("c-live"),
                pod: id,
                ip,
                route_table: 0,
                device_number: 0,
                assigned_at_ms: T0,
            },
            true,
        )],
    };
    // As if a listing had missed the veth: the candidate is confirmed by name.
    let stale = ns.run(move || async move {
        let host = NodeHost::connect().unwrap();
        let live = confirm(&host, &candidate).await.unwrap();
        let gone = Candidate {
            host_veth: "vpcnosuchlink0".into(),
            ..candidate
        };
        (live, confirm(&host, &gone).await.unwrap())
    });
    assert!(stale.0.is_empty(), "{:?}", stale.0);
    assert_eq!(stale.1.len(), 1, "a veth gone by name is stale");
}
