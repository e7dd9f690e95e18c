//! The address pool and its assignments: pure state, no I/O and no clock.
//!
//! Time comes in as `now_ms` (unix milliseconds) so the same code runs in the daemon and in
//! tests, and cooldowns written to the checkpoint stay meaningful across a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use serde::Serialize;
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_proto::Mode;

use super::ranges::{AddressRanges, RangeMap};
use super::types::{
    Assignment, AttachmentKey, CheckpointData, CoolingAddress, PodIdentity, PoolAddress,
    CHECKPOINT_VERSION,
};
use crate::error::IpamdError;

/// Pool sizes in the AWS VPC CNI's terms: `available = total - (assigned - outside_pool) -
/// cooling`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolCounts {
    pub total: usize,
    /// Every address a pod holds, in the pool or not.
    pub assigned: usize,
    /// Held addresses the latest pool did not show (see [`Datastore::set_pool`]).
    pub outside_pool: usize,
    pub cooling: usize,
    pub available: usize,
}

/// Where one pool address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressState {
    Free,
    Assigned,
    /// Released, not reusable before `until_ms`.
    Cooling {
        until_ms: u64,
    },
}

/// Container-id prefix of assignments rebuilt from the kernel (see [`Datastore::adopt`]).
pub const ADOPTED_PREFIX: &str = "adopted-from-kernel:";

/// What `Datastore::restore` kept and what it threw away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Assignments taken over from the checkpoint, those outside the pool included.
    pub restored: usize,
    /// Restored assignments whose address the current pool does not show. They are kept
    /// (held outside the pool) until DEL or the veth sweep releases them: the pool is one
    /// observation, and a pod may still be using the address.
    pub outside_pool: Vec<Assignment>,
    /// Assignments whose key or address is already taken (a damaged or hand-edited file).
    pub dropped_conflicts: Vec<Assignment>,
    /// Cooling addresses taken over.
    pub cooling_restored: usize,
    /// Cooling addresses whose cooldown had already passed, or that left the pool.
    pub cooling_dropped: usize,
    /// The mode recorded in the checkpoint (restore does not change the datastore's mode).
    pub checkpoint_mode: Option<Mode>,
}

/// The pool and its assignments.
///
/// Every pool address is in exactly one of `free`, `assigned` (through its key) or `cooling`,
/// so handing out an address is a pop from an ordered set rather than a scan of the pool.
/// The pool and the free set are kept as runs of consecutive addresses: what they cost grows
/// with the runs (ENIs, prefixes, holes left by pods), not with the addresses, so a /16 pod
/// CIDR costs what a /24 does.
#[derive(Debug, Clone)]
pub struct Datastore {
    pool_name: String,
    mode: Mode,
    cooldown_ms: u64,
    pool: RangeMap<Placement>,
    free: AddressRanges,
    assigned: BTreeMap<AttachmentKey, Assignment>,
    /// Who holds each assigned address, in the pool or not (kept beside `assigned`).
    holders: HashMap<Ipv4Addr, AttachmentKey>,
    cooling: HashMap<Ipv4Addr, u64>,
    /// `(until_ms, ip)` for every entry of `cooling`, so expiries are found in order.
    cooling_queue: BTreeSet<(u64, Ipv4Addr)>,
    /// Time of the latest repeated ADD per attachment (not checkpointed).
    last_add_ms: HashMap<AttachmentKey, u64>,
    /// When each address a pod gave back was free again (its cooldown's end), until a pod
    /// takes it: the pool controller gives back only addresses that stayed unused for a while.
    /// Not checkpointed: after a restart only the addresses still cooling are known.
    freed_at: HashMap<Ipv4Addr, u64>,
}

impl Datastore {
    /// An empty pool of a node in `mode`; `pool_name` appears in error messages
    /// ("pod CIDR 10.1.0.0/24").
    pub fn new(pool_name: String, mode: Mode, cooldown_ms: u64) -> Self {
        Self {
            pool_name,
            mode,
            cooldown_ms,
            pool: RangeMap::new(),
            free: AddressRanges::new(),
            assigned: BTreeMap::new(),
            holders: HashMap::new(),
            cooling: HashMap::new(),
            cooling_queue: BTreeSet::new(),
            last_add_ms: HashMap::new(),
            freed_at: HashMap::new(),
        }
    }

