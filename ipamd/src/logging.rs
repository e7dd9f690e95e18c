//! ipamd's log, set up once at start from `LogSettings`: a `tracing` subscriber with the
//! effective filter, in text or JSON, to stderr, stdout or an appended file.

use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::sync::Arc;

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings, LogTarget};
use crate::error::IpamdError;

/// Installs the global subscriber. Returns the start-up line that says how ipamd logs (and
/// which variables decided it), for the caller to log as its first line.
pub fn init(settings: &LogSettings) -> Result<String, IpamdError> {
    let effective = settings.effective_filter();
    let filter = EnvFilter::try_new(&effective.directives).map_err(|e| IpamdError::Config {
        variable: "IPAMD_LOG",
        reason: format!("{:?} is not a tracing filter: {e}", effective.directives),
    })?;
    let (writer, terminal) = match &settings.log_file {
        LogTarget::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
        LogTarget::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        ),
        LogTarget::File(path) => (BoxMakeWriter::new(Arc::new(open_log_file(path)?)), false),
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(filter);
    let installed = match settings.log_format {
        LogFormat::Text => builder.with_ansi(terminal).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    installed.map_err(|e| IpamdError::Internal(format!("installing the log subscriber: {e}")))?;
    let format = match settings.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    Ok(format!(
        "ipamd {} logging with filter {:?} ({}), format {format} (LOG_FORMAT), to {} \
         (AWS_VPC_K8S_CNI_LOG_FILE)",
        env!("CARGO_PKG_VERSION"),
        effective.directives,
        effective.source,
        settings.log_file,
    ))
}

/// Opens (creating it and its directory) the file `AWS_VPC_K8S_CNI_LOG_FILE` names, for
/// appending: a restart adds to the log rather than replacing it.
fn open_log_file(path: &std::path::Path) -> Result<File, IpamdError> {
    let refuse = |what: &str, e: std::io::Error| IpamdError::Config {
        variable: "AWS_VPC_K8S_CNI_LOG_FILE",
        reason: format!("cannot {what} {}: {e}", path.display()),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| refuse("create the directory of", e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| refuse("open", e))
}
