//! Daemon start-up and shutdown: mode choice, state restore, node setup, the
//! gRPC socket, and the background loops of the chosen mode.

mod os;
mod overlay;
mod vpc;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::{info, warn};
use vpc_cni_proto::cni_backend_server::CniBackendServer;
use vpc_cni_proto::time::{millis, system_clock};
use vpc_cni_proto::Mode;

use crate::config::{ModeSetting, Settings};
use crate::datapath::{NodeDatapath, Upkeep};
use crate::error::IpamdError;
use crate::rpc::{Backend, NodeFacts};
use crate::store::{Checkpoint, CheckpointData, FileCheckpoint, Store};
use crate::sweep::{run_sweeper, sweep_once};

/// File name of the checkpoint inside `IPAMD_STATE_DIR`.
pub const CHECKPOINT_FILE: &str = "ipam.json";

/// How long `VPC_CNI_MODE=auto` waits for IMDS before choosing overlay.
const AUTO_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Picks the mode: an explicit setting wins (and must match the checkpoint);
/// `auto` keeps the checkpoint's choice, so a slow IMDS at a restart never
/// flips an EC2 node to overlay, and otherwise asks IMDS (1 s).
async fn resolve_mode(
    settings: &Settings,
    checkpoint: Option<&CheckpointData>,
) -> Result<Mode, IpamdError> {
    let recorded = checkpoint.map(|d| d.mode);
    let chosen = match (settings.mode, recorded) {
        (ModeSetting::Fixed(mode), _) | (ModeSetting::Auto, Some(mode)) => mode,
        (ModeSetting::Auto, None) => {
            let imds = vpc_cni_cloud::AwsImds::new();
            if imds.probe(AUTO_PROBE_TIMEOUT).await {
                Mode::Vpc
            } else {
                Mode::Overlay
            }
        }
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
    info!(mode = %chosen, setting = ?settings.mode, "mode chosen");
    Ok(chosen)
}

/// What the common part of the daemon hands the chosen mode's start-up.
struct Start<'a> {
    settings: &'a Settings,
    checkpoint: Arc<dyn Checkpoint>,
    /// The checkpoint as the last run left it, restored once the mode knows its pool.
    loaded: Option<CheckpointData>,
    stop: watch::Receiver<bool>,
}

/// What the chosen mode hands the common part of the daemon.
struct NodeSetup {
    store: Arc<Store>,
    facts: NodeFacts,
    /// Already applied once; the upkeep keeps it so.
    datapath: Arc<dyn NodeDatapath>,
    pool_name: String,
    /// Mode-specific background work (the pool controller), stopped on shutdown.
    background: Vec<tokio::task::JoinHandle<()>>,
}

fn cooldown_ms(settings: &Settings) -> u64 {
    millis(settings.ip_cooldown_period)
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
    let start = Start {
        settings: &settings,
        checkpoint,
        loaded,
        stop: stop_rx.clone(),
    };
    let setup = match mode {
        Mode::Vpc => vpc::setup(start).await?,
        Mode::Overlay | Mode::Unspecified => overlay::setup(start).await?,
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
        stop_rx.clone(),
    ));
    let upkeep = Arc::new(Upkeep::new(
        setup.datapath,
        settings.datapath_resync_interval,
    ));
    let upkeep_task = tokio::spawn({
        let upkeep = Arc::clone(&upkeep);
        async move { upkeep.run(stop_rx).await }
    });

    let listener = os::bind_socket(&settings.socket).await?;
    info!(socket = %settings.socket.display(), pool = %setup.pool_name, "ipamd serving");
    let served = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(CniBackendServer::new(
            Backend::new(Arc::clone(&store), setup.facts, upkeep, system_clock())
                .with_assignment_grace(settings.assignment_grace_period),
        ))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), os::shutdown_signal())
        .await;

    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    let _ = upkeep_task.await;
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
