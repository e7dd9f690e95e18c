//! podman (Debian's 4.3) forced onto its CNI backend and run inside a test
//! node's namespace, with every piece of its state under one temp dir.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use vpc_cni_integration::image;
use vpc_cni_integration::node::TestNode;
use vpc_cni_testkit::bins;
use vpc_cni_testkit::process::run_checked;
use vpc_cni_testkit::unique_name;

use crate::cleanup;

/// Debian's reference plugins; podman's CNI backend may call `loopback`.
const SYSTEM_PLUGINS: &str = "/usr/lib/cni";

/// What `podman inspect` says about a running container.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub id: String,
    pub ip: Ipv4Addr,
    /// The network namespace podman made for it (a bind mount in /run/netns).
    pub sandbox_key: PathBuf,
}

/// One podman "installation": config, storage and CNI dirs in a temp dir,
/// commands entering the node namespace. Dropping it removes its
/// containers, kills what it left running, unmounts and deletes its dir.
pub struct Podman {
    dir: tempfile::TempDir,
    node_netns: PathBuf,
    network: String,
    /// Containers go under this cgroup (in every hierarchy) so the guard can
    /// find their processes and remove the cgroups podman leaves behind.
    cgroup_parent: String,
    containers: Vec<Container>,
}

impl Podman {
    /// Writes the CNI dirs and containers.conf for `network` (a conflist at
    /// `cni_version`: the vpc-cni plugin, then `chained` plugins) and loads
    /// the test image.
    pub fn start(
        node: &TestNode,
        network: &str,
        cni_version: &str,
        chained: &[Value],
    ) -> std::io::Result<Self> {
        // Short on purpose: conmon's attach sockets live under tmp_dir/socket/<64 hex id>
        // and a unix socket path must stay under 108 bytes.
        let dir = tempfile::Builder::new().prefix("vpm").tempdir()?;
        cleanup::become_subreaper();
        let podman = Self {
            dir,
            node_netns: node.netns.path(),
            network: network.to_string(),
            cgroup_parent: format!("/{}", unique_name("vpc-cni-podman-")),
            containers: Vec::new(),
        };
        let root = podman.dir.path();
        let (bin, conf_dir) = (root.join("cni-bin"), root.join("cni-conf"));
        for sub in [&bin, &conf_dir, &root.join("tmp")] {
            std::fs::create_dir_all(sub)?;
        }
        std::os::unix::fs::symlink(bins::plugin(), bin.join("vpc-cni"))?;
        for plugin in ["loopback", "portmap"] {
            std::os::unix::fs::symlink(Path::new(SYSTEM_PLUGINS).join(plugin), bin.join(plugin))?;
        }
        let mut plugins = vec![serde_json::json!({
            "type": "vpc-cni",
            "ipamdSocket": node.ipamd.socket(),
        })];
        plugins.extend_from_slice(chained);
        let conflist = serde_json::json!({
            "cniVersion": cni_version,
            "name": network,
            "plugins": plugins,
        });
        std::fs::write(
            conf_dir.join(format!("{network}.conflist")),
            conflist.to_string(),
        )?;
        std::fs::write(root.join("containers.conf"), containers_conf(root))?;

        let tar = image::build_busybox_image(root)?;
        podman.checked(&[
            "load".as_ref(),
            "--quiet".as_ref(),
            "-i".as_ref(),
            tar.as_os_str(),
        ])?;
        Ok(podman)
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `podman <args>` inside the node namespace with this instance's config
    /// and storage. nsenter rather than `ip netns exec`: the latter remounts
    /// /sys, hiding the cgroup mounts runc needs.
    pub fn command(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> Command {
        let root = self.dir.path();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.node_netns.display()))
            .arg("podman")
            .env("CONTAINERS_CONF", root.join("containers.conf"))
            .arg("--root")
            .arg(root.join("root"))
            .arg("--runroot")
            .arg(root.join("runroot"))
            // vfs: no overlay mounts to clean up, and the image is 2 MB.
            .args(["--storage-driver", "vfs"])
            .args(args);
        cmd
    }