    /// When the plugin last asked for this attachment: the first ADD or a
    /// later repeat. The veth sweep measures the grace period from here.
    pub fn last_add_ms(&self, key: &AttachmentKey) -> Option<u64> {
        let assigned = self.assigned.get(key)?.assigned_at_ms;
        Some(
            self.last_add_ms
                .get(key)
                .map_or(assigned, |t| (*t).max(assigned)),
        )
    }

    pub fn pool_name(&self) -> &str {
        &self.pool_name
    }

    /// The mode ipamd runs in; written to the checkpoint so a restart keeps the decision
    /// made at boot.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Replaces the pool, and returns the assignments whose address this change took out of
    /// it.
    ///
    /// Assignments are never dropped here: a pool is one observation (IMDS is eventually
    /// consistent, an ENI link can be briefly absent), and dropping an address a pod still
    /// uses would hand it to the next pod when it shows up again. An assignment outside the
    /// pool stays held until DEL or the veth sweep releases it; while it is held its address
    /// is never free, whichever pool shows it. Cooldowns of departed addresses are
    /// forgotten.
    pub fn set_pool(&mut self, addrs: impl IntoIterator<Item = PoolAddress>) -> Vec<Assignment> {
        let previous = std::mem::replace(
            &mut self.pool,
            addrs
                .into_iter()
                .map(|a| (a.ip, Placement::of(&a)))
                .collect(),
        );
        let left: Vec<Assignment> = self
            .assigned
            .values()
            .filter(|a| previous.contains(a.ip) && !self.pool.contains(a.ip))
            .cloned()
            .collect();

        let pool = &self.pool;
        self.cooling.retain(|ip, _| pool.contains(*ip));
        self.cooling_queue.retain(|(_, ip)| pool.contains(*ip));
        self.freed_at.retain(|ip, _| pool.contains(*ip));

        self.free = self.pool.keys();
        for ip in self.holders.keys().chain(self.cooling.keys()) {
            self.free.remove(*ip);
        }
        left
    }

    /// The pool as the fewest CIDR blocks that hold exactly its addresses: what a VPC-mode
    /// node of a hybrid cluster announces to the overlay nodes.
    #[must_use]
    pub fn pool_cidrs(&self) -> Vec<Ipv4Cidr> {
        self.pool.cidrs()
    }

    /// When a free address came back from its last pod (the end of that pod's cooldown);
    /// `None` for one no pod has held since it joined the pool (or since ipamd started).
    pub fn free_since(&self, ip: Ipv4Addr) -> Option<u64> {
        self.freed_at.get(&ip).copied()
    }

    /// Addresses a new assignment could get now (cooldowns that have run out aside).
    pub(super) fn free_addresses(&self) -> &AddressRanges {
        &self.free
    }

    /// How many runs of consecutive addresses hold the pool (its memory cost).
    #[cfg(test)]
    pub(super) fn pool_runs(&self) -> usize {
        self.pool.runs()
    }

    /// Assignments whose address the current pool does not show.
    pub fn outside_pool(&self) -> impl Iterator<Item = &Assignment> {
        self.assigned.values().filter(|a| !self.pool.contains(a.ip))
    }

    /// Every assignment with where the current pool places its address; `None` for one
    /// outside the pool.
    pub fn placed_assignments(&self) -> impl Iterator<Item = (&Assignment, Option<PoolAddress>)> {
        self.assigned
            .values()
            .map(|a| (a, self.pool.get(a.ip).map(|p| p.at(a.ip))))
    }

    /// The table and device a pod on `ip` is wired with; main and the primary device for an
    /// address outside the pool.
    fn placement(&self, ip: Ipv4Addr) -> (u32, u32) {
        self.pool
            .get(ip)
            .map_or((0, 0), |p| (p.route_table, p.device_number))
    }

