//! Settings of ipamd's own log: level (`LOG_LEVEL`, or the AWS VPC CNI's
//! `AWS_VPC_K8S_CNI_LOGLEVEL`), format, destination, and `IPAMD_LOG`, a full `tracing` filter
//! for the cases a level cannot express.

use std::path::PathBuf;

use clap::Args;

/// The crates whose lines a level applies to; every other crate (the AWS SDK, kube, hyper)
/// logs at `info` at most, so `debug` shows ipamd's own work rather than HTTP internals.
const OUR_CRATES: &[&str] = &["ipamd", "vpc_cni", "vpc_cni_cloud", "vpc_cni_proto"];

#[derive(Debug, Clone, Args)]
pub struct LogSettings {
    /// Level of ipamd's log: trace, debug, info, warn or error (case-insensitive; the AWS VPC
    /// CNI's FATAL counts as error).
    #[arg(long, env = "LOG_LEVEL", value_name = "LOG_LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<LogLevel>,

    /// The AWS VPC CNI's name for `LOG_LEVEL`, which wins when both are set.
    #[arg(long, env = "AWS_VPC_K8S_CNI_LOGLEVEL", value_name = "AWS_VPC_K8S_CNI_LOGLEVEL",
          value_parser = parse_log_level)]
    pub aws_log_level: Option<LogLevel>,

    /// text (one line per event) or json (one JSON object per line).
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", default_value = "text",
          value_parser = parse_log_format)]
    pub log_format: LogFormat,

    /// Where the log goes: stderr, stdout, or an absolute file path (appended to; its
    /// directory is created).
    #[arg(long, env = "AWS_VPC_K8S_CNI_LOG_FILE", value_name = "AWS_VPC_K8S_CNI_LOG_FILE",
          default_value = "stderr", value_parser = parse_log_target)]
    pub log_file: LogTarget,

    /// A `tracing` filter (e.g. `info,kube=debug`); overrides both levels.
    #[arg(long, env = "IPAMD_LOG", value_name = "IPAMD_LOG", value_parser = parse_log_filter)]
    pub log_filter: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    Stdout,
    File(PathBuf),
}

impl std::fmt::Display for LogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogTarget::Stderr => f.write_str("stderr"),
            LogTarget::Stdout => f.write_str("stdout"),
            LogTarget::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A level by name; the AWS VPC CNI's names (DEBUG, INFO, WARN, ERROR, FATAL) included.
pub fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(LogLevel::Trace),
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" | "fatal" => Ok(LogLevel::Error),
        other => Err(format!(
            "{other:?} is not trace, debug, info, warn, error or fatal"
        )),
    }
}

pub fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?} is not text or json")),
    }
}

pub fn parse_log_target(s: &str) -> Result<LogTarget, String> {
    match s.trim() {
        "stderr" => Ok(LogTarget::Stderr),
        "stdout" => Ok(LogTarget::Stdout),
        path if path.starts_with('/') && path.len() > 1 => Ok(LogTarget::File(PathBuf::from(path))),
        other => Err(format!(
            "{other:?} is not stderr, stdout or an absolute file path"
        )),
    }
}

pub fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{s:?} is not a tracing filter: {e}"))
}

/// The filter ipamd logs with, and where it came from (for the start-up line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveFilter {
    pub directives: String,
    pub source: String,
}

