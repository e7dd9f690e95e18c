//! The daemon's footing on the host: the state-directory lock, the socket,
//! signals.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::net::UnixListener;
use tracing::{info, warn};

use crate::error::IpamdError;

const LOCK_FILE: &str = "ipamd.lock";

pub(super) fn io_err(context: String) -> impl FnOnce(std::io::Error) -> IpamdError {
    move |source| IpamdError::Io { context, source }
}

/// Holds the state directory's lock for the daemon's lifetime, so two ipamds
/// never share one checkpoint.
pub(super) fn lock_state_dir(dir: &Path) -> Result<File, IpamdError> {
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
pub(super) async fn bind_socket(path: &Path) -> Result<UnixListener, IpamdError> {
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

pub(super) async fn shutdown_signal() {
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
