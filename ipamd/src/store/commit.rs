//! `Store`: the datastore shared by concurrent requests, each mutation acknowledged only once
//! a checkpoint holding it is durable, with concurrent mutations sharing one write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::checkpoint::Checkpoint;
use super::datastore::{Datastore, PoolCounts};
use super::types::{Assignment, AttachmentKey, PodIdentity, PoolAddress};
use crate::error::IpamdError;

/// The async front end of the datastore; cheap to clone, all clones share one state.
///
/// Group commit: every change bumps a generation number. A caller that needs its change
/// durable takes the writer lock; if a write that finished meanwhile already covered its
/// generation it returns at once, otherwise it snapshots the state as it is now (covering
/// everyone's changes so far) and writes that. A burst of N requests thus costs a couple of
/// fsyncs, not N.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// Never held across an await.
    state: Mutex<State>,
    /// The highest generation known to be durable; held for the whole of each write, so
    /// writes never overlap and the file never goes back to an older state.
    durable: tokio::sync::Mutex<u64>,
    checkpoint: Arc<dyn Checkpoint>,
    /// Bumped whenever an address may have become free: a release, an undone assignment, a
    /// new pool. An ADD waiting on an empty pool wakes on it instead of polling.
    freed: watch::Sender<u64>,
    /// Told of every checkpoint write (ipamd's metrics); set once, after start-up.
    writes: OnceLock<WriteObserver>,
}

/// One checkpoint write, as [`Store::observe_writes`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteReport {
    /// From the start of the write to its end (fsyncs and rename included).
    pub took: Duration,
    /// Changes it made durable at once (group commit: requests that shared it).
    pub changes: u64,
    pub ok: bool,
}

/// What [`Store::observe_writes`] calls after each write.
pub type WriteObserver = Arc<dyn Fn(WriteReport) + Send + Sync>;

struct State {
    ds: Datastore,
    generation: u64,
    /// The generation at which each assignment made through this store was created; lets a
    /// repeated ADD tell "the assignment I saw is durable" from "it was undone and made again".
    created: HashMap<AttachmentKey, u64>,
}

