//! Invoking the real `vpc-cni` binary the way a container runtime does.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::bins;
use crate::netns::{feed, Netns};

/// What the plugin printed and how it exited.
#[derive(Debug, Clone)]
pub struct PluginOutput {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl PluginOutput {
    #[must_use]
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Stdout parsed as JSON (Null when empty or not JSON).
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or(Value::Null)
    }

    /// The CNI error code on stdout, if it is an error object.
    #[must_use]
    pub fn error_code(&self) -> Option<u64> {
        self.json().get("code").and_then(Value::as_u64)
    }

    /// The first IPv4 address of an ADD result, without the prefix length.
    #[must_use]
    pub fn ip(&self) -> Option<String> {
        let json = self.json();
        let address = json.get("ips")?.get(0)?.get("address")?.as_str()?;
        address.split('/').next().map(ToString::to_string)
    }
}

/// One plugin invocation: environment and stdin.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub command: String,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub cni_args: Option<String>,
    /// Extra or overriding variables (e.g. to drop CNI_COMMAND use `env_remove`).
    pub extra_env: Vec<(String, String)>,
    pub env_remove: Vec<String>,
    pub stdin: Vec<u8>,
}

impl Invocation {
    /// A runtime-style call for a pod: CNI_ARGS as kubelet/containerd send it.
    #[must_use]
    pub fn for_pod(
        command: &str,
        container_id: &str,
        netns: Option<&str>,
        pod: &str,
        conf: &Value,
    ) -> Self {
        Self {
            command: command.into(),
            container_id: Some(container_id.into()),
            netns: netns.map(Into::into),
            ifname: Some("eth0".into()),
            cni_args: Some(format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID=uid-{pod}"
            )),
            stdin: conf.to_string().into_bytes(),
            ..Self::default()
        }
    }

    /// Runs our plugin inside `node`'s network namespace.
    pub fn run(&self, node: &Netns) -> std::io::Result<PluginOutput> {
        self.run_program(node, &bins::plugin())
    }

    /// Runs any CNI plugin binary inside `node`'s network namespace, with
    /// `CNI_PATH` set to its directory (so a reference plugin finds its IPAM).
    pub fn run_program(&self, node: &Netns, program: &Path) -> std::io::Result<PluginOutput> {
        self.run_command(node.command(program), program)
    }

    /// [`Invocation::run_program`] exec'd through `nsenter --net`, as a runtime outside the
    /// node's namespace calls it.
    pub fn run_nsenter(&self, node: &Netns, program: &Path) -> std::io::Result<PluginOutput> {
        self.run_command(node.nsenter_command(program), program)
    }

    /// Runs `cmd`, which execs `program`, with this invocation's environment and stdin.
    fn run_command(&self, mut cmd: Command, program: &Path) -> std::io::Result<PluginOutput> {
        let cni_path = program.parent().unwrap_or(Path::new("/"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CNI_COMMAND", &self.command)
            .env("CNI_PATH", cni_path);
        for (key, value) in [
            ("CNI_CONTAINERID", &self.container_id),
            ("CNI_NETNS", &self.netns),
            ("CNI_IFNAME", &self.ifname),
            ("CNI_ARGS", &self.cni_args),
        ] {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        // The plugin may stop reading early (oversized input): its answer is what the test
        // checks.
        let out = feed(&mut cmd, &self.stdin)?;
        Ok(PluginOutput {
            exit_code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
