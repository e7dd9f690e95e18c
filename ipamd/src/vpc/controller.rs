//! `PoolController`: keeps the node's ENIs and addresses at the targets.
//!
//! Each pass reads the node (IMDS, cached EC2 tags, the datastore), asks the
//! pure pool math for the next step, executes it, and repeats until the
//! math says `Idle`. Passes run when the ADD path wakes the controller, when
//! a cooldown ends, and on a periodic tick that catches drift.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use vpc_cni_cloud::{Ec2, EniId, EniQuery, Imds, ImdsEni, InstanceLimits, NodeIdentity};
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_proto::time::{millis, Clock};

use super::math::{self, Limits, PoolConfig, PoolDecision};
use super::pacing::{Pacing, PacingConfig, Verdict};
use super::snapshot::{self, EniMeta, NodeSnapshot};
use super::subnets::FullSubnets;
use super::tags;
use crate::config::VpcSettings;
use crate::error::IpamdError;
use crate::store::Store;
use crate::vpc_datapath::VpcDatapath;

/// How long IMDS may keep showing a released address or a detached ENI
/// (its eventual consistency); they stay out of the pool that long.
pub(crate) const QUARANTINE_MS: u64 = 60_000;

/// Everything the controller is configured with.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub pool: PoolConfig,
    /// CLUSTER_NAME; empty = no cluster tag.
    pub cluster_name: String,
    pub additional_eni_tags: BTreeMap<String, String>,
    /// The periodic reconcile between wake-ups.
    pub reconcile_interval: Duration,
    pub leaked_eni_min_age: Duration,
    /// Bound on waiting for IMDS to show a new ENI or address.
    pub visibility_timeout: Duration,
    /// First pause of that wait; doubles up to a second.
    pub visibility_backoff: Duration,
    /// Bound on steps per pass, so a fight over the ENIs cannot spin.
    pub max_steps: usize,
    pub pacing: PacingConfig,
    /// ENABLE_SUBNET_DISCOVERY: new ENIs may go to tagged subnets (see `subnets`).
    pub subnet_discovery: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            pool: PoolConfig::default(),
            cluster_name: String::new(),
            additional_eni_tags: BTreeMap::new(),
            reconcile_interval: Duration::from_secs(30),
            leaked_eni_min_age: Duration::from_secs(300),
            visibility_timeout: Duration::from_secs(60),
            visibility_backoff: Duration::from_millis(100),
            max_steps: 64,
            pacing: PacingConfig::default(),
            subnet_discovery: false,
        }
    }
}

impl ControllerConfig {
    /// The controller's part of ipamd's VPC settings.
    #[must_use]
    pub fn from_settings(s: &VpcSettings) -> Self {
        ControllerConfig {
            pool: PoolConfig {
                warm_eni_target: s.warm_eni_target,
                warm_ip_target: s.warm_ip_target,
                minimum_ip_target: s.minimum_ip_target,
                warm_prefix_target: s.warm_prefix_target,
                prefix_delegation: s.enable_prefix_delegation,
                max_eni: s.max_eni,
                // The Node's capacity, when there is one, is set by the daemon.
                max_pods: s.max_pods.unwrap_or(0),
            },
            cluster_name: s.cluster_name.clone(),
            additional_eni_tags: s.additional_eni_tags.clone(),
            leaked_eni_min_age: s.leaked_eni_min_age,
            pacing: PacingConfig {
                shrink_interval_ms: millis(s.pool_shrink_interval),
                min_eni_age_ms: millis(s.min_eni_age),
                subnet_full_pause_ms: millis(s.subnet_full_pause),
            },
            subnet_discovery: s.enable_subnet_discovery,
            ..ControllerConfig::default()
        }
    }
}

