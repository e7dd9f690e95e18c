//! The kubelet's reading of the rendered DaemonSet: from its pod template to the CRI
//! requests a kubelet sends for it on one node (sandbox, init and main containers, env with
//! the downward API and the ConfigMap, hostPath mounts, security context, probes). Anything
//! in the template this reading does not know makes the test fail by name, so a change to
//! `deploy/` cannot slip past the kubelet-path test unread.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1::{
    Capability, ContainerConfig, ContainerMetadata, ImageSpec, Int64Value, KeyValue,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata,
};
use serde_json::Value;
use vpc_cni_testkit::unique_name;

/// Where the kubelet mounts the pod's service-account token, CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The kubelet's default masked and read-only paths for a container that is not privileged
/// (procMount Default), as it sends them in the CRI's security context.
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The security-context fields this reading applies; any other fails the test by name.
const KNOWN_SECURITY_FIELDS: &[&str] = &[
    "capabilities",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "runAsUser",
    "privileged",
];

/// What the kubelet knows of the node it runs on.
pub struct NodeFacts<'a> {
    pub name: &'a str,
    pub host_ip: Ipv4Addr,
    /// The node's files: hostPath `P` is `root/P` (kernel file systems excepted).
    pub root: &'a Path,
    /// The token, `ca.crt` and `namespace` the kubelet mounts at [`SERVICE_ACCOUNT_DIR`].
    pub service_account: &'a Path,
    /// The service variables the kubelet puts into every container
    /// (`KUBERNETES_SERVICE_HOST`, ...).
    pub service_env: &'a [(String, String)],
}

/// An exec probe as the kubelet runs it: ExecSync of `command` with `timeout_s`, every
/// `period`, failing the container after `failure_threshold` misses.
#[derive(Debug, Clone)]
pub struct Probe {
    pub command: Vec<String>,
    pub period: Duration,
    pub timeout_s: i64,
    pub failure_threshold: u32,
}

/// The DaemonSet's pod template and the ConfigMaps it reads, as rendered.
#[derive(Debug, Clone)]
pub struct DaemonSetPod {
    spec: Value,
    labels: BTreeMap<String, String>,
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
}

