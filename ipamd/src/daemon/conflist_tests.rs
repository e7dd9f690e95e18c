//! The network configuration: what it holds, that the plugin reads it as the runtime hands it
//! over, its mode, and that it is written only once the health service answers SERVING. No
//! root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use vpc_cni_proto::HEALTH_SERVICE_NAME;

use super::{install, install_when_serving, ConflistSpec, CONFLIST_FILE};

/// Harness bound for a step that must happen (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);

fn spec() -> ConflistSpec {
    ConflistSpec {
        socket: PathBuf::from("/run/vpc-cni/ipamd.sock"),
        mtu: None,
        plugin_log_file: None,
        plugin_log_level: None,
    }
}

/// What libcni hands the plugin for the list's one entry: the entry with the list's name
/// and version added.
fn as_the_runtime_passes_it(conflist: &Value) -> Vec<u8> {
    let mut plugin = conflist["plugins"][0].clone();
    plugin["name"] = conflist["name"].clone();
    plugin["cniVersion"] = conflist["cniVersion"].clone();
    serde_json::to_vec(&plugin).unwrap()
}

#[test]
fn the_plain_configuration_names_the_plugin_and_the_socket_only() {
    let conflist = spec().render();
    assert_eq!(
        conflist,
        json!({
            "cniVersion": "1.0.0",
            "name": "vpc-cni",
            "plugins": [{ "type": "vpc-cni", "ipamdSocket": "/run/vpc-cni/ipamd.sock" }],
        })
    );
    let netconf = vpc_cni::spec::parse_netconf(&as_the_runtime_passes_it(&conflist)).unwrap();
    assert_eq!(netconf.plugin_type, "vpc-cni");
    assert_eq!(netconf.name, "vpc-cni");
    assert_eq!(
        netconf.ipamd_socket.as_deref(),
        Some(Path::new("/run/vpc-cni/ipamd.sock"))
    );
    assert_eq!(netconf.mtu, None);
}

#[test]
fn pod_mtu_and_the_plugin_log_go_into_the_plugin_entry() {
    let conflist = ConflistSpec {
        socket: PathBuf::from("/run/node-2/ipamd.sock"),
        mtu: Some(1450),
        plugin_log_file: Some("/var/log/vpc-cni/plugin.log".into()),
        plugin_log_level: Some("DEBUG".into()),
    }
    .render();
    assert_eq!(
        conflist["plugins"][0],
        json!({
            "type": "vpc-cni",
            "ipamdSocket": "/run/node-2/ipamd.sock",
            "mtu": 1450,
            "pluginLogFile": "/var/log/vpc-cni/plugin.log",
            "pluginLogLevel": "DEBUG",
        })
    );
    let netconf = vpc_cni::spec::parse_netconf(&as_the_runtime_passes_it(&conflist)).unwrap();
    assert_eq!(netconf.mtu, Some(1450));
}

#[test]
fn settings_fill_the_spec() {
    use clap::Parser;
    let settings = crate::config::Settings::try_parse_from([
        "ipamd",
        "--socket",
        "/run/n1/ipamd.sock",
        "--pod-mtu",
        "8951",
        "--plugin-log-level",
        "info",
    ])
    .unwrap();
    assert_eq!(
        ConflistSpec::from_settings(&settings),
        ConflistSpec {
            socket: PathBuf::from("/run/n1/ipamd.sock"),
            mtu: Some(8951),
            plugin_log_file: None,
            plugin_log_level: Some("info".into()),
        }
    );
}

#[test]
fn the_file_is_0644_and_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let conflist = spec().render();
    let path = install(dir.path(), &conflist).unwrap();
    assert_eq!(path, dir.path().join(CONFLIST_FILE));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
    let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(back, conflist);
}

/// A health service on a socket, counting the connections made to it.
struct Served {
    reporter: HealthReporter,
    socket: PathBuf,
    connections: Arc<AtomicUsize>,
    dir: tempfile::TempDir,
}

fn serve() -> Served {
    let (reporter, service) = tonic_health::server::health_reporter();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ipamd.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = {
        let connections = Arc::clone(&connections);
        UnixListenerStream::new(listener).map(move |accepted| {
            connections.fetch_add(1, Ordering::SeqCst);
            accepted
        })
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(counted),
    );
    Served {
        reporter,
        socket,
        connections,
        dir,
    }
}

/// Waits (bounded) until `n` health checks have reached the server.
async fn until_checked(served: &Served, n: usize) {
    let deadline = tokio::time::Instant::now() + EVENTUAL;
    while served.connections.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer never asked the health service"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn nothing_is_written_until_health_answers_serving() {
    let served = serve();
    let conf_dir = served.dir.path().join("net.d");
    std::fs::create_dir(&conf_dir).unwrap();
    let conflist = spec().render();
    served
        .reporter
        .set_service_status(HEALTH_SERVICE_NAME, ServingStatus::NotServing)
        .await;
    let (_stop_tx, stop) = watch::channel(false);
    let writer = tokio::spawn(install_when_serving(
        served.socket.clone(),
        conf_dir.clone(),
        conflist.clone(),
        stop,
    ));

    // Asked, answered NOT_SERVING, asked again: still nothing.
    until_checked(&served, 2).await;
    assert!(!conf_dir.join(CONFLIST_FILE).exists());
    assert!(!writer.is_finished());

    served
        .reporter
        .set_service_status(HEALTH_SERVICE_NAME, ServingStatus::Serving)
        .await;
    tokio::time::timeout(EVENTUAL, writer)
        .await
        .expect("the writer did not finish once health served")
        .unwrap()
        .unwrap();
    let written: Value =
        serde_json::from_slice(&std::fs::read(conf_dir.join(CONFLIST_FILE)).unwrap()).unwrap();
    assert_eq!(written, conflist);
}

#[tokio::test]
async fn stopping_before_health_serves_writes_nothing() {
    let served = serve();
    let conf_dir = served.dir.path().to_path_buf();
    let (stop_tx, stop) = watch::channel(false);
    // The backend was never marked: "not registered".
    let writer = tokio::spawn(install_when_serving(
        served.socket.clone(),
        conf_dir.clone(),
        spec().render(),
        stop,
    ));
    until_checked(&served, 1).await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(EVENTUAL, writer)
        .await
        .expect("the writer did not stop")
        .unwrap()
        .unwrap();
    assert!(!conf_dir.join(CONFLIST_FILE).exists());
}

#[tokio::test]
async fn an_unwritable_directory_is_an_error_naming_it() {
    let served = serve();
    served
        .reporter
        .set_service_status(HEALTH_SERVICE_NAME, ServingStatus::Serving)
        .await;
    let missing = served.dir.path().join("no-such-dir");
    let (_stop_tx, stop) = watch::channel(false);
    let err = install_when_serving(served.socket.clone(), missing, spec().render(), stop)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}
