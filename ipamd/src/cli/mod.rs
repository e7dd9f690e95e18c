//! `ipamd <subcommand>`: tools run beside the daemon (in its container or on the node).
//!
//! `ipamd` without a subcommand runs the daemon, its settings from flags and environment as
//! ever; a first argument that names a subcommand runs that instead. Adding one: a variant of
//! [`Command`], its file beside this one, and its arm in [`Cli::run`].

mod inspect;
mod table;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// The subcommands' command line.
#[derive(Debug, Parser)]
#[command(
    name = "ipamd",
    version,
    about = "vpc-cni node daemon (run it without a subcommand) and the tools beside it"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a running ipamd holds, from its introspection API.
    Inspect(inspect::InspectArgs),
}

/// The subcommand `args` ask for; `None` when they run the daemon. A bad subcommand line exits
/// with clap's message.
#[must_use]
pub fn subcommand(args: &[OsString]) -> Option<Cli> {
    let first = args.get(1)?.to_str()?;
    Command::has_subcommand(first).then(|| Cli::parse_from(args))
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Inspect(args) => inspect::run(&args),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Vec<OsString> {
        line.iter().map(OsString::from).collect()
    }

    #[test]
    fn no_subcommand_and_daemon_flags_run_the_daemon() {
        assert!(subcommand(&args(&["ipamd"])).is_none());
        assert!(subcommand(&args(&["ipamd", "--mode", "vpc"])).is_none());
        assert!(subcommand(&args(&["ipamd", "--warm-ip-target=5"])).is_none());
    }

    #[test]
    fn a_subcommand_name_runs_it() {
        let cli = subcommand(&args(&["ipamd", "inspect", "pool", "--json"]));
        assert!(matches!(
            cli,
            Some(Cli {
                command: Command::Inspect(_)
            })
        ));
    }
}
