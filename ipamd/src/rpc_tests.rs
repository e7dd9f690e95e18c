//! The service on a paused tokio clock, with an in-memory checkpoint and datapath: the ADD
//! wait, GC, the version check and STATUS, without a socket or a kernel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tonic::{Code, Request};
use vpc_cni_proto::cni_backend_server::CniBackend;
use vpc_cni_proto::time::{millis, Clock};
use vpc_cni_proto::{
    Attachment, AttachmentRequest, GarbageCollectReply, GarbageCollectRequest, Mode, StatusRequest,
};

use super::{pod_identity, Backend, NodeFacts, PoolWaker};
use crate::datapath::{NodeDatapath, Upkeep};
use crate::error::IpamdError;
use crate::node::PodCap;
use crate::store::{Datastore, MemoryCheckpoint, PoolAddress, Store};

const OURS: &str = env!("CARGO_PKG_VERSION");

/// A datapath whose damage the test sets; counts how often it is applied.
#[derive(Default)]
struct FakeDatapath {
    damage: Mutex<Vec<String>>,
    applied: AtomicUsize,
}

impl NodeDatapath for FakeDatapath {
    fn mode(&self) -> Mode {
        Mode::Overlay
    }

    fn apply(&self) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async {
            self.applied.fetch_add(1, Ordering::SeqCst);
            self.damage.lock().unwrap().clear();
            Ok(())
        })
    }

    fn damage(&self) -> BoxFuture<'_, Result<Vec<String>, IpamdError>> {
        Box::pin(async { Ok(self.damage.lock().unwrap().clone()) })
    }
}

/// Unix ms that follow tokio's (paused) clock, as the wall clock follows real time.
fn tokio_clock() -> Clock {
    let start = Instant::now();
    Arc::new(move || 1_700_000_000_000 + millis(start.elapsed()))
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, last)
}

fn pool(n: u8) -> Vec<PoolAddress> {
    (1..=n)
        .map(|i| PoolAddress {
            ip: ip(i),
            route_table: 0,
            device_number: 0,
        })
        .collect()
}

struct Harness {
    backend: Backend,
    store: Arc<Store>,
    datapath: Arc<FakeDatapath>,
    upkeep: Arc<Upkeep>,
}

fn harness(addresses: u8, cooldown: Duration, waker: Option<PoolWaker>) -> Harness {
    harness_capped(addresses, cooldown, waker, None)
}

fn harness_capped(
    addresses: u8,
    cooldown: Duration,
    waker: Option<PoolWaker>,
    pod_cap: Option<PodCap>,
) -> Harness {
    let mut ds = Datastore::new("test pool".into(), Mode::Overlay, millis(cooldown));
    ds.set_pool(pool(addresses));
    let store = Arc::new(Store::new(ds, Arc::new(MemoryCheckpoint::new())));
    let datapath = Arc::new(FakeDatapath::default());
    let upkeep = Arc::new(Upkeep::new(datapath.clone(), Duration::from_secs(3600)));
    let facts = NodeFacts {
        mtu: 1500,
        vpc_cidrs: Vec::new(),
        pool_wait_timeout: Duration::from_secs(10),
        waker,
        pod_cap,
    };
    Harness {
        backend: Backend::new(
            Arc::clone(&store),
            facts,
            Arc::clone(&upkeep),
            tokio_clock(),
        ),
        store,
        datapath,
        upkeep,
    }
}

fn attachment(container: &str) -> AttachmentRequest {
    AttachmentRequest {
        container_id: container.into(),
        ifname: "eth0".into(),
        netns: format!("/run/netns/{container}"),
        network_name: "net-a".into(),
        pod_namespace: "default".into(),
        pod_name: container.into(),
        pod_uid: format!("uid-{container}"),
        client_version: OURS.into(),
    }
}

async fn add(backend: &Backend, container: &str) -> Result<Ipv4Addr, tonic::Status> {
    let reply = backend
        .add_network(Request::new(attachment(container)))
        .await?
        .into_inner();
    Ok(reply.ip.unwrap().address.parse().unwrap())
}

/// Lets every task that can run, run: the spawned ADD reaches its wait.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn noop_waker() -> Option<PoolWaker> {
    Some(Arc::new(|| {}))
}

