//! The daemon's background tasks under one supervisor, so none of them can stop unseen.
//!
//! A task *dies* when it panics, when it returns an error, or when a task meant to run until
//! ipamd stops returns before ipamd was asked to stop. A death is logged as an error naming
//! the task, and turns the standard gRPC health service NOT_SERVING for the CniBackend
//! service and for the server as a whole (`""`), so a liveness probe restarts ipamd.
//!
//! Why not restart the task in place: every one of these tasks loops forever and retries its
//! own failures, so it ends only through a bug (a panic, a broken invariant), after which the
//! state it shared with the rest of ipamd is not known to be sound. A restart of the whole
//! daemon is ipamd's tested recovery path (checkpoint restore, kernel state left as it is,
//! the kubelet's crash-loop backoff), so that is the one we rely on. The one thing that ends
//! for an outside reason, the overlay's netlink connection, is re-opened where it is used
//! (see `kernel::Connection`).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::{error, warn};
use vpc_cni_proto::HEALTH_SERVICE_NAME;

use crate::error::IpamdError;

/// Debug builds only: the task with this name panics as soon as it starts. The end-to-end
/// tests use it to kill a task of a real ipamd; release builds ignore it.
pub const TEST_PANIC_TASK: &str = "IPAMD_TEST_PANIC_TASK";

/// The names of ipamd's background tasks, as the logs and [`TEST_PANIC_TASK`] spell them.
pub mod task {
    /// VPC mode: keeps the warm pool (EC2 and IMDS).
    pub const POOL_CONTROLLER: &str = "pool controller";
    /// VPC mode: deletes our ENIs left `available`.
    pub const LEAKED_ENI_CLEANUP: &str = "leaked-ENI cleanup";
    /// VPC mode with `ENABLE_POD_FAST_PATH`: keeps the fast path's tables in line.
    pub const FAST_PATH: &str = "fast path";
    /// Overlay mode: follows the peer source and programs the peers.
    pub const PEER_LOOP: &str = "peer loop";
    /// Overlay mode with Kubernetes: puts the underlay address on the own Node (one shot).
    pub const NODE_ANNOTATION: &str = "node annotation";
    /// VPC mode with `ENABLE_HYBRID_OVERLAY` and the Kubernetes API: keeps the own Node's
    /// pod ranges current for the overlay nodes.
    pub const POD_RANGES: &str = "pod ranges announcement";
    /// Both modes: releases addresses of pods whose host veth is gone.
    pub const VETH_SWEEPER: &str = "veth sweeper";
    /// Both modes: re-applies the node datapath and repairs what STATUS found damaged.
    pub const DATAPATH_UPKEEP: &str = "datapath upkeep";
    /// Both modes, unless `DISABLE_METRICS`: `/metrics` on `METRICS_ADDR`.
    pub const METRICS_SERVER: &str = "metrics server";
    /// Both modes, unless `DISABLE_INTROSPECTION`: the introspection API.
    pub const INTROSPECTION_SERVER: &str = "introspection server";
    /// Both modes with `CNI_CONF_DIR`: installs the network configuration once health serves
    /// (one shot).
    pub const CNI_CONFIG: &str = "network configuration";
}

/// The health service names a death turns NOT_SERVING: the whole server and the backend.
const HEALTH_SERVICES: [&str; 2] = ["", HEALTH_SERVICE_NAME];

/// How long a task is meant to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until ipamd stops: returning earlier is a death.
    UntilStop,
    /// Until its job is done (the node annotation): returning is success, only an error or a
    /// panic is a death.
    UntilDone,
}

/// A task that died, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    pub task: &'static str,
    pub cause: String,
}

struct State {
    dead: Vec<Death>,
}

/// What the watchers of the tasks share with the supervisor.
struct Shared {
    health: HealthReporter,
    stop: watch::Receiver<bool>,
    // A tokio mutex held across the health updates, so a death and `serving` cannot
    // interleave and leave the backend SERVING after a death.
    state: tokio::sync::Mutex<State>,
}

/// Spawns the background tasks, watches each to its end, and stops them on shutdown.
pub struct Supervisor {
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    watchers: Mutex<Vec<JoinHandle<()>>>,
}

