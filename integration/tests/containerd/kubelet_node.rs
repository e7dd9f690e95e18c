//! One vpc-sim instance set up as the kubelet sets up a node for the DaemonSet: its own
//! containerd (in the instance's network namespace, its files under a per-node root), the
//! DaemonSet's pod run through the CRI (sandbox, init container, ipamd container, probes),
//! then ordinary pods against the network configuration ipamd wrote.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_cri::v1::{ContainerState, PodSandboxConfig};
use vpc_cni_testkit::files::entry_names;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::wait_for;

use crate::cri::{ExecOutput, Kubelet};
use crate::daemonset::{DaemonSetPod, NodeFacts, Probe};
use crate::runtime::{Containerd, NODE_CNI_BIN, NODE_CNI_CONF};

/// The file ipamd writes into the node's CNI configuration directory.
pub const CONFLIST: &str = "10-vpc-cni.conflist";
/// The main container of the DaemonSet.
pub const IPAMD: &str = "ipamd";

/// Harness bounds, never assertions: an init container's run, the runtime noticing a new
/// network configuration.
const INIT_LIMIT: Duration = Duration::from_secs(60);
const NETWORK_READY_LIMIT: Duration = Duration::from_secs(30);
/// How often the folder and the runtime are looked at between probes.
const WATCH_PERIOD: Duration = Duration::from_millis(100);

/// A node whose ipamd runs in the DaemonSet's pod. Field order is drop order: the CRI
/// client, then containerd (which removes what is left of the pod), then the node's files.
pub struct KubeletNode {
    pub kubelet: Kubelet,
    pub containerd: Containerd,
    pub name: String,
    pub host_ip: Ipv4Addr,
    pub sandbox_id: String,
    pub sandbox_config: PodSandboxConfig,
    pub ipamd_container: String,
    log_directory: PathBuf,
    root: tempfile::TempDir,
}

impl KubeletNode {
    /// Starts containerd on the node with `images` imported, and runs the DaemonSet's
    /// sandbox and init containers (each to a zero exit). ipamd's container is not started:
    /// see [`KubeletNode::start_ipamd`].
    pub fn prepare(
        netns: &Netns,
        name: &str,
        host_ip: Ipv4Addr,
        pod: &DaemonSetPod,
        images: &[PathBuf],
        facts: &NodeFactsOwned,
    ) -> Self {
        let root = tempfile::Builder::new()
            .prefix("vpc-cni-node-")
            .tempdir()
            .unwrap();
        let containerd = Containerd::start_kubelet_node(netns, root.path(), images);
        let kubelet = containerd.kubelet();
        let image = pod.image();
        // imagePullPolicy IfNotPresent: no registry is asked for an image the node holds.
        assert!(
            kubelet.image_present(&image).unwrap(),
            "the runtime does not hold {image}"
        );
        let log_directory = kubelet
            .new_log_directory(&format!("vpc-cni-{name}-"))
            .unwrap();
        let sandbox_config = pod.sandbox_config(
            &facts.borrow(name, host_ip, root.path()),
            &log_directory,
            kubelet.cgroup_parent(),
        );
        let sandbox_id = kubelet.run_sandbox(&sandbox_config).unwrap();
        let node = Self {
            kubelet,
            containerd,
            name: name.to_owned(),
            host_ip,
            sandbox_id,
            sandbox_config,
            ipamd_container: String::new(),
            log_directory,
            root,
        };
        for init in pod.container_names("initContainers") {
            node.run_init_container(pod, facts, &init);
        }
        node
    }

    /// The node's CNI configuration directory (hostPath /etc/cni/net.d).
    pub fn conf_dir(&self) -> PathBuf {
        self.root.path().join(NODE_CNI_CONF)
    }

    /// The node's CNI plugin directory (hostPath /opt/cni/bin).
    pub fn bin_dir(&self) -> PathBuf {
        self.root.path().join(NODE_CNI_BIN)
    }

    fn run_init_container(&self, pod: &DaemonSetPod, facts: &NodeFactsOwned, name: &str) {
        let config = pod.container_config(
            "initContainers",
            name,
            &facts.borrow(&self.name, self.host_ip, self.root.path()),
        );
        let id = self
            .kubelet
            .create_and_start(&self.sandbox_id, &self.sandbox_config, config)
            .unwrap_or_else(|e| panic!("starting init container {name}: {e}"));
        let status = wait_for(INIT_LIMIT, || {
            let status = self.kubelet.container_status(&id).ok()?;
            (status.state == ContainerState::ContainerExited as i32).then_some(status)
        })
        .unwrap_or_else(|| {
            panic!(
                "init container {name} did not finish\n{}",
                self.container_log(name)
            )
        });
        assert_eq!(
            status.exit_code,
            0,
            "init container {name}: {} {}\n{}",
            status.reason,
            status.message,
            self.container_log(name)
        );
    }