#[tokio::test(start_paused = true)]
async fn a_waiting_add_completes_the_moment_a_del_frees_an_address() {
    let h = Arc::new(harness(1, Duration::ZERO, noop_waker()));
    assert_eq!(add(&h.backend, "a").await.unwrap(), ip(1));

    let start = Instant::now();
    let waiting = tokio::spawn({
        let h = Arc::clone(&h);
        async move { add(&h.backend, "b").await }
    });
    settle().await;
    assert!(!waiting.is_finished(), "ADD b should wait for an address");

    h.backend
        .del_network(Request::new(attachment("a")))
        .await
        .unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), ip(1));
    // Woken by the release itself: the paused clock did not move at all (no polling step).
    assert_eq!(Instant::now(), start);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_add_completes_the_moment_the_controller_adds_an_address() {
    // The waker stands in for the pool controller: asked for a pass, it grows the pool.
    let store_slot: Arc<Mutex<Option<Arc<Store>>>> = Arc::default();
    let wakes = Arc::new(AtomicUsize::new(0));
    let waker: PoolWaker = {
        let (store_slot, wakes) = (Arc::clone(&store_slot), Arc::clone(&wakes));
        Arc::new(move || {
            wakes.fetch_add(1, Ordering::SeqCst);
            if let Some(store) = store_slot.lock().unwrap().clone() {
                tokio::spawn(async move {
                    let (dropped, written) = store.set_pool(pool(2)).await;
                    assert!(dropped.is_empty());
                    written.unwrap();
                });
            }
        })
    };
    let h = harness(1, Duration::ZERO, Some(waker));
    add(&h.backend, "a").await.unwrap();
    *store_slot.lock().unwrap() = Some(Arc::clone(&h.store));

    let start = Instant::now();
    assert_eq!(add(&h.backend, "b").await.unwrap(), ip(2));
    assert_eq!(Instant::now(), start);
    assert!(
        wakes.load(Ordering::SeqCst) >= 2,
        "the controller was asked for a pass"
    );
}

/// Regression: each controller pass announced "freed" even when it freed nothing, and each
/// waiting ADD answered by asking for another pass: at max pods, or while growth is paused,
/// passes ran back to back.
#[tokio::test(start_paused = true)]
async fn a_waiting_add_asks_for_one_pass_and_is_not_woken_by_passes_that_free_nothing() {
    const RUNAWAY: usize = 50;
    let store_slot: Arc<Mutex<Option<Arc<Store>>>> = Arc::default();
    let wakes = Arc::new(AtomicUsize::new(0));
    let waker: PoolWaker = {
        let (store_slot, wakes) = (Arc::clone(&store_slot), Arc::clone(&wakes));
        Arc::new(move || {
            // A pass that changes nothing (bounded, so the old behaviour ends too).
            if wakes.fetch_add(1, Ordering::SeqCst) >= RUNAWAY {
                return;
            }
            if let Some(store) = store_slot.lock().unwrap().clone() {
                tokio::spawn(async move {
                    store.set_pool(pool(1)).await.1.unwrap();
                });
            }
        })
    };
    let h = harness(1, Duration::ZERO, Some(waker));
    add(&h.backend, "a").await.unwrap();
    *store_slot.lock().unwrap() = Some(Arc::clone(&h.store));
    let before = wakes.load(Ordering::SeqCst);

    let status = add(&h.backend, "b").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(wakes.load(Ordering::SeqCst) - before, 1, "passes asked for");
}

