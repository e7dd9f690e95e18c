//! The plugin's side of the ipamd contract: a gRPC client over ipamd's unix
//! socket, and the mapping of gRPC status codes to CNI errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};
use vpc_cni_proto::cni_backend_client::CniBackendClient;

use crate::error::CniError;

/// How long the plugin waits to reach ipamd before calling it unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Upper bound of one call. An ADD may wait in ipamd for an address to leave
/// cooldown (`POOL_WAIT_TIMEOUT`, 10 s by default), so this is longer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected ipamd client that remembers its socket for error messages.
pub struct IpamdClient {
    socket: PathBuf,
    inner: CniBackendClient<Channel>,
}

impl IpamdClient {
    /// Connects to ipamd on `socket`. A missing socket or a refused connection
    /// is `IpamdUnavailable` (code 11): ipamd restarting is a transient state.
    pub async fn connect(socket: &Path) -> Result<Self, CniError> {
        Ok(Self {
            socket: socket.to_path_buf(),
            inner: CniBackendClient::new(connect_channel(socket).await?),
        })
    }

    /// The socket this client talks to.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The generated client, for issuing calls.
    pub fn rpc(&mut self) -> &mut CniBackendClient<Channel> {
        &mut self.inner
    }

    /// Maps a failed call to the CNI error the runtime should see.
    #[must_use]
    pub fn map_status(&self, status: &tonic::Status) -> CniError {
        status_to_cni_error(&self.socket, status)
    }
}

/// A gRPC channel to ipamd's unix socket, for any service ipamd serves (the
/// CniBackend, the standard health service).
pub async fn connect_channel(socket: &Path) -> Result<Channel, CniError> {
    // The URI is required by tonic but never dialled: the connector below
    // opens the unix socket instead.
    let endpoint = Endpoint::from_static("http://ipamd.invalid")
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let path = socket.to_path_buf();
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| CniError::IpamdUnavailable {
            socket: socket.to_path_buf(),
            reason: error_chain(&e),
        })
}

/// gRPC code -> CNI code, as DESIGN.md's contract fixes it.
#[must_use]
pub fn status_to_cni_error(socket: &Path, status: &tonic::Status) -> CniError {
    use tonic::Code;
    let message = status.message().to_string();
    match status.code() {
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Unknown => {
            CniError::IpamdUnavailable {
                socket: socket.to_path_buf(),
                reason: if message.is_empty() {
                    format!("{:?}", status.code())
                } else {
                    message
                },
            }
        }
        Code::ResourceExhausted | Code::Aborted => CniError::TryAgainLater(message),
        Code::InvalidArgument => CniError::IpamdRejected(message),
        Code::FailedPrecondition => CniError::IncompatibleVersion {
            requested: env!("CARGO_PKG_VERSION").to_string(),
            supported: message,
        },
        Code::NotFound => CniError::UnknownContainer(message),
        _ => CniError::Internal(format!("ipamd answered {:?}: {message}", status.code())),
    }
}

/// Flattens an error and its sources into one line, so a connect failure
/// says why ("No such file or directory") rather than just "transport error".
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

    #[test]
    fn grpc_codes_map_to_cni_codes() {
        let socket = Path::new("/run/x.sock");
        let cases = [
            (tonic::Code::Unavailable, code::TRY_AGAIN_LATER),
            (tonic::Code::ResourceExhausted, code::TRY_AGAIN_LATER),
            (tonic::Code::InvalidArgument, code::INVALID_NETWORK_CONFIG),
            (tonic::Code::FailedPrecondition, code::INCOMPATIBLE_VERSION),
            (tonic::Code::NotFound, code::UNKNOWN_CONTAINER),
            (tonic::Code::Internal, code::INTERNAL),
        ];
        for (grpc, cni) in cases {
            let err = status_to_cni_error(socket, &tonic::Status::new(grpc, "why"));
            assert_eq!(err.code(), cni, "{grpc:?}");
        }
    }

    #[tokio::test]
    async fn missing_socket_is_unavailable_and_names_the_socket() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let socket = dir.path().join("absent.sock");
        let Err(err) = IpamdClient::connect(&socket).await else {
            panic!("connect to a missing socket succeeded");
        };
        assert_eq!(err.code(), code::TRY_AGAIN_LATER);
        assert!(err.to_string().contains("absent.sock"), "{err}");
    }
}
