//! `ipamd`: the vpc-cni node daemon, or one of its subcommands (see `ipamd::cli`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use ipamd::config::Settings;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(command) = ipamd::cli::subcommand(&args) {
        return Ok(command.unwrap_or_else(|e| e.exit()).run());
    }
    let settings = Settings::try_parse_naming(args.iter().cloned(), |var| std::env::var_os(var))
        .unwrap_or_else(|e| e.exit());
    ipamd::config::refuse_unsupported_knobs(|name| std::env::var_os(name))?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IPAMD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // What `/v1/config` shows: the settings as this start parsed them.
    let shown = ipamd::introspect::settings_rows(&args);
    // One async thread: ipamd's requests are short and its only slow work,
    // the checkpoint fsync, runs on the blocking pool (kept small). Every
    // extra thread costs resident memory (stacks, malloc arenas).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()?;
    runtime.block_on(ipamd::daemon::run(settings, shown))?;
    Ok(ExitCode::SUCCESS)
}
