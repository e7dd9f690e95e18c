//! Throwaway network namespaces for the kernel tests, and threads that run inside them.

use std::fs::File;
use std::future::Future;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub(super) fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test creates network namespaces and nftables tables and needs root"
    );
}

/// `ip netns add`, with lo up; deleted on drop, also when the test panics.
pub(super) struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(role: &str) -> Self {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("vdp-{role}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> <args>`, which must succeed; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ip netns exec <ns> <args>`, whatever its outcome.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        Command::new("ip").args(&full).output().unwrap()
    }

    /// `ip netns exec <ns> <args>`, which must succeed; returns stdout.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `f` on a fresh thread that sits in this namespace, on its own runtime; the test
    /// thread never moves.
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
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// A sysctl value read from inside the namespace.
    pub fn sysctl(&self, path: &str) -> String {
        let path = path.to_owned();
        self.run(|| async move { std::fs::read_to_string(path).unwrap().trim().to_owned() })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

pub(super) fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A veth whose end `name` (with `mac`) is in `ns`, its peer `peer` in `peer_ns` (or left
/// down in `ns` when `peer_ns` is `None`): an ENI stand-in.
pub(super) fn add_eni_link(
    ns: &TestNetns,
    name: &str,
    mac: vpc_cni_proto::net::MacAddr,
    peer: &str,
    peer_ns: Option<&TestNetns>,
) {
    let mac = mac.to_string();
    let mut args = vec![
        "link", "add", name, "address", &mac, "type", "veth", "peer", "name", peer,
    ];
    if let Some(other) = peer_ns {
        args.extend_from_slice(&["netns", &other.name]);
    }
    ns.ip(&args);
}
