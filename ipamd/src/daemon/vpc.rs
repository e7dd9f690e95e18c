//! VPC mode start-up: the node from IMDS, its limits from EC2, the node
//! datapath, the pool controller, the leaked-ENI cleanup and the fast path.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use vpc_cni_cloud::{AwsEc2, AwsImds, Ec2, Imds};
use vpc_cni_proto::time::{now_ms, system_clock};
use vpc_cni_proto::Mode;

use super::supervise::{task, Lifetime};
use super::{adopt_kernel_pods, cooldown_ms, log_restore, NodeSetup, Start};
use crate::config::Settings;
use crate::datapath::NodeDatapath;
use crate::error::IpamdError;
use crate::guard::{GuardedDatapath, PodGuard};
use crate::introspect::ModeSource;
use crate::metrics::Metrics;
use crate::node::events::NodeEvents;
use crate::node::{node_capacity_pods, PodCap};
use crate::overlay::peers::client_from_environment;
use crate::overlay::HybridDatapath;
use crate::rpc::NodeFacts;
use crate::store::{Datastore, Store};
use crate::vpc::{ControllerConfig, PoolController};
use crate::vpc_datapath::fast_path::FastPath;
use crate::vpc_datapath::{PrimaryEni, VpcDatapath, VpcNodeSpec};

async fn until_stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