/// How a pool step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Carried out (or found already done).
    Done,
    /// Not carried out, for a reason the next snapshot does not show: the pass ends.
    Declined,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub actions: Vec<PoolDecision>,
    /// A step the pacing rules held back, and when it may run (unix ms).
    pub held: Option<(PoolDecision, u64)>,
    /// When to look again because an attached ENI's link was not there to wire yet (unix
    /// ms): its addresses join the pool only once it is, and a waiting ADD needs them.
    pub look_again: Option<u64>,
    /// When the first address that rests after its pod becomes idle (unix ms): a shrink the
    /// resting held back may run then.
    pub resting_until: Option<u64>,
}

/// How soon a pass looks again for the link of an attached ENI it could not wire.
pub(crate) const UNWIRED_RETRY_MS: u64 = 1_000;

#[derive(Default)]
pub(crate) struct Caches {
    pub meta: HashMap<EniId, EniMeta>,
    /// Released address -> when it may be trusted from IMDS again.
    pub released: HashMap<Ipv4Addr, u64>,
    /// Detached ENI -> likewise.
    pub detached: HashMap<EniId, u64>,
    pub pacing: Pacing,
    /// Delegated prefixes seen that are not /28s (reported once each, never used).
    pub unusable_prefixes: BTreeSet<Ipv4Cidr>,
    /// Held addresses the pool does not show, and what we know of each.
    pub outside_pool: HashMap<Ipv4Addr, OutsideWatch>,
    /// The latest pass's picture of the node, for introspection and metrics.
    pub seen: Option<Seen>,
    pub reconciled: ReconcileCounts,
    /// Subnets EC2 called full, skipped by subnet discovery until their pause ends.
    pub full_subnets: FullSubnets,
    /// The security groups last given to an ENI of ours, until IMDS shows them.
    pub groups_given: HashMap<EniId, Vec<String>>,
}

/// The node's ENIs as the latest pass saw them (read by introspection and metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Attached ENIs as IMDS showed them, by device number.
    pub enis: Vec<ImdsEni>,
    /// Those tagged `no_manage`: counted against the ENI limit, never used.
    pub unmanaged: Vec<EniId>,
    /// Device numbers whose link the node datapath could not wire yet.
    pub unwired: Vec<u32>,
    /// The addresses pods may get, sorted.
    pub pool: Vec<Ipv4Addr>,
    /// When the pass looked (unix ms).
    pub at_ms: u64,
}

/// What passes found changed since the pass before them, added up since start (the AWS VPC
/// CNI's `awscni_reconcile_count`): ENIs that appeared or went, pool addresses that appeared
/// or went. The first pass is the baseline and counts nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileCounts {
    pub enis_added: u64,
    pub enis_removed: u64,
    pub addresses_added: u64,
    pub addresses_removed: u64,
}

impl ReconcileCounts {
    /// Adds what changed from `before` to `after`.
    fn add(&mut self, before: &Seen, after: &Seen) {
        let ids = |s: &Seen| {
            s.enis
                .iter()
                .map(|e| e.eni_id.clone())
                .collect::<HashSet<_>>()
        };
        let (was, is) = (ids(before), ids(after));
        let was_ips: HashSet<&Ipv4Addr> = before.pool.iter().collect();
        let is_ips: HashSet<&Ipv4Addr> = after.pool.iter().collect();
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        self.enis_added += count(is.difference(&was).count());
        self.enis_removed += count(was.difference(&is).count());
        self.addresses_added += count(is_ips.difference(&was_ips).count());
        self.addresses_removed += count(was_ips.difference(&is_ips).count());
    }
}

/// An assigned address missing from the pool: since when, and whether EC2 confirmed that it
/// left the node (then it has been reported, once).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutsideWatch {
    pub since_ms: u64,
    pub reported: bool,
}