impl LogSettings {
    /// `IPAMD_LOG` when set, else `LOG_LEVEL`, else `AWS_VPC_K8S_CNI_LOGLEVEL`, else info.
    #[must_use]
    pub fn effective_filter(&self) -> EffectiveFilter {
        if let Some(filter) = &self.log_filter {
            let overridden: Vec<&str> = [
                self.log_level.map(|_| "LOG_LEVEL"),
                self.aws_log_level.map(|_| "AWS_VPC_K8S_CNI_LOGLEVEL"),
            ]
            .into_iter()
            .flatten()
            .collect();
            let source = if overridden.is_empty() {
                "IPAMD_LOG".to_owned()
            } else {
                format!("IPAMD_LOG, overriding {}", overridden.join(" and "))
            };
            return EffectiveFilter {
                directives: filter.clone(),
                source,
            };
        }
        let (level, source) = match (self.log_level, self.aws_log_level) {
            (Some(level), None) => (level, "LOG_LEVEL".to_owned()),
            (Some(level), Some(aws)) => (
                level,
                format!(
                    "LOG_LEVEL, overriding AWS_VPC_K8S_CNI_LOGLEVEL={}",
                    aws.as_str()
                ),
            ),
            (None, Some(aws)) => (aws, "AWS_VPC_K8S_CNI_LOGLEVEL".to_owned()),
            (None, None) => (LogLevel::Info, "default".to_owned()),
        };
        EffectiveFilter {
            directives: level_directives(level),
            source,
        }
    }
}

/// `level` for our crates, the less verbose of it and info for the rest.
fn level_directives(level: LogLevel) -> String {
    let others = level.min(LogLevel::Info).as_str();
    std::iter::once(others.to_owned())
        .chain(
            OUR_CRATES
                .iter()
                .map(|krate| format!("{krate}={}", level.as_str())),
        )
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(level: Option<&str>, aws: Option<&str>, filter: Option<&str>) -> LogSettings {
        LogSettings {
            log_level: level.map(|l| parse_log_level(l).unwrap()),
            aws_log_level: aws.map(|l| parse_log_level(l).unwrap()),
            log_format: LogFormat::Text,
            log_file: LogTarget::Stderr,
            log_filter: filter.map(str::to_owned),
        }
    }

    #[test]
    fn aws_level_names_are_read_case_insensitively() {
        for (name, level) in [
            ("DEBUG", LogLevel::Debug),
            ("Info", LogLevel::Info),
            ("WARN", LogLevel::Warn),
            ("ERROR", LogLevel::Error),
            ("FATAL", LogLevel::Error),
            ("trace", LogLevel::Trace),
        ] {
            assert_eq!(parse_log_level(name).unwrap(), level, "{name}");
        }
        assert!(parse_log_level("loud").is_err());
    }

    #[test]
    fn log_level_wins_over_its_aws_alias_and_ipamd_log_over_both() {
        let f = settings(None, None, None).effective_filter();
        assert_eq!(f.source, "default");
        assert!(f.directives.starts_with("info,ipamd=info"), "{f:?}");

        let f = settings(None, Some("DEBUG"), None).effective_filter();
        assert_eq!(f.source, "AWS_VPC_K8S_CNI_LOGLEVEL");
        assert!(f.directives.starts_with("info,ipamd=debug"), "{f:?}");

        let f = settings(Some("warn"), Some("DEBUG"), None).effective_filter();
        assert!(f.directives.starts_with("warn,ipamd=warn"), "{f:?}");
        assert!(f.source.contains("AWS_VPC_K8S_CNI_LOGLEVEL=debug"), "{f:?}");

        let f = settings(Some("warn"), None, Some("ipamd=trace")).effective_filter();
        assert_eq!(f.directives, "ipamd=trace");
        assert_eq!(f.source, "IPAMD_LOG, overriding LOG_LEVEL");
    }

    #[test]
    fn log_targets_are_stderr_stdout_or_an_absolute_path() {
        assert_eq!(parse_log_target("stdout").unwrap(), LogTarget::Stdout);
        assert_eq!(parse_log_target(" stderr ").unwrap(), LogTarget::Stderr);
        assert_eq!(
            parse_log_target("/host/var/log/aws-routed-eni/ipamd.log").unwrap(),
            LogTarget::File("/host/var/log/aws-routed-eni/ipamd.log".into())
        );
        for bad in ["ipamd.log", "", "/", "STDOUT2"] {
            assert!(parse_log_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_and_filters_are_checked() {
        assert_eq!(parse_log_format("JSON").unwrap(), LogFormat::Json);
        assert!(parse_log_format("xml").is_err());
        assert!(parse_log_filter("info,ipamd=debug").is_ok());
        assert!(parse_log_filter("ipamd=loud").is_err());
    }
}