pub(super) async fn setup(start: Start<'_>) -> Result<NodeSetup, IpamdError> {
    let settings = start.settings;
    let vpc = &settings.vpc;
    // First, before anything that can fail: running pods stay guarded while ipamd restarts.
    let guard = PodGuard::new(settings.block_pod_imds);
    guard.apply().await?;
    let imds = Arc::new(AwsImds::new());
    let node = imds
        .identity()
        .await
        .map_err(IpamdError::cloud("reading the node identity from IMDS"))?;
    let enis = imds
        .enis()
        .await
        .map_err(IpamdError::cloud("listing the node's ENIs from IMDS"))?;
    let primary = enis
        .iter()
        .find(|e| e.device_number == 0 && e.mac == node.primary_mac)
        .ok_or(IpamdError::NoPrimaryEni {
            mac: node.primary_mac,
        })?;
    let client = &vpc.ec2_client;
    if let Some(endpoint) = &client.ec2_endpoint {
        info!(%endpoint, "EC2 endpoint from AWS_EC2_ENDPOINT (wins over AWS_ENDPOINT_URL_EC2)");
    }
    if let Some(timeout) = client.http_timeout {
        info!(?timeout, "EC2 attempt timeout from HTTP_TIMEOUT");
    }
    let mut ec2 = AwsEc2::from_env_with(&client.options(vpc.ec2_api_qps, vpc.ec2_api_burst)).await;
    if let Some(observer) = start.metrics.ec2() {
        ec2 = ec2.with_observer(observer);
    }
    let ec2 = Arc::new(ec2);
    let kube = own_node_client(settings).await;
    let events = kube
        .as_ref()
        .map(|(client, name)| Arc::new(NodeEvents::new(client.clone(), name.clone())));
    let limits = match ec2.instance_limits(&node.instance_type).await {
        Ok(limits) => limits,
        Err(e) => {
            // ipamd stops here: the Event (missing IAM permissions) goes out first.
            if let Some(posted) = events.as_ref().and_then(|ev| ev.report(&e)) {
                let _ = tokio::time::timeout(EVENT_BEFORE_EXIT, posted).await;
            }
            return Err(IpamdError::cloud(format!(
                "limits of instance type {}",
                node.instance_type
            ))(e));
        }
    };
    info!(instance = %node.instance_id, r#type = %node.instance_type, ?limits, "VPC node");

    // In the form a later change is compared in (see VpcDatapath::enis_changed).
    let vpc_cidrs = vpc_cni_proto::net::normalize(primary.vpc_cidrs.iter().copied());
    let primary_gateway = vpc_cni_cloud::subnet_router(&primary.subnet_cidr);
    let primary_address = *primary
        .addresses
        .first()
        .ok_or(IpamdError::NoPrimaryEni { mac: primary.mac })?;
    let datapath = Arc::new(VpcDatapath::new(VpcNodeSpec {
        primary: PrimaryEni {
            mac: primary.mac,
            address: primary_address,
        },
        secondaries: Vec::new(),
        vpc_cidrs: vpc_cidrs.clone(),
        exclude_snat_cidrs: vpc.exclude_snat_cidrs.0.clone(),
        external_snat: vpc.external_snat,
        eni_mtu: vpc.eni_mtu,
        max_enis: limits.max_enis,
        overlay: None,
    }));
    // The attached ENIs first, so the first apply wires their tables for the pods that
    // survived an ipamd restart.
    datapath.enis_changed(&enis).await?;
    datapath.apply().await?;

    let datastore = Datastore::new(
        format!("ENIs of {}", node.instance_id),
        Mode::Vpc,
        cooldown_ms(settings),
    );
    let store = Arc::new(Store::new(datastore, start.checkpoint));
    let mut config = ControllerConfig::from_settings(vpc);
    let node_cap = match (&kube, vpc.max_pods) {
        (Some((client, name)), None) => node_pod_cap(client, name).await,
        _ => None,
    };
    let cap_source = match node_cap {
        Some(cap) if vpc.max_pods.is_none() => {
            config.pool.max_pods = cap.limit;
            cap.source
        }
        _ if vpc.max_pods.is_some() => "MAX_PODS".to_owned(),
        _ => format!("the limits of instance type {}", node.instance_type),
    };
    let ec2_seam: Arc<dyn Ec2> = ec2.clone();
    let imds_seam: Arc<dyn Imds> = imds;
    let mut controller = PoolController::new(
        ec2_seam,
        imds_seam,
        (*store).clone(),
        node.clone(),
        limits,
        config,
        system_clock(),
    )
    .with_datapath(Arc::clone(&datapath));
    if let Some(events) = events {
        controller = controller.with_error_sink(Arc::new(move |e: &IpamdError| {
            if let Some(cloud) = e.cloud_error() {
                events.report(cloud);
            }
        }));
    }
    let controller = Arc::new(controller);
    // The pool as IMDS shows it now, then the checkpoint on top of it.
    controller.snapshot().await?;
    if let Some(data) = start.loaded {
        let (report, written) = store.restore(data, now_ms()).await;
        log_restore(&report);
        written?;
    }
    adopt_kernel_pods(&store).await?;
    store.persist().await?;
    controller.own_pod_rules();
    let fast_path = if vpc.enable_pod_fast_path {
        let fast_path = Arc::new(FastPath::new(
            Arc::clone(&datapath),
            (*store).clone(),
            primary_gateway,
            vpc_cidrs.clone(),
        ));
        let report = fast_path.enable().await?;
        info!(pods = report.pods, "fast path on (ENABLE_POD_FAST_PATH)");
        let stop = start.supervisor.stop_signal();
        start
            .supervisor
            .spawn(task::FAST_PATH, Lifetime::UntilStop, {
                let fast_path = Arc::clone(&fast_path);
                async move {
                    fast_path.run(stop).await;
                    Ok(())
                }
            });
        Some(fast_path)
    } else {
        if let Err(error) = FastPath::remove().await {
            // A kernel without netdev tables cannot have ours either.
            warn!(%error, "could not make sure no fast path tables are left");
        }
        None
    };
    let overlay = if vpc.enable_hybrid_overlay {
        Some(
            super::hybrid::start(
                start.supervisor,
                settings,
                Arc::clone(&datapath),
                Arc::clone(&store),
                kube.clone(),
            )
            .await?,
        )
    } else {
        // Left by an earlier boot with ENABLE_HYBRID_OVERLAY: routes to on-prem pods through
        // it would outlive the setting.
        if crate::overlay::hybrid::remove_device().await? {
            info!("ENABLE_HYBRID_OVERLAY is off: removed vxlan.vpc and its entries");
        }
        None
    };
    let node_datapath: Arc<dyn NodeDatapath> = match &overlay {
        Some(overlay) => Arc::new(HybridDatapath::new(
            Arc::clone(&datapath),
            Arc::clone(overlay),
        )),
        None => datapath,
    };
    let pod_cap = PodCap {
        limit: controller.max_pods(),
        source: cap_source,
    };
    info!(max_pods = pod_cap.limit, from = %pod_cap.source, "pool controller ready");

    start
        .supervisor
        .spawn(task::POOL_CONTROLLER, Lifetime::UntilStop, {
            let controller = Arc::clone(&controller);
            let stop = until_stopped(start.supervisor.stop_signal());
            async move {
                controller.run(stop).await;
                Ok(())
            }
        });
    if !vpc.disable_leaked_eni_cleanup {
        start
            .supervisor
            .spawn(task::LEAKED_ENI_CLEANUP, Lifetime::UntilStop, {
                let cleanup = leaked_eni_cleanup(
                    Arc::clone(&controller),
                    Arc::clone(start.metrics),
                    vpc.leaked_eni_cleanup_interval,
                    start.supervisor.stop_signal(),
                );
                async move {
                    cleanup.await;
                    Ok(())
                }
            });
    }
    let waker = {
        let controller = Arc::clone(&controller);
        Arc::new(move || controller.wake()) as Arc<dyn Fn() + Send + Sync>
    };
    Ok(NodeSetup {
        store,
        facts: NodeFacts {
            mtu: settings.pod_mtu.unwrap_or(vpc.eni_mtu),
            vpc_cidrs,
            pool_wait_timeout: settings.pool_wait_timeout,
            waker: Some(waker),
            pod_cap: Some(pod_cap),
        },
        datapath: Arc::new(GuardedDatapath::new(node_datapath, guard)),
        pool_name: format!("ENIs of {}", node.instance_id),
        source: ModeSource::Vpc {
            controller,
            fast_path,
            overlay,
        },
    })
}

/// Tries at reading the own Node before going on without its capacity.
const NODE_READS: u32 = 3;
const NODE_READ_PAUSE: Duration = Duration::from_secs(2);

/// How long a start-up failure waits for its Event to be posted.
const EVENT_BEFORE_EXIT: Duration = Duration::from_secs(5);

/// A client for the own Node when ipamd runs in a cluster: MY_NODE_NAME set and a
/// Kubernetes configuration found (the pod's service account, or KUBECONFIG). Without them
/// ipamd runs as outside Kubernetes: the formula caps the pool, no Events.
async fn own_node_client(settings: &Settings) -> Option<(kube::Client, String)> {
    let name = settings.overlay.node_name.clone()?;
    match client_from_environment(settings.overlay.cluster_endpoint.as_deref()).await {
        Ok(client) => Some((client, name)),
        Err(e) => {
            warn!(error = %e, node = %name, "no Kubernetes API: max pods from the instance type, no Events");
            None
        }
    }
}

/// Kubelet's max-pods from the own Node (`status.capacity.pods`). `None` when the Node
/// reports none or cannot be read ([`NODE_READS`] tries): the pool plans by the formula.
async fn node_pod_cap(client: &kube::Client, name: &str) -> Option<PodCap> {
    for attempt in 1..=NODE_READS {
        match node_capacity_pods(client, name).await {
            Ok(Some(limit)) => {
                return Some(PodCap {
                    limit,
                    source: format!("Node {name}'s status.capacity.pods"),
                })
            }
            Ok(None) => {
                warn!(node = name, "the Node reports no status.capacity.pods");
                return None;
            }
            Err(e) if attempt < NODE_READS => {
                warn!(error = %e, attempt, "reading the own Node; retrying");
                tokio::time::sleep(NODE_READ_PAUSE).await;
            }
            Err(e) => warn!(error = %e, "reading the own Node: max pods from the instance type"),
        }
    }
    None
}

/// Deletes our ENIs left `available`, every `interval` with up to a fifth of
/// it as jitter, so a fleet of nodes does not call EC2 in step.
async fn leaked_eni_cleanup(
    controller: Arc<PoolController>,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let jitter = interval.mul_f64(fastrand::f64() * 0.2);
        tokio::select! {
            _ = tokio::time::sleep(interval + jitter) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        match controller.cleanup_leaked_enis().await {
            Ok(report) => {
                metrics.leaked_enis_deleted(report.deleted.len());
                info!(?report, "leaked-ENI cleanup");
            }
            Err(e) => warn!(error = %e, "leaked-ENI cleanup failed"),
        }
    }
}
