//! The plugin's own log: one line per command, appended to the file the network
//! configuration's `pluginLogFile` names (the AWS VPC CNI's key, which ipamd fills from
//! `AWS_VPC_K8S_PLUGIN_LOG_FILE` when it writes the conflist), or `stderr`. For running the
//! plugin by hand, the variables `AWS_VPC_K8S_PLUGIN_LOG_FILE` and
//! `AWS_VPC_K8S_PLUGIN_LOG_LEVEL` win over the keys: the runtime execs the plugin with its own
//! environment, never the DaemonSet's.
//!
//! Logging never fails a command: a file that cannot be opened or written costs the log,
//! not the pod. A line is one `write` to a file opened for appending, so concurrent plugin
//! runs do not interleave within a line.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::error::CniError;
use crate::spec::{CniEnv, Command};

/// Network configuration keys (the AWS VPC CNI's names).
pub const LOG_FILE_KEY: &str = "pluginLogFile";
pub const LOG_LEVEL_KEY: &str = "pluginLogLevel";
/// Variables that win over the keys.
pub const LOG_FILE_ENV: &str = "AWS_VPC_K8S_PLUGIN_LOG_FILE";
pub const LOG_LEVEL_ENV: &str = "AWS_VPC_K8S_PLUGIN_LOG_LEVEL";

/// Most bytes of the configuration and result a debug line carries.
const DEBUG_TEXT_LIMIT: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    /// The AWS VPC CNI's names (DEBUG, INFO, WARN, ERROR, FATAL), any case; trace is debug.
    #[must_use]
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" | "fatal" => Some(Level::Error),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

enum Sink {
    Off,
    Stderr,
    File(File),
}

/// Where the plugin's lines go, and from which level on.
pub struct PluginLog {
    sink: Sink,
    level: Level,
}

impl PluginLog {
    /// No log at all.
    #[must_use]
    pub fn off() -> Self {
        Self {
            sink: Sink::Off,
            level: Level::Info,
        }
    }

    /// The log `stdin` (the network configuration, which may be anything) and the variables
    /// read through `env` ask for. Never fails: a destination that cannot be opened gives no
    /// log, and says so once on stderr.
    pub fn open(stdin: &[u8], env: impl Fn(&str) -> Option<OsString>) -> Self {
        let conf: Option<Value> = serde_json::from_slice(stdin).ok();
        let key = |k: &str| {
            conf.as_ref()
                .and_then(|c| c.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let var = |k: &str| env(k).map(|v| v.to_string_lossy().into_owned());
        let file = var(LOG_FILE_ENV).or_else(|| key(LOG_FILE_KEY));
        let level_text = var(LOG_LEVEL_ENV).or_else(|| key(LOG_LEVEL_KEY));
        let level = level_text.as_deref().and_then(Level::parse);
        let sink = match file.as_deref().map(str::trim) {
            None | Some("") => Sink::Off,
            Some("stderr") => Sink::Stderr,
            Some(path) => match open_file(Path::new(path)) {
                Ok(f) => Sink::File(f),
                Err(reason) => {
                    eprintln!("vpc-cni: no plugin log: {reason}");
                    Sink::Off
                }
            },
        };
        let log = Self {
            sink,
            level: level.unwrap_or(Level::Info),
        };
        if let (Some(text), None) = (&level_text, level) {
            log.line(
                Level::Warn,
                &[("level", text)],
                "not a log level (debug, info, warn, error); logging at info",
            );
        }
        log
    }

    /// Whether lines of `level` are written.
    #[must_use]
    pub fn enabled(&self, level: Level) -> bool {
        !matches!(self.sink, Sink::Off) && level <= self.level
    }

    /// Writes one line: time, level, `key=value` fields, message.
    pub fn line(&self, level: Level, fields: &[(&str, &str)], message: &str) {
        if !self.enabled(level) {
            return;
        }
        let mut text = format!("{} {}", rfc3339_utc(SystemTime::now()), level.as_str());
        for (key, value) in fields {
            text.push(' ');
            text.push_str(key);
            text.push('=');
            text.push_str(&quoted(value));
        }
        text.push(' ');
        text.push_str(&quoted(message));
        text.push('\n');
        // A failed write costs this line, never the command.
        let _ = match &self.sink {
            Sink::Off => Ok(()),
            Sink::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
            Sink::File(file) => {
                let mut file: &File = file;
                file.write_all(text.as_bytes())
            }
        };
    }

    /// The one line a command gets: what was asked, what came of it, how long it took; at
    /// debug, the configuration and the result too. VERSION and a STATUS that passed (both
    /// asked often by runtimes) are debug lines.
    pub fn finished(
        &self,
        env: Option<&CniEnv>,
        stdin: &[u8],
        outcome: &Result<Option<String>, CniError>,
        took: Duration,
    ) {
        let command = env.map_or("?", |e| e.command.as_str());
        let routine = env.is_some_and(|e| matches!(e.command, Command::Version | Command::Status));
        let level = match outcome {
            Err(_) => Level::Error,
            Ok(_) if routine => Level::Debug,
            Ok(_) => Level::Info,
        };
        if !self.enabled(level) {
            return;
        }
        let ms = format!("{:.1}", took.as_secs_f64() * 1000.0);
        let pod = env.and_then(|e| {
            let args = &e.args;
            let name = args.pod_name.as_deref()?;
            Some(format!(
                "{}/{name}",
                args.pod_namespace.as_deref().unwrap_or_default()
            ))
        });
        let mut fields: Vec<(&str, String)> = vec![("command", command.to_owned())];
        if let Some(e) = env {
            for (key, value) in [
                ("container", &e.container_id),
                ("netns", &e.netns),
                ("ifname", &e.ifname),
            ] {
                if let Some(v) = value {
                    fields.push((key, v.clone()));
                }
            }
        }
        if let Some(pod) = pod {
            fields.push(("pod", pod));
        }
        let message = match outcome {
            Ok(result) => {
                if let Some(ip) = result.as_deref().and_then(result_ip) {
                    fields.push(("ip", ip));
                }
                "done".to_owned()
            }
            Err(err) => {
                fields.push(("code", err.code().to_string()));
                err.to_string()
            }
        };
        fields.push(("ms", ms));
        let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.line(level, &borrowed, &message);
        if self.enabled(Level::Debug) {
            let config = truncated(&String::from_utf8_lossy(stdin));
            self.line(
                Level::Debug,
                &[("command", command)],
                &format!("config {config}"),
            );
            if let Ok(Some(result)) = outcome {
                let result = truncated(result);
                self.line(
                    Level::Debug,
                    &[("command", command)],
                    &format!("result {result}"),
                );
            }
        }
    }
}

fn open_file(path: &Path) -> Result<File, String> {
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// The first address of a result's `ips`, for the log line.
fn result_ip(result: &str) -> Option<String> {
    let value: Value = serde_json::from_str(result).ok()?;
    value
        .get("ips")?
        .as_array()?
        .first()?
        .get("address")?
        .as_str()
        .map(str::to_owned)
}

fn truncated(text: &str) -> String {
    if text.len() <= DEBUG_TEXT_LIMIT {
        return text.to_owned();
    }
    let mut end = DEBUG_TEXT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// A value as is when it is one plain word, else quoted (escapes included), so every line
/// splits into fields the same way.
fn quoted(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
    if plain {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

/// `2025-01-31T23:59:59.123Z`.
fn rfc3339_utc(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