impl DaemonSetPod {
    /// The one DaemonSet among `objects` and every ConfigMap beside it.
    pub fn from_objects(objects: &[Value]) -> Self {
        let daemonsets: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "DaemonSet")
            .collect();
        assert_eq!(daemonsets.len(), 1, "one DaemonSet in the rendered overlay");
        let template = &daemonsets[0]["spec"]["template"];
        let labels = string_map(&template["metadata"]["labels"]);
        let config_maps = objects
            .iter()
            .filter(|o| o["kind"] == "ConfigMap")
            .map(|o| {
                let name = o["metadata"]["name"].as_str().unwrap().to_owned();
                (name, string_map(&o["data"]))
            })
            .collect();
        Self {
            spec: template["spec"].clone(),
            labels,
            config_maps,
        }
    }

    /// Sets `key` in every ConfigMap the containers read, as an operator's
    /// `configMapGenerator` merge in an overlay of their own would.
    pub fn set_setting(&mut self, key: &str, value: &str) {
        for data in self.config_maps.values_mut() {
            data.insert(key.to_owned(), value.to_owned());
        }
    }

    /// The image every container of the pod runs (one image for all).
    pub fn image(&self) -> String {
        let mut containers = self.containers("initContainers");
        containers.extend(self.containers("containers"));
        let images: std::collections::BTreeSet<String> = containers
            .iter()
            .map(|c| c["image"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(images.len(), 1, "one image for every container: {images:?}");
        images.into_iter().next().unwrap()
    }

    /// The names of the containers of `list` (`initContainers` or `containers`), in order.
    pub fn container_names(&self, list: &str) -> Vec<String> {
        self.containers(list)
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `terminationGracePeriodSeconds`: StopContainer's timeout.
    pub fn grace_period_s(&self) -> i64 {
        self.spec["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30)
    }

    /// The sandbox: the node's network (`hostNetwork`), the pod's own PID and IPC
    /// namespaces, logs in `log_directory`, cgroups below `cgroup_parent`.
    pub fn sandbox_config(
        &self,
        node: &NodeFacts<'_>,
        log_directory: &Path,
        cgroup_parent: &str,
    ) -> PodSandboxConfig {
        let host = |field: &str| self.spec[field].as_bool().unwrap_or(false);
        let mode = |on_host: bool| {
            if on_host {
                NamespaceMode::Node
            } else {
                NamespaceMode::Pod
            }
        };
        assert!(host("hostNetwork"), "ipamd's pod uses the node's network");
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: format!("vpc-cni-{}", node.name),
                uid: unique_name("uid"),
                namespace: "kube-system".into(),
                attempt: 0,
            }),
            // A host-network pod keeps the node's hostname (and its UTS namespace).
            log_directory: log_directory.display().to_string(),
            labels: self.labels.clone().into_iter().collect(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.into(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: mode(host("hostNetwork")).into(),
                        pid: mode(host("hostPID")).into(),
                        ipc: mode(host("hostIPC")).into(),
                        ..NamespaceOption::default()
                    }),
                    ..LinuxSandboxSecurityContext::default()
                }),
                ..LinuxPodSandboxConfig::default()
            }),
            ..PodSandboxConfig::default()
        }
    }

    /// The CRI container of `list`'s container `name` on `node`. Creates the hostPath
    /// directories of type `DirectoryOrCreate`, as the kubelet does.
    pub fn container_config(
        &self,
        list: &str,
        name: &str,
        node: &NodeFacts<'_>,
    ) -> ContainerConfig {
        let container = &self.container(list, name);
        let strings = |field: &str| -> Vec<String> {
            container[field]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|i| i.as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: container["image"].as_str().unwrap().into(),
                ..ImageSpec::default()
            }),
            command: strings("command"),
            args: strings("args"),
            envs: self
                .env(container, node)
                .into_iter()
                .map(|(key, value)| KeyValue { key, value })
                .collect(),
            mounts: self.mounts(container, node),
            log_path: format!("{name}/0.log"),
            linux: Some(LinuxContainerConfig {
                resources: Some(resources(container)),
                security_context: Some(security_context(container)),
            }),
            ..ContainerConfig::default()
        }
    }

    /// The exec probe `kind` (`startupProbe`, `readinessProbe`, `livenessProbe`) of the
    /// container `name`, with the kubelet's defaults for what the template leaves out.
    pub fn probe(&self, name: &str, kind: &str) -> Probe {
        let probe = &self.container("containers", name)[kind];
        assert!(probe.is_object(), "{name} has no {kind}");
        let command = probe["exec"]["command"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}'s {kind} is not an exec probe"))
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        let seconds = |field: &str, default: u64| probe[field].as_u64().unwrap_or(default);
        Probe {
            command,
            period: Duration::from_secs(seconds("periodSeconds", 10)),
            timeout_s: i64::try_from(seconds("timeoutSeconds", 1)).unwrap(),
            failure_threshold: u32::try_from(seconds("failureThreshold", 3)).unwrap(),
        }
    }

    fn containers(&self, list: &str) -> Vec<Value> {
        self.spec[list].as_array().cloned().unwrap_or_default()
    }

    fn container(&self, list: &str, name: &str) -> Value {
        self.containers(list)
            .into_iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in the DaemonSet's {list}"))
    }

    /// The kubelet's order: the service variables, then `envFrom`, then `env` (each later
    /// one wins).
    fn env(&self, container: &Value, node: &NodeFacts<'_>) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = node.service_env.iter().cloned().collect();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let name = source["configMapRef"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("envFrom other than a configMapRef: {source}"));
            assert!(source.get("prefix").is_none(), "envFrom prefix: {source}");
            let data = self
                .config_maps
                .get(name)
                .unwrap_or_else(|| panic!("envFrom names ConfigMap {name}, not rendered"));
            env.extend(data.clone());
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let key = var["name"].as_str().unwrap().to_owned();
            let value = match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
                (Value::String(value), _) => value.clone(),
                (_, Value::String(path)) => self.downward(path, node),
                _ => panic!("env {key}: neither a value nor a fieldRef: {var}"),
            };
            env.insert(key, value);
        }
        env
    }

    /// The downward API's value of `path` for this pod on `node`.
    fn downward(&self, path: &str, node: &NodeFacts<'_>) -> String {
        match path {
            "spec.nodeName" => node.name.to_owned(),
            "metadata.name" => format!("vpc-cni-{}", node.name),
            "metadata.namespace" => "kube-system".to_owned(),
            "spec.serviceAccountName" => self.spec["serviceAccountName"]
                .as_str()
                .unwrap_or("default")
                .to_owned(),
            // A host-network pod's address is the node's.
            "status.hostIP" | "status.podIP" => node.host_ip.to_string(),
            other => panic!("the downward API's {other} is not known to this kubelet"),
        }
    }

    /// The hostPath mounts mapped to the node's files, and the service account's.
    fn mounts(&self, container: &Value, node: &NodeFacts<'_>) -> Vec<Mount> {
        let volumes = self.spec["volumes"].as_array().cloned().unwrap_or_default();
        let mut mounts: Vec<Mount> = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|mount| {
                let name = mount["name"].as_str().unwrap();
                let volume = volumes
                    .iter()
                    .find(|v| v["name"] == name)
                    .unwrap_or_else(|| panic!("volumeMount {name} has no volume"));
                let host_path = &volume["hostPath"];
                let path = host_path["path"]
                    .as_str()
                    .unwrap_or_else(|| panic!("volume {name} is not a hostPath: {volume}"));
                let on_node = node_path(node.root, path);
                match host_path["type"].as_str().unwrap_or("") {
                    "DirectoryOrCreate" => std::fs::create_dir_all(&on_node).unwrap(),
                    "Directory" => {
                        assert!(on_node.is_dir(), "{} is no directory", on_node.display())
                    }
                    other => panic!("hostPath type {other:?} of {name} is not known here"),
                }
                assert!(
                    mount.get("mountPropagation").is_none(),
                    "mountPropagation of {name}"
                );
                Mount {
                    container_path: mount["mountPath"].as_str().unwrap().into(),
                    host_path: on_node.display().to_string(),
                    readonly: mount["readOnly"].as_bool().unwrap_or(false),
                    ..Mount::default()
                }
            })
            .collect();
        if self.spec["automountServiceAccountToken"] != false {
            mounts.push(Mount {
                container_path: SERVICE_ACCOUNT_DIR.into(),
                host_path: node.service_account.display().to_string(),
                readonly: true,
                ..Mount::default()
            });
        }
        mounts
    }
}

