//! Daemon start-up and shutdown: mode choice, state restore, node setup, the
//! gRPC socket, and the background loops of the chosen mode.

mod os;
mod vpc;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::{info, warn};
use vpc_cni_proto::cni_backend_server::CniBackendServer;

use crate::config::{ModeSetting, Settings};
use crate::datapath::{LocalDatapath, NodeDatapath};
use crate::error::IpamdError;
use crate::pool::{PodCidrPool, PoolSource};
use crate::rpc::{now_ms, Backend, NodeFacts};
use crate::store::{Checkpoint, CheckpointData, Datastore, FileCheckpoint, Store};
use crate::sweep::{run_sweeper, sweep_once};

/// File name of the checkpoint inside `IPAMD_STATE_DIR`.
pub const CHECKPOINT_FILE: &str = "ipam.json";

/// How long `VPC_CNI_MODE=auto` waits for IMDS before choosing overlay.
const AUTO_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

const MODE_OVERLAY: &str = "overlay";
const MODE_VPC: &str = "vpc";

/// Picks the mode: an explicit setting wins (and must match the checkpoint);
/// `auto` keeps the checkpoint's choice, so a slow IMDS at a restart never
/// flips an EC2 node to overlay, and otherwise asks IMDS (1 s).
async fn resolve_mode(
    settings: &Settings,
    checkpoint: Option<&CheckpointData>,
) -> Result<&'static str, IpamdError> {
    let recorded = checkpoint.map(|d| d.mode.as_str());
    let chosen = match settings.mode {
        ModeSetting::Overlay => MODE_OVERLAY,
        ModeSetting::Vpc => MODE_VPC,
        ModeSetting::Auto => match recorded {
            Some(MODE_VPC) => MODE_VPC,
            Some(MODE_OVERLAY) => MODE_OVERLAY,
            _ => {
                let imds = vpc_cni_cloud::AwsImds::new();
                if imds.probe(AUTO_PROBE_TIMEOUT).await {
                    MODE_VPC
                } else {
                    MODE_OVERLAY
                }
            }
        },
    };
    if let Some(recorded) = recorded {
        if recorded != chosen {
            return Err(IpamdError::Config {
                variable: "VPC_CNI_MODE",
                reason: format!(
                    "the checkpoint in {} was written in {recorded} mode; this boot runs {chosen}",
                    settings.state_dir.display()
                ),
            });
        }
    }
    info!(mode = chosen, setting = ?settings.mode, "mode chosen");
    Ok(chosen)
}

/// What the chosen mode hands the common part of the daemon.
struct NodeSetup {
    store: Arc<Store>,
    facts: NodeFacts,
    pool_name: String,
    /// Mode-specific background work (the pool controller), stopped on shutdown.
    background: Vec<tokio::task::JoinHandle<()>>,
}

async fn overlay_setup(
    settings: &Settings,
    checkpoint: Arc<dyn Checkpoint>,
    loaded: Option<CheckpointData>,
) -> Result<NodeSetup, IpamdError> {
    let cidr = settings.pod_cidr.ok_or(IpamdError::Config {
        variable: "POD_CIDR",
        reason: "required in overlay mode (the node's pod CIDR, e.g. 10.244.1.0/24)".into(),
    })?;
    let source = PodCidrPool::new(cidr);
    let mut datastore = Datastore::new(source.name(), cooldown_ms(settings));
    datastore.set_mode(MODE_OVERLAY);
    datastore.set_pool(source.addresses().await?);
    if let Some(data) = loaded {
        let report = datastore.restore(data, now_ms());
        info!(?report, "restored checkpoint");
    }
    let datapath = LocalDatapath;
    datapath.setup().await?;
    let store = Arc::new(Store::new(datastore, checkpoint));
    store.persist().await?;
    Ok(NodeSetup {
        store,
        facts: NodeFacts {
            mode: datapath.mode(),
            mtu: settings.effective_pod_mtu(),
            vpc_cidrs: Vec::new(),
            pool_wait_timeout: settings.pool_wait_timeout,
            waker: None,
        },
        pool_name: source.name(),
        background: Vec::new(),
    })
}

fn cooldown_ms(settings: &Settings) -> u64 {
    u64::try_from(settings.ip_cooldown_period.as_millis()).unwrap_or(u64::MAX)
}

/// Runs ipamd until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> Result<(), IpamdError> {
    settings.validate()?;
    let _lock = os::lock_state_dir(&settings.state_dir)?;

    let file_checkpoint = FileCheckpoint::new(settings.state_dir.join(CHECKPOINT_FILE));
    // We hold the state-dir lock, so any temp file is a dead ipamd's half write.
    let stale = file_checkpoint.remove_stale_temp_files();
    if stale > 0 {
        info!(
            count = stale,
            "removed temp files of an interrupted checkpoint write"
        );
    }
    let checkpoint: Arc<dyn Checkpoint> = Arc::new(file_checkpoint);
    let loaded = {
        let checkpoint = Arc::clone(&checkpoint);
        tokio::task::spawn_blocking(move || checkpoint.load())
            .await
            .map_err(|e| IpamdError::Internal(format!("checkpoint load task: {e}")))??
    };
    let mode = resolve_mode(&settings, loaded.as_ref()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let setup = if mode == MODE_VPC {
        vpc::setup(&settings, checkpoint, loaded, stop_rx.clone()).await?
    } else {
        overlay_setup(&settings, checkpoint, loaded).await?
    };
    let store = setup.store;
    match sweep_once(&store, settings.assignment_grace_period).await {
        Ok(0) => {}
        Ok(n) => info!(
            released = n,
            "start-up sweep released addresses of vanished pods"
        ),
        Err(e) => warn!(error = %e, "start-up veth sweep failed"),
    }

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<CniBackendServer<Backend>>()
        .await;

    let sweeper = tokio::spawn(run_sweeper(
        Arc::clone(&store),
        settings.assignment_grace_period,
        settings.veth_sweep_interval,
        stop_rx,
    ));

    let listener = os::bind_socket(&settings.socket).await?;
    info!(socket = %settings.socket.display(), pool = %setup.pool_name, "ipamd serving");
    let served = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(CniBackendServer::new(Backend::new(
            Arc::clone(&store),
            setup.facts,
        )))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), os::shutdown_signal())
        .await;

    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    for task in setup.background {
        let _ = task.await;
    }
    if let Err(e) = std::fs::remove_file(&settings.socket) {
        warn!(error = %e, "removing the socket at shutdown");
    }
    served.map_err(|e| IpamdError::Serve(e.to_string()))?;
    store.persist().await?;
    info!("ipamd stopped");
    Ok(())
}