pub struct PoolController {
    pub(crate) ec2: Arc<dyn Ec2>,
    pub(crate) imds: Arc<dyn Imds>,
    pub(crate) store: Store,
    pub(crate) node: NodeIdentity,
    pub(crate) limits: Limits,
    pub(crate) config: ControllerConfig,
    pub(crate) clock: Clock,
    caches: Mutex<Caches>,
    wake: Notify,
    /// Wires ENIs on the node before their addresses reach the pool.
    datapath: Option<Arc<VpcDatapath>>,
    /// One pass at a time: two would both see the same shortfall.
    pass: tokio::sync::Mutex<()>,
    /// Whether passes make the pods' 1536 rules match the store: only once the store holds
    /// the running pods (after the checkpoint and the kernel's pods are in), since a store
    /// that does not know them yet would have their rules removed.
    pod_rules: AtomicBool,
    /// Told of every failed pass (the daemon posts Events on the Node from it).
    on_error: Option<ErrorSink>,
}

/// Where failed passes are reported, beside the log.
pub type ErrorSink = Arc<dyn Fn(&IpamdError) + Send + Sync>;

impl PoolController {
    pub fn new(
        ec2: Arc<dyn Ec2>,
        imds: Arc<dyn Imds>,
        store: Store,
        node: NodeIdentity,
        limits: InstanceLimits,
        config: ControllerConfig,
        clock: Clock,
    ) -> Self {
        let pacing = config.pacing;
        PoolController {
            ec2,
            imds,
            store,
            node,
            limits: Limits {
                max_enis: limits.max_enis,
                ipv4_per_eni: limits.ipv4_per_eni,
                nitro: limits.nitro,
                vcpus: limits.vcpus,
            },
            config,
            clock,
            caches: Mutex::new(Caches {
                pacing: Pacing::new(pacing),
                ..Caches::default()
            }),
            wake: Notify::new(),
            datapath: None,
            pass: tokio::sync::Mutex::new(()),
            pod_rules: AtomicBool::new(false),
            on_error: None,
        }
    }

    /// Reports every failed pass to `sink` too.
    #[must_use]
    pub fn with_error_sink(mut self, sink: ErrorSink) -> Self {
        self.on_error = Some(sink);
        self
    }

    /// Has every snapshot wire the node's ENIs through `datapath` first and
    /// publish only addresses of ENIs it could wire.
    #[must_use]
    pub fn with_datapath(mut self, datapath: Arc<VpcDatapath>) -> Self {
        self.datapath = Some(datapath);
        self
    }

    /// From now on every pass also makes the pods' 1536 rules match the store (see
    /// [`VpcDatapath::sync_pod_rules`]); call once the store knows the running pods.
    pub fn own_pod_rules(&self) {
        self.pod_rules.store(true, Ordering::Release);
    }

    fn owns_pod_rules(&self) -> bool {
        self.pod_rules.load(Ordering::Acquire)
    }

    pub fn node(&self) -> &NodeIdentity {
        &self.node
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn pool_config(&self) -> PoolConfig {
        self.config.pool
    }

    /// Max pods for kubelet, as DESIGN.md computes it.
    pub fn max_pods(&self) -> u32 {
        math::max_pods(&self.config.pool, &self.limits)
    }

    /// Asks for a pass soon (the ADD path calls this when the pool runs low).
    /// Wakes that arrive during a pass are kept, so none is lost.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn now(&self) -> u64 {
        (self.clock)()
    }

