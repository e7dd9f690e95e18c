//! Test support for every vpc-cni crate (plugin, ipamd, integration): network namespaces made
//! for one test and removed by their guard ([`netns`]), commands and processes run in them
//! ([`process`]), the workspace binaries ([`bins`]), directory listings ([`files`]), the plugin invoked as a runtime invokes
//! it ([`plugin`]), pods ([`pod`]), reads of the kernel's neighbour table that stay exact
//! while other tests change it ([`neighbours`]), the packets a misbehaving pod sends:
//! hand-made ARP frames ([`arp`]) and UDP datagrams from any source address, sent in an
//! order the kernel keeps ([`send`]), and inboxes that see which of them arrive ([`udp`]);
//! and the configuration and generators every property test shares ([`prop`]).
//!
//! Hygiene (DESIGN.md): every namespace has a unique name and is deleted on drop, also when a
//! test panics; nothing here touches the namespace the tests run in.
//!
//! A failed set-up step panics where a test would otherwise have to unwrap it; the fallible
//! `try_` forms serve harness code that reports errors (the demo).

pub mod arp;
pub mod bins;
pub mod files;
pub mod neighbours;
pub mod netns;
pub mod plugin;
pub mod pod;
pub mod process;
pub mod prop;
pub mod send;
pub mod udp;

/// Panics with a clear message unless running as root: these tests create network
/// namespaces. `make test` runs as root, as CI does.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it creates network namespaces): run `make test` as root"
    );
}

/// A name no other test (or a crashed earlier run) can be using: a prefix, this process's id
/// and a counter.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}
