//! The health check against the real health service on a unix socket in a fresh directory:
//! each answer ipamd can give, a missing socket and a server that never answers. No root
//! needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tonic_health::ServingStatus;
use vpc_cni_proto::HEALTH_SERVICE_NAME;

use super::check;
use crate::error::IpamdError;
use crate::test_support::serve_health;

fn reason(result: Result<(), IpamdError>) -> String {
    match result {
        Err(e @ IpamdError::NotServing { .. }) => {
            let text = e.to_string();
            assert!(!text.contains('\n'), "one line: {text:?}");
            text
        }
        other => panic!("expected NotServing, got {other:?}"),
    }
}

#[tokio::test]
async fn serving_passes_and_not_serving_fails_naming_it() {
    let served = serve_health();
    let reporter = &served.reporter;
    reporter
        .set_service_status(HEALTH_SERVICE_NAME, ServingStatus::Serving)
        .await;
    check(&served.socket, HEALTH_SERVICE_NAME).await.unwrap();

    reporter
        .set_service_status(HEALTH_SERVICE_NAME, ServingStatus::NotServing)
        .await;
    let text = reason(check(&served.socket, HEALTH_SERVICE_NAME).await);
    assert!(text.contains("NOT_SERVING"), "{text}");
    assert!(
        text.contains(&served.socket.display().to_string()),
        "{text}"
    );

    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let text = reason(check(&served.socket, "").await);
    assert!(text.contains("NOT_SERVING"), "{text}");
}

#[tokio::test]
async fn a_backend_not_registered_yet_is_not_serving() {
    // Before ipamd marks its backend, only the server-wide "" status exists.
    let served = serve_health();
    check(&served.socket, "").await.unwrap();
    let text = reason(check(&served.socket, HEALTH_SERVICE_NAME).await);
    assert!(text.contains("not registered"), "{text}");
}

#[tokio::test]
async fn no_socket_is_not_serving_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let text = reason(check(&socket, HEALTH_SERVICE_NAME).await);
    assert!(
        text.contains("absent.sock") && text.contains("cannot connect"),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_not_serving() {
    // Bound and listening (the kernel accepts the connection), but nobody speaks HTTP/2.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stuck.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let text = reason(check(&socket, HEALTH_SERVICE_NAME).await);
    assert!(
        text.contains("no answer within") || text.contains("cannot connect"),
        "{text}"
    );
}