/// An assignment rebuilt from the kernel after the checkpoint was lost is found by the first
/// request naming its pod: CHECK answers, a repeated ADD gets the same address, DEL frees it.
#[tokio::test]
async fn a_rebuilt_assignment_is_taken_over_by_its_pods_requests() {
    let h = harness(3, Duration::ZERO, None);
    let veth = pod_identity(&attachment("web-0")).host_veth;
    let pods = [(ip(2), veth)].into_iter().collect();
    let (adopted, written) = h.store.adopt(&pods, 0).await;
    written.unwrap();
    assert_eq!(adopted.len(), 1);

    let check = h
        .backend
        .check_network(Request::new(attachment("web-0")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check.ip.unwrap().address, ip(2).to_string());
    assert_eq!(
        add(&h.backend, "web-0").await.unwrap(),
        ip(2),
        "a repeated ADD"
    );
    assert_eq!(add(&h.backend, "other").await.unwrap(), ip(1));
    let del = h
        .backend
        .del_network(Request::new(attachment("web-0")))
        .await
        .unwrap()
        .into_inner();
    assert!(del.released);
    assert_eq!(del.ip.unwrap().address, ip(2).to_string());
    assert!(h.store.assignments().iter().all(|a| a.ip != ip(2)));
}

/// A pool of one address whose only address was just released into `cooldown`.
async fn cooling_pool(cooldown: Duration) -> Harness {
    let h = harness(1, cooldown, None);
    add(&h.backend, "a").await.unwrap();
    h.backend
        .del_network(Request::new(attachment("a")))
        .await
        .unwrap();
    h
}

#[tokio::test(start_paused = true)]
async fn a_waiting_add_takes_an_address_when_its_cooldown_ends() {
    // No controller: only the cooldown brings the address back, and the ADD sleeps until
    // then, not in steps. The paused clock shows what it waited for.
    let cooldown = Duration::from_secs(4);
    let h = cooling_pool(cooldown).await;
    let start = Instant::now();
    assert_eq!(add(&h.backend, "b").await.unwrap(), ip(1));
    assert_eq!(Instant::now() - start, cooldown);
}

#[tokio::test(start_paused = true)]
async fn a_cooldown_longer_than_the_wait_fails_the_add_at_the_timeout() {
    let h = cooling_pool(Duration::from_secs(60)).await;
    let start = Instant::now();
    let err = add(&h.backend, "b").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("test pool"), "{}", err.message());
    assert!(err.message().contains("1 cooling"), "{}", err.message());
    assert_eq!(Instant::now() - start, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_pool_fails_at_once_without_a_controller_and_at_the_timeout_with_one() {
    let alone = harness(1, Duration::ZERO, None);
    add(&alone.backend, "a").await.unwrap();
    let start = Instant::now();
    let err = add(&alone.backend, "b").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(Instant::now(), start);

    let wakes = Arc::new(AtomicUsize::new(0));
    let waker: PoolWaker = {
        let wakes = Arc::clone(&wakes);
        Arc::new(move || {
            wakes.fetch_add(1, Ordering::SeqCst);
        })
    };
    let grown = harness(1, Duration::ZERO, Some(waker));
    add(&grown.backend, "a").await.unwrap();
    let start = Instant::now();
    let err = add(&grown.backend, "b").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(Instant::now() - start, Duration::from_secs(10));
    assert!(wakes.load(Ordering::SeqCst) >= 2);
}

#[tokio::test(start_paused = true)]
async fn an_add_over_the_pod_cap_is_refused_at_once_naming_the_cap() {
    let never: PoolWaker = Arc::new(|| {});
    let cap = PodCap {
        limit: 2,
        source: "Node n1's status.capacity.pods".into(),
    };
    // Below the cap, an empty pool still waits for the controller (the timeout here).
    let below = harness_capped(
        1,
        Duration::ZERO,
        Some(Arc::clone(&never)),
        Some(cap.clone()),
    );
    add(&below.backend, "a").await.unwrap();
    let start = Instant::now();
    let err = add(&below.backend, "b").await.unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_secs(10));
    assert!(!err.message().contains("pod cap"), "{}", err.message());

    // At the cap: refused without waiting, try-again-later, naming the cap and its source.
    let at = harness_capped(2, Duration::ZERO, Some(never), Some(cap));
    add(&at.backend, "a").await.unwrap();
    add(&at.backend, "b").await.unwrap();
    let start = Instant::now();
    let err = add(&at.backend, "c").await.unwrap_err();
    assert_eq!(Instant::now(), start);
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("cap is 2"), "{}", err.message());
    assert!(
        err.message().contains("Node n1's status.capacity.pods"),
        "{}",
        err.message()
    );
}

