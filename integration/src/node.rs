//! A simulated node: its own network namespace with an address on `lo`, an
//! ipamd serving a pod CIDR, and pods created through the real plugin.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::ipamd_proc::IpamdProcess;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::plugin::{Invocation, PluginOutput};
use vpc_cni_testkit::pod::TestPod;
use vpc_cni_testkit::unique_name;

/// The node's own address (a documentation address, on the node's `lo`).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Knobs a test sets on its node's ipamd.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub pod_cidr: String,
    pub env: BTreeMap<String, String>,
}

/// ipamd's environment for a test node: `mode` and `extra` on top of short cooldown, grace
/// and sweep periods, so tests that wait for them finish quickly.
#[must_use]
pub fn test_ipamd_env(mode: &str, extra: &[(&str, String)]) -> BTreeMap<String, String> {
    [
        ("VPC_CNI_MODE", mode.to_string()),
        ("IP_COOLDOWN_PERIOD", "1".to_string()),
        ("ASSIGNMENT_GRACE_PERIOD", "2".to_string()),
        ("VETH_SWEEP_INTERVAL", "1".to_string()),
        ("IPAMD_LOG", "info".to_string()),
    ]
    .into_iter()
    .chain(extra.iter().map(|(k, v)| (*k, v.clone())))
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `each` node's diagnostics, one after the other.
#[must_use]
pub fn every_node<'a>(
    names: impl Iterator<Item = &'a str>,
    each: impl Fn(&str) -> String,
) -> String {
    names.map(each).collect::<Vec<_>>().join("\n")
}

/// The network configuration a runtime on a test node hands the plugin.
#[must_use]
pub fn plugin_conf(cni_version: &str, network: &str, ipamd: &IpamdProcess) -> Value {
    json!({
        "cniVersion": cni_version,
        "name": network,
        "type": "vpc-cni",
        "ipamdSocket": ipamd.socket(),
    })
}

/// Creates a pod on `node` of a cluster (the node's namespace and configuration in
/// `target`) and ADDs it; an ADD that fails is an error carrying the plugin's output.
pub fn try_add_cluster_pod(
    node: &str,
    name: &str,
    netns_prefix: &str,
    target: std::io::Result<(&Netns, Value)>,
) -> std::io::Result<ClusterPod> {
    let (netns, conf) = target?;
    let mut pod = TestPod::create(name, netns_prefix)?;
    let out = pod.add_in(netns, &conf)?;
    if !out.success() || pod.ip.is_none() {
        return Err(std::io::Error::other(format!(
            "ADD {name} on {node} failed: {} {}",
            out.stdout, out.stderr
        )));
    }
    Ok(ClusterPod {
        node: node.to_string(),
        pod,
    })
}

/// [`try_add_cluster_pod`] for a test: panics with the error and `diagnostics`.
#[must_use]
pub fn add_cluster_pod(
    node: &str,
    name: &str,
    netns_prefix: &str,
    target: std::io::Result<(&Netns, Value)>,
    diagnostics: impl FnOnce() -> String,
) -> ClusterPod {
    try_add_cluster_pod(node, name, netns_prefix, target)
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnostics()))
}

impl NodeOptions {
    /// A node on `pod_cidr` with short cooldown, grace and sweep periods, so
    /// tests that wait for them finish quickly.
    #[must_use]
    pub fn new(pod_cidr: &str) -> Self {
        Self {
            pod_cidr: pod_cidr.into(),
            env: test_ipamd_env("overlay", &[]),
        }
    }

    #[must_use]
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
}

/// A pod on one node of a multi-node cluster; its namespace goes on drop
/// (the runtime's DEL is the test's business).
pub struct ClusterPod {
    pub node: String,
    pub pod: TestPod,
}

impl std::ops::Deref for ClusterPod {
    type Target = TestPod;
    fn deref(&self) -> &TestPod {
        &self.pod
    }
}

impl ClusterPod {
    /// The address ADD gave this pod; an error if ADD has not succeeded.
    pub fn ip(&self) -> std::io::Result<Ipv4Addr> {
        self.pod.ip.ok_or_else(|| {
            std::io::Error::other(format!("pod {} on {} has no address", self.name, self.node))
        })
    }
}

/// Node namespace + ipamd; dropping it kills ipamd and deletes the namespace.
pub struct TestNode {
    // Field order is drop order: ipamd dies before its namespace goes.
    pub ipamd: IpamdProcess,
    pub netns: Netns,
    dir: tempfile::TempDir,
    options: NodeOptions,
}

impl TestNode {
    /// Creates the node namespace (prefix names it) and starts ipamd.
    pub fn start(prefix: &str, options: NodeOptions) -> std::io::Result<Self> {
        let netns = Netns::try_new(&unique_name(prefix))?;
        netns.try_ip(&["addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"])?;
        let dir = tempfile::tempdir()?;
        let mut env = options.env.clone();
        env.insert("POD_CIDR".into(), options.pod_cidr.clone());
        let ipamd = IpamdProcess::start(&netns, dir.path(), env)?;
        Ok(Self {
            ipamd,
            netns,
            dir,
            options,
        })
    }

    #[must_use]
    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The network configuration a runtime would hand the plugin.
    #[must_use]
    pub fn conf(&self, cni_version: &str) -> Value {
        plugin_conf(cni_version, "vpc-test", &self.ipamd)
    }

    /// A fresh pod namespace with a unique name.
    pub fn new_pod(&self, name: &str) -> std::io::Result<TestPod> {
        TestPod::create(name, "vcp")
    }

    /// The runtime's invocation for `pod`, netns set for ADD/CHECK.
    #[must_use]
    pub fn invocation(&self, command: &str, pod: &TestPod, conf: &Value) -> Invocation {
        pod.invocation(command, conf)
    }

    /// CNI ADD through the real plugin; records the address and result.
    pub fn add(&self, pod: &mut TestPod) -> std::io::Result<PluginOutput> {
        pod.add_in(&self.netns, &self.conf("1.0.0"))
    }

    /// CNI DEL with prevResult, as containerd's first DEL.
    pub fn del(&self, pod: &TestPod) -> std::io::Result<PluginOutput> {
        pod.del_in(&self.netns, self.conf("1.0.0"))
    }

    /// Creates a pod namespace and ADDs it; panics on failure (test helper).
    #[must_use]
    pub fn pod(&self, name: &str) -> TestPod {
        let mut pod = self
            .new_pod(name)
            .unwrap_or_else(|e| panic!("creating pod {name}: {e}"));
        let out = self
            .add(&mut pod)
            .unwrap_or_else(|e| panic!("running ADD for {name}: {e}"));
        assert!(
            out.success(),
            "ADD {name} failed: {} {}",
            out.stdout,
            out.stderr
        );
        pod
    }

    /// Rules at a priority in the node namespace, one line each.
    pub fn rules_at(&self, priority: u32) -> std::io::Result<Vec<String>> {
        let text = self.netns.try_ip(&["rule", "show"])?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(&format!("{priority}:")))
            .map(ToString::to_string)
            .collect())
    }
}