    pub(crate) fn caches(&self) -> MutexGuard<'_, Caches> {
        self.caches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the node now and publishes its addresses to the datastore.
    pub async fn snapshot(&self) -> Result<NodeSnapshot, IpamdError> {
        let imds = self
            .imds
            .enis()
            .await
            .map_err(IpamdError::cloud("listing ENIs from IMDS"))?;
        self.learn_tags(&imds).await?;
        let now = self.now();
        let (meta, ips, enis) = {
            let mut c = self.caches();
            c.released.retain(|_, until| *until > now);
            c.detached.retain(|_, until| *until > now);
            let attached: HashSet<&EniId> = imds.iter().map(|e| &e.eni_id).collect();
            c.meta.retain(|id, _| attached.contains(id));
            (
                c.meta.clone(),
                c.released.keys().copied().collect::<HashSet<_>>(),
                c.detached.keys().cloned().collect::<HashSet<_>>(),
            )
        };
        if !imds
            .iter()
            .any(|e| e.device_number == 0 && e.mac == self.node.primary_mac)
        {
            return Err(IpamdError::NoPrimaryEni {
                mac: self.node.primary_mac,
            });
        }
        let rest_ms = self.config.pacing.shrink_interval_ms;
        let mut snap = snapshot::build(imds, &meta, &ips, &enis, &self.store, (now, rest_ms));
        if self.config.subnet_discovery {
            let c = self.caches();
            for view in &mut snap.views {
                let subnet = snap
                    .imds
                    .iter()
                    .find(|e| e.eni_id == view.id)
                    .map(|e| &e.subnet_id);
                view.subnet_full = subnet.is_some_and(|s| c.full_subnets.is_paused(s, now));
            }
        }
        self.report_unusable_prefixes(&snap.unusable_prefixes);
        if let Some(datapath) = &self.datapath {
            let wired = datapath.enis_changed(&snap.imds).await?;
            snap.pool.retain(|a| wired.contains(&a.device_number));
            snap.unwired = snap
                .imds
                .iter()
                .map(|e| e.device_number)
                .filter(|d| !wired.contains(d))
                .collect();
        }
        self.remember(&snap, now);
        let (left, written) = self.store.set_pool(snap.pool.clone()).await;
        for a in &left {
            tracing::info!(ip = %a.ip, container = %a.key.container_id,
                "a pod's address is missing from the node's ENIs; it stays assigned");
        }
        written?;
        if let Some(datapath) = self.datapath.as_ref().filter(|_| self.owns_pod_rules()) {
            let attached: BTreeSet<u32> = snap.imds.iter().map(|e| e.device_number).collect();
            // The pool is already published: a failed rule sync must not hold ADDs back.
            // The next pass tries again.
            if let Err(error) = datapath.sync_pod_rules(&self.store, &attached).await {
                tracing::warn!(%error, "pods' source rules not brought in line with the store");
            }
        }
        self.confirm_outside_pool().await;
        Ok(snap)
    }

    /// Keeps this pass's picture for introspection and metrics, counting what changed.
    fn remember(&self, snap: &NodeSnapshot, now: u64) {
        let mut pool: Vec<Ipv4Addr> = snap.pool.iter().map(|a| a.ip).collect();
        pool.sort_unstable();
        let seen = Seen {
            enis: snap.imds.clone(),
            unmanaged: snap
                .views
                .iter()
                .filter(|v| v.no_manage)
                .map(|v| v.id.clone())
                .collect(),
            unwired: snap.unwired.clone(),
            pool,
            at_ms: now,
        };
        let mut c = self.caches();
        if let Some(before) = &c.seen {
            let before = before.clone();
            c.reconciled.add(&before, &seen);
        }
        c.seen = Some(seen);
    }

    /// The node's ENIs as the latest pass saw them; `None` before the first pass.
    pub fn seen(&self) -> Option<Seen> {
        self.caches().seen.clone()
    }

    /// What passes found changed, added up since start.
    pub fn reconcile_counts(&self) -> ReconcileCounts {
        self.caches().reconciled
    }

    /// Logs each delegated prefix that is not a /28 the first time a snapshot shows it: EC2
    /// only delegates /28s, so such a prefix is somebody else's doing, and pods never get its
    /// addresses.
    fn report_unusable_prefixes(&self, seen: &BTreeSet<Ipv4Cidr>) {
        let mut c = self.caches();
        for prefix in seen {
            if c.unusable_prefixes.insert(*prefix) {
                tracing::warn!(%prefix, total = c.unusable_prefixes.len(),
                    "delegated prefix is not a /28; its addresses are not used");
            }
        }
    }

    /// Delegated prefixes seen so far that are not /28s.
    pub fn unusable_prefixes(&self) -> BTreeSet<Ipv4Cidr> {
        self.caches().unusable_prefixes.clone()
    }