#[tokio::test(start_paused = true)]
async fn gc_releases_exactly_the_attachments_the_runtime_no_longer_knows() {
    let h = harness(5, Duration::ZERO, None);
    for c in ["keep", "stale-1", "stale-2"] {
        add(&h.backend, c).await.unwrap();
    }
    let mut other_network = attachment("other-net");
    other_network.network_name = "net-b".into();
    h.backend
        .add_network(Request::new(other_network))
        .await
        .unwrap();
    past_grace().await;

    let reply = h
        .backend
        .garbage_collect(Request::new(GarbageCollectRequest {
            valid_attachments: vec![Attachment {
                container_id: "keep".into(),
                ifname: "eth0".into(),
            }],
            network_name: "net-a".into(),
            client_version: OURS.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut released: Vec<String> = reply
        .released
        .iter()
        .map(|r| r.container_id.clone())
        .collect();
    released.sort();
    assert_eq!(released, ["stale-1", "stale-2"]);
    assert!(reply
        .released
        .iter()
        .all(|r| r.host_veth.starts_with("vpc")));
    let left: Vec<String> = h
        .store
        .assignments()
        .into_iter()
        .map(|a| a.key.container_id)
        .collect();
    assert_eq!(
        left,
        ["keep", "other-net"],
        "another network's pods are not touched"
    );
}

/// Moves the paused clock past the default `ASSIGNMENT_GRACE_PERIOD`.
async fn past_grace() {
    tokio::time::advance(super::DEFAULT_ASSIGNMENT_GRACE + Duration::from_secs(1)).await;
}

fn gc(network: &str, valid: &[&str]) -> Request<GarbageCollectRequest> {
    Request::new(GarbageCollectRequest {
        valid_attachments: valid
            .iter()
            .map(|c| Attachment {
                container_id: (*c).into(),
                ifname: "eth0".into(),
            })
            .collect(),
        network_name: network.into(),
        client_version: OURS.into(),
    })
}

fn released_containers(reply: &GarbageCollectReply) -> Vec<String> {
    let mut names: Vec<String> = reply
        .released
        .iter()
        .map(|r| r.container_id.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test(start_paused = true)]
async fn gc_leaves_assignments_younger_than_the_grace_period() {
    let h = harness(4, Duration::ZERO, None);
    add(&h.backend, "old").await.unwrap();
    past_grace().await;
    // Made after the runtime listed its valid attachments, before its GC arrived.
    add(&h.backend, "young").await.unwrap();

    let reply = h
        .backend
        .garbage_collect(gc("net-a", &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released_containers(&reply), ["old"]);
    assert_eq!(
        h.store.assignments()[0].key.container_id,
        "young",
        "the young assignment survives"
    );
}

#[tokio::test(start_paused = true)]
async fn gc_without_a_network_name_is_refused_naming_the_field() {
    let h = harness(4, Duration::ZERO, None);
    add(&h.backend, "a").await.unwrap();
    past_grace().await;
    let err = h.backend.garbage_collect(gc("", &[])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("network_name"), "{}", err.message());
    assert_eq!(h.store.assignments().len(), 1, "nothing was released");
}

#[tokio::test(start_paused = true)]
async fn gc_does_not_hand_out_a_veth_name_a_live_attachment_still_uses() {
    let h = harness(4, Duration::ZERO, None);
    // web-0's first container lost its DEL; its successor has the same host veth name.
    let mut old = attachment("c-old");
    old.pod_name = "web-0".into();
    let mut new = attachment("c-new");
    new.pod_name = "web-0".into();
    h.backend.add_network(Request::new(old)).await.unwrap();
    h.backend.add_network(Request::new(new)).await.unwrap();
    add(&h.backend, "gone").await.unwrap();
    past_grace().await;

    let reply = h
        .backend
        .garbage_collect(gc("net-a", &["c-new"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released_containers(&reply), ["c-old", "gone"]);
    for r in &reply.released {
        match r.container_id.as_str() {
            "c-old" => assert_eq!(r.host_veth, "", "the successor's veth must not be deleted"),
            _ => assert!(r.host_veth.starts_with("vpc"), "{r:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn attachment_calls_refuse_container_ids_and_ifnames_the_plugin_would_refuse() {
    let h = harness(4, Duration::ZERO, None);
    let long_id = "a".repeat(257);
    let cases: [(&str, &str, &str); 6] = [
        ("", "eth0", "container_id"),
        ("../etc", "eth0", "container_id"),
        ("bad/id", "eth0", "container_id"),
        (&long_id, "eth0", "container_id"),
        ("ok", "", "ifname"),
        ("ok", "eth0/x", "ifname"),
    ];
    for (container, ifname, field) in cases {
        let mut req = attachment("x");
        req.container_id = container.into();
        req.ifname = ifname.into();
        let b = &h.backend;
        let errors = [
            b.add_network(Request::new(req.clone())).await.unwrap_err(),
            b.del_network(Request::new(req.clone())).await.unwrap_err(),
            b.check_network(Request::new(req.clone()))
                .await
                .unwrap_err(),
        ];
        for err in errors {
            assert_eq!(
                err.code(),
                Code::InvalidArgument,
                "{container:?} {ifname:?}"
            );
            assert!(
                err.message().starts_with(field),
                "{container:?} {ifname:?}: {}",
                err.message()
            );
        }
    }
    assert!(h.store.assignments().is_empty());
    let mut long_ifname = attachment("ok");
    long_ifname.ifname = "a-much-too-long-ifname".into();
    let err = h
        .backend
        .add_network(Request::new(long_ifname))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("ifname"), "{}", err.message());
}

#[tokio::test(start_paused = true)]
async fn a_plugin_of_another_major_version_is_refused_on_every_call() {
    let h = harness(2, Duration::ZERO, None);
    let other = "999.0.0";
    let mut req = attachment("a");
    req.client_version = other.into();
    let refused = |r: Result<tonic::Code, tonic::Status>| match r {
        Err(status) => {
            assert!(status.message().contains(other), "{}", status.message());
            status.code()
        }
        Ok(_) => Code::Ok,
    };
    let b = &h.backend;
    let codes = [
        refused(
            b.add_network(Request::new(req.clone()))
                .await
                .map(|_| Code::Ok),
        ),
        refused(
            b.del_network(Request::new(req.clone()))
                .await
                .map(|_| Code::Ok),
        ),
        refused(
            b.check_network(Request::new(req.clone()))
                .await
                .map(|_| Code::Ok),
        ),
        refused(
            b.garbage_collect(Request::new(GarbageCollectRequest {
                client_version: other.into(),
                ..GarbageCollectRequest::default()
            }))
            .await
            .map(|_| Code::Ok),
        ),
        refused(
            b.status(Request::new(StatusRequest {
                client_version: other.into(),
            }))
            .await
            .map(|_| Code::Ok),
        ),
    ];
    assert_eq!(codes, [Code::FailedPrecondition; 5]);
    assert!(h.store.assignments().is_empty());

    // The same major version, and a plugin that does not say, are served.
    let major = OURS.split('.').next().unwrap();
    for version in [format!("{major}.99.7"), String::new()] {
        let mut req = attachment(&format!("v{version}"));
        req.client_version = version;
        b.add_network(Request::new(req)).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn status_reports_datapath_damage_and_asks_for_the_repair() {
    let h = harness(2, Duration::ZERO, None);
    let upkeep = Arc::clone(&h.upkeep);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let loop_task = tokio::spawn(async move { upkeep.run(stop_rx).await });
    let status = || async {
        h.backend
            .status(Request::new(StatusRequest {
                client_version: OURS.into(),
            }))
            .await
            .unwrap()
            .into_inner()
    };

    let intact = status().await;
    assert!(intact.datapath_damage.is_empty());
    assert_eq!(intact.mode(), Mode::Overlay);
    assert_eq!(intact.total_addresses, 2);

    h.datapath
        .damage
        .lock()
        .unwrap()
        .push("nftables table ip vpc-cni is missing".into());
    let broken = status().await;
    assert_eq!(
        broken.datapath_damage,
        ["nftables table ip vpc-cni is missing"]
    );
    // The check woke the upkeep loop, long before its hour-long interval.
    settle().await;
    assert_eq!(h.datapath.applied.load(Ordering::SeqCst), 1);
    assert!(status().await.datapath_damage.is_empty());

    stop_tx.send(true).unwrap();
    loop_task.await.unwrap();
}
