//! The sweep's decisions against a scripted node: what a listing may miss, what a lookup by
//! name shows, which address a shared veth's route carries, rules that will not go.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use vpc_cni::dataplane::host_veth_name;
use vpc_cni_proto::Mode;

use super::{sweep_with, HostView};
use crate::error::IpamdError;
use crate::store::{AttachmentKey, Datastore, MemoryCheckpoint, PodIdentity, PoolAddress, Store};

const GRACE: Duration = Duration::from_secs(60);
const T0: u64 = 1_700_000_000_000;
/// A moment when everything assigned at `T0` is past the grace period.
const LATER: u64 = T0 + 61_000;

/// The node as the test scripts it.
#[derive(Default)]
struct FakeHost {
    /// What one link listing shows.
    listed: HashSet<String>,
    /// What a lookup by name finds: name -> index.
    links: HashMap<String, u32>,
    /// Main-table /32 routes: address -> link index.
    routes: HashMap<Ipv4Addr, u32>,
    /// Addresses whose rules cannot be removed.
    stuck: Mutex<HashSet<Ipv4Addr>>,
    unwired: Mutex<Vec<Ipv4Addr>>,
}

impl FakeHost {
    fn with_link(mut self, name: &str, index: u32, listed: bool) -> Self {
        self.links.insert(name.to_owned(), index);
        if listed {
            self.listed.insert(name.to_owned());
        }
        self
    }

    fn with_route(mut self, ip: Ipv4Addr, index: u32) -> Self {
        self.routes.insert(ip, index);
        self
    }
}

impl HostView for FakeHost {
    fn listed_veths(&self) -> BoxFuture<'_, Result<HashSet<String>, IpamdError>> {
        Box::pin(async { Ok(self.listed.clone()) })
    }

    fn veth_index<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<u32>, IpamdError>> {
        Box::pin(async move { Ok(self.links.get(name).copied()) })
    }

    fn routed_to(&self, index: u32) -> BoxFuture<'_, Result<HashSet<Ipv4Addr>, IpamdError>> {
        Box::pin(async move {
            Ok(self
                .routes
                .iter()
                .filter(|(_, i)| **i == index)
                .map(|(ip, _)| *ip)
                .collect())
        })
    }

    fn unwire(&self, ip: Ipv4Addr) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async move {
            if self.stuck.lock().unwrap().contains(&ip) {
                return Err(IpamdError::Internal(format!("rules of {ip} stuck")));
            }
            self.unwired.lock().unwrap().push(ip);
            Ok(())
        })
    }
}

fn store() -> Arc<Store> {
    let mut ds = Datastore::new("test pool".into(), Mode::Overlay, 0);
    ds.set_pool(
        (1..=8)
            .map(|i| PoolAddress {
                ip: Ipv4Addr::new(10, 9, 0, i),
                route_table: 0,
                device_number: 0,
            })
            .collect::<Vec<_>>(),
    );
    Arc::new(Store::new(ds, Arc::new(MemoryCheckpoint::new())))
}

fn key(container: &str) -> AttachmentKey {
    AttachmentKey {
        container_id: container.into(),
        ifname: "eth0".into(),
    }
}

/// Assigns an address to container `container` of pod `default/<pod>` at `at`.
async fn add(store: &Store, container: &str, pod: &str, at: u64) -> (Ipv4Addr, String) {
    let veth = host_veth_name(Some("default"), Some(pod), container);
    let identity = PodIdentity {
        pod_namespace: "default".into(),
        pod_name: pod.into(),
        host_veth: veth.clone(),
        ..PodIdentity::default()
    };
    let a = store.assign(key(container), identity, at).await.unwrap();
    (a.ip, veth)
}

fn holders(store: &Store) -> Vec<String> {
    store
        .assignments()
        .into_iter()
        .map(|a| a.key.container_id)
        .collect()
}

