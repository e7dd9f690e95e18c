//! Network namespaces made for one test and removed by their guard.

use std::fs::File;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::process::run_checked;

/// A named network namespace (`/run/netns/<name>`) with `lo` up. Deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings `lo` up (onlink routes and local traffic need it).
    pub fn try_new(name: &str) -> io::Result<Self> {
        run_checked(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Self {
            name: name.to_string(),
        };
        ns.try_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// [`Netns::try_new`] for a test: needs root, and panics if the namespace cannot be made.
    #[must_use]
    pub fn new(name: &str) -> Self {
        crate::require_root();
        Self::try_new(name).unwrap_or_else(|e| panic!("creating netns {name}: {e}"))
    }

    /// A namespace named `<prefix><pid>x<n>`, unique in this process and across crashed runs.
    #[must_use]
    pub fn unique(prefix: &str) -> Self {
        Self::new(&crate::unique_name(prefix))
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// `ip -n <ns> <args>`, failing on a non-zero exit; stdout.
    pub fn try_ip(&self, args: &[&str]) -> io::Result<String> {
        let out = run_checked(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ip -n <ns> <args>`, which must succeed; stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        self.try_ip(args)
            .unwrap_or_else(|e| panic!("in netns {}: {e}", self.name))
    }

    /// `bridge -n <ns> <args>`, which must succeed; stdout.
    pub fn bridge(&self, args: &[&str]) -> String {
        run_checked(Command::new("bridge").arg("-n").arg(&self.name).args(args))
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_else(|e| panic!("in netns {}: {e}", self.name))
    }

    /// `ip -n <ns> -batch -` over `commands`. With `force`, keeps going past failing lines
    /// (deletions whose target may already be gone).
    pub fn ip_batch(&self, commands: &[String], force: bool) -> io::Result<()> {
        if commands.is_empty() {
            return Ok(());
        }
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]);
        if force {
            cmd.arg("-force");
        }
        cmd.args(["-batch", "-"]);
        let out = feed(&mut cmd, commands.join("\n").as_bytes())?;
        if force {
            return Ok(());
        }
        succeeded(&out, || {
            format!("ip -n {} -batch (batch: {commands:?})", self.name)
        })
    }

    /// A command that will run inside this namespace: setns before exec, so no `ip netns
    /// exec` remount of /sys is involved (which hides cgroup mounts from runc).
    #[must_use]
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let path = self.path();
        // SAFETY: the closure runs in the forked child before exec and only opens a file and
        // calls setns(2), both async-signal-safe syscalls.
        unsafe {
            cmd.pre_exec(move || {
                let file = File::open(&path)?;
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)
            });
        }
        cmd
    }

    /// `nsenter --net=<namespace> <program>`: how a runtime that lives outside the namespace
    /// (containerd, podman) execs a plugin into it, one more exec than [`Netns::command`].
    #[must_use]
    pub fn nsenter_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg(program);
        cmd
    }

    /// `args` run inside the namespace, whatever its outcome.
    #[must_use]
    pub fn exec(&self, args: &[&str]) -> Output {
        let (program, rest) = args.split_first().unwrap_or((&"true", &[]));
        self.command(program)
            .args(rest)
            .output()
            .unwrap_or_else(|e| panic!("running {args:?} in netns {}: {e}", self.name))
    }

    /// `args` run inside the namespace, which must succeed; stdout.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in netns {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nft <args>` inside the namespace; stdout.
    pub fn nft(&self, args: &[&str]) -> io::Result<String> {
        let out = run_checked(self.command("nft").args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Loads an nft script inside the namespace (never in the caller's).
    pub fn nft_load(&self, script: &str) -> io::Result<()> {
        let out = feed(self.command("nft").args(["-f", "-"]), script.as_bytes())?;
        succeeded(&out, || {
            format!("nft -f in {} (script:\n{script})", self.name)
        })
    }

    /// One ping from this namespace; true when a reply came back.
    #[must_use]
    pub fn ping(&self, target: Ipv4Addr) -> bool {
        self.command("ping")
            .args(["-c", "1", "-W", "2", "-q", &target.to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Runs `f` on a fresh thread that has joined this namespace; only that thread moves, so
    /// sockets it creates stay in the namespace for their whole life.
    pub fn in_thread<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let path = self.path();
        std::thread::spawn(move || {
            let file = File::open(&path)?;
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                io::Error::other(format!("setns into {} failed: {e}", path.display()))
            })?;
            f()
        })
        .join()
        .map_err(|_| io::Error::other("namespace worker thread panicked"))?
    }

    /// Runs an async closure on a fresh thread inside this namespace, on a current-thread
    /// runtime like the plugin's and ipamd's; a panic in it is the test's panic.
    pub fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = self.path();
        let thread = std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns into {}: {e}", path.display()));
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
                .block_on(f())
        });
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Writes sysctls (`net.ipv4.ip_forward` form) inside the namespace: /proc/sys/net
    /// belongs to the namespace of the thread that opens it.
    pub fn write_sysctls(&self, values: &[(&str, &str)]) -> io::Result<()> {
        let values: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (sysctl_path(k), (*v).to_string()))
            .collect();
        self.in_thread(move || {
            for (path, value) in values {
                std::fs::write(&path, &value)
                    .map_err(|e| io::Error::other(format!("writing {value} to {path}: {e}")))?;
            }
            Ok(())
        })
    }

    /// A sysctl (`net.ipv4.ip_forward` form, or its /proc/sys path) read inside the
    /// namespace, trimmed.
    #[must_use]
    pub fn sysctl(&self, key: &str) -> String {
        let path = sysctl_path(key);
        self.in_thread(move || std::fs::read_to_string(&path).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|e| panic!("reading {key} in netns {}: {e}", self.name))
    }

    /// Turns on IPv4 forwarding in this namespace only.
    pub fn enable_forwarding(&self) {
        self.write_sysctls(&[("net.ipv4.ip_forward", "1")])
            .unwrap_or_else(|e| panic!("in netns {}: {e}", self.name));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// `net.ipv4.ip_forward` as its /proc/sys path; a key that is a path already is kept (an
/// interface name may hold a dot: `/proc/sys/net/ipv4/conf/vxlan.vpc/rp_filter`).
fn sysctl_path(key: &str) -> String {
    if key.starts_with('/') {
        key.to_owned()
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

/// `Ok` for a command that exited 0; otherwise an error naming `what` with its stderr.
fn succeeded(out: &Output, what: impl FnOnce() -> String) -> io::Result<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{} failed: {}",
            what(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs `cmd` with `input` on its stdin.
pub fn feed(cmd: &mut Command, input: &[u8]) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // The program may stop reading early; its answer is what counts.
        let _ = stdin.write_all(input);
    }
    child.wait_with_output()
}
