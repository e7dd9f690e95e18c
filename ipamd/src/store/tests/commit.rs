use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::{datastore, ip, key, pod, pool};
use crate::error::IpamdError;
use crate::store::{
    AddressState, Checkpoint, CheckpointData, FileCheckpoint, MemoryCheckpoint, Store,
};

/// Counts `store` calls; optionally holds the first one until the test says whether it
/// succeeds, so tests can line requests up behind a write in progress.
struct Gated {
    inner: Arc<dyn Checkpoint>,
    calls: AtomicUsize,
    gate: Mutex<Option<mpsc::Receiver<bool>>>,
}

impl Gated {
    fn new(inner: Arc<dyn Checkpoint>, gate: Option<mpsc::Receiver<bool>>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: AtomicUsize::new(0),
            gate: Mutex::new(gate),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Checkpoint for Gated {
    fn load(&self) -> Result<Option<CheckpointData>, IpamdError> {
        self.inner.load()
    }

    fn store(&self, data: &CheckpointData) -> Result<(), IpamdError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            if !gate.recv().unwrap() {
                return Err(IpamdError::CheckpointWrite {
                    path: PathBuf::from("<gated>"),
                    step: "writing",
                    source: std::io::Error::other("gate said fail"),
                });
            }
        }
        self.inner.store(data)
    }
}

/// Polls `cond`; the bound only keeps a broken test from hanging, it asserts no timing.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..60_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("gave up waiting for {what}");
}

fn memory_store(n: u32, cooldown_ms: u64) -> (Store, Arc<MemoryCheckpoint>) {
    let mem = Arc::new(MemoryCheckpoint::new());
    (Store::new(datastore(n, cooldown_ms), mem.clone()), mem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_assigns_share_checkpoint_writes() {
    let mem = Arc::new(MemoryCheckpoint::new());
    let (open, gate) = mpsc::channel();
    let cp = Gated::new(mem.clone(), Some(gate));
    let store = Store::new(datastore(256, 0), cp.clone());

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.assign(key(i), pod(i), 0).await })
        })
        .collect();
    // Hold the first write until every request has made its change: the rest must then share
    // the next write rather than each making its own.
    wait_until("200 assignments behind one write", || {
        store.counts(0).assigned == 200 && cp.calls() == 1
    })
    .await;
    open.send(true).unwrap();

    let mut ips = HashSet::new();
    for t in tasks {
        let a = t.await.unwrap().unwrap();
        assert!(ips.insert(a.ip), "{} handed out twice", a.ip);
    }
    assert_eq!(ips.len(), 200);
    assert!(
        (1..=2).contains(&cp.calls()),
        "200 assigns took {} writes",
        cp.calls()
    );
    let stored = mem.stored().unwrap();
    assert_eq!(stored.assignments.len(), 200);
    assert_eq!(stored, store.read(|ds| ds.snapshot()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_assigns_and_releases_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    let cp = Gated::new(Arc::new(FileCheckpoint::new(&path)), None);
    let store = Store::new(datastore(512, 30_000), cp.clone());

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let a = store.assign(key(i), pod(i), 0).await?;
                if i % 4 == 0 {
                    store.release(key(i), 1).await?;
                }
                Ok::<_, IpamdError>(a.ip)
            })
        })
        .collect();
    let mut ips = HashSet::new();
    for t in tasks {
        assert!(ips.insert(t.await.unwrap().unwrap()));
    }
    let mutations = 200 + 50;
    assert!(cp.calls() <= mutations, "{} writes", cp.calls());

    let on_disk = FileCheckpoint::new(&path).load().unwrap().unwrap();
    assert_eq!(on_disk.assignments.len(), 150);
    assert_eq!(on_disk.cooling.len(), 50);
    assert_eq!(on_disk, store.read(|ds| ds.snapshot()));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn failed_write_undoes_a_new_assignment() {
    let (store, mem) = memory_store(4, 60_000);
    store.assign(key(1), pod(1), 0).await.unwrap();

    mem.fail_next_stores(1);
    let err = store.assign(key(2), pod(2), 0).await.unwrap_err();
    assert!(matches!(err, IpamdError::CheckpointWrite { .. }), "{err:?}");
    assert!(store.get(&key(2)).is_none());
    let counts = store.counts(0);
    assert_eq!((counts.assigned, counts.cooling), (1, 0));
    assert_eq!(mem.stored().unwrap().assignments.len(), 1);

    // The address went straight back to the pool, not into cooldown: the retry gets it.
    let retried = store.assign(key(2), pod(2), 0).await.unwrap();
    assert_eq!(retried.ip, ip(2));
    assert_eq!(mem.stored().unwrap().assignments.len(), 2);
}