    /// Gives every managed secondary ENI the primary ENI's security groups when IMDS shows
    /// others (the operator changed the primary's, or someone changed ours), once per change:
    /// what was asked is remembered until IMDS shows it. A failure is logged and tried again
    /// at the next reconcile.
    async fn sync_security_groups(&self, snap: &NodeSnapshot) {
        let Some(primary) = snap.primary() else {
            return;
        };
        let sorted = |groups: &[String]| {
            let mut v = groups.to_vec();
            v.sort();
            v
        };
        let want = sorted(&primary.security_groups);
        if want.is_empty() {
            return;
        }
        for eni in snap.imds.iter().filter(|e| e.device_number > 0) {
            let (managed, asked) = {
                let mut c = self.caches();
                if sorted(&eni.security_groups) == want {
                    c.groups_given.remove(&eni.eni_id);
                    continue;
                }
                let managed = c.meta.get(&eni.eni_id).is_some_and(|m| !m.no_manage);
                (managed, c.groups_given.get(&eni.eni_id) == Some(&want))
            };
            if !managed || asked {
                continue;
            }
            match self.ec2.set_security_groups(&eni.eni_id, &want).await {
                Ok(()) => {
                    tracing::info!(eni = %eni.eni_id, from = ?eni.security_groups, to = ?want,
                        "security groups copied from the primary ENI");
                    self.caches()
                        .groups_given
                        .insert(eni.eni_id.clone(), want.clone());
                }
                Err(error) => {
                    tracing::warn!(eni = %eni.eni_id, %error,
                        "could not copy the primary ENI's security groups; trying again later");
                }
            }
        }
    }

    /// Describes the attached ENIs once for any IMDS lists that we have no
    /// tags for (IMDS does not show tags).
    async fn learn_tags(&self, imds: &[ImdsEni]) -> Result<(), IpamdError> {
        let unknown = {
            let c = self.caches();
            imds.iter().any(|e| !c.meta.contains_key(&e.eni_id))
        };
        if !unknown {
            return Ok(());
        }
        let described = self
            .ec2
            .describe_enis(EniQuery::AttachedTo(self.node.instance_id.clone()))
            .await
            .map_err(IpamdError::cloud("describing the node's ENIs"))?;
        let mut c = self.caches();
        for e in described {
            c.meta.insert(
                e.id.clone(),
                EniMeta {
                    no_manage: tags::is_no_manage(&e.tags),
                    attachment_id: e.attachment_id.clone(),
                    created_ms: tags::created_ms(&e.tags),
                },
            );
        }
        Ok(())
    }