    fn hold(&mut self, assignment: Assignment) {
        self.freed_at.remove(&assignment.ip);
        self.holders.insert(assignment.ip, assignment.key.clone());
        self.assigned.insert(assignment.key.clone(), assignment);
    }

    fn unhold(&mut self, key: &AttachmentKey) -> Option<Assignment> {
        let assignment = self.assigned.remove(key)?;
        self.holders.remove(&assignment.ip);
        Some(assignment)
    }

    /// Takes `ips` out of the pool when every one of them is free (or already out of it) at
    /// `now_ms`, and changes nothing otherwise. Checking and removing under one borrow is what
    /// keeps a pod from being handed an address the controller is about to give back.
    pub fn withdraw_if_free(&mut self, ips: &[Ipv4Addr], now_ms: u64) -> bool {
        let all_free = ips.iter().all(|ip| {
            matches!(
                self.address_state(*ip, now_ms),
                Some(AddressState::Free) | None
            )
        });
        if !all_free {
            return false;
        }
        for ip in ips {
            if self.pool.remove(*ip) {
                self.free.remove(*ip);
                self.freed_at.remove(ip);
                if let Some(until) = self.cooling.remove(ip) {
                    self.cooling_queue.remove(&(until, *ip));
                }
            }
        }
        true
    }

    /// Assigns an address to `key`, lowest free address first.
    ///
    /// Idempotent: if `key` already holds an address, that assignment comes back with `false`
    /// (a runtime may repeat an ADD), and `pod` is not looked at.
    pub fn assign(
        &mut self,
        key: AttachmentKey,
        pod: PodIdentity,
        now_ms: u64,
    ) -> Result<(Assignment, bool), IpamdError> {
        if let Some(existing) = self.assigned.get(&key) {
            // A repeated ADD re-wires the pod (its host veth is briefly gone):
            // the grace period restarts so the veth sweep cannot take the
            // address in that window. Memory only: a restart keeps the
            // original time, and the re-wired veth exists by then.
            self.last_add_ms.insert(key.clone(), now_ms);
            return Ok((existing.clone(), false));
        }
        self.expire_cooldowns(now_ms);
        let Some(ip) = self.free.pop_first() else {
            let counts = self.counts(now_ms);
            return Err(IpamdError::PoolExhausted {
                pool: self.pool_name.clone(),
                total: counts.total,
                assigned: counts.assigned,
                cooling: counts.cooling,
            });
        };
        let (route_table, device_number) = self.placement(ip);
        let assignment = Assignment {
            key: key.clone(),
            pod,
            ip,
            route_table,
            device_number,
            assigned_at_ms: now_ms,
        };
        self.hold(assignment.clone());
        Ok((assignment, true))
    }

    /// Releases `key`'s address into cooldown until `now_ms + cooldown`. Unknown keys are not
    /// an error (DEL is idempotent): they give `None`.
    pub fn release(&mut self, key: &AttachmentKey, now_ms: u64) -> Option<Assignment> {
        let assignment = self.unhold(key)?;
        self.last_add_ms.remove(key);
        let until_ms = now_ms.saturating_add(self.cooldown_ms);
        self.start_cooling(assignment.ip, until_ms, now_ms);
        Some(assignment)
    }

    /// Releases `key`'s address straight back to the free set: for undoing an assignment that
    /// never reached a pod (its checkpoint write failed), where a cooldown protects nothing.
    pub fn release_without_cooldown(&mut self, key: &AttachmentKey) -> Option<Assignment> {
        let assignment = self.unhold(key)?;
        self.last_add_ms.remove(key);
        if self.pool.contains(assignment.ip) {
            self.free.insert(assignment.ip, ());
        }
        Some(assignment)
    }

    pub fn get(&self, key: &AttachmentKey) -> Option<&Assignment> {
        self.assigned.get(key)
    }

    /// All assignments, ordered by key.
    pub fn assignments(&self) -> impl Iterator<Item = &Assignment> {
        self.assigned.values()
    }

