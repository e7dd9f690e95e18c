//! Pods of an overlay cluster, ADDed and DELed through the real plugin the
//! way a container runtime calls it.

use std::io;
use std::net::Ipv4Addr;
use std::ops::Deref;

use serde_json::Value;

use super::OverlayCluster;
use crate::netns::Netns;
use crate::node::TestPod;
use crate::plugin::{Invocation, PluginOutput};
use crate::unique_name;

/// A pod on one node; its namespace goes on drop (DEL is the test's business).
pub struct OverlayPod {
    pub node: String,
    pub pod: TestPod,
}

impl Deref for OverlayPod {
    type Target = TestPod;
    fn deref(&self) -> &TestPod {
        &self.pod
    }
}

impl OverlayPod {
    /// The address ADD gave this pod; an error if ADD has not succeeded.
    pub fn ip(&self) -> io::Result<Ipv4Addr> {
        self.pod.ip.ok_or_else(|| {
            io::Error::other(format!("pod {} on {} has no address", self.name, self.node))
        })
    }
}

impl OverlayCluster {
    /// A fresh pod namespace on `node` (not yet ADDed).
    pub fn new_pod(&self, node: &str, name: &str) -> io::Result<OverlayPod> {
        self.node(node)?;
        Ok(OverlayPod {
            node: node.to_string(),
            pod: TestPod {
                name: name.to_string(),
                container_id: unique_name("ctr"),
                netns: Netns::new(&unique_name(&format!("{}p", self.prefix)))?,
                ip: None,
                result: Value::Null,
            },
        })
    }

    fn invocation(command: &str, pod: &OverlayPod, conf: &Value) -> Invocation {
        let netns = pod.netns.path().display().to_string();
        Invocation::for_pod(command, &pod.container_id, Some(&netns), &pod.name, conf)
    }

    /// CNI ADD through the real plugin on the pod's node; records the address
    /// and result on success.
    pub fn add(&self, pod: &mut OverlayPod) -> io::Result<PluginOutput> {
        let node = self.node(&pod.node)?;
        let out = Self::invocation("ADD", pod, &node.conf()).run(&node.netns)?;
        if out.success() {
            pod.pod.ip = out.ip().and_then(|ip| ip.parse().ok());
            pod.pod.result = out.json();
        }
        Ok(out)
    }

    /// CNI DEL with prevResult, as containerd's first DEL.
    pub fn del(&self, pod: &OverlayPod) -> io::Result<PluginOutput> {
        let node = self.node(&pod.node)?;
        let mut conf = node.conf();
        if !pod.result.is_null() {
            conf["prevResult"] = pod.result.clone();
        }
        Self::invocation("DEL", pod, &conf).run(&node.netns)
    }

    /// Creates a pod on `node` and ADDs it; panics with the plugin's output
    /// and the node's diagnostics on failure (test helper).
    #[must_use]
    pub fn pod(&self, node: &str, name: &str) -> OverlayPod {
        let mut pod = self
            .new_pod(node, name)
            .unwrap_or_else(|e| panic!("creating pod {name} on {node}: {e}"));
        let out = self
            .add(&mut pod)
            .unwrap_or_else(|e| panic!("running ADD for {name} on {node}: {e}"));
        assert!(
            out.success() && pod.pod.ip.is_some(),
            "ADD {name} on {node} failed: {} {}\n{}",
            out.stdout,
            out.stderr,
            self.diagnostics(node)
        );
        pod
    }
}
