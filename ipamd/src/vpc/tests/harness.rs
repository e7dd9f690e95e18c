//! A node on `cloud::sim`: an m5.4xlarge in its own VPC, a real datastore on
//! a memory checkpoint, a controller on a stepped clock, and pods to add.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vpc_cni_cloud::sim::{CreateEni, EniFilter, SimCloud, SimVpc};
use vpc_cni_cloud::{CloudFuture, Ec2, EniId, Imds, ImdsEni, NodeIdentity};
use vpc_cni_proto::Mode;

use crate::error::IpamdError;
use crate::store::{AttachmentKey, Datastore, MemoryCheckpoint, PodIdentity, Store};
use crate::vpc::math::{choose_address, PoolConfig};
use crate::vpc::{ControllerConfig, PoolController, ReconcileReport};

pub const COOLDOWN_MS: u64 = 30_000;
pub const START_MS: u64 = 1_700_000_000_000;
/// From a pod's DEL until its address may go back to EC2: its cooldown, then a shrink
/// interval unused.
pub const IDLE_MS: u64 = COOLDOWN_MS + crate::vpc::pacing::SHRINK_INTERVAL_MS + 1;
/// Long enough for released addresses to leave cooldown and for new ENIs to reach the
/// minimum age at which they may be freed.
pub const SETTLE_MS: u64 = if COOLDOWN_MS > crate::vpc::pacing::MIN_ENI_AGE_MS {
    COOLDOWN_MS + 1
} else {
    crate::vpc::pacing::MIN_ENI_AGE_MS + 1
};

pub struct Node {
    pub sim: SimVpc,
    /// What the controller reads IMDS through; can hide ENIs, as a lagging IMDS does.
    pub imds: Arc<HidingImds>,
    pub instance_id: String,
    pub subnet_id: String,
    pub store: Store,
    pub ctl: Arc<PoolController>,
    clock: Arc<AtomicU64>,
    pods: Vec<AttachmentKey>,
    next_pod: usize,
}

/// What IMDS shows: (ENIs attached, secondary addresses, prefixes) over the
/// ENIs the controller manages (no_manage ones left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub enis: usize,
    pub addresses: usize,
    pub prefixes: usize,
}

pub fn config(pool: PoolConfig) -> ControllerConfig {
    ControllerConfig {
        pool,
        visibility_backoff: Duration::from_millis(5),
        visibility_timeout: Duration::from_secs(10),
        ..ControllerConfig::default()
    }
}

/// The world without the controller, for tests that add ENIs of their own first.
pub fn world(seed: u64) -> (SimVpc, String, String) {
    let sim = SimVpc::with_seed(seed);
    let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
    let sub = sim
        .create_subnet(&vpc.id, "10.0.0.0/20", "us-west-2a")
        .unwrap();
    let inst = sim.run_instance(&sub.id, "m5.4xlarge", "node-a").unwrap();
    (sim, inst.id, sub.id)
}

impl Node {
    pub async fn new(cfg: ControllerConfig) -> Node {
        let (sim, instance_id, subnet_id) = world(42);
        Node::on(sim, instance_id, subnet_id, cfg).await
    }

    pub async fn on(
        sim: SimVpc,
        instance_id: String,
        subnet_id: String,
        cfg: ControllerConfig,
    ) -> Node {
        Node::wired_by(sim, instance_id, subnet_id, cfg, None).await
    }