impl Supervisor {
    /// A supervisor that reports deaths through `health` (the reporter of the health service
    /// ipamd serves).
    #[must_use]
    pub fn new(health: HealthReporter) -> Self {
        let (stop_tx, stop) = watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                health,
                stop,
                state: tokio::sync::Mutex::new(State { dead: Vec::new() }),
            }),
            stop_tx,
            watchers: Mutex::new(Vec::new()),
        }
    }

    /// Turns true when ipamd is asked to stop; tasks return when it does.
    #[must_use]
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.shared.stop.clone()
    }

    /// Runs `task` on the runtime under the name `name` (which the logs use).
    pub fn spawn<F>(&self, name: &'static str, lifetime: Lifetime, task: F)
    where
        F: Future<Output = Result<(), IpamdError>> + Send + 'static,
    {
        let task = tokio::spawn(injected_fault(name).unwrap_or_else(|| Box::pin(task)));
        let shared = Arc::clone(&self.shared);
        let watcher = tokio::spawn(async move {
            if let Some(cause) = shared.cause_of_end(lifetime, task.await) {
                shared.died(name, cause).await;
            }
        });
        self.watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(watcher);
    }

    /// Marks the backend SERVING, unless a task already died.
    pub async fn serving(&self) {
        let state = self.shared.state.lock().await;
        if state.dead.is_empty() {
            for service in HEALTH_SERVICES {
                self.shared
                    .health
                    .set_service_status(service, ServingStatus::Serving)
                    .await;
            }
        }
    }

    /// The tasks that died so far.
    pub async fn dead(&self) -> Vec<Death> {
        self.shared.state.lock().await.dead.clone()
    }

    /// Asks every task to stop and waits until each has ended.
    pub async fn shutdown(&self) {
        let _ = self.stop_tx.send(true);
        let watchers =
            std::mem::take(&mut *self.watchers.lock().unwrap_or_else(PoisonError::into_inner));
        for watcher in watchers {
            if let Err(e) = watcher.await {
                warn!(error = %e, "a task watcher failed at shutdown");
            }
        }
    }
}

impl Drop for Supervisor {
    /// A supervisor dropped without `shutdown` (start-up failed after some tasks started)
    /// still tells them to stop, so their ends are not taken for deaths.
    fn drop(&mut self) {
        let _ = self.stop_tx.send(true);
    }
}

impl Shared {
    /// Why the task's end is a death, or `None` when it is not.
    fn cause_of_end(
        &self,
        lifetime: Lifetime,
        ended: Result<Result<(), IpamdError>, JoinError>,
    ) -> Option<String> {
        let stopping = *self.stop.borrow();
        match ended {
            Ok(Ok(())) if lifetime == Lifetime::UntilStop && !stopping => {
                Some("returned while ipamd was not stopping".to_owned())
            }
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("failed: {}", error_chain(&e))),
            Err(e) if e.is_panic() => Some(panic_message(e)),
            // Cancelled: only the runtime going down cancels a task.
            Err(_) => None,
        }
    }

    async fn died(&self, task: &'static str, cause: String) {
        let mut state = self.state.lock().await;
        error!(
            task,
            %cause,
            "background task died; gRPC health is now NOT_SERVING so that ipamd is restarted"
        );
        state.dead.push(Death { task, cause });
        for service in HEALTH_SERVICES {
            self.health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    }
}

/// An error and its sources on one line, so the log names the root cause. A source whose
/// text the line already holds (a variant that prints its source, such as `Cloud`) is not
/// said twice.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let said = s.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = s.source();
    }
    text
}

/// "panicked: <message>" for a task that panicked, with the message when it is text.
pub fn panic_message(e: JoinError) -> String {
    if !e.is_panic() {
        return format!("ended: {e}");
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    format!("panicked: {message}")
}

/// The test fault for `name`, when `IPAMD_TEST_PANIC_TASK` names it in a debug build.
fn injected_fault(name: &'static str) -> Option<BoxFuture<'static, Result<(), IpamdError>>> {
    if cfg!(debug_assertions) && std::env::var(TEST_PANIC_TASK).is_ok_and(|v| v == name) {
        Some(Box::pin(async move {
            panic!("{TEST_PANIC_TASK} names the {name}");
        }))
    } else {
        None
    }
}

#[cfg(test)]
#[path = "supervise_tests.rs"]
mod tests;
