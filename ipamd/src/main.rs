//! `ipamd`: the vpc-cni node daemon.

use clap::Parser;
use ipamd::config::Settings;

fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IPAMD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // Two workers: ipamd's work is small and latency-bound; more threads only
    // cost memory on large nodes.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(ipamd::daemon::run(settings))?;
    Ok(())
}