    /// `None` for an address outside the pool that no pod holds; a held one is `Assigned`
    /// wherever it is.
    pub fn address_state(&self, ip: Ipv4Addr, now_ms: u64) -> Option<AddressState> {
        if self.holders.contains_key(&ip) {
            return Some(AddressState::Assigned);
        }
        if !self.pool.contains(ip) {
            return None;
        }
        match self.cooling.get(&ip) {
            Some(&until_ms) if until_ms > now_ms => Some(AddressState::Cooling { until_ms }),
            Some(_) => Some(AddressState::Free),
            None if self.free.contains(ip) => Some(AddressState::Free),
            None => Some(AddressState::Assigned),
        }
    }

    pub fn counts(&self, now_ms: u64) -> PoolCounts {
        let total = self.pool.len();
        let assigned = self.assigned.len();
        let outside_pool = self.outside_pool().count();
        let cooling = self.cooling_queue.range(after(now_ms)..).count();
        PoolCounts {
            total,
            assigned,
            outside_pool,
            cooling,
            available: total.saturating_sub(assigned - outside_pool + cooling),
        }
    }

    /// When the next cooling address becomes available, if any is still cooling at `now_ms`;
    /// the pool controller sleeps until then rather than polling.
    pub fn next_cooldown_expiry(&self, now_ms: u64) -> Option<u64> {
        self.cooling_queue
            .range(after(now_ms)..)
            .next()
            .map(|&(until_ms, _)| until_ms)
    }

    /// How many cooling entries a snapshot would hold (expired ones included until drained).
    pub(super) fn snapshot_cooling_len(&self) -> usize {
        self.cooling.len()
    }

    /// The durable form of the state.
    pub fn snapshot(&self) -> CheckpointData {
        let mut cooling: Vec<CoolingAddress> = self
            .cooling
            .iter()
            .map(|(&ip, &until_ms)| CoolingAddress { ip, until_ms })
            .collect();
        cooling.sort_by_key(|c| c.ip);
        CheckpointData {
            version: CHECKPOINT_VERSION.to_owned(),
            mode: self.mode,
            assignments: self.assigned.values().cloned().collect(),
            cooling,
        }
    }

    /// Takes over the assignments and cooldowns of a checkpoint, on top of the current pool
    /// (call `set_pool` first). Assignments whose address the pool does not show are kept
    /// and reported (see [`Datastore::set_pool`]); only those that clash with one already
    /// taken over are dropped. The mode is not changed: the daemon decides it from
    /// `data.mode` before.
    pub fn restore(&mut self, data: CheckpointData, now_ms: u64) -> RestoreReport {
        let mut report = RestoreReport {
            checkpoint_mode: Some(data.mode),
            ..RestoreReport::default()
        };
        for assignment in data.assignments {
            let in_pool = self.pool.contains(assignment.ip);
            let clash = self.assigned.contains_key(&assignment.key)
                || self.holders.contains_key(&assignment.ip)
                || (in_pool && !self.take_for_restore(assignment.ip));
            if clash {
                report.dropped_conflicts.push(assignment);
                continue;
            }
            if !in_pool {
                report.outside_pool.push(assignment.clone());
            }
            self.hold(assignment);
            report.restored += 1;
        }
        // A clock stepped back since the checkpoint must not park an address for longer than
        // one cooldown from now.
        let latest = now_ms.saturating_add(self.cooldown_ms);
        for c in data.cooling {
            if c.until_ms > now_ms && self.free.contains(c.ip) {
                self.start_cooling(c.ip, c.until_ms.min(latest), now_ms);
                report.cooling_restored += 1;
            } else {
                report.cooling_dropped += 1;
            }
        }
        report
    }

