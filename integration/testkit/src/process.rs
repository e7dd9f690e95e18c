//! Commands and waits for tests and harnesses.

use std::io;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs a command and turns a non-zero exit into an error carrying stderr.
pub fn run_checked(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs a future to completion on a fresh single-threaded runtime.
pub fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
        .block_on(fut)
}

/// Polls `probe` every 50 ms until it returns Some or `limit` passes. A harness bound for
/// eventual conditions, never a timing assertion.
pub fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `call` on every item, each on its own thread, all started together; the results in
/// the items' order. A panic in one call is the caller's panic.
pub fn all_at_once<T: Send, R: Send>(
    items: impl Iterator<Item = T>,
    call: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.map(|item| scope.spawn(|| call(item))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