/// Where the node's `path` is: under `root`, except the kernel's file systems, which are
/// the machine's and resolve against the opening process's namespaces (a net sysctl under
/// /proc/sys/net is the node namespace's for a process in it).
pub fn node_path(root: &Path, path: &str) -> PathBuf {
    if path.starts_with("/proc/") || path.starts_with("/sys/") {
        PathBuf::from(path)
    } else {
        root.join(path.trim_start_matches('/'))
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The kubelet's CPU shares from the request (millicores × 1024 / 1000, at least 2).
fn resources(container: &Value) -> LinuxContainerResources {
    let cpu = container["resources"]["requests"]["cpu"]
        .as_str()
        .unwrap_or("0");
    let millis: i64 = match cpu.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => cpu.parse::<i64>().unwrap() * 1000,
    };
    assert!(
        container["resources"].get("limits").is_none(),
        "resource limits are not applied by this kubelet"
    );
    LinuxContainerResources {
        cpu_shares: (millis * 1024 / 1000).max(2),
        ..LinuxContainerResources::default()
    }
}

fn security_context(container: &Value) -> LinuxContainerSecurityContext {
    let context = &container["securityContext"];
    for field in context.as_object().into_iter().flatten().map(|(k, _)| k) {
        assert!(
            KNOWN_SECURITY_FIELDS.contains(&field.as_str()),
            "securityContext.{field} is not applied by this kubelet"
        );
    }
    let caps = |field: &str| -> Vec<String> {
        context["capabilities"][field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    };
    let privileged = context["privileged"].as_bool().unwrap_or(false);
    let (masked, readonly) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        (owned(MASKED_PATHS), owned(READONLY_PATHS))
    };
    LinuxContainerSecurityContext {
        capabilities: Some(Capability {
            add_capabilities: caps("add"),
            drop_capabilities: caps("drop"),
            ..Capability::default()
        }),
        privileged,
        run_as_user: context["runAsUser"]
            .as_i64()
            .map(|value| Int64Value { value }),
        readonly_rootfs: context["readOnlyRootFilesystem"].as_bool().unwrap_or(false),
        no_new_privs: context["allowPrivilegeEscalation"] == false,
        masked_paths: masked,
        readonly_paths: readonly,
        ..LinuxContainerSecurityContext::default()
    }
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
