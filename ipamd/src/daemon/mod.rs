//! Daemon start-up and shutdown: mode choice, state restore, node setup, the
//! gRPC socket, and the background loops of the chosen mode.

pub mod conflist;
mod hybrid;
mod observe;
mod os;
mod overlay;
pub mod supervise;
mod vpc;

use std::sync::Arc;

use tracing::{error, info, warn};
use vpc_cni_proto::cni_backend_server::CniBackendServer;
use vpc_cni_proto::time::{millis, now_ms, system_clock};
use vpc_cni_proto::Mode;

use crate::config::{ModeSetting, Settings};
use crate::datapath::{NodeDatapath, Upkeep};
use crate::error::IpamdError;
use crate::introspect::{ModeSource, NodeView, SettingRow};
use crate::metrics::Metrics;
use crate::rpc::{Backend, NodeFacts};
use crate::store::{Checkpoint, CheckpointData, FileCheckpoint, RestoreReport, Store};
use crate::sweep::{run_sweeper, sweep_once};
use supervise::{task, Lifetime, Supervisor};

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
    /// Runs the mode's background work (the pool controller, the peer loop).
    supervisor: &'a Supervisor,
    metrics: &'a Arc<Metrics>,
}

/// What the chosen mode hands the common part of the daemon.
struct NodeSetup {
    store: Arc<Store>,
    facts: NodeFacts,
    /// Already applied once; the upkeep keeps it so.
    datapath: Arc<dyn NodeDatapath>,
    pool_name: String,
    /// What introspection and metrics read the mode's own figures from.
    source: ModeSource,
}

fn cooldown_ms(settings: &Settings) -> u64 {
    millis(settings.ip_cooldown_period)
}

/// Says what a restore kept and dropped.
fn log_restore(report: &RestoreReport) {
    info!(
        restored = report.restored,
        cooling = report.cooling_restored,
        dropped = report.dropped_conflicts.len(),
        "restored checkpoint"
    );
    for a in &report.outside_pool {
        warn!(ip = %a.ip, container = %a.key.container_id,
            "a restored assignment's address is missing from the pool; it stays held");
    }
    for a in &report.dropped_conflicts {
        warn!(ip = %a.ip, container = %a.key.container_id,
            "checkpoint entry clashes with another for the same attachment or address; dropped");
    }
}

/// Holds every address the kernel shows a pod using that the checkpoint did not account
/// for (it was lost, set aside, or older than the pod). Runs before the pool controller
/// and the gRPC service start, so no such address is given back or handed out.
async fn adopt_kernel_pods(store: &Store) -> Result<(), IpamdError> {
    let pods = crate::rebuild::pods_in_kernel().await?;
    let (adopted, written) = store.adopt(&pods, now_ms()).await;
    for a in &adopted {
        warn!(ip = %a.ip, veth = %a.pod.host_veth,
            "a pod the checkpoint did not know holds this address; kept until its veth is gone");
    }
    if !adopted.is_empty() {
        info!(
            adopted = adopted.len(),
            pods_in_kernel = pods.len(),
            "rebuilt assignments from the kernel"
        );
    }
    written
}