    /// A podman command that must succeed; returns its trimmed stdout.
    pub fn checked(&self, args: &[impl AsRef<std::ffi::OsStr>]) -> std::io::Result<String> {
        let out = run_checked(&mut self.command(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `podman run -d` on the test network with extra `options` (e.g. `-p`);
    /// `cmd` empty keeps the image's `sleep`. Records the container for the
    /// guard and returns what podman says about it.
    pub fn run(
        &mut self,
        name: &str,
        options: &[&str],
        cmd: &[&str],
    ) -> std::io::Result<Container> {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            &self.network,
            "--cgroup-parent",
            &self.cgroup_parent,
            // busybox ping opens a raw socket.
            "--cap-add",
            "NET_RAW",
        ];
        args.extend_from_slice(options);
        args.push(image::IMAGE_REF);
        args.extend_from_slice(cmd);
        let id = self.checked(&args)?;
        let container = self.inspect(name)?;
        if container.id != id {
            return Err(std::io::Error::other(format!(
                "podman run printed id {id} but inspect says {}",
                container.id
            )));
        }
        self.containers.push(container.clone());
        Ok(container)
    }

    /// Id, address on the test network and sandbox of a container.
    pub fn inspect(&self, name: &str) -> std::io::Result<Container> {
        let text = self.checked(&["container", "inspect", name])?;
        let parsed: Value = serde_json::from_str(&text)
            .map_err(|e| std::io::Error::other(format!("inspect {name}: {e}: {text}")))?;
        let entry = &parsed[0];
        let field = |value: &Value, what: &str| {
            value
                .as_str()
                .filter(|s| !s.is_empty())
                .map(ToString::to_string)
                .ok_or_else(|| std::io::Error::other(format!("inspect {name}: no {what}: {text}")))
        };
        let settings = &entry["NetworkSettings"];
        let ip = field(
            &settings["Networks"][&self.network]["IPAddress"],
            "IPAddress",
        )?;
        Ok(Container {
            name: name.to_string(),
            id: field(&entry["Id"], "Id")?,
            ip: ip
                .parse()
                .map_err(|e| std::io::Error::other(format!("inspect {name}: {ip}: {e}")))?,
            sandbox_key: PathBuf::from(field(&settings["SandboxKey"], "SandboxKey")?),
        })
    }

    /// `podman exec <name> <args>`, whatever its exit.
    pub fn exec(&self, name: &str, args: &[&str]) -> std::io::Result<Output> {
        let mut all = vec!["exec", name];
        all.extend_from_slice(args);
        self.command(&all).output()
    }
}

/// containers.conf forcing the CNI backend onto our dirs, with every other
/// path podman would share with the machine moved under `root`.
fn containers_conf(root: &Path) -> String {
    let path = |sub: &str| toml_string(&root.join(sub));
    format!(
        r#"[containers]
# podman's defaults raise nofile/nproc to the kernel maximum, which needs
# CAP_SYS_RESOURCE this machine does not grant.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[network]
network_backend = "cni"
cni_plugin_dirs = [{bin}]
network_config_dir = {conf}

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = {events}
runtime = "runc"
# File locks under tmp_dir instead of the machine-wide /dev/shm/libpod_lock.
lock_type = "file"
tmp_dir = {tmp}
volume_path = {volumes}
"#,
        bin = path("cni-bin"),
        conf = path("cni-conf"),
        events = path("events.log"),
        tmp = path("tmp"),
        volumes = path("volumes"),
    )
}

/// A TOML basic string; temp dir paths hold no quotes or backslashes, but
/// serde_json's escaping is also valid TOML for anything else.
fn toml_string(path: &Path) -> String {
    Value::String(path.display().to_string()).to_string()
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Ids podman knows, including a container whose `run` failed half-way.
        let mut ids: Vec<String> = self
            .checked(&["ps", "--all", "--quiet", "--no-trunc"])
            .map(|out| out.lines().map(ToString::to_string).collect())
            .unwrap_or_default();
        ids.extend(self.containers.iter().map(|c| c.id.clone()));
        ids.sort();
        ids.dedup();
        let _ = self
            .command(&["rm", "--all", "--force", "--time", "0"])
            .output();
        cleanup::kill_and_reap(self.dir.path());
        cleanup::remove_cgroup_tree(&self.cgroup_parent);
        for id in &ids {
            cleanup::remove_runc_state(id);
            cleanup::remove_cni_cache(&self.network, id);
        }
        for container in &self.containers {
            cleanup::remove_netns(&container.sandbox_key);
        }
        cleanup::unmount_under(self.dir.path());
        // TempDir's own drop then deletes the directory.
    }
}
