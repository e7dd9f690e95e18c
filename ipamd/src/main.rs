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
    let notices = ipamd::config::check_aws_knobs(|name| std::env::var_os(name))?;
    let logging = ipamd::logging::init(&settings.logging)?;
    tracing::info!("{logging}");
    for notice in &notices {
        tracing::info!(variable = notice.variable, "{notice}");
    }
    // What `/v1/config` shows: the settings as this start parsed them.
    let shown = ipamd::introspect::settings_rows(&args);
    // One async thread: ipamd's requests are short and its only slow work,
    // the checkpoint fsync, runs on the blocking pool (kept small). Every
    // extra thread costs resident memory (stacks, malloc arenas).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(ipamd::daemon::run(settings, shown));
    if let Err(err) = &outcome {
        // Into the log too: with AWS_VPC_K8S_CNI_LOG_FILE it is where operators look.
        tracing::error!("ipamd stopped: {err}");
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}
