//! Settings that tie ipamd to the node's files when it runs as a DaemonSet: the network
//! configuration it installs for the runtime, and where it reaches the node's net sysctls.

use std::path::{Path, PathBuf};

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::Args;

use crate::error::IpamdError;

/// Where the net sysctls are, unless `SYSCTL_NET_DIR` says otherwise.
pub const DEFAULT_SYSCTL_NET_DIR: &str = "/proc/sys/net";

/// The plugin log levels the AWS VPC CNI takes (any case).
const PLUGIN_LOG_LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];

#[derive(Debug, Clone, Args)]
pub struct DeploySettings {
    /// Directory the runtime reads CNI network configurations from (the node's /etc/cni/net.d
    /// as mounted in ipamd's container). Once ipamd's gRPC health check passes, ipamd writes
    /// `10-vpc-cni.conflist` there, so kubelet sees the node network-ready only when ipamd
    /// serves. Empty: write nothing.
    #[arg(long, env = "CNI_CONF_DIR", value_name = "CNI_CONF_DIR", default_value = "",
          value_parser = OsStringValueParser::new().map(PathBuf::from))]
    pub cni_conf_dir: PathBuf,

    /// The plugin's log file, written into the network configuration (`pluginLogFile`): an
    /// absolute path on the node, or `stderr`. Empty: the key is left out.
    #[arg(long, env = "AWS_VPC_K8S_PLUGIN_LOG_FILE", value_name = "AWS_VPC_K8S_PLUGIN_LOG_FILE",
          default_value = "", value_parser = parse_plugin_log_file)]
    pub plugin_log_file: String,

    /// The plugin's log level, written into the network configuration (`pluginLogLevel`):
    /// debug, info, warn or error (any case). Empty: the key is left out.
    #[arg(long, env = "AWS_VPC_K8S_PLUGIN_LOG_LEVEL",
          value_name = "AWS_VPC_K8S_PLUGIN_LOG_LEVEL", default_value = "",
          value_parser = parse_plugin_log_level)]
    pub plugin_log_level: String,

    /// Where ipamd reads and writes the node's net sysctls (IPv4 forwarding, the primary
    /// ENI's rp_filter). A container's own /proc/sys is read-only, so the DaemonSet mounts the
    /// node's /proc/sys/net elsewhere and names it here.
    #[arg(long, env = "SYSCTL_NET_DIR", value_name = "SYSCTL_NET_DIR",
          default_value = DEFAULT_SYSCTL_NET_DIR)]
    pub sysctl_net_dir: PathBuf,
}

fn parse_plugin_log_file(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s == "stderr" || Path::new(s).is_absolute() {
        Ok(s.to_owned())
    } else if s == "stdout" {
        Err("stdout carries the plugin's result to the runtime; use stderr or a file".into())
    } else {
        Err(format!("{s:?} is not an absolute path or stderr"))
    }
}

fn parse_plugin_log_level(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || PLUGIN_LOG_LEVELS.contains(&s.to_ascii_lowercase().as_str()) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not one of {}",
            PLUGIN_LOG_LEVELS.join(", ")
        ))
    }
}

impl DeploySettings {
    /// The directory to write the network configuration into, if any.
    #[must_use]
    pub fn cni_conf_dir(&self) -> Option<&Path> {
        (!self.cni_conf_dir.as_os_str().is_empty()).then_some(self.cni_conf_dir.as_path())
    }

    /// `pluginLogFile`, if set.
    #[must_use]
    pub fn plugin_log_file(&self) -> Option<&str> {
        (!self.plugin_log_file.is_empty()).then_some(self.plugin_log_file.as_str())
    }

    /// `pluginLogLevel`, if set.
    #[must_use]
    pub fn plugin_log_level(&self) -> Option<&str> {
        (!self.plugin_log_level.is_empty()).then_some(self.plugin_log_level.as_str())
    }

    /// Checks what a single flag parser cannot.
    pub fn validate(&self) -> Result<(), IpamdError> {
        for (variable, dir) in [
            ("CNI_CONF_DIR", self.cni_conf_dir()),
            ("SYSCTL_NET_DIR", Some(self.sysctl_net_dir.as_path())),
        ] {
            if let Some(dir) = dir.filter(|d| !d.is_absolute()) {
                return Err(IpamdError::Config {
                    variable,
                    reason: format!("{} is not an absolute path", dir.display()),
                });
            }
        }
        Ok(())
    }
}