/// Regression: when only the directory fsync failed, the file already held the new
/// assignment, yet memory undid it; the next ADD got the address, and a restart brought
/// the first assignment back: two pods, one address.
#[tokio::test]
async fn a_failed_directory_fsync_keeps_what_the_file_holds() {
    let (store, mem) = memory_store(4, 60_000);
    store.assign(key(1), pod(1), 0).await.unwrap();

    mem.fail_next_after_storing(1);
    let err = store.assign(key(2), pod(2), 0).await.unwrap_err();
    assert!(
        matches!(err, IpamdError::CheckpointDirSync { .. }),
        "{err:?}"
    );
    let held = store
        .get(&key(2))
        .expect("memory keeps what the file holds");
    assert!(mem
        .stored()
        .unwrap()
        .assignments
        .iter()
        .any(|a| a.key == key(2) && a.ip == held.ip));

    assert_ne!(store.assign(key(3), pod(3), 0).await.unwrap().ip, held.ip);
    // The runtime retries the ADD: the same address, and now durable.
    assert_eq!(store.assign(key(2), pod(2), 0).await.unwrap(), held);
}

#[tokio::test]
async fn failed_write_keeps_a_release_and_a_retry_makes_it_durable() {
    let (store, mem) = memory_store(4, 60_000);
    store.assign(key(1), pod(1), 0).await.unwrap();

    mem.fail_next_stores(1);
    assert!(store.release(key(1), 10).await.is_err());
    assert!(store.get(&key(1)).is_none());
    assert_eq!(
        store.read(|ds| ds.address_state(ip(1), 10)),
        Some(AddressState::Cooling { until_ms: 60_010 })
    );
    assert_eq!(mem.stored().unwrap().assignments.len(), 1, "write failed");

    // The runtime retries the DEL: nothing left to release, but the file catches up.
    assert_eq!(store.release(key(1), 20).await.unwrap(), None);
    let stored = mem.stored().unwrap();
    assert!(stored.assignments.is_empty());
    assert_eq!(stored.cooling.len(), 1);
}

#[tokio::test]
async fn writes_only_when_something_is_not_yet_durable() {
    let mem = Arc::new(MemoryCheckpoint::new());
    let cp = Gated::new(mem.clone(), None);
    let store = Store::new(datastore(4, 0), cp.clone());
    store.persist().await.unwrap();
    store.persist().await.unwrap();
    assert_eq!(
        cp.calls(),
        1,
        "a second persist with no change must not write"
    );

    let a = store.assign(key(1), pod(1), 0).await.unwrap();
    assert_eq!(cp.calls(), 2);
    // A repeated ADD of a durable assignment returns at once.
    assert_eq!(store.assign(key(1), pod(2), 5).await.unwrap(), a);
    assert_eq!(store.release(key(9), 5).await.unwrap(), None);
    assert_eq!(cp.calls(), 2);
    // A reconcile that re-reports or grows the pool changes nothing the checkpoint holds.
    store.set_pool(pool(4)).await.1.unwrap();
    store.set_pool(pool(8)).await.1.unwrap();
    assert_eq!(cp.calls(), 2);
    assert_eq!(store.counts(5).total, 8);
    assert_eq!(store.get(&key(1)), Some(a));
    assert_eq!(store.assignments().len(), 1);
}