    /// Holds `ip` for a pod the kernel shows on `host_veth` when no assignment accounts for
    /// it (the checkpoint was lost or is older than the pod); `None` when one does.
    ///
    /// The runtime's container id is not in the kernel, so the key names the veth
    /// (`ADOPTED_PREFIX` + veth, interface `eth0`) and the network name stays empty: GC never
    /// matches it, and the veth sweep releases it once the pod's veth is gone.
    pub fn adopt(&mut self, ip: Ipv4Addr, host_veth: &str, now_ms: u64) -> Option<Assignment> {
        if self.holders.contains_key(&ip) {
            return None;
        }
        let key = AttachmentKey {
            container_id: format!("{ADOPTED_PREFIX}{host_veth}"),
            ifname: "eth0".to_owned(),
        };
        if self.assigned.contains_key(&key) {
            return None;
        }
        if self.pool.contains(ip) {
            self.free.remove(ip);
            if let Some(until_ms) = self.cooling.remove(&ip) {
                self.cooling_queue.remove(&(until_ms, ip));
            }
        }
        let (route_table, device_number) = self.placement(ip);
        let assignment = Assignment {
            key: key.clone(),
            pod: PodIdentity {
                host_veth: host_veth.to_owned(),
                ..PodIdentity::default()
            },
            ip,
            route_table,
            device_number,
            assigned_at_ms: now_ms,
        };
        self.hold(assignment.clone());
        Some(assignment)
    }

    /// Gives an assignment rebuilt from the kernel (see [`Datastore::adopt`]) the runtime's
    /// key, when a request names the pod whose host veth it was found on and `key` holds
    /// nothing yet; returns it. From then on DEL, CHECK and a repeated ADD find it as if the
    /// checkpoint had never been lost.
    pub fn claim_adopted(&mut self, key: &AttachmentKey, pod: &PodIdentity) -> Option<Assignment> {
        if self.assigned.contains_key(key) {
            return None;
        }
        let adopted_key = AttachmentKey {
            container_id: format!("{ADOPTED_PREFIX}{}", pod.host_veth),
            ifname: "eth0".to_owned(),
        };
        let adopted = self.unhold(&adopted_key)?;
        let claimed = Assignment {
            key: key.clone(),
            pod: pod.clone(),
            ..adopted
        };
        self.hold(claimed.clone());
        Some(claimed)
    }

    /// Moves `ip` out of the free set or an expired cooldown; false if it is taken.
    fn take_for_restore(&mut self, ip: Ipv4Addr) -> bool {
        if self.free.remove(ip) {
            return true;
        }
        match self.cooling.get(&ip).copied() {
            Some(until_ms) => {
                self.cooling.remove(&ip);
                self.cooling_queue.remove(&(until_ms, ip));
                true
            }
            None => false,
        }
    }

    fn start_cooling(&mut self, ip: Ipv4Addr, until_ms: u64, now_ms: u64) {
        if !self.pool.contains(ip) {
            return;
        }
        self.free.remove(ip);
        self.freed_at.insert(ip, until_ms.max(now_ms));
        if until_ms <= now_ms {
            self.free.insert(ip, ());
            return;
        }
        if let Some(old) = self.cooling.insert(ip, until_ms) {
            self.cooling_queue.remove(&(old, ip));
        }
        self.cooling_queue.insert((until_ms, ip));
    }

    fn expire_cooldowns(&mut self, now_ms: u64) {
        while let Some(&(until_ms, ip)) = self.cooling_queue.first() {
            if until_ms > now_ms {
                break;
            }
            self.cooling_queue.pop_first();
            self.cooling.remove(&ip);
            self.free.insert(ip, ());
        }
    }
}

/// The first queue position still cooling at `now_ms` (cooldowns end at `until_ms` inclusive).
fn after(now_ms: u64) -> (u64, Ipv4Addr) {
    (now_ms.saturating_add(1), Ipv4Addr::UNSPECIFIED)
}

/// Where a pool address lives: the route table pods on it leave through and the device
/// index of its interface (the pool's per-run value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placement {
    route_table: u32,
    device_number: u32,
}

impl Placement {
    fn of(address: &PoolAddress) -> Self {
        Self {
            route_table: address.route_table,
            device_number: address.device_number,
        }
    }

    fn at(self, ip: Ipv4Addr) -> PoolAddress {
        PoolAddress {
            ip,
            route_table: self.route_table,
            device_number: self.device_number,
        }
    }
}
