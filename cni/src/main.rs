//! `vpc-cni`: the CNI plugin binary. Thin: read env and stdin, run the
//! command, print the result or the spec's error JSON.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use vpc_cni::error::CniError;
use vpc_cni::log::PluginLog;
use vpc_cni::spec::{parse_version_only, CniEnv, MAX_STDIN_BYTES};

fn main() -> ExitCode {
    // Whatever happens, the runtime must get the spec's JSON, never a Rust
    // panic message on stdout.
    std::panic::set_hook(Box::new(|info| {
        let err = CniError::Internal(format!("plugin panicked: {info}"));
        println!("{}", err.to_json("1.1.0"));
        std::process::exit(1);
    }));

    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .take(u64::try_from(MAX_STDIN_BYTES).unwrap_or(u64::MAX) + 1)
        .read_to_end(&mut stdin);
    let started = Instant::now();
    let log = PluginLog::open(&stdin, |name| std::env::var_os(name));
    let version = parse_version_only(&stdin);
    let (env, outcome) = match read {
        Err(e) => (
            None,
            Err(CniError::io(
                "reading the network configuration from stdin",
                e,
            )),
        ),
        Ok(_) => match CniEnv::from_process() {
            Err(e) => (None, Err(e)),
            Ok(env) => {
                let outcome = execute(&env, &stdin);
                (Some(env), outcome)
            }
        },
    };
    log.finished(env.as_ref(), &stdin, &outcome, started.elapsed());
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(Some(text)) => {
            let _ = writeln!(out, "{text}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(out, "{}", err.to_json(&version));
            eprintln!("vpc-cni: {err}");
            ExitCode::FAILURE
        }
    }
}

fn execute(env: &CniEnv, stdin: &[u8]) -> Result<Option<String>, CniError> {
    // One thread: the dataplane switches network namespaces per thread, and a
    // plugin run is a handful of sequential requests.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::io("starting the async runtime", e))?;
    runtime.block_on(vpc_cni::commands::run(env, stdin))
}
