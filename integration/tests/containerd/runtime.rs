//! A containerd of the test's own: config, state, socket, CNI dirs and logs all
//! live in one temp dir; it runs inside the node namespace and leaves nothing
//! behind (processes, runc containers, mounts) when dropped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use vpc_cni_integration::image::{build_busybox_image, IMAGE_REF};
use vpc_cni_integration::node::TestNode;
use vpc_cni_testkit::bins;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::run_checked;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::unique_name;

use crate::cri::Kubelet;
use crate::procs::{become_subreaper, processes_mentioning, wait_and_reap_shims};

/// Reference plugins chained after ours (Debian's containernetworking-plugins).
const REFERENCE_PLUGINS: &[&str] = &["loopback", "portmap", "tuning", "bandwidth"];
const REFERENCE_PLUGIN_DIR: &str = "/usr/lib/cni";

/// Plugins this test has no use for; leaving them out keeps startup lean and
/// keeps containerd from touching paths outside its temp dir (`opt` wants /opt).
const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

/// Where containerd 1.6's shims put their sockets, whatever the config says.
const SHIM_SOCKET_ROOT: &str = "/run/containerd";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Harness bounds, never assertions.
const START_LIMIT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Where a containerd runs and which CNI set-up it finds.
pub enum Placement<'a> {
    /// The harness's test node: the plugin from the build tree, chained with Debian's
    /// reference plugins in a network configuration written here, dialing the node's ipamd.
    TestNode(&'a TestNode),
    /// A node as the DaemonSet finds it, its files under `root`: `/opt/cni/bin` with the
    /// loopback plugin only (the distribution's), an empty `/etc/cni/net.d`, and `/run`.
    /// containerd runs in a mount namespace of its own in which the node's `/run` is
    /// `root/run`, so the plugins it execs dial the socket that ipamd's container creates
    /// under its hostPath `/run/vpc-cni` (mapped to `root/run/vpc-cni`), as on a real node.
    KubeletNode { netns: &'a Netns, root: &'a Path },
}

impl Placement<'_> {
    fn netns(&self) -> PathBuf {
        match self {
            Placement::TestNode(node) => node.netns.path(),
            Placement::KubeletNode { netns, .. } => netns.path(),
        }
    }
}

/// The node's CNI directories below a kubelet node's root.
pub const NODE_CNI_BIN: &str = "opt/cni/bin";
pub const NODE_CNI_CONF: &str = "etc/cni/net.d";
pub const NODE_RUN: &str = "run";

/// A running containerd with the CRI plugin and a CNI set-up (see [`Placement`]).
pub struct Containerd {
    child: Option<Child>,
    socket: PathBuf,
    runc_root: PathBuf,
    log: PathBuf,
    /// Every pod's cgroups go below this, so teardown knows what to remove.
    cgroup_parent: String,
    /// Whether this guard may remove the (empty) shim socket dirs.
    made_shim_root: bool,
    // Last: removed only after everything under it is unmounted.
    dir: tempfile::TempDir,
}

impl Containerd {
    /// Writes the config and CNI dirs, starts containerd in `node`'s network
    /// namespace, waits for its socket and imports the busybox image.
    pub fn start(node: &TestNode) -> Self {
        Self::launch(&Placement::TestNode(node), &[])
    }

    /// A containerd for a node the DaemonSet sets up (see [`Placement::KubeletNode`]), with
    /// the busybox image (sandboxes and pods) and each archive of `images` imported.
    pub fn start_kubelet_node(netns: &Netns, root: &Path, images: &[PathBuf]) -> Self {
        Self::launch(&Placement::KubeletNode { netns, root }, images)
    }

    fn launch(placement: &Placement<'_>, images: &[PathBuf]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vpc-cni-containerd-")
            .tempdir()
            .unwrap();
        let mut containerd = Self {
            child: None,
            socket: dir.path().join("containerd.sock"),
            runc_root: dir.path().join("runc"),
            log: dir.path().join("containerd.log"),
            cgroup_parent: format!("/{}", unique_name("vpc-cni-test-")),
            made_shim_root: !Path::new(SHIM_SOCKET_ROOT).exists(),
            dir,
        };
        let config = containerd.write_config(placement);
        let log = std::fs::File::create(&containerd.log).unwrap();
        become_subreaper();
        // nsenter joins only the network namespace: `ip netns exec` would also
        // remount /sys, hiding the cgroup mounts runc needs.
        let mut command = Command::new("nsenter");
        command.arg(format!("--net={}", placement.netns().display()));
        match placement {
            Placement::TestNode(_) => {
                command.arg("containerd");
            }
            // The namespace path is opened before /run is replaced (it lives under
            // /run/netns); the new mount namespace is private, so nothing mounted in it
            // (rootfs overlays, the node's /run) shows on the machine, and all of it goes
            // when its last process does. `--no-mtab`: util-linux would first create
            // /run/mount (its utab) on the machine's /run.
            Placement::KubeletNode { root, .. } => {
                command
                    .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
                    .arg("mount --no-mtab --bind \"$0\" /run && exec containerd \"$@\"")
                    .arg(root.join(NODE_RUN));
            }
        }
        let child = command
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        containerd.child = Some(child);
        containerd.wait_ready();
        containerd.import_image(&build_busybox_image(containerd.dir.path()).unwrap());
        for image in images {
            containerd.import_image(image);
        }
        containerd
    }

