//! Daemon start-up and shutdown: state restore, node setup, the gRPC socket.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::{info, warn};
use vpc_cni_proto::cni_backend_server::CniBackendServer;

use crate::config::{ModeSetting, Settings};
use crate::datapath::{LocalDatapath, NodeDatapath};
use crate::error::IpamdError;
use crate::pool::{PodCidrPool, PoolSource};
use crate::rpc::{now_ms, Backend, NodeFacts};
use crate::store::{Checkpoint, Datastore, FileCheckpoint, Store};
use crate::sweep::{run_sweeper, sweep_once};

/// File name of the checkpoint inside `IPAMD_STATE_DIR`.
pub const CHECKPOINT_FILE: &str = "ipam.json";
const LOCK_FILE: &str = "ipamd.lock";

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> IpamdError {
    move |source| IpamdError::Io { context, source }
}

/// Holds the state directory's lock for the daemon's lifetime, so two ipamds
/// never share one checkpoint.
fn lock_state_dir(dir: &Path) -> Result<File, IpamdError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let path = dir.join(LOCK_FILE);
    let file = File::create(&path).map_err(io_err(format!("opening {}", path.display())))?;
    file.try_lock().map_err(|_| IpamdError::AlreadyRunning {
        what: format!("state directory {}", dir.display()),
    })?;
    Ok(file)
}

/// Binds the socket: refuses to steal one another ipamd serves, removes a
/// stale one, and restricts it to root (mode 0600).
async fn bind_socket(path: &Path) -> Result<UnixListener, IpamdError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io_err(format!("creating {}", parent.display())))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(IpamdError::AlreadyRunning {
                what: format!("socket {}", path.display()),
            });
        }
        std::fs::remove_file(path)
            .map_err(io_err(format!("removing stale socket {}", path.display())))?;
    }
    let listener =
        UnixListener::bind(path).map_err(io_err(format!("binding {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(format!("chmod 0600 {}", path.display())))?;
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; ipamd stops only when killed");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
}

/// Runs ipamd until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> Result<(), IpamdError> {
    settings.validate()?;
    let _lock = lock_state_dir(&settings.state_dir)?;

    // Only the pod-CIDR pool exists so far; validate() refused vpc mode.
    let cidr = settings.pod_cidr.ok_or(IpamdError::Config {
        variable: "POD_CIDR",
        reason: "required in overlay mode".into(),
    })?;
    if settings.mode == ModeSetting::Auto {
        info!("VPC_CNI_MODE=auto: no cloud support is built yet, running overlay on POD_CIDR");
    }
    let source = PodCidrPool::new(cidr);
    let datapath = LocalDatapath;
    let mode_name = "overlay";

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
    let mut datastore = Datastore::new(
        source.name(),
        u64::try_from(settings.ip_cooldown_period.as_millis()).unwrap_or(u64::MAX),
    );
    datastore.set_mode(mode_name);
    datastore.set_pool(source.addresses().await?);
    let loaded = {
        let checkpoint = Arc::clone(&checkpoint);
        tokio::task::spawn_blocking(move || checkpoint.load())
            .await
            .map_err(|e| IpamdError::Internal(format!("checkpoint load task: {e}")))??
    };
    if let Some(data) = loaded {
        if data.mode != mode_name {
            return Err(IpamdError::Config {
                variable: "VPC_CNI_MODE",
                reason: format!(
                    "the checkpoint in {} was written in {} mode; this boot runs {mode_name}",
                    settings.state_dir.display(),
                    data.mode
                ),
            });
        }
        let report = datastore.restore(data, now_ms());
        info!(?report, "restored checkpoint");
    }
    datapath.setup().await?;

    let store = Arc::new(Store::new(datastore, checkpoint));
    store.persist().await?;
    match sweep_once(&store, settings.assignment_grace_period).await {
        Ok(0) => {}
        Ok(n) => info!(
            released = n,
            "start-up sweep released addresses of vanished pods"
        ),
        Err(e) => warn!(error = %e, "start-up veth sweep failed"),
    }

    let facts = NodeFacts {
        mode: datapath.mode(),
        mtu: settings.effective_pod_mtu(),
        vpc_cidrs: Vec::new(),
        pool_wait_timeout: settings.pool_wait_timeout,
    };
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<CniBackendServer<Backend>>()
        .await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = tokio::spawn(run_sweeper(
        Arc::clone(&store),
        settings.assignment_grace_period,
        settings.veth_sweep_interval,
        stop_rx,
    ));

    let listener = bind_socket(&settings.socket).await?;
    info!(socket = %settings.socket.display(), pool = %source.name(), "ipamd serving");
    let served = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(CniBackendServer::new(Backend::new(
            Arc::clone(&store),
            facts,
        )))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown_signal())
        .await;

    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    if let Err(e) = std::fs::remove_file(&settings.socket) {
        warn!(error = %e, "removing the socket at shutdown");
    }
    served.map_err(|e| IpamdError::Serve(e.to_string()))?;
    store.persist().await?;
    info!("ipamd stopped");
    Ok(())
}
