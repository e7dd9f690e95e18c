//! The CniBackend gRPC service: turns plugin requests into store operations.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};
use tracing::{info, warn};
use vpc_cni::dataplane::host_veth_name;
use vpc_cni::spec::env::{validate_container_id, validate_ifname};
use vpc_cni::CniError;
use vpc_cni_proto::cni_backend_server::CniBackend;
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_proto::time::{millis, Clock};
use vpc_cni_proto::{
    AddNetworkReply, AttachmentRequest, CheckNetworkReply, DelNetworkReply, GarbageCollectReply,
    GarbageCollectRequest, IpAddress, ReleasedAttachment, StatusReply, StatusRequest,
};

use crate::datapath::Upkeep;
use crate::error::IpamdError;
use crate::metrics::{Command, RequestMetrics, DEL_REASON_GC};
use crate::node::PodCap;
use crate::store::{Assignment, AttachmentKey, PodIdentity, Store};

/// Asks the pool controller for a pass (VPC mode).
pub type PoolWaker = Arc<dyn Fn() + Send + Sync>;

/// What the service tells the plugin about this node.
#[derive(Clone)]
pub struct NodeFacts {
    pub mtu: u32,
    pub vpc_cidrs: Vec<Ipv4Cidr>,
    pub pool_wait_timeout: Duration,
    /// Set when a controller grows the pool: an ADD on an empty pool wakes
    /// it and waits (bounded) instead of failing at once.
    pub waker: Option<PoolWaker>,
    /// VPC mode: the most pods the pool plans for. An ADD that finds every address taken
    /// and this many pods holding one is refused at once, naming the cap, rather than
    /// waiting for addresses the controller will never add.
    pub pod_cap: Option<PodCap>,
}

/// `ASSIGNMENT_GRACE_PERIOD`'s default, for a backend not told otherwise.
pub const DEFAULT_ASSIGNMENT_GRACE: Duration = Duration::from_secs(60);

pub struct Backend {
    store: Arc<Store>,
    facts: NodeFacts,
    upkeep: Arc<Upkeep>,
    /// Unix ms for the store (cooldowns, grace periods); the wall clock in the daemon.
    clock: Clock,
    /// GC leaves younger assignments alone: the runtime took its list of valid attachments
    /// before it sent GC, and an ADD may have completed in between.
    assignment_grace: Duration,
    metrics: RequestMetrics,
}

impl Backend {
    #[must_use]
    pub fn new(store: Arc<Store>, facts: NodeFacts, upkeep: Arc<Upkeep>, clock: Clock) -> Self {
        Self {
            store,
            facts,
            upkeep,
            clock,
            assignment_grace: DEFAULT_ASSIGNMENT_GRACE,
            metrics: RequestMetrics::default(),
        }
    }