    /// A CRI client whose pods live in this guard's cgroup parent.
    pub fn kubelet(&self) -> Kubelet {
        Kubelet::connect(&self.socket, &self.cgroup_parent)
            .unwrap_or_else(|e| panic!("connecting to the CRI: {e}"))
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// containerd's stderr so far.
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Writes containerd's configuration and the CNI directories of `placement`.
    fn write_config(&self, placement: &Placement<'_>) -> PathBuf {
        let (bin_dir, conf_dir) = match placement {
            Placement::TestNode(node) => self.write_test_node_cni(node),
            Placement::KubeletNode { root, .. } => prepare_kubelet_node(root),
        };
        self.write_toml(&bin_dir, &conf_dir)
    }

    /// Our plugin from the build tree and the reference plugins, and a configuration
    /// chaining them that dials `node`'s ipamd.
    fn write_test_node_cni(&self, node: &TestNode) -> (PathBuf, PathBuf) {
        let base = self.dir.path();
        let bin_dir = base.join("cni-bin");
        let conf_dir = base.join("cni-conf");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::os::unix::fs::symlink(bins::plugin(), bin_dir.join("vpc-cni")).unwrap();
        for plugin in REFERENCE_PLUGINS {
            let target = Path::new(REFERENCE_PLUGIN_DIR).join(plugin);
            assert!(
                target.exists(),
                "{} is missing: install containernetworking-plugins",
                target.display()
            );
            std::os::unix::fs::symlink(target, bin_dir.join(plugin)).unwrap();
        }
        // Debian's reference plugins are 1.1.1: they speak CNI up to 1.0.0.
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": "vpc",
            "plugins": [
                {"type": "vpc-cni", "ipamdSocket": node.ipamd.socket()},
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}}
            ]
        });
        std::fs::write(
            conf_dir.join("10-vpc.conflist"),
            serde_json::to_vec_pretty(&conflist).unwrap(),
        )
        .unwrap();
        (bin_dir, conf_dir)
    }

    fn write_toml(&self, bin_dir: &Path, conf_dir: &Path) -> PathBuf {
        let base = self.dir.path();
        let disabled = DISABLED_PLUGINS
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut toml = String::new();
        writeln!(toml, "version = 2").unwrap();
        writeln!(toml, "root = \"{}\"", base.join("root").display()).unwrap();
        writeln!(toml, "state = \"{}\"", base.join("state").display()).unwrap();
        writeln!(toml, "disabled_plugins = [{disabled}]").unwrap();
        writeln!(toml, "[grpc]\naddress = \"{}\"", self.socket.display()).unwrap();
        writeln!(
            toml,
            "[ttrpc]\naddress = \"{}\"",
            base.join("containerd.ttrpc.sock").display()
        )
        .unwrap();
        let cri = "[plugins.\"io.containerd.grpc.v1.cri\"]";
        writeln!(toml, "{cri}").unwrap();
        writeln!(toml, "sandbox_image = \"{IMAGE_REF}\"").unwrap();
        // No CAP_SYS_RESOURCE here: containers may not lower their OOM score.
        writeln!(toml, "restrict_oom_score_adj = true").unwrap();
        // Pod netns bind mounts under our state dir, not /var/run/netns.
        writeln!(toml, "netns_mounts_under_state_dir = true").unwrap();
        writeln!(
            toml,
            "[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = \"{}\"\nconf_dir = \"{}\"\nmax_conf_num = 1",
            bin_dir.display(),
            conf_dir.display()
        )
        .unwrap();
        writeln!(
            toml,
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nsnapshotter = \"overlayfs\"\ndefault_runtime_name = \"runc\""
        )
        .unwrap();
        writeln!(
            toml,
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\nruntime_type = \"io.containerd.runc.v2\""
        )
        .unwrap();
        // runc's own state would default to /run/containerd/runc: keep it ours
        // so a leftover container can be found and killed on drop.
        writeln!(
            toml,
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nRoot = \"{}\"",
            self.runc_root.display()
        )
        .unwrap();
        let path = base.join("config.toml");
        std::fs::write(&path, toml).unwrap();
        path
    }

    fn wait_ready(&mut self) {
        let socket = self.socket.clone();
        let ready = wait_for(START_LIMIT, || {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(Err(format!("containerd exited with {status}")));
                }
            }
            let up = ctr(&socket, &["version"]).is_ok();
            up.then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => {}
            Some(Err(why)) => panic!("{why}; log:\n{}", self.log_text()),
            None => panic!(
                "containerd did not answer within {START_LIMIT:?}; log:\n{}",
                self.log_text()
            ),
        }
    }

    /// `ctr images import` of a docker-archive into the CRI's namespace.
    fn import_image(&self, image: &Path) {
        let image = image.display().to_string();
        if let Err(e) = ctr(&self.socket, &["-n", "k8s.io", "images", "import", &image]) {
            panic!("importing {image}: {e}; log:\n{}", self.log_text());
        }
    }

    /// Stops and removes every sandbox the CRI still knows, as a kubelet
    /// would before going away: this sends the CNI DELs and ends the shims.
    fn remove_leftover_sandboxes(&self) {
        let Ok(kubelet) = Kubelet::connect(&self.socket, &self.cgroup_parent) else {
            return;
        };
        for id in kubelet.list_pod_sandboxes().unwrap_or_default() {
            let _ = kubelet.stop_pod_sandbox(&id);
            let _ = kubelet.remove_pod_sandbox(&id);
        }
    }

    fn stop_daemon(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let exited = wait_for(STOP_GRACE, || child.try_wait().ok().flatten());
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Containers the CRI failed to remove: kill them through runc (our own
    /// runc root), then end any shim still serving our socket, by PID.
    fn kill_leftover_processes(&self) {
        if let Ok(out) = Command::new("runc")
            .arg("--root")
            .arg(self.runc_root.join("k8s.io"))
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(self.runc_root.join("k8s.io"))
                    .args(["delete", "--force", id])
                    .output();
            }
        }
        for pid in processes_mentioning(self.dir.path()) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        wait_and_reap_shims(self.dir.path());
        // A killed shim leaves its socket behind; each task dir records it.
        for socket in shim_sockets(&self.dir.path().join("state")) {
            let _ = std::fs::remove_file(socket);
        }
    }

    /// Lazily unmounts everything mounted under our dir, deepest first
    /// (rootfs overlays, shm, pod netns bind mounts).
    fn unmount_all(&self) {
        for mount in mounts_under(self.dir.path()).iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(mount).output();
        }
    }
}