    /// Starts ipamd's container and runs its startup probe as the kubelet does (every
    /// period, up to the failure threshold) while watching the node's CNI configuration
    /// directory and the runtime's NetworkReady condition every [`WATCH_PERIOD`]:
    /// - whenever the runtime reports the network ready, the configuration is in the folder;
    /// - whenever the folder holds it, the health probe run right after passes (ipamd's
    ///   health never goes back to failing during start-up, so the file came after it);
    /// - the folder is empty when the container starts (asserted before it does).
    ///
    /// Returns once the probe passed and the runtime reports the network ready.
    pub fn start_ipamd(&mut self, pod: &DaemonSetPod, facts: &NodeFactsOwned) {
        let conflist = self.conf_dir().join(CONFLIST);
        assert!(
            !conflist.exists(),
            "{} exists before ipamd started",
            conflist.display()
        );
        let (ready, why) = self.kubelet.network_ready().unwrap();
        assert!(
            !ready,
            "the runtime reports the network ready before ipamd runs"
        );
        assert!(!why.is_empty());

        let config = pod.container_config(
            "containers",
            IPAMD,
            &facts.borrow(&self.name, self.host_ip, self.root.path()),
        );
        self.ipamd_container = self
            .kubelet
            .create_and_start(&self.sandbox_id, &self.sandbox_config, config)
            .unwrap_or_else(|e| panic!("starting ipamd's container: {e}"));

        let startup = pod.probe(IPAMD, "startupProbe");
        let mut failures = 0;
        let mut next_probe = Instant::now();
        let mut started_at: Option<Instant> = None;
        loop {
            let ready = self.kubelet.network_ready().unwrap().0;
            let present = conflist.exists();
            if ready {
                assert!(
                    present,
                    "the runtime reports the network ready with no configuration"
                );
            }
            if present {
                let probe = self.run_probe(&startup);
                assert!(
                    probe.success(),
                    "{} is there but ipamd's health probe fails: {probe:?}\n{}",
                    conflist.display(),
                    self.diagnostics()
                );
            }
            match started_at {
                None if Instant::now() >= next_probe => {
                    let probe = self.run_probe(&startup);
                    if probe.success() {
                        started_at = Some(Instant::now());
                    } else {
                        failures += 1;
                        assert!(
                            failures < startup.failure_threshold,
                            "the startup probe failed {failures} times: {probe:?}\n{}",
                            self.diagnostics()
                        );
                    }
                    next_probe += startup.period;
                }
                Some(_) if ready => return,
                Some(at) => assert!(
                    at.elapsed() < NETWORK_READY_LIMIT,
                    "ipamd is healthy but the network never turned ready\n{}",
                    self.diagnostics()
                ),
                None => {}
            }
            std::thread::sleep(WATCH_PERIOD);
        }
    }

    /// ExecSync of an exec probe in ipamd's container, as the kubelet's prober runs it.
    pub fn run_probe(&self, probe: &Probe) -> ExecOutput {
        let cmd: Vec<&str> = probe.command.iter().map(String::as_str).collect();
        self.kubelet
            .exec(&self.ipamd_container, &cmd, probe.timeout_s)
            .unwrap_or_else(|e| {
                panic!(
                    "ExecSync {cmd:?} in ipamd's container: {e}\n{}",
                    self.diagnostics()
                )
            })
    }

    /// The pod addresses ipamd holds, as the image's `ipamd inspect pods --json` run in its
    /// container shows them.
    pub fn pod_ips_ipamd_holds(&self) -> Vec<String> {
        let cmd = ["/opt/vpc-cni/bin/ipamd", "inspect", "pods", "--json"];
        let out = self
            .kubelet
            .exec(&self.ipamd_container, &cmd, 30)
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?} in ipamd's container: {e}"));
        assert!(out.success(), "{cmd:?} in ipamd's container: {out:?}");
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        report["pods"]
            .as_array()
            .unwrap_or_else(|| panic!("no pods in {report}"))
            .iter()
            .map(|p| p["ip"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The PID of ipamd's container's first process, from the runtime's verbose status.
    pub fn ipamd_pid(&self) -> u32 {
        let info = self.kubelet.container_info(&self.ipamd_container).unwrap();
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        u32::try_from(info["pid"].as_u64().unwrap()).unwrap()
    }

    /// What a container of the DaemonSet's pod wrote to its log.
    pub fn container_log(&self, name: &str) -> String {
        let path = self.log_directory.join(name).join("0.log");
        std::fs::read_to_string(&path).unwrap_or_else(|e| format!("({}: {e})", path.display()))
    }

    /// ipamd's log, the folder and the runtime's log, for a failure message.
    pub fn diagnostics(&self) -> String {
        let conf = entry_names(&self.conf_dir());
        format!(
            "--- node {} ({}) ---\n--- ipamd's container log ---\n{}\n--- {} ---\n{conf:?}\n\
             --- containerd log ---\n{}",
            self.name,
            self.host_ip,
            self.container_log(IPAMD),
            self.conf_dir().display(),
            self.containerd.log_text()
        )
    }

    /// As the kubelet deletes the DaemonSet's pod: StopContainer with the grace period,
    /// RemoveContainer, then the sandbox.
    pub fn stop_daemonset_pod(&self, grace_s: i64) {
        self.kubelet
            .stop_container(&self.ipamd_container, grace_s)
            .unwrap();
        let status = self
            .kubelet
            .container_status(&self.ipamd_container)
            .unwrap();
        assert_eq!(
            status.state,
            ContainerState::ContainerExited as i32,
            "ipamd's container did not stop"
        );
        self.kubelet
            .remove_container(&self.ipamd_container)
            .unwrap();
        self.kubelet.stop_pod_sandbox(&self.sandbox_id).unwrap();
        self.kubelet.remove_pod_sandbox(&self.sandbox_id).unwrap();
    }
}

/// [`NodeFacts`] without the borrowed node parts: what the test prepares per node.
pub struct NodeFactsOwned {
    pub service_account: PathBuf,
    pub service_env: Vec<(String, String)>,
}

impl NodeFactsOwned {
    pub fn borrow<'a>(&'a self, name: &'a str, host_ip: Ipv4Addr, root: &'a Path) -> NodeFacts<'a> {
        NodeFacts {
            name,
            host_ip,
            root,
            service_account: &self.service_account,
            service_env: &self.service_env,
        }
    }
}