/// A repeated ADD arriving while the first ADD's write is in flight must not be answered
/// with an assignment that the failing write then undoes.
#[tokio::test]
async fn repeated_add_does_not_return_an_undone_assignment() {
    let mem = Arc::new(MemoryCheckpoint::new());
    let (decide, gate) = mpsc::channel();
    let cp = Gated::new(mem.clone(), Some(gate));
    let store = Store::new(datastore(4, 0), cp.clone());

    let first = tokio::spawn({
        let store = store.clone();
        async move { store.assign(key(1), pod(1), 0).await }
    });
    wait_until("the first write to start", || cp.calls() == 1).await;
    let repeat = tokio::spawn({
        let store = store.clone();
        async move { store.assign(key(1), pod(1), 0).await }
    });
    // Let the repeat find the assignment and queue behind the write in flight.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    decide.send(false).unwrap();

    assert!(first.await.unwrap().is_err());
    let got = repeat.await.unwrap().unwrap();
    assert_eq!(store.get(&key(1)), Some(got.clone()));
    assert_eq!(mem.stored().unwrap().assignments, vec![got]);
}

#[tokio::test]
async fn release_many_and_set_pool_report_what_left_the_pool() {
    let (store, mem) = memory_store(8, 1_000);
    for i in 1..=6 {
        store.assign(key(i), pod(i), 0).await.unwrap();
    }
    let released = store
        .release_many(vec![key(1), key(2), key(42)], 5)
        .await
        .unwrap();
    assert_eq!(released.len(), 2);
    assert_eq!(mem.stored().unwrap().cooling.len(), 2);
    assert_eq!(store.next_cooldown_expiry(5), Some(1_005));

    mem.fail_next_stores(1);
    assert!(store.release_many(vec![key(3)], 6).await.is_err());
    assert!(store.get(&key(3)).is_none(), "release stays in memory");
    assert_eq!(store.counts(6).cooling, 3);

    // Shrink the pool to its first four addresses: key(5) and key(6)'s addresses leave it.
    // The caller hears which even when the write fails; both stay held.
    mem.fail_next_stores(1);
    let (left, durable) = store.set_pool(pool(4)).await;
    assert!(durable.is_err());
    let mut left_keys: Vec<_> = left.into_iter().map(|a| a.key).collect();
    left_keys.sort();
    assert_eq!(left_keys, vec![key(5), key(6)]);
    assert_eq!(store.counts(5).total, 4);
    assert_eq!(store.counts(5).outside_pool, 2);

    store.persist().await.unwrap();
    let stored = mem.stored().unwrap();
    let mut stored_keys: Vec<_> = stored.assignments.iter().map(|a| a.key.clone()).collect();
    stored_keys.sort();
    assert_eq!(stored_keys, vec![key(4), key(5), key(6)]);
    assert_eq!(stored.cooling.len(), 3);
}

#[tokio::test]
async fn checkpoint_file_is_valid_after_every_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipam.json");
    let ds = datastore(16, 1_000);
    let store = Store::new(ds, Arc::new(FileCheckpoint::new(&path)));
    let check = || {
        let text = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap();
        let on_disk: CheckpointData = serde_json::from_str(&text).unwrap();
        assert_eq!(on_disk, store.read(|ds| ds.snapshot()));
        assert_eq!(on_disk.mode, vpc_cni_proto::Mode::Overlay);
    };

    store.persist().await.unwrap();
    check();
    for i in 0..5 {
        store.assign(key(i), pod(i), 10).await.unwrap();
        check();
    }
    store.release(key(1), 20).await.unwrap();
    check();
    store.release(key(1), 21).await.unwrap();
    check();
    store.release_many(vec![key(2), key(3)], 30).await.unwrap();
    check();
    store.set_pool(pool(3)).await.1.unwrap();
    check();
    store.assign(key(9), pod(9), 2_000).await.unwrap();
    check();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