    /// Counts requests into `metrics` (the daemon's `/metrics`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: RequestMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// `ASSIGNMENT_GRACE_PERIOD`: how old an assignment must be before GC may release it.
    #[must_use]
    pub fn with_assignment_grace(mut self, grace: Duration) -> Self {
        self.assignment_grace = grace;
        self
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    /// A request for a pod whose assignment was rebuilt from the kernel takes it over.
    async fn claim_adopted(&self, key: &AttachmentKey, pod: &PodIdentity) -> Result<(), Status> {
        let claimed = self
            .store
            .claim_adopted(key, pod)
            .await
            .map_err(|e| internal(&e))?;
        if let Some(a) = claimed {
            info!(ip = %a.ip, container = %key.container_id, veth = %a.pod.host_veth,
                "a rebuilt assignment now has its pod's attachment");
        }
        Ok(())
    }

    /// Assigns an address to `key`, waiting (up to `POOL_WAIT_TIMEOUT`) when the pool is
    /// empty: for an address to leave cooldown, or for one to be freed or added (a DEL, the
    /// controller growing the pool), woken by the store the moment that happens.
    async fn assign_waiting(
        &self,
        key: &AttachmentKey,
        pod: &PodIdentity,
    ) -> Result<Assignment, Status> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.facts.pool_wait_timeout;
        let mut freed = self.store.subscribe_freed();
        let mut asked_for_a_pass = false;
        let mut found_empty = false;
        let outcome = loop {
            // Marked seen before looking, so a release right after this look still wakes us.
            freed.borrow_and_update();
            let exhausted = match self
                .store
                .assign(key.clone(), pod.clone(), self.now())
                .await
            {
                Ok(assignment) => break Ok(assignment),
                Err(e @ IpamdError::PoolExhausted { .. }) => e,
                Err(e) => return Err(internal(&e)),
            };
            if let (Some(cap), IpamdError::PoolExhausted { assigned, .. }) =
                (&self.facts.pod_cap, &exhausted)
            {
                if *assigned >= usize::try_from(cap.limit).unwrap_or(usize::MAX) {
                    found_empty = true;
                    break Err(Status::resource_exhausted(cap.refusal(*assigned)));
                }
            }
            found_empty = true;
            // Once per ADD: the controller keeps a wake until its next pass, and a pass that
            // adds addresses wakes us through `freed`.
            if let (Some(waker), false) = (&self.facts.waker, asked_for_a_pass) {
                waker();
                asked_for_a_pass = true;
            }
            let now = self.now();
            let cooldown_end = self.store.next_cooldown_expiry(now).map(|until| {
                tokio::time::Instant::now() + Duration::from_millis(until.saturating_sub(now))
            });
            if cooldown_end.is_none() && self.facts.waker.is_none() {
                // Nothing will come back by itself and nobody grows the pool.
                break Err(Status::resource_exhausted(exhausted.to_string()));
            }
            if tokio::time::Instant::now() >= deadline {
                break Err(Status::resource_exhausted(exhausted.to_string()));
            }
            let wake_at = cooldown_end.map_or(deadline, |end| end.min(deadline));
            tokio::select! {
                changed = freed.changed() => {
                    if changed.is_err() {
                        break Err(Status::resource_exhausted(exhausted.to_string()));
                    }
                }
                () = tokio::time::sleep_until(wake_at) => {}
            }
        };
        if found_empty {
            // How long this ADD waited, for an address or in vain.
            self.metrics.waited(started.elapsed());
        }
        if outcome.is_err() {
            self.metrics.no_address();
        }
        outcome
    }

    async fn add_inner(&self, req: &AttachmentRequest) -> Result<Assignment, Status> {
        let key = attachment_key(req)?;
        let pod = pod_identity(req);
        self.claim_adopted(&key, &pod).await?;
        self.assign_waiting(&key, &pod).await
    }

    /// The assignment DEL released; `None` when there was none (DEL is idempotent).
    async fn del_inner(&self, req: &AttachmentRequest) -> Result<Option<Assignment>, Status> {
        let key = attachment_key(req)?;
        self.claim_adopted(&key, &pod_identity(req)).await?;
        self.store
            .release(key, self.now())
            .await
            .map_err(|e| internal(&e))
    }
}

/// One line per ADD and DEL: info when it succeeded, warn when it failed. Pod names and
/// container ids belong here (and in introspection), never in metric labels.
fn log_outcome(
    command: &str,
    req: &AttachmentRequest,
    started: Instant,
    outcome: Result<Option<Ipv4Addr>, &Status>,
) {
    let pod = if req.pod_name.is_empty() {
        "(no pod name)".to_owned()
    } else {
        format!("{}/{}", req.pod_namespace, req.pod_name)
    };
    let container = req.container_id.as_str();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Some(ip)) => {
            info!(command, %pod, %ip, container, ms, "{command} {pod}: {ip} in {ms:.1} ms");
        }
        Ok(None) => {
            info!(command, %pod, container, ms, "{command} {pod}: no address held, in {ms:.1} ms");
        }
        Err(status) => warn!(
            command, %pod, container, ms, code = ?status.code(),
            "{command} {pod} failed in {ms:.1} ms: {}", status.message()
        ),
    }
}