impl Containerd {
    /// runc removes a container's cgroup but not the parents it made.
    fn remove_cgroups(&self) {
        let Ok(hierarchies) = std::fs::read_dir(CGROUP_ROOT) else {
            return;
        };
        let relative = self.cgroup_parent.trim_start_matches('/');
        for hierarchy in hierarchies.filter_map(Result::ok) {
            let parent = hierarchy.path().join(relative);
            // Children first: only a failed teardown leaves any.
            if let Ok(children) = std::fs::read_dir(&parent) {
                for child in children.filter_map(Result::ok) {
                    if child.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(child.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }

    /// Removes the shim socket dirs when we made them and they are empty
    /// (rmdir fails while another test's shims still use them).
    fn remove_shim_root(&self) {
        if self.made_shim_root {
            let root = Path::new(SHIM_SOCKET_ROOT);
            let _ = std::fs::remove_dir(root.join("s"));
            let _ = std::fs::remove_dir(root);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "containerd log ({}):\n{}",
                self.log.display(),
                self.log_text()
            );
        }
        if self.child.is_some() {
            self.remove_leftover_sandboxes();
        }
        self.stop_daemon();
        self.kill_leftover_processes();
        self.unmount_all();
        self.remove_cgroups();
        self.remove_shim_root();
    }
}

/// A node's CNI directories as the DaemonSet finds them on a fresh node: the loopback
/// plugin (the runtime's own need, from the distribution) and no network configuration;
/// and the node's `/run`. Returns the bin and conf directories.
fn prepare_kubelet_node(root: &Path) -> (PathBuf, PathBuf) {
    let bin_dir = root.join(NODE_CNI_BIN);
    let conf_dir = root.join(NODE_CNI_CONF);
    for dir in [&bin_dir, &conf_dir, &root.join(NODE_RUN)] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let loopback = Path::new(REFERENCE_PLUGIN_DIR).join("loopback");
    assert!(
        loopback.exists(),
        "{} is missing: install containernetworking-plugins",
        loopback.display()
    );
    std::fs::copy(&loopback, bin_dir.join("loopback")).unwrap();
    (bin_dir, conf_dir)
}

/// Runs `ctr --address <socket> <args>`.
fn ctr(socket: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    run_checked(Command::new("ctr").arg("--address").arg(socket).args(args))
}

/// Socket paths of the shims of every task still under containerd's state
/// dir (`<state>/io.containerd.runtime.v2.task/<ns>/<id>/address`).
fn shim_sockets(state: &Path) -> Vec<PathBuf> {
    let tasks = state.join("io.containerd.runtime.v2.task");
    let dirs = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    dirs(&tasks)
        .iter()
        .flat_map(|ns| dirs(ns))
        .filter_map(|task| std::fs::read_to_string(task.join("address")).ok())
        .filter_map(|address| {
            let path = PathBuf::from(address.trim().trim_start_matches("unix://"));
            path.starts_with(SHIM_SOCKET_ROOT).then_some(path)
        })
        .collect()
}

/// Mount points under `dir`, in mountinfo order (parents before children).
#[must_use]
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}