#[tokio::test]
async fn a_veth_the_listing_missed_but_that_exists_by_name_keeps_its_address() {
    let store = store();
    let (ip, veth) = add(&store, "c1", "web", T0).await;
    // The dump skipped the link; asked by name, the kernel has it.
    let host = FakeHost::default()
        .with_link(&veth, 7, false)
        .with_route(ip, 7);
    let released = sweep_with(&store, GRACE, LATER, &host).await.unwrap();
    assert_eq!(released, 0);
    assert_eq!(holders(&store), ["c1"]);
    assert!(host.unwired.lock().unwrap().is_empty(), "rules untouched");
}

#[tokio::test]
async fn a_vanished_pod_is_released_after_the_grace_period_and_only_then() {
    let store = store();
    let (ip, _) = add(&store, "gone", "web", T0).await;
    let host = FakeHost::default();
    assert_eq!(
        sweep_with(&store, GRACE, T0 + 1_000, &host).await.unwrap(),
        0
    );
    assert_eq!(holders(&store), ["gone"]);
    assert_eq!(sweep_with(&store, GRACE, LATER, &host).await.unwrap(), 1);
    assert!(holders(&store).is_empty());
    assert_eq!(*host.unwired.lock().unwrap(), [ip]);
}

#[tokio::test]
async fn an_address_whose_rules_cannot_be_removed_stays_assigned_until_they_are() {
    let store = store();
    let (stuck, _) = add(&store, "stuck", "a", T0).await;
    let (free, _) = add(&store, "free", "b", T0).await;
    let host = FakeHost::default();
    host.stuck.lock().unwrap().insert(stuck);

    assert_eq!(sweep_with(&store, GRACE, LATER, &host).await.unwrap(), 1);
    assert_eq!(holders(&store), ["stuck"]);
    assert_eq!(*host.unwired.lock().unwrap(), [free]);

    // The next pass, with the rules removable again, finishes the job.
    host.stuck.lock().unwrap().clear();
    assert_eq!(sweep_with(&store, GRACE, LATER, &host).await.unwrap(), 1);
    assert!(holders(&store).is_empty());
}

#[tokio::test]
async fn a_statefulset_pod_that_lost_its_del_does_not_hold_its_address_through_its_successor() {
    let store = store();
    // web-0 ran as container "old", lost its DEL; its successor "new" got the same veth name.
    let (old_ip, veth) = add(&store, "old", "web-0", T0).await;
    let (new_ip, new_veth) = add(&store, "new", "web-0", T0 + 30_000).await;
    assert_eq!(veth, new_veth);
    let host = FakeHost::default()
        .with_link(&veth, 9, true)
        .with_route(new_ip, 9);

    assert_eq!(sweep_with(&store, GRACE, LATER, &host).await.unwrap(), 1);
    assert_eq!(holders(&store), ["new"]);
    assert_eq!(*host.unwired.lock().unwrap(), [old_ip]);
}

#[tokio::test]
async fn a_shared_veth_whose_route_names_no_single_holder_releases_nothing() {
    let store = store();
    let (old_ip, veth) = add(&store, "old", "web-0", T0).await;
    let (new_ip, _) = add(&store, "new", "web-0", T0).await;

    // The successor is still being wired: no route to the veth yet.
    let unrouted = FakeHost::default().with_link(&veth, 9, true);
    assert_eq!(
        sweep_with(&store, GRACE, LATER, &unrouted).await.unwrap(),
        0
    );

    // Both routed there cannot be (one /32 each), but a confused node must not cost either.
    let both = FakeHost::default()
        .with_link(&veth, 9, true)
        .with_route(old_ip, 9)
        .with_route(new_ip, 9);
    assert_eq!(sweep_with(&store, GRACE, LATER, &both).await.unwrap(), 0);
    assert_eq!(holders(&store), ["new", "old"]);
}

#[tokio::test]
async fn a_young_successor_is_never_released_even_when_the_route_names_the_old_holder() {
    let store = store();
    let (old_ip, veth) = add(&store, "old", "web-0", T0).await;
    add(&store, "new", "web-0", LATER - 1_000).await;
    let host = FakeHost::default()
        .with_link(&veth, 9, true)
        .with_route(old_ip, 9);
    assert_eq!(sweep_with(&store, GRACE, LATER, &host).await.unwrap(), 0);
    assert_eq!(holders(&store), ["new", "old"]);
}
