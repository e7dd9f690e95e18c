//! Namespaces the tests create and delete themselves, and threads that run inside them.

use std::collections::BTreeSet;
use std::fs::File;
use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::overlay::vxlan::DEVICE_NAME;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A namespace named `ovx-<role>-<pid>-<n>` with lo up; deleted on drop, panics included.
pub(crate) struct Ns {
    pub name: String,
}

impl Ns {
    pub fn new(role: &str) -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test creates network namespaces and VXLAN devices and needs root"
        );
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("ovx-{role}-{}-{n}", std::process::id());
        sh("ip", &["netns", "add", &name]);
        let ns = Self { name };
        // Onlink routes fail with "Nexthop has invalid gateway" while lo is down.
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> <args>`; must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        sh("ip", &full)
    }

    /// `bridge -n <ns> <args>`; must succeed.
    pub fn bridge(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        sh("bridge", &full)
    }

    /// `ip netns exec <ns> <args>`: (success, stdout + stderr).
    pub fn exec(&self, args: &[&str]) -> (bool, String) {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        let out = Command::new("ip").args(&full).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs `f` on a new thread inside this namespace with its own runtime.
    pub fn run<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let thread = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        });
        match thread.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Every neighbour, FDB entry and main-table route in the namespace, one per line, so
    /// that a comparison also sees changes on other devices.
    pub fn snapshot(&self) -> BTreeSet<String> {
        let mut lines = BTreeSet::new();
        for (tag, text) in [
            (
                "neigh",
                self.ip(&["-4", "neigh", "show", "nud", "permanent"]),
            ),
            ("fdb", self.bridge(&["fdb", "show"])),
            ("route", self.ip(&["-4", "route", "show", "table", "main"])),
        ] {
            lines.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| format!("{tag}: {}", l.trim_end())),
            );
        }
        lines
    }

    /// Only the entries on `vxlan.vpc`, and routes via it or with our protocol.
    pub fn overlay_entries(&self) -> BTreeSet<String> {
        self.snapshot()
            .into_iter()
            .filter(|l| {
                l.contains(&format!("dev {DEVICE_NAME}"))
                    && !l.contains("33:33:")
                    && !l.contains("01:00:5e:")
                    || l.contains("proto 86")
            })
            .collect()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

pub(crate) fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