impl Store {
    /// Wraps a datastore (already restored from the checkpoint, if any). Its state is not
    /// assumed durable: `persist` writes it.
    pub fn new(datastore: Datastore, checkpoint: Arc<dyn Checkpoint>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    ds: datastore,
                    generation: 1,
                    created: HashMap::new(),
                }),
                durable: tokio::sync::Mutex::new(0),
                checkpoint,
                freed: watch::Sender::new(0),
                writes: OnceLock::new(),
            }),
        }
    }

    /// Reports every later checkpoint write to `observer`; only the first call counts.
    pub fn observe_writes(&self, observer: WriteObserver) {
        let _ = self.inner.writes.set(observer);
    }

    /// A receiver that sees a change whenever an address may have become free (released,
    /// handed back, or new in the pool). Addresses leaving cooldown are not announced: a
    /// waiter sleeps until [`Store::next_cooldown_expiry`] for those.
    pub fn subscribe_freed(&self) -> watch::Receiver<u64> {
        self.inner.freed.subscribe()
    }

    fn announce_freed(&self) {
        self.inner.freed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Assigns an address to `key` (idempotent: a repeated ADD gets the same address) and
    /// returns once the assignment is durable. If the write fails, a new assignment is undone
    /// so the address goes straight back to the pool, and the error is returned.
    pub async fn assign(
        &self,
        key: AttachmentKey,
        pod: PodIdentity,
        now_ms: u64,
    ) -> Result<Assignment, IpamdError> {
        loop {
            let (assignment, newly, created, generation) = {
                let mut s = self.inner.lock();
                let (assignment, newly) = s.ds.assign(key.clone(), pod.clone(), now_ms)?;
                if newly {
                    s.generation += 1;
                    let g = s.generation;
                    s.created.insert(key.clone(), g);
                }
                let created = s.created.get(&key).copied().unwrap_or(0);
                (assignment, newly, created, s.generation)
            };

            if newly {
                let undo_key = key.clone();
                let written = self
                    .commit(generation, move |s| {
                        // Only undo our own assignment: a DEL and a new ADD may have replaced it.
                        if s.created.get(&undo_key) == Some(&created) {
                            s.created.remove(&undo_key);
                            s.ds.release_without_cooldown(&undo_key);
                            s.generation += 1;
                        }
                    })
                    .await;
                if written.is_err() {
                    self.announce_freed();
                }
                written?;
                return Ok(assignment);
            }

            self.commit(generation, |_| {}).await?;
            // Another request created this assignment; its write may have failed and undone it
            // after we looked. It is durable only if it lived on through our commit.
            let s = self.inner.lock();
            if s.ds.get(&key).is_some() && s.created.get(&key).copied().unwrap_or(0) == created {
                return Ok(assignment);
            }
        }
    }

    /// Releases `key`'s address into cooldown; `None` if it held none (DEL is idempotent).
    /// If the write fails the address stays released in memory (it is cooling, nobody gets
    /// it) and the error is returned; the next successful write makes the release durable.
    pub async fn release(
        &self,
        key: AttachmentKey,
        now_ms: u64,
    ) -> Result<Option<Assignment>, IpamdError> {
        let (released, generation) = {
            let mut s = self.inner.lock();
            let released = s.release(&key, now_ms);
            (released, s.generation)
        };
        if released.is_some() {
            self.announce_freed();
        }
        // Even a release of an unknown key writes if a failed write left the file behind:
        // a retried DEL must be able to make its first attempt's release durable.
        self.commit(generation, |_| {}).await?;
        Ok(released)
    }

    /// Releases many keys with one write (GC, the veth sweep); unknown keys are skipped.
    /// On a failed write the releases stay in memory, as with `release`.
    pub async fn release_many(
        &self,
        keys: Vec<AttachmentKey>,
        now_ms: u64,
    ) -> Result<Vec<Assignment>, IpamdError> {
        let (released, generation) = {
            let mut s = self.inner.lock();
            let released: Vec<Assignment> =
                keys.iter().filter_map(|k| s.release(k, now_ms)).collect();
            (released, s.generation)
        };
        if !released.is_empty() {
            self.announce_freed();
        }
        self.commit(generation, |_| {}).await?;
        Ok(released)
    }

    /// Replaces the pool and returns the assignments whose address this change took out of
    /// it; they stay held (see [`Datastore::set_pool`]). The error is the checkpoint write's.
    pub async fn set_pool(
        &self,
        addrs: impl IntoIterator<Item = PoolAddress>,
    ) -> (Vec<Assignment>, Result<(), IpamdError>) {
        let (left, gained, generation) = {
            let mut s = self.inner.lock();
            let cooling_before = s.ds.snapshot_cooling_len();
            let free_before = s.ds.free_addresses().clone();
            let left = s.ds.set_pool(addrs);
            // The pool itself is not in the checkpoint (it is rediscovered at start), so a
            // periodic reconcile that changes nothing durable costs no write.
            if s.ds.snapshot_cooling_len() != cooling_before {
                s.generation += 1;
            }
            let gained = !s.ds.free_addresses().is_subset_of(&free_before);
            (left, gained, s.generation)
        };
        // Only news wakes waiting ADDs: a pass that frees nothing must not send them back
        // to the controller for another pass, and another, back to back.
        if gained {
            self.announce_freed();
        }
        (left, self.commit(generation, |_| {}).await)
    }

    /// Takes `ips` out of the pool if all are free right now, atomically with respect to
    /// ADDs (see [`Datastore::withdraw_if_free`]); false when one is in use or cooling.
    pub async fn withdraw_if_free(
        &self,
        ips: &[std::net::Ipv4Addr],
        now_ms: u64,
    ) -> Result<bool, IpamdError> {
        let (withdrawn, generation) = {
            let mut s = self.inner.lock();
            let cooling_before = s.ds.snapshot_cooling_len();
            let withdrawn = s.ds.withdraw_if_free(ips, now_ms);
            // Expired cooldowns of withdrawn addresses leave the checkpoint with them.
            if s.ds.snapshot_cooling_len() != cooling_before {
                s.generation += 1;
            }
            (withdrawn, s.generation)
        };
        self.commit(generation, |_| {}).await?;
        Ok(withdrawn)
    }

    /// Loads a checkpoint's assignments and cooldowns into the live store (VPC
    /// mode learns its pool from IMDS first, so restore comes after) and
    /// makes the result durable.
    pub async fn restore(
        &self,
        data: super::CheckpointData,
        now_ms: u64,
    ) -> (super::RestoreReport, Result<(), IpamdError>) {
        let (report, generation) = {
            let mut s = self.inner.lock();
            let report = s.ds.restore(data, now_ms);
            s.generation += 1;
            (report, s.generation)
        };
        (report, self.commit(generation, |_| {}).await)
    }

    /// Holds every address of `pods` (address -> host veth, as the kernel shows them) that no
    /// assignment accounts for, and makes that durable; returns the new assignments.
    pub async fn adopt(
        &self,
        pods: &std::collections::BTreeMap<std::net::Ipv4Addr, String>,
        now_ms: u64,
    ) -> (Vec<Assignment>, Result<(), IpamdError>) {
        let (adopted, generation) = {
            let mut s = self.inner.lock();
            let adopted: Vec<Assignment> = pods
                .iter()
                .filter_map(|(ip, veth)| s.ds.adopt(*ip, veth, now_ms))
                .collect();
            if !adopted.is_empty() {
                s.generation += 1;
            }
            (adopted, s.generation)
        };
        (adopted, self.commit(generation, |_| {}).await)
    }

    /// Re-keys a rebuilt assignment to the runtime's attachment (see
    /// [`Datastore::claim_adopted`]) and makes that durable; `None`, with no write, when
    /// there is nothing to claim.
    pub async fn claim_adopted(
        &self,
        key: &AttachmentKey,
        pod: &PodIdentity,
    ) -> Result<Option<Assignment>, IpamdError> {
        let (claimed, generation) = {
            let mut s = self.inner.lock();
            let Some(claimed) = s.ds.claim_adopted(key, pod) else {
                return Ok(None);
            };
            s.generation += 1;
            (claimed, s.generation)
        };
        self.commit(generation, |_| {}).await?;
        Ok(Some(claimed))
    }

    /// Makes the current state durable (at start, after restore; or to retry a failed write).
    pub async fn persist(&self) -> Result<(), IpamdError> {
        let generation = self.inner.lock().generation;
        self.commit(generation, |_| {}).await
    }

    pub fn get(&self, key: &AttachmentKey) -> Option<Assignment> {
        self.inner.lock().ds.get(key).cloned()
    }

    pub fn assignments(&self) -> Vec<Assignment> {
        self.inner.lock().ds.assignments().cloned().collect()
    }

    pub fn counts(&self, now_ms: u64) -> PoolCounts {
        self.inner.lock().ds.counts(now_ms)
    }

    /// When the next cooling address becomes available (see `Datastore::next_cooldown_expiry`).
    pub fn next_cooldown_expiry(&self, now_ms: u64) -> Option<u64> {
        self.inner.lock().ds.next_cooldown_expiry(now_ms)
    }

    /// Read access to the whole datastore (mode, cooldowns, address states). `f` runs under
    /// the state lock: keep it short and do not block in it.
    pub fn read<R>(&self, f: impl FnOnce(&Datastore) -> R) -> R {
        f(&self.inner.lock().ds)
    }

    /// Waits until a checkpoint covering `generation` is durable, writing one if needed;
    /// on a failed write runs `on_failure` before any other write can start.
    ///
    /// Runs as its own task so a caller that goes away (a cancelled RPC) cannot release the
    /// writer lock while its blocking write is still running.
    async fn commit(
        &self,
        generation: u64,
        on_failure: impl FnOnce(&mut State) + Send + 'static,
    ) -> Result<(), IpamdError> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.commit(generation, on_failure).await })
            .await
            .unwrap_or_else(|source| Err(IpamdError::CheckpointTask { source }))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the datastore's sets consistent
        // (each method completes its moves before anything can panic), so keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn commit(
        &self,
        generation: u64,
        on_failure: impl FnOnce(&mut State),
    ) -> Result<(), IpamdError> {
        let mut durable = self.durable.lock().await;
        if *durable >= generation {
            return Ok(());
        }
        let (data, covers) = {
            let s = self.lock();
            (s.ds.snapshot(), s.generation)
        };
        let checkpoint = Arc::clone(&self.checkpoint);
        let started = Instant::now();
        let written = tokio::task::spawn_blocking(move || checkpoint.store(&data))
            .await
            .unwrap_or_else(|source| Err(IpamdError::CheckpointTask { source }));
        if let Some(observe) = self.writes.get() {
            observe(WriteReport {
                took: started.elapsed(),
                changes: covers.saturating_sub(*durable),
                ok: written.is_ok(),
            });
        }
        match written {
            Ok(()) => {
                *durable = covers;
                Ok(())
            }
            // The file already holds this state: undoing it in memory would free an address
            // that a restart brings back as assigned. Memory keeps it; the caller still
            // hears that it may not be durable, and the next write covers it again.
            Err(e @ IpamdError::CheckpointDirSync { .. }) => Err(e),
            Err(e) => {
                on_failure(&mut self.lock());
                Err(e)
            }
        }
    }
}

impl State {
    fn release(&mut self, key: &AttachmentKey, now_ms: u64) -> Option<Assignment> {
        let released = self.ds.release(key, now_ms)?;
        self.created.remove(key);
        self.generation += 1;
        Some(released)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.lock();
        f.debug_struct("Store")
            .field("pool", &s.ds.pool_name())
            .field("generation", &s.generation)
            .finish_non_exhaustive()
    }
}
