//! Test harness for vpc-cni: throwaway network namespaces, ipamd processes and
//! plugin invocations, shared by the end-to-end tests and the demo.
//!
//! Hygiene (DESIGN.md): every namespace a harness object creates has a unique
//! name and is deleted by its guard on drop, also when a test panics; every
//! process it starts is killed by PID on drop.

pub mod bins;
pub mod fabric;
pub mod fake_kube;
pub mod image;
pub mod ipamd_proc;
pub mod netns;
pub mod node;
pub mod overlay_cluster;
pub mod plugin;
pub mod vpc_cluster;
pub mod vpcsim;

/// Panics with a clear message unless running as root: these tests create
/// network namespaces. `make test` runs as root, as CI does.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it creates network namespaces): run `make test` as root"
    );
}

/// A name no other test (or a crashed earlier run) can be using: a prefix,
/// this process's id and a counter.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}