    /// Runs passes until the pool math is idle, or the next step must wait for a pacing rule
    /// (see [`super::pacing`]).
    pub async fn reconcile_once(&self) -> Result<ReconcileReport, IpamdError> {
        let _pass = self.pass.lock().await;
        let mut report = ReconcileReport::default();
        let mut shrunk = false;
        let mut groups_checked = false;
        loop {
            let snap = self.snapshot().await?;
            if !groups_checked {
                self.sync_security_groups(&snap).await;
                groups_checked = true;
            }
            report.look_again =
                (!snap.unwired.is_empty()).then(|| self.now().saturating_add(UNWIRED_RETRY_MS));
            report.resting_until = snap.resting_until;
            let decision = math::decide(&snap.views, &self.config.pool, &self.limits);
            if decision == PoolDecision::Idle {
                return Ok(report);
            }
            let now = self.now();
            let verdict = {
                let c = self.caches();
                let created = match &decision {
                    PoolDecision::FreeEni { eni } => c.meta.get(eni).and_then(|m| m.created_ms),
                    _ => None,
                };
                c.pacing.check(&decision, created, now, shrunk)
            };
            if let Verdict::HoldUntil(until) = verdict {
                tracing::debug!(?decision, until, "pool step held back by pacing");
                report.held = Some((decision, until));
                return Ok(report);
            }
            if report.actions.len() >= self.config.max_steps {
                return Err(IpamdError::NoProgress {
                    steps: report.actions.len(),
                    last: format!("{decision:?}"),
                });
            }
            tracing::debug!(?decision, "pool step");
            let outcome = self.execute(&snap, &decision).await;
            if let Ok(Step::Declined) = outcome {
                // The next snapshot would look the same and ask for the same step.
                return Ok(report);
            }
            if let Err(e) = outcome {
                let subnet_full = matches!(
                    e.cloud_error(),
                    Some(vpc_cni_cloud::CloudError::SubnetFull { .. })
                );
                // With subnet discovery, an ENI whose subnet is full is skipped by the math
                // from now on, and the pass goes on: growth takes a new ENI elsewhere.
                if let (true, true, PoolDecision::AssignToExisting { eni, .. }) =
                    (subnet_full, self.config.subnet_discovery, &decision)
                {
                    if let Some(subnet) = snap
                        .imds
                        .iter()
                        .find(|i| &i.eni_id == eni)
                        .map(|i| i.subnet_id.clone())
                    {
                        let until = self
                            .now()
                            .saturating_add(self.config.pacing.subnet_full_pause_ms);
                        tracing::warn!(%subnet, %eni, until,
                            "subnet full: its ENIs get no more addresses until the pause ends");
                        self.caches().full_subnets.mark(&subnet, until);
                        continue;
                    }
                }
                if subnet_full {
                    tracing::warn!(
                        pause_ms = self.config.pacing.subnet_full_pause_ms,
                        "subnet full: growth paused"
                    );
                    self.caches().pacing.subnet_full(self.now());
                }
                return Err(e);
            }
            self.caches().pacing.record(&decision, self.now());
            shrunk |= matches!(
                decision,
                PoolDecision::Release { .. } | PoolDecision::FreeEni { .. }
            );
            report.actions.push(decision);
        }
    }

    async fn execute(&self, snap: &NodeSnapshot, d: &PoolDecision) -> Result<Step, IpamdError> {
        let done = |r: Result<(), IpamdError>| r.map(|()| Step::Done);
        match d {
            PoolDecision::Idle => Ok(Step::Done),
            PoolDecision::AssignToExisting { eni, count } => done(self.top_up(eni, *count).await),
            PoolDecision::CreateEni { count } => done(self.add_eni(snap, *count).await),
            PoolDecision::Release {
                eni,
                addresses,
                prefixes,
            } => done(self.release(eni, addresses, prefixes).await),
            PoolDecision::FreeEni { eni } => self.free_eni(snap, eni).await,
        }
    }

    /// Wakes on `wake()`, when the next cooldown ends, and every
    /// `reconcile_interval`; errors back off (doubling, up to the interval).
    /// While backing off, a wake waits for the backoff to end: otherwise every
    /// ADD on an empty pool would retry the failing EC2 call at once, which is
    /// what throttling asks us not to do. The wake is kept, so the pass after
    /// the backoff still runs.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let interval = self.config.reconcile_interval;
        let mut backoff = Duration::from_secs(1).min(interval);
        loop {
            let (delay, failed) = match self.reconcile_once().await {
                Ok(report) => {
                    if !report.actions.is_empty() {
                        tracing::info!(steps = report.actions.len(), "pool reconciled");
                    }
                    backoff = Duration::from_secs(1).min(interval);
                    let now = self.now();
                    let next = [
                        self.store.next_cooldown_expiry(now),
                        report.held.as_ref().map(|(_, until)| *until),
                        report.look_again,
                        report.resting_until,
                    ]
                    .into_iter()
                    .flatten()
                    .min();
                    let delay = next.map_or(interval, |t| {
                        Duration::from_millis(t.saturating_sub(now) + 1).min(interval)
                    });
                    (delay, false)
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "pool reconcile failed");
                    if let Some(sink) = &self.on_error {
                        sink(&e);
                    }
                    let d = backoff;
                    backoff = (backoff * 2).min(interval);
                    (d, true)
                }
            };
            if failed {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(delay) => {}
                }
            } else {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
