//! The network configuration ipamd installs for the runtime (`CNI_CONF_DIR`), and the rule
//! that keeps a node from turning network-ready too early: kubelet reports a node ready for
//! pods once the runtime finds a network configuration, so the file appears only after
//! ipamd's own gRPC health check, over its socket as `ipamd health` asks it, answers SERVING.
//! Before that, a pod scheduled to the node would fail its ADD.
//!
//! Not removed when ipamd stops or a task dies: a restart (or an upgrade) must not turn the
//! node not-ready and make the scheduler move pods; the plugin answers "try again later"
//! while ipamd is away, and the liveness probe restarts an ipamd that stopped serving.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tracing::{debug, info};
use vpc_cni_proto::HEALTH_SERVICE_NAME;

use crate::cli::health;
use crate::cli::install::{place_atomically, PLUGIN_NAME};
use crate::config::Settings;
use crate::error::IpamdError;

/// The file's name: `10-` so it sorts ahead of a distribution's leftovers (the runtime takes
/// the first configuration by name).
pub const CONFLIST_FILE: &str = "10-vpc-cni.conflist";

/// The network's name, as pods' network status shows it.
pub const NETWORK_NAME: &str = "vpc-cni";

/// The configuration's version: the newest that containerd 1.6's and kubelet's libcni read.
pub const CNI_VERSION: &str = "1.0.0";

/// How often ipamd asks its own health service until it answers SERVING.
const RECHECK: Duration = Duration::from_millis(250);

/// What goes into the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflistSpec {
    /// ipamd's socket (`ipamdSocket`).
    pub socket: PathBuf,
    /// `POD_MTU` when set (`mtu`); otherwise ipamd's reply carries the MTU.
    pub mtu: Option<u32>,
    /// `AWS_VPC_K8S_PLUGIN_LOG_FILE` (`pluginLogFile`).
    pub plugin_log_file: Option<String>,
    /// `AWS_VPC_K8S_PLUGIN_LOG_LEVEL` (`pluginLogLevel`).
    pub plugin_log_level: Option<String>,
}

impl ConflistSpec {
    #[must_use]
    pub fn from_settings(settings: &Settings) -> Self {
        let deploy = &settings.deploy;
        Self {
            socket: settings.socket.clone(),
            mtu: settings.pod_mtu,
            plugin_log_file: deploy.plugin_log_file().map(str::to_owned),
            plugin_log_level: deploy.plugin_log_level().map(str::to_owned),
        }
    }

    /// The configuration list as the runtime reads it.
    #[must_use]
    pub fn render(&self) -> Value {
        let mut plugin = Map::new();
        plugin.insert("type".into(), PLUGIN_NAME.into());
        plugin.insert(
            "ipamdSocket".into(),
            self.socket.to_string_lossy().into_owned().into(),
        );
        if let Some(mtu) = self.mtu {
            plugin.insert("mtu".into(), mtu.into());
        }
        if let Some(file) = &self.plugin_log_file {
            plugin.insert("pluginLogFile".into(), file.clone().into());
        }
        if let Some(level) = &self.plugin_log_level {
            plugin.insert("pluginLogLevel".into(), level.clone().into());
        }
        json!({
            "cniVersion": CNI_VERSION,
            "name": NETWORK_NAME,
            "plugins": [Value::Object(plugin)],
        })
    }
}

/// Writes `conflist` as `<dir>/10-vpc-cni.conflist`, mode 0644 (the runtime reads it; nothing
/// in it is secret), atomically. Returns the path.
pub fn install(dir: &Path, conflist: &Value) -> Result<PathBuf, IpamdError> {
    let dest = dir.join(CONFLIST_FILE);
    let mut text = serde_json::to_vec_pretty(conflist).map_err(|e| IpamdError::Install {
        path: dest.clone(),
        step: "encoding the configuration",
        source: std::io::Error::other(e),
    })?;
    text.push(b'\n');
    place_atomically(&dest, 0o644, |file| std::io::Write::write_all(file, &text))?;
    Ok(dest)
}

/// Waits until ipamd's health service on `socket` answers SERVING, then installs `conflist`
/// into `dir`. Returns without writing when `stop` turns true first. The caller runs it as a
/// task that ends when its job is done: a failed write is a death (health turns
/// NOT_SERVING, the liveness probe restarts ipamd), since a node whose configuration cannot
/// be written never turns ready.
pub async fn install_when_serving(
    socket: PathBuf,
    dir: PathBuf,
    conflist: Value,
    mut stop: watch::Receiver<bool>,
) -> Result<(), IpamdError> {
    loop {
        match health::check(&socket, HEALTH_SERVICE_NAME).await {
            Ok(()) => break,
            Err(e) => debug!(error = %e, "not writing the network configuration yet"),
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
            () = tokio::time::sleep(RECHECK) => {}
        }
    }
    let path = install(&dir, &conflist)?;
    info!(path = %path.display(), "health serves: network configuration installed");
    Ok(())
}

#[cfg(test)]
#[path = "conflist_tests.rs"]
mod tests;
