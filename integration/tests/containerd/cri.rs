//! A kubelet stand-in: the CRI calls a kubelet makes to start a pod, run a
//! container in it, exec into it and tear it down, over containerd's socket.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerStatus, ContainerStatusRequest,
    ContainerStatusResponse, CreateContainerRequest, ExecSyncRequest, ImageSpec,
    ImageStatusRequest, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListPodSandboxRequest,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest,
    PortMapping, Protocol, RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StatusRequest, StopContainerRequest, StopPodSandboxRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};
use vpc_cni_integration::image::IMAGE_REF;
use vpc_cni_testkit::unique_name;

/// Bound of one CRI call; RunPodSandbox includes the whole CNI ADD chain.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// What ExecSync returned.
#[derive(Debug)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    #[must_use]
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
}

/// A pod as the kubelet knows it: the sandbox id (the CNI container id), its
/// config (needed again for CreateContainer) and the address the CRI reports.
#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub sandbox_id: String,
    pub config: PodSandboxConfig,
    pub ip: Ipv4Addr,
}

/// A synchronous CRI client; safe to share between threads.
pub struct Kubelet {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    log_root: PathBuf,
    cgroup_parent: String,
}

impl Kubelet {
    /// Connects to the CRI on containerd's unix socket; pods it creates
    /// get their cgroups under `cgroup_parent`.
    pub fn connect(socket: &Path, cgroup_parent: &str) -> Result<Self, tonic::transport::Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let path = socket.to_path_buf();
        // tonic wants a URI; the connector dials the unix socket instead.
        let channel = rt.block_on(
            Endpoint::from_static("http://containerd.invalid")
                .timeout(CALL_TIMEOUT)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                })),
        )?;
        let log_root = socket.with_file_name("pod-logs");
        Ok(Self {
            rt,
            client: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            log_root,
            cgroup_parent: cgroup_parent.into(),
        })
    }

    /// RunPodSandbox (which runs the CNI ADD), then reads the pod's address
    /// from PodSandboxStatus. `host_port` maps that node port to port 80.
    pub fn run_pod(&self, name: &str, host_port: Option<u16>) -> Result<Pod, tonic::Status> {
        let uid = unique_name("uid");
        let log_directory = self.log_root.join(&uid);
        std::fs::create_dir_all(&log_directory).map_err(|e| {
            tonic::Status::internal(format!("creating {}: {e}", log_directory.display()))
        })?;
        let port_mappings = host_port
            .map(|port| PortMapping {
                protocol: Protocol::Tcp.into(),
                container_port: 80,
                host_port: i32::from(port),
                host_ip: String::new(),
            })
            .into_iter()
            .collect();
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid,
                namespace: "vpc-cni-test".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: log_directory.display().to_string(),
            port_mappings,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Pod.into(),
                        pid: NamespaceMode::Pod.into(),
                        ipc: NamespaceMode::Pod.into(),
                        ..NamespaceOption::default()
                    }),
                    ..LinuxSandboxSecurityContext::default()
                }),
                ..LinuxPodSandboxConfig::default()
            }),
            ..PodSandboxConfig::default()
        };
        let sandbox_id = self.run_sandbox(&config)?;
        let ip = self.pod_ip(&sandbox_id)?;
        Ok(Pod {
            name: name.into(),
            sandbox_id,
            config,
            ip,
        })
    }

    /// RunPodSandbox with `config` (the CNI ADD, unless the sandbox uses the node's network);
    /// the sandbox id.
    pub fn run_sandbox(&self, config: &PodSandboxConfig) -> Result<String, tonic::Status> {
        let mut client = self.client.clone();
        let request = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        Ok(self
            .rt
            .block_on(client.run_pod_sandbox(request))?
            .into_inner()
            .pod_sandbox_id)
    }

    /// Where a sandbox's container logs go, as the kubelet's `/var/log/pods/<pod>`: a fresh
    /// directory under this client's log root.
    pub fn new_log_directory(&self, pod: &str) -> Result<PathBuf, tonic::Status> {
        let dir = self.log_root.join(unique_name(pod));
        std::fs::create_dir_all(&dir)
            .map_err(|e| tonic::Status::internal(format!("creating {}: {e}", dir.display())))?;
        Ok(dir)
    }

    /// The cgroup parent of this client's sandboxes.
    #[must_use]
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// The address PodSandboxStatus reports for a sandbox.
    pub fn pod_ip(&self, sandbox_id: &str) -> Result<Ipv4Addr, tonic::Status> {
        let mut client = self.client.clone();
        let status = self
            .rt
            .block_on(client.pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: sandbox_id.into(),
                verbose: false,
            }))?
            .into_inner();
        let ip = status
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default();
        ip.parse().map_err(|_| {
            tonic::Status::internal(format!("sandbox {sandbox_id} reports address {ip:?}"))
        })
    }

    /// CreateContainer + StartContainer in `pod` running `command`.
    pub fn start_container(
        &self,
        pod: &Pod,
        name: &str,
        command: &[&str],
    ) -> Result<String, tonic::Status> {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: IMAGE_REF.into(),
                ..ImageSpec::default()
            }),
            command: command.iter().map(ToString::to_string).collect(),
            log_path: format!("{name}.log"),
            ..ContainerConfig::default()
        };
        self.create_and_start(&pod.sandbox_id, &pod.config, config)
    }

    /// CreateContainer + StartContainer of `config` in the sandbox `sandbox_id` made from
    /// `sandbox_config`; the container id.
    pub fn create_and_start(
        &self,
        sandbox_id: &str,
        sandbox_config: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let mut client = self.client.clone();
        let id = self
            .rt
            .block_on(client.create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            }))?
            .into_inner()
            .container_id;
        self.rt
            .block_on(client.start_container(StartContainerRequest {
                container_id: id.clone(),
            }))?;
        Ok(id)
    }

    /// ExecSync with a timeout in seconds (the runtime kills the command then).
    pub fn exec(
        &self,
        container_id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<ExecOutput, tonic::Status> {
        let mut client = self.client.clone();
        let reply = self
            .rt
            .block_on(client.exec_sync(ExecSyncRequest {
                container_id: container_id.into(),
                cmd: cmd.iter().map(ToString::to_string).collect(),
                timeout: timeout_s,
            }))?
            .into_inner();
        Ok(ExecOutput {
            exit_code: reply.exit_code,
            stdout: String::from_utf8_lossy(&reply.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&reply.stderr).into_owned(),
        })
    }

    /// ContainerStatus: state, exit code, reason.
    pub fn container_status(&self, container_id: &str) -> Result<ContainerStatus, tonic::Status> {
        self.container_status_reply(container_id, false)?
            .status
            .ok_or_else(|| tonic::Status::internal(format!("no status for {container_id}")))
    }

    /// The runtime's verbose `info` of a container (JSON: its pid, spec, ...).
    pub fn container_info(&self, container_id: &str) -> Result<String, tonic::Status> {
        self.container_status_reply(container_id, true)?
            .info
            .remove("info")
            .ok_or_else(|| tonic::Status::internal(format!("no verbose info for {container_id}")))
    }

    fn container_status_reply(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<ContainerStatusResponse, tonic::Status> {
        let mut client = self.client.clone();
        Ok(self
            .rt
            .block_on(client.container_status(ContainerStatusRequest {
                container_id: container_id.into(),
                verbose,
            }))?
            .into_inner())
    }

    /// StopContainer with the pod's grace period in seconds (SIGTERM, then SIGKILL).
    pub fn stop_container(&self, container_id: &str, grace_s: i64) -> Result<(), tonic::Status> {
        let mut client = self.client.clone();
        self.rt
            .block_on(client.stop_container(StopContainerRequest {
                container_id: container_id.into(),
                timeout: grace_s,
            }))?;
        Ok(())
    }

    /// RemoveContainer.
    pub fn remove_container(&self, container_id: &str) -> Result<(), tonic::Status> {
        let mut client = self.client.clone();
        self.rt
            .block_on(client.remove_container(RemoveContainerRequest {
                container_id: container_id.into(),
            }))?;
        Ok(())
    }

    /// The runtime's NetworkReady condition, as the kubelet reads it to report the node
    /// ready for pods: whether it holds, and the runtime's reason when it does not.
    pub fn network_ready(&self) -> Result<(bool, String), tonic::Status> {
        let mut client = self.client.clone();
        let status = self
            .rt
            .block_on(client.status(StatusRequest { verbose: false }))?
            .into_inner()
            .status
            .unwrap_or_default();
        let condition = status
            .conditions
            .into_iter()
            .find(|c| c.r#type == "NetworkReady")
            .ok_or_else(|| tonic::Status::internal("the runtime reports no NetworkReady"))?;
        Ok((
            condition.status,
            format!("{}: {}", condition.reason, condition.message),
        ))
    }

    /// Whether the runtime holds `image` (ImageStatus): what `imagePullPolicy: IfNotPresent`
    /// asks before pulling.
    pub fn image_present(&self, image: &str) -> Result<bool, tonic::Status> {
        let mut images = self.images.clone();
        let reply = self
            .rt
            .block_on(images.image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: image.into(),
                    ..ImageSpec::default()
                }),
                verbose: false,
            }))?
            .into_inner();
        Ok(reply.image.is_some())
    }

    /// StopPodSandbox (CNI DEL with the netns) ...
    pub fn stop_pod_sandbox(&self, sandbox_id: &str) -> Result<(), tonic::Status> {
        let mut client = self.client.clone();
        self.rt
            .block_on(client.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: sandbox_id.into(),
            }))?;
        Ok(())
    }

    /// ... and RemovePodSandbox (containerd's second DEL, netns already gone).
    pub fn remove_pod_sandbox(&self, sandbox_id: &str) -> Result<(), tonic::Status> {
        let mut client = self.client.clone();
        self.rt
            .block_on(client.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: sandbox_id.into(),
            }))?;
        Ok(())
    }

    /// Stop then remove, as the kubelet deletes a pod.
    pub fn delete_pod(&self, pod: &Pod) -> Result<(), tonic::Status> {
        self.stop_pod_sandbox(&pod.sandbox_id)?;
        self.remove_pod_sandbox(&pod.sandbox_id)
    }

    /// Ids of every sandbox the runtime knows, in any state.
    pub fn list_pod_sandboxes(&self) -> Result<Vec<String>, tonic::Status> {
        let mut client = self.client.clone();
        let reply = self
            .rt
            .block_on(client.list_pod_sandbox(ListPodSandboxRequest { filter: None }))?
            .into_inner();
        Ok(reply.items.into_iter().map(|s| s.id).collect())
    }
}