fn ip_message(ip: Ipv4Addr) -> IpAddress {
    IpAddress {
        address: ip.to_string(),
        prefix_length: 32,
    }
}

/// Rejects a plugin of another major version: a half-upgraded node must fail
/// loudly rather than mis-wire pods.
fn check_client_version(client_version: &str) -> Result<(), Status> {
    let ours = env!("CARGO_PKG_VERSION");
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
    if client_version.is_empty() || major(client_version) == major(ours) {
        Ok(())
    } else {
        Err(Status::failed_precondition(format!(
            "plugin version {client_version} does not match ipamd version {ours}"
        )))
    }
}

/// The attachment a request names, after the checks every attachment call
/// shares: plugin version, and the plugin's own rules for the container id and
/// interface name (anything that reaches the socket may call, not only our plugin).
fn attachment_key(req: &AttachmentRequest) -> Result<AttachmentKey, Status> {
    check_client_version(&req.client_version)?;
    validate_container_id(&req.container_id).map_err(|e| invalid_field("container_id", e))?;
    validate_ifname(&req.ifname).map_err(|e| invalid_field("ifname", e))?;
    Ok(AttachmentKey {
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
    })
}

/// InvalidArgument naming the request field (the plugin's message names its environment
/// variable instead).
fn invalid_field(field: &str, err: CniError) -> Status {
    match err {
        CniError::InvalidEnvironment { reason, .. } => {
            Status::invalid_argument(format!("{field} {reason}"))
        }
        other => Status::invalid_argument(format!("{field}: {other}")),
    }
}

fn pod_identity(req: &AttachmentRequest) -> PodIdentity {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let namespace = non_empty(&req.pod_namespace);
    let name = non_empty(&req.pod_name);
    PodIdentity {
        network_name: req.network_name.clone(),
        netns: req.netns.clone(),
        pod_namespace: req.pod_namespace.clone(),
        pod_name: req.pod_name.clone(),
        pod_uid: req.pod_uid.clone(),
        host_veth: host_veth_name(namespace.as_deref(), name.as_deref(), &req.container_id),
    }
}

fn internal(err: &IpamdError) -> Status {
    Status::internal(err.to_string())
}

#[tonic::async_trait]
impl CniBackend for Backend {
    async fn add_network(
        &self,
        request: Request<AttachmentRequest>,
    ) -> Result<Response<AddNetworkReply>, Status> {
        let _timer = self.metrics.timer(Command::Add);
        self.metrics.add_requested();
        let started = Instant::now();
        let req = request.into_inner();
        let assigned = self.add_inner(&req).await;
        log_outcome("ADD", &req, started, assigned.as_ref().map(|a| Some(a.ip)));
        let assignment = assigned?;
        // The pool may now be below its warm target.
        if let Some(waker) = &self.facts.waker {
            waker();
        }
        Ok(Response::new(AddNetworkReply {
            ip: Some(ip_message(assignment.ip)),
            route_table: assignment.route_table,
            device_number: assignment.device_number,
            mtu: self.facts.mtu,
            mode: self.upkeep.datapath().mode().into(),
            vpc_cidrs: self
                .facts
                .vpc_cidrs
                .iter()
                .map(ToString::to_string)
                .collect(),
        }))
    }

    async fn del_network(
        &self,
        request: Request<AttachmentRequest>,
    ) -> Result<Response<DelNetworkReply>, Status> {
        let _timer = self.metrics.timer(Command::Del);
        self.metrics.del_requested();
        let started = Instant::now();
        let req = request.into_inner();
        let released = self.del_inner(&req).await;
        log_outcome(
            "DEL",
            &req,
            started,
            released.as_ref().map(|a| a.as_ref().map(|a| a.ip)),
        );
        let reply = match released? {
            Some(a) => DelNetworkReply {
                ip: Some(ip_message(a.ip)),
                route_table: a.route_table,
                released: true,
            },
            None => DelNetworkReply {
                ip: None,
                route_table: 0,
                released: false,
            },
        };
        Ok(Response::new(reply))
    }

