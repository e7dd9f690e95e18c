//! The daemon's footing on the host: the state-directory lock, the socket,
//! signals.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::{Stream, StreamExt};
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
    // The checkpoint names every pod and its address: root's business only.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("chmod 0700 {}", dir.display())))?;
    let path = dir.join(LOCK_FILE);
    let file = File::create(&path).map_err(io_err(format!("opening {}", path.display())))?;
    file.try_lock().map_err(|_| IpamdError::AlreadyRunning {
        what: format!("state directory {}", dir.display()),
    })?;
    Ok(file)
}

/// Checks what sits at the socket path before ipamd touches anything: nothing, or a stale
/// socket, which is removed. A live socket means another ipamd serves it; anything that is
/// not a socket (a regular file, a directory, a symlink) is someone else's and is refused,
/// never removed.
pub(super) async fn clear_socket_path(path: &Path) -> Result<(), IpamdError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("inspecting {}", path.display()))(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(IpamdError::SocketPathTaken {
            path: path.to_path_buf(),
            found: file_kind(&meta.file_type()),
        });
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(IpamdError::AlreadyRunning {
            what: format!("socket {}", path.display()),
        });
    }
    info!(socket = %path.display(), "removing a stale socket");
    std::fs::remove_file(path).map_err(io_err(format!("removing stale socket {}", path.display())))
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device node"
    } else {
        "not a socket"
    }
}

/// Binds the socket at `path` (after [`clear_socket_path`]) and restricts it to root:
/// mode 0600, owned by ipamd (root). Connections are checked again at accept, see
/// [`root_peers_only`].
pub(super) async fn bind_socket(path: &Path) -> Result<UnixListener, IpamdError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io_err(format!("creating {}", parent.display())))?;
    }
    clear_socket_path(path).await?;
    let listener =
        UnixListener::bind(path).map_err(io_err(format!("binding {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(format!("chmod 0600 {}", path.display())))?;
    Ok(listener)
}

/// The accepted connections whose peer is root (SO_PEERCRED). The socket's mode already
/// keeps others out; this holds even when the mode is loosened by hand or a client connected
/// in the moment between bind and chmod. A refused connection is closed unanswered.
pub(super) fn root_peers_only(
    listener: UnixListener,
) -> impl Stream<Item = std::io::Result<UnixStream>> {
    UnixListenerStream::new(listener).filter_map(|accepted| match accepted {
        Ok(stream) => match stream.peer_cred() {
            Ok(cred) if cred.uid() == 0 => Some(Ok(stream)),
            Ok(cred) => {
                warn!(
                    uid = cred.uid(),
                    pid = cred.pid(),
                    "refusing a gRPC connection from a non-root peer"
                );
                None
            }
            Err(e) => {
                warn!(error = %e, "refusing a gRPC connection whose peer is unknown");
                None
            }
        },
        Err(e) => Some(Err(e)),
    })
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
