//! `ipamd`: the vpc-cni node daemon.

#![forbid(unsafe_code)]

use ipamd::config::Settings;

fn main() -> anyhow::Result<()> {
    let settings = Settings::try_parse_naming(std::env::args_os(), |var| std::env::var_os(var))
        .unwrap_or_else(|e| e.exit());
    let notices = ipamd::config::check_aws_knobs(|name| std::env::var_os(name))?;
    let logging = ipamd::logging::init(&settings.logging)?;
    tracing::info!("{logging}");
    for notice in &notices {
        tracing::info!(variable = notice.variable, "{notice}");
    }
    // One async thread: ipamd's requests are short and its only slow work,
    // the checkpoint fsync, runs on the blocking pool (kept small). Every
    // extra thread costs resident memory (stacks, malloc arenas).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(ipamd::daemon::run(settings));
    if let Err(err) = &outcome {
        // Into the log too: with AWS_VPC_K8S_CNI_LOG_FILE it is where operators look.
        tracing::error!("ipamd stopped: {err}");
    }
    outcome?;
    Ok(())
}