    async fn check_network(
        &self,
        request: Request<AttachmentRequest>,
    ) -> Result<Response<CheckNetworkReply>, Status> {
        let _timer = self.metrics.timer(Command::Check);
        let req = request.into_inner();
        let key = attachment_key(&req)?;
        self.claim_adopted(&key, &pod_identity(&req)).await?;
        let a = self.store.get(&key).ok_or_else(|| {
            Status::not_found(format!(
                "ipamd holds no address for container {} interface {}",
                key.container_id, key.ifname
            ))
        })?;
        Ok(Response::new(CheckNetworkReply {
            ip: Some(ip_message(a.ip)),
            route_table: a.route_table,
            mtu: self.facts.mtu,
            mode: self.upkeep.datapath().mode().into(),
        }))
    }

    async fn garbage_collect(
        &self,
        request: Request<GarbageCollectRequest>,
    ) -> Result<Response<GarbageCollectReply>, Status> {
        let _timer = self.metrics.timer(Command::Gc);
        let req = request.into_inner();
        check_client_version(&req.client_version)?;
        // Assignments are kept per network, and a runtime collects one network at a time:
        // an empty name taken as "every network" would release the other networks' pods.
        if req.network_name.is_empty() {
            return Err(Status::invalid_argument(
                "network_name is empty: GC releases the attachments of one named network",
            ));
        }
        let valid: HashSet<(String, String)> = req
            .valid_attachments
            .into_iter()
            .map(|a| (a.container_id, a.ifname))
            .collect();
        let now = self.now();
        let grace_ms = millis(self.assignment_grace);
        let (stale, kept_veths) = self.store.read(|ds| {
            let (stale, kept): (Vec<Assignment>, Vec<Assignment>) =
                ds.assignments().cloned().partition(|a| {
                    let last_add = ds.last_add_ms(&a.key).unwrap_or(a.assigned_at_ms);
                    a.pod.network_name == req.network_name
                        && now.saturating_sub(last_add) >= grace_ms
                        && !valid.contains(&(a.key.container_id.clone(), a.key.ifname.clone()))
                });
            let kept_veths: HashSet<String> = kept.into_iter().map(|a| a.pod.host_veth).collect();
            (stale, kept_veths)
        });
        let keys = stale.iter().map(|a| a.key.clone()).collect();
        let released = self
            .store
            .release_many(keys, now)
            .await
            .map_err(|e| internal(&e))?;
        if !released.is_empty() {
            self.metrics.released(DEL_REASON_GC, released.len());
            info!(count = released.len(), network = %req.network_name, "GC released stale assignments");
        }
        let released = released
            .into_iter()
            .map(|a| ReleasedAttachment {
                container_id: a.key.container_id,
                ifname: a.key.ifname,
                ip: Some(ip_message(a.ip)),
                // A StatefulSet pod's successor carries the same veth name: the plugin must
                // not delete the live pod's veth while cleaning up after the dead one.
                host_veth: if kept_veths.contains(&a.pod.host_veth) {
                    String::new()
                } else {
                    a.pod.host_veth
                },
            })
            .collect();
        Ok(Response::new(GarbageCollectReply { released }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let _timer = self.metrics.timer(Command::Status);
        if let Err(status) = check_client_version(&request.get_ref().client_version) {
            warn!(
                "STATUS from a plugin of another version: {}",
                status.message()
            );
            return Err(status);
        }
        let counts = self.store.counts(self.now());
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        // A datapath that cannot even be looked at counts as damaged.
        let datapath_damage = self
            .upkeep
            .check()
            .await
            .unwrap_or_else(|e| vec![format!("cannot check the node datapath: {e}")]);
        Ok(Response::new(StatusReply {
            mode: self.upkeep.datapath().mode().into(),
            total_addresses: narrow(counts.total),
            assigned_addresses: narrow(counts.assigned),
            cooling_addresses: narrow(counts.cooling),
            datapath_damage,
        }))
    }
}

#[cfg(test)]
#[path = "rpc_tests.rs"]
mod tests;
