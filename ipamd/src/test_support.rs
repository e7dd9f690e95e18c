//! What several of ipamd's unit tests share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tokio_stream::wrappers::UnixListenerStream;
use tonic_health::server::HealthReporter;

/// The standard gRPC health service answering on a unix socket in a fresh directory (gone
/// with the value); `reporter` sets what it answers.
pub(crate) struct HealthServer {
    pub reporter: HealthReporter,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts a [`HealthServer`] on the current runtime.
pub(crate) fn serve_health() -> HealthServer {
    let (reporter, service) = tonic_health::server::health_reporter();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("health.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    HealthServer {
        reporter,
        socket,
        _dir: dir,
    }
}
