//! Thin wrappers over `ip`, `nft` and setns(2), all aimed at one named
//! namespace; nothing here can touch the namespace the tests run in.

use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::netns::Netns;

/// Runs `ip -n <ns> -batch -` over `commands`. With `force`, keeps going
/// past failing lines (used for deletions whose target may already be gone).
pub fn ip_batch(ns: &str, commands: &[String], force: bool) -> io::Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    cmd.args(["-n", ns]);
    if force {
        cmd.arg("-force");
    }
    cmd.args(["-batch", "-"]);
    let out = feed(&mut cmd, &commands.join("\n"))?;
    if out.status.success() || force {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip -n {ns} -batch failed: {} (batch: {commands:?})",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Loads an nft script inside `ns` (never in the caller's namespace).
pub fn nft_load(ns: &Netns, script: &str) -> io::Result<()> {
    let out = feed(ns.command("nft").args(["-f", "-"]), script)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "nft -f in {} failed: {}\nscript:\n{script}",
            ns.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `nft <args>` inside `ns`, returning stdout.
pub fn nft(ns: &Netns, args: &[&str]) -> io::Result<String> {
    let out = ns.command("nft").args(args).output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "nft {args:?} in {} failed: {}",
            ns.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn feed(cmd: &mut Command, input: &str) -> io::Result<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    child.wait_with_output()
}

/// Runs `f` on a fresh thread that has joined the namespace at `path`.
/// Only that thread moves; sockets it creates stay in that namespace for
/// their whole life, which is how the fabric's servers listen inside it.
pub fn in_netns<T, F>(path: PathBuf, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)?;
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::other(format!("setns into {} failed: {e}", path.display())))?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("namespace worker thread panicked"))?
}

/// Writes sysctls (`net.ipv4.ip_forward` form) inside the namespace:
/// /proc/sys/net belongs to the namespace of the thread that opens it.
pub fn sysctls(ns: &Netns, values: &[(&str, &str)]) -> io::Result<()> {
    let values: Vec<(String, String)> = values
        .iter()
        .map(|(k, v)| {
            (
                format!("/proc/sys/{}", k.replace('.', "/")),
                (*v).to_string(),
            )
        })
        .collect();
    in_netns(ns.path(), move || {
        for (path, value) in values {
            std::fs::write(&path, &value)
                .map_err(|e| io::Error::other(format!("writing {value} to {path}: {e}")))?;
        }
        Ok(())
    })
}
