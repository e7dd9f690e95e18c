//! `ipamd health`: the standard gRPC health check (grpc.health.v1) over ipamd's unix socket,
//! as a command a probe can exec. The socket is a unix socket, so kubelet's own gRPC probe
//! (TCP only) cannot reach it.
//!
//! The daemon asks the same question of itself before it installs the runtime's network
//! configuration ([`crate::daemon::conflist`]), so a node turns network-ready only once this
//! command would succeed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use vpc_cni_proto::HEALTH_SERVICE_NAME;

use crate::error::IpamdError;

/// How long one check may take: a probe's own timeout should be longer.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// ipamd's socket.
    #[arg(long, env = "IPAMD_SOCKET", value_name = "IPAMD_SOCKET",
          default_value = vpc_cni_proto::DEFAULT_IPAMD_SOCKET)]
    pub socket: PathBuf,

    /// The service asked about: the CniBackend (default), or "" for the server as a whole.
    #[arg(long, default_value = HEALTH_SERVICE_NAME)]
    pub service: String,
}

/// Why a check did not find ipamd serving, as one line.
fn not_serving(socket: &Path, reason: String) -> IpamdError {
    IpamdError::NotServing {
        socket: socket.to_path_buf(),
        reason,
    }
}

/// Asks ipamd at `socket` whether `service` is SERVING. `Ok` only for SERVING; every other
/// outcome (no socket, refused, no answer within [`CHECK_TIMEOUT`], NOT_SERVING, a service
/// not registered yet) is [`IpamdError::NotServing`] with the reason.
pub async fn check(socket: &Path, service: &str) -> Result<(), IpamdError> {
    let asked = async {
        let channel = vpc_cni::client::connect_channel(socket)
            .await
            .map_err(|e| match e {
                vpc_cni::CniError::IpamdUnavailable { reason, .. } => {
                    not_serving(socket, format!("cannot connect: {reason}"))
                }
                other => not_serving(socket, other.to_string()),
            })?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|status| {
                let reason = if status.code() == tonic::Code::NotFound {
                    format!("service {service:?} is not registered (yet)")
                } else {
                    format!(
                        "health check failed: {:?}: {}",
                        status.code(),
                        status.message()
                    )
                };
                not_serving(socket, reason)
            })
    };
    let reply = tokio::time::timeout(CHECK_TIMEOUT, asked)
        .await
        .map_err(|_| {
            not_serving(
                socket,
                format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
            )
        })??
        .into_inner();
    match ServingStatus::try_from(reply.status) {
        Ok(ServingStatus::Serving) => Ok(()),
        Ok(ServingStatus::NotServing) => Err(not_serving(
            socket,
            "answers NOT_SERVING: a background task died (ipamd's log names it)".to_owned(),
        )),
        Ok(other) => Err(not_serving(
            socket,
            format!("answers {}", other.as_str_name()),
        )),
        Err(_) => Err(not_serving(
            socket,
            format!("answers an unknown status {}", reply.status),
        )),
    }
}

/// Runs the check on a runtime of its own: exit 0 and `SERVING` on stdout, or exit 1 and
/// the reason on stderr.
#[must_use]
pub fn main(args: &HealthArgs) -> ExitCode {
    super::finish(
        super::block_on("the health check", check(&args.socket, &args.service))
            .map(|()| "SERVING\n".to_owned()),
    )
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