/// Runs ipamd until SIGTERM/SIGINT; `shown` is what `/v1/config` reports of its settings.
pub async fn run(settings: Settings, shown: Vec<SettingRow>) -> Result<(), IpamdError> {
    settings.validate()?;
    crate::kernel::set_net_dir(&settings.deploy.sysctl_net_dir)?;
    let _lock = os::lock_state_dir(&settings.state_dir)?;
    // Before the node is touched: a path or port ipamd may not use stops it with nothing
    // changed.
    os::clear_socket_path(&settings.socket).await?;
    let listeners = observe::bind(&settings.observe).await?;

    let file_checkpoint = FileCheckpoint::new(settings.state_dir.join(CHECKPOINT_FILE));
    // We hold the state-dir lock, so any temp file is a dead ipamd's half write.
    let stale = file_checkpoint.remove_stale_temp_files();
    if stale > 0 {
        info!(
            count = stale,
            "removed temp files of an interrupted checkpoint write"
        );
    }
    let file_checkpoint = Arc::new(file_checkpoint);
    let start_state = {
        let file_checkpoint = Arc::clone(&file_checkpoint);
        tokio::task::spawn_blocking(move || file_checkpoint.load_or_set_aside(now_ms()))
            .await
            .map_err(|e| IpamdError::Internal(format!("checkpoint load task: {e}")))??
    };
    if let Some((aside, reason)) = &start_state.set_aside {
        error!(
            error = %reason, moved_to = %aside.display(),
            "the checkpoint could not be read and was set aside; pods' addresses are rebuilt from the kernel"
        );
    }
    let loaded = start_state.data;
    let checkpoint: Arc<dyn Checkpoint> = file_checkpoint;
    let mode = resolve_mode(&settings, loaded.as_ref()).await?;
    let metrics = match mode {
        Mode::Vpc if settings.vpc.enable_hybrid_overlay => Metrics::new(mode).with_overlay_series(),
        _ => Metrics::new(mode),
    };
    let metrics = Arc::new(metrics);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let supervisor = Supervisor::new(health_reporter);
    let start = Start {
        settings: &settings,
        checkpoint,
        loaded,
        supervisor: &supervisor,
        metrics: &metrics,
    };
    let setup = match mode {
        Mode::Vpc => vpc::setup(start).await?,
        Mode::Overlay | Mode::Unspecified => overlay::setup(start).await?,
    };
    let store = setup.store;
    store.observe_writes(metrics.checkpoint_observer());
    match sweep_once(&store, settings.assignment_grace_period).await {
        Ok(0) => {}
        Ok(n) => info!(
            released = n,
            "start-up sweep released addresses of vanished pods"
        ),
        Err(e) => warn!(error = %e, "start-up veth sweep failed"),
    }

    supervisor.spawn(task::VETH_SWEEPER, Lifetime::UntilStop, {
        let sweep = run_sweeper(
            Arc::clone(&store),
            settings.assignment_grace_period,
            settings.veth_sweep_interval,
            supervisor.stop_signal(),
        );
        async move {
            sweep.await;
            Ok(())
        }
    });
    let upkeep = Arc::new(Upkeep::new(
        setup.datapath,
        settings.datapath_resync_interval,
    ));
    supervisor.spawn(task::DATAPATH_UPKEEP, Lifetime::UntilStop, {
        let upkeep = Arc::clone(&upkeep);
        let stop = supervisor.stop_signal();
        async move {
            upkeep.run(stop).await;
            Ok(())
        }
    });

    let view = Arc::new(NodeView::new(
        mode,
        setup.pool_name.clone(),
        Arc::clone(&store),
        setup.source,
        shown,
    ));
    observe::serve(listeners, &supervisor, Arc::clone(&metrics), view);

    let listener = os::bind_socket(&settings.socket).await?;
    supervisor.serving().await;
    info!(socket = %settings.socket.display(), pool = %setup.pool_name, "ipamd serving");
    if let Some(dir) = settings.deploy.cni_conf_dir() {
        let conflist = conflist::ConflistSpec::from_settings(&settings).render();
        supervisor.spawn(
            task::CNI_CONFIG,
            Lifetime::UntilDone,
            conflist::install_when_serving(
                settings.socket.clone(),
                dir.to_path_buf(),
                conflist,
                supervisor.stop_signal(),
            ),
        );
    }
    let served = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(CniBackendServer::new(
            Backend::new(Arc::clone(&store), setup.facts, upkeep, system_clock())
                .with_assignment_grace(settings.assignment_grace_period)
                .with_metrics(metrics.requests()),
        ))
        .serve_with_incoming_shutdown(os::root_peers_only(listener), os::shutdown_signal())
        .await;

    supervisor.shutdown().await;
    if let Err(e) = std::fs::remove_file(&settings.socket) {
        warn!(error = %e, "removing the socket at shutdown");
    }
    served.map_err(|e| IpamdError::Serve(e.to_string()))?;
    store.persist().await?;
    info!("ipamd stopped");
    Ok(())
}
