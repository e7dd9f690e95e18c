//! Network namespaces made for one test and removed by their guard.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A named network namespace (`/run/netns/<name>`) with `lo` up. Deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings `lo` up.
    pub fn new(name: &str) -> std::io::Result<Self> {
        run_checked(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Self {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// `ip -n <ns> <args>`, failing on a non-zero exit.
    pub fn ip(&self, args: &[&str]) -> std::io::Result<String> {
        let out = run_checked(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command that will run inside this namespace (setns before exec, so
    /// no `ip netns exec` remount of /sys is involved).
    #[must_use]
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let path = self.path();
        // SAFETY: the closure runs in the forked child before exec and only
        // opens a file and calls setns(2), both async-signal-safe syscalls.
        unsafe {
            cmd.pre_exec(move || {
                let file = std::fs::File::open(&path)?;
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
        cmd
    }

    /// One ping from this namespace; true when a reply came back.
    #[must_use]
    pub fn ping(&self, target: Ipv4Addr) -> bool {
        self.command("ping")
            .args(["-c", "1", "-W", "2", "-q", &target.to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Writes a sysctl under /proc/sys/net inside this namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> std::io::Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let status = self
            .command("sh")
            .args(["-c", &format!("echo {value} > {path}")])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "sysctl {key}={value} failed"
            )))
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs a command and turns a non-zero exit into an error carrying stderr.
pub fn run_checked(cmd: &mut Command) -> std::io::Result<Output> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(std::io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