    /// A node whose controller wires ENIs through `datapath` (in the calling thread's
    /// namespace) before their addresses join the pool.
    pub async fn wired_by(
        sim: SimVpc,
        instance_id: String,
        subnet_id: String,
        cfg: ControllerConfig,
        datapath: Option<Arc<crate::vpc_datapath::VpcDatapath>>,
    ) -> Node {
        let clock = Arc::new(AtomicU64::new(START_MS));
        let c = Arc::clone(&clock);
        let cloud = Arc::new(SimCloud::new(sim.clone(), instance_id.clone()));
        let store = Store::new(
            Datastore::new("ENIs".to_string(), Mode::Vpc, COOLDOWN_MS),
            Arc::new(MemoryCheckpoint::new()),
        );
        let node = cloud.identity().await.unwrap();
        let limits = cloud.instance_limits(&node.instance_type).await.unwrap();
        let imds = Arc::new(HidingImds {
            inner: cloud.clone(),
            hidden: Mutex::new(Vec::new()),
            stripped: Mutex::new(Vec::new()),
        });
        let ctl = PoolController::new(
            cloud,
            imds.clone(),
            store.clone(),
            node,
            limits,
            cfg,
            Arc::new(move || c.load(Ordering::SeqCst)),
        );
        let ctl = match datapath {
            Some(datapath) => ctl.with_datapath(datapath),
            None => ctl,
        };
        Node {
            sim,
            imds,
            instance_id,
            subnet_id,
            store,
            ctl: Arc::new(ctl),
            clock,
            pods: Vec::new(),
            next_pod: 0,
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    /// Reconciles until idle, and checks that a second pass finds nothing to do.
    pub async fn idle(&self) -> ReconcileReport {
        let report = self.ctl.reconcile_once().await.unwrap();
        let again = self.ctl.reconcile_once().await.unwrap();
        assert!(again.actions.is_empty(), "not idle: {:?}", again.actions);
        report
    }

    pub fn shape(&self) -> Shape {
        let view = self.sim.imds_instance(&self.instance_id).unwrap();
        let no_manage: Vec<String> = self
            .sim
            .describe_network_interfaces(
                &EniFilter {
                    tags: vec![(
                        crate::vpc::NO_MANAGE_TAG.to_string(),
                        vec!["true".to_string()],
                    )],
                    ..EniFilter::default()
                },
                None,
                None,
            )
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.id)
            .collect();
        let ours: Vec<_> = view
            .interfaces
            .iter()
            .filter(|i| !no_manage.contains(&i.interface_id))
            .collect();
        Shape {
            enis: ours.len(),
            addresses: ours.iter().map(|i| i.local_ipv4s.len() - 1).sum(),
            prefixes: ours.iter().map(|i| i.ipv4_prefixes.len()).sum(),
        }
    }

    /// Every ENI in the region, attached or not.
    pub fn world_enis(&self) -> Vec<vpc_cni_cloud::sim::Eni> {
        self.sim
            .describe_network_interfaces(&EniFilter::default(), None, None)
            .unwrap()
            .items
    }

    /// Adds `n` pods through the datastore. Before each, checks that the
    /// datastore's choice is what the packing policy (fullest ENI or prefix
    /// first) picks; on an empty pool, runs the controller as the ADD path
    /// would wake it.
    pub async fn add_pods(&mut self, n: usize) {
        let prefix_mode = self.ctl_prefix_mode();
        for _ in 0..n {
            let key = AttachmentKey {
                container_id: format!("c{:04}", self.next_pod),
                ifname: "eth0".to_string(),
            };
            self.next_pod += 1;
            let mut rounds = 0;
            loop {
                let snap = self.ctl.snapshot().await.unwrap();
                let want = choose_address(&snap.views, prefix_mode);
                match self
                    .store
                    .assign(key.clone(), PodIdentity::default(), self.now())
                    .await
                {
                    Ok(a) => {
                        assert_eq!(Some(a.ip), want, "datastore did not pack like the policy");
                        break;
                    }
                    Err(IpamdError::PoolExhausted { .. }) => {
                        rounds += 1;
                        assert!(rounds < 3, "pool stays empty for pod {key:?}");
                        let r = self.ctl.reconcile_once().await.unwrap();
                        assert!(
                            !r.actions.is_empty(),
                            "controller did not grow an empty pool"
                        );
                    }
                    Err(e) => panic!("assign: {e}"),
                }
            }
            self.pods.push(key);
        }
    }

    /// Tries one more pod; false when the pool stays empty after a pass.
    pub async fn try_add_pod(&mut self) -> bool {
        let key = AttachmentKey {
            container_id: format!("c{:04}", self.next_pod),
            ifname: "eth0".to_string(),
        };
        self.next_pod += 1;
        for _ in 0..2 {
            if self
                .store
                .assign(key.clone(), PodIdentity::default(), self.now())
                .await
                .is_ok()
            {
                self.pods.push(key);
                return true;
            }
            self.ctl.reconcile_once().await.unwrap();
        }
        false
    }

    pub async fn remove_pods(&mut self, keys: &[AttachmentKey]) {
        for k in keys {
            self.store
                .release(k.clone(), self.now())
                .await
                .unwrap()
                .unwrap();
        }
        self.pods.retain(|p| !keys.contains(p));
    }

    pub async fn remove_all_pods(&mut self) {
        let all = self.pods.clone();
        self.remove_pods(&all).await;
    }

    pub fn pods(&self) -> &[AttachmentKey] {
        &self.pods
    }

    fn ctl_prefix_mode(&self) -> bool {
        let cfg = self.ctl_config();
        cfg.prefix_mode(&self.ctl.limits())
    }

    fn ctl_config(&self) -> PoolConfig {
        self.ctl.pool_config()
    }

    pub fn print_counts(&self, label: &str) {
        println!("{label}: EC2 calls {:?}", self.sim.request_counts());
    }

    /// An ENI made outside the controller, attached at `device` when given.
    pub fn foreign_eni(
        &self,
        tags: BTreeMap<String, String>,
        description: &str,
        secondaries: u32,
        device: Option<u32>,
    ) -> String {
        let eni = self
            .sim
            .create_network_interface(CreateEni {
                subnet_id: self.subnet_id.clone(),
                description: description.to_string(),
                tags,
                secondary_count: secondaries,
                ..CreateEni::default()
            })
            .unwrap();
        if let Some(d) = device {
            self.sim
                .attach_network_interface(&eni.id, &self.instance_id, d)
                .unwrap();
        }
        eni.id
    }
}

/// IMDS as the sim shows it, minus the ENIs in `hidden` and the secondary addresses and
/// prefixes of those in `stripped`: what a node sees while IMDS lags or answers 404 for
/// part of an ENI.
pub struct HidingImds {
    inner: Arc<SimCloud>,
    hidden: Mutex<Vec<EniId>>,
    stripped: Mutex<Vec<EniId>>,
}

impl HidingImds {
    pub fn hide(&self, eni: Option<EniId>) {
        *self.hidden.lock().unwrap() = eni.into_iter().collect();
    }

    pub fn strip(&self, eni: Option<EniId>) {
        *self.stripped.lock().unwrap() = eni.into_iter().collect();
    }
}

impl Imds for HidingImds {
    fn identity(&self) -> CloudFuture<'_, NodeIdentity> {
        self.inner.identity()
    }

    fn enis(&self) -> CloudFuture<'_, Vec<ImdsEni>> {
        Box::pin(async move {
            let hidden = self.hidden.lock().unwrap().clone();
            let stripped = self.stripped.lock().unwrap().clone();
            let mut enis = self.inner.enis().await?;
            enis.retain(|e| !hidden.contains(&e.eni_id));
            for e in enis.iter_mut().filter(|e| stripped.contains(&e.eni_id)) {
                e.addresses.truncate(1);
                e.prefixes.clear();
            }
            Ok(enis)
        })
    }
}
