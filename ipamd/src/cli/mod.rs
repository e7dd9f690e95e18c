//! `ipamd`'s subcommands. `ipamd` with no subcommand runs the daemon (as the DaemonSet runs
//! it, configured by [`crate::config::Settings`]); a first argument that names a subcommand
//! runs that instead, with its own flags, so that a tool run beside the daemon (a probe, the
//! init container) never depends on the daemon's settings parsing.
//!
//! Adding a subcommand: one variant of [`Command`] and its arm in [`Command::run`].

pub mod health;
pub mod inspect;
pub mod install;
pub mod max_pods;
mod table;

use std::ffi::OsString;
use std::future::Future;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::IpamdError;

/// A subcommand and its arguments.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Shows what a running ipamd holds (ENIs, pods, pool, peers, settings), from its
    /// introspection API: tables, or the API's JSON with `--json`.
    Inspect(inspect::InspectArgs),
    /// Asks a running ipamd's gRPC health service (over its unix socket) whether it serves:
    /// exit 0 when SERVING, 1 with a one-line reason otherwise. The DaemonSet's probes run it.
    Health(health::HealthArgs),
    /// Copies the vpc-cni plugin binary into the node's CNI bin directory, atomically
    /// (the DaemonSet's init container runs it).
    InstallCni(install::InstallArgs),
    /// Prints kubelet's max-pods for an instance type, by the formula ipamd's pool plans
    /// with: from EC2's DescribeInstanceTypes when AWS credentials are found, else from the
    /// table shipped with ipamd.
    MaxPods(max_pods::MaxPodsArgs),
}

/// The parser of `ipamd <subcommand> ...`.
#[derive(Debug, Parser)]
#[command(name = "ipamd", version, about = "vpc-cni node daemon: subcommands")]
struct Subcommands {
    #[command(subcommand)]
    command: Command,
}

/// The subcommand `args` (the whole command line, program name first) asks for, or `None`
/// when its first argument names none: then the command line is the daemon's.
///
/// `Some(Err)` is a subcommand with bad arguments (or `--help`): exit through
/// [`clap::Error::exit`].
#[must_use]
pub fn subcommand(args: &[OsString]) -> Option<Result<Command, clap::Error>> {
    let first = args.get(1)?.to_str()?;
    let named = Subcommands::command()
        .get_subcommands()
        .any(|c| c.get_name() == first);
    named.then(|| Subcommands::try_parse_from(args).map(|s| s.command))
}

impl Command {
    /// Runs the subcommand to its end; what it prints and its exit code are its answer.
    #[must_use]
    pub fn run(self) -> ExitCode {
        match self {
            Command::Inspect(args) => inspect::main(&args),
            Command::Health(args) => health::main(&args),
            Command::InstallCni(args) => install::main(&args),
            Command::MaxPods(args) => max_pods::main(&args),
        }
    }
}

/// Runs `work` to its end on a single-thread runtime of its own: a subcommand is one short
/// task, not worth the daemon's workers. `what` names the subcommand if the runtime fails.
fn block_on<T>(
    what: &str,
    work: impl Future<Output = Result<T, IpamdError>>,
) -> Result<T, IpamdError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| IpamdError::Io {
            context: format!("starting a runtime for {what}"),
            source,
        })?
        .block_on(work)
}

/// A subcommand's answer: `answer` on stdout and exit 0, or the error with its causes on
/// one line of stderr and exit 1.
fn finish(outcome: Result<String, IpamdError>) -> ExitCode {
    match outcome {
        Ok(answer) => {
            print!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", crate::daemon::supervise::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn args(line: &[&str]) -> Vec<OsString> {
        line.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_daemon_line_is_no_subcommand() {
        assert!(subcommand(&args(&["ipamd"])).is_none());
        assert!(subcommand(&args(&["ipamd", "--mode", "vpc"])).is_none());
        assert!(subcommand(&args(&["ipamd", "--help"])).is_none());
        // A flag's value that happens to be a subcommand's name is still the daemon's.
        assert!(subcommand(&args(&["ipamd", "--node-name", "health"])).is_none());
    }

    #[test]
    fn subcommands_parse_their_own_flags() {
        match subcommand(&args(&["ipamd", "health", "--socket", "/run/x.sock"])) {
            Some(Ok(Command::Health(h))) => {
                assert_eq!(h.socket, std::path::PathBuf::from("/run/x.sock"));
            }
            other => panic!("{other:?}"),
        }
        match subcommand(&args(&[
            "ipamd",
            "install-cni",
            "--to",
            "/host/opt/cni/bin",
        ])) {
            Some(Ok(Command::InstallCni(i))) => {
                assert_eq!(i.to, std::path::PathBuf::from("/host/opt/cni/bin"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            subcommand(&args(&["ipamd", "inspect", "pool", "--json"])),
            Some(Ok(Command::Inspect(_)))
        ));
        let err = subcommand(&args(&["ipamd", "install-cni"]))
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("--to"), "{err}");
    }

    #[test]
    fn the_daemons_help_lists_every_subcommand() {
        let help = crate::config::Settings::command()
            .get_after_help()
            .map(ToString::to_string)
            .unwrap_or_default();
        for sub in Subcommands::command().get_subcommands() {
            let name = format!("ipamd {}", sub.get_name());
            assert!(help.contains(&name), "{name} missing from: {help}");
        }
    }
}
