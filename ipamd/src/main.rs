//! `ipamd`: the vpc-cni node daemon, and (as subcommands) the tools beside it.

#![forbid(unsafe_code)]

mod cli;

use std::ffi::OsString;

use ipamd::config::Settings;

fn main() -> anyhow::Result<()> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(command) = cli::subcommand(&args) {
        return command.run();
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
    Ok(())
}
