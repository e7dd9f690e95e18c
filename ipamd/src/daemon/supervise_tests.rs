//! The supervisor with the real health service on a real unix socket: a task that dies turns
//! the server and the backend NOT_SERVING; ending at shutdown or finishing a one-shot job
//! does not. No root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use vpc_cni_proto::HEALTH_SERVICE_NAME;

use super::{Lifetime, Supervisor};
use crate::error::IpamdError;
use crate::test_support::{serve_health, HealthServer};

/// Harness bound for the health answer to change (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(10);

/// A supervisor whose health service answers on a socket in a fresh directory.
struct Served {
    supervisor: Supervisor,
    socket: PathBuf,
    _server: HealthServer,
}

fn serve() -> Served {
    let server = serve_health();
    Served {
        supervisor: Supervisor::new(server.reporter.clone()),
        socket: server.socket.clone(),
        _server: server,
    }
}

async fn status(socket: &Path, service: &str) -> ServingStatus {
    let channel = vpc_cni::client::connect_channel(socket).await.unwrap();
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(reply.status).unwrap()
}

/// Waits (bounded) until both the server and the backend answer `want`; returns what they
/// answered last.
async fn until_both(socket: &Path, want: ServingStatus) -> [ServingStatus; 2] {
    let deadline = tokio::time::Instant::now() + EVENTUAL;
    loop {
        let now = [
            status(socket, "").await,
            status(socket, HEALTH_SERVICE_NAME).await,
        ];
        if now == [want; 2] || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_task_that_returns_fails_or_panics_turns_health_not_serving() {
    type Task = futures::future::BoxFuture<'static, Result<(), IpamdError>>;
    let cases: [(&str, Task, &str); 3] = [
        (
            "returns early",
            Box::pin(async { Ok(()) }),
            "returned while ipamd was not stopping",
        ),
        (
            "fails",
            Box::pin(async { Err(IpamdError::Internal("the test says so".into())) }),
            "failed: internal error: the test says so",
        ),
        (
            "panics",
            Box::pin(async { panic!("the test panics") }),
            "panicked: the test panics",
        ),
    ];
    for (name, task, cause) in cases {
        let served = serve();
        served.supervisor.serving().await;
        assert_eq!(
            until_both(&served.socket, ServingStatus::Serving).await,
            [ServingStatus::Serving; 2],
            "{name}: not serving before the task ran"
        );

        served.supervisor.spawn(name, Lifetime::UntilStop, task);
        assert_eq!(
            until_both(&served.socket, ServingStatus::NotServing).await,
            [ServingStatus::NotServing; 2],
            "{name}: health still serving after the task died"
        );
        let dead = served.supervisor.dead().await;
        assert_eq!(dead.len(), 1, "{name}: {dead:?}");
        assert_eq!(dead[0].task, name);
        assert_eq!(dead[0].cause, cause);
        served.supervisor.shutdown().await;
    }
}

#[tokio::test]
async fn a_death_before_serving_keeps_the_backend_not_serving() {
    let served = serve();
    served
        .supervisor
        .spawn("early", Lifetime::UntilStop, async { Ok(()) });
    assert_eq!(
        until_both(&served.socket, ServingStatus::NotServing).await,
        [ServingStatus::NotServing; 2]
    );
    served.supervisor.serving().await;
    assert_eq!(
        [
            status(&served.socket, "").await,
            status(&served.socket, HEALTH_SERVICE_NAME).await
        ],
        [ServingStatus::NotServing; 2],
        "serving() hid a death"
    );
    served.supervisor.shutdown().await;
}

#[tokio::test]
async fn ending_at_shutdown_or_finishing_a_one_shot_job_is_not_a_death() {
    let served = serve();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    served
        .supervisor
        .spawn("one shot", Lifetime::UntilDone, async move {
            let _ = done_tx.send(());
            Ok(())
        });
    let mut stop = served.supervisor.stop_signal();
    served
        .supervisor
        .spawn("loop", Lifetime::UntilStop, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
            Ok(())
        });
    served.supervisor.serving().await;
    done_rx.await.unwrap();

    // Shutdown waits for every watcher, so nothing can still be on its way.
    served.supervisor.shutdown().await;
    assert_eq!(served.supervisor.dead().await, Vec::new());
    assert_eq!(
        until_both(&served.socket, ServingStatus::Serving).await,
        [ServingStatus::Serving; 2]
    );
}

#[test]
fn an_error_chain_says_each_cause_once() {
    let cloud = vpc_cni_cloud::CloudError::from_code(
        "DescribeInstanceTypes",
        "RequestLimitExceeded",
        "slow down",
    );
    let said = cloud.to_string();
    // `Cloud` prints its source itself; the chain must not repeat it.
    let err = IpamdError::Cloud {
        context: "reading the instance type".to_owned(),
        source: cloud,
    };
    let text = super::error_chain(&err);
    assert_eq!(text.matches(&said).count(), 1, "{text}");
    assert!(text.starts_with("reading the instance type: "), "{text}");
    // A variant that leaves its source out gets it appended.
    let io = IpamdError::Io {
        context: "starting a runtime for max-pods".into(),
        source: std::io::Error::other("no threads left"),
    };
    assert_eq!(
        super::error_chain(&io),
        "I/O failure while starting a runtime for max-pods: no threads left"
    );
}
