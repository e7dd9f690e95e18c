//! Pods of an overlay cluster, ADDed and DELed through the real plugin the
//! way a container runtime calls it.

use std::io;

use super::OverlayCluster;
use crate::node::{add_cluster_pod, try_add_cluster_pod, ClusterPod};
use vpc_cni_testkit::plugin::PluginOutput;
use vpc_cni_testkit::pod::TestPod;

/// A pod on one node of an overlay cluster.
pub type OverlayPod = ClusterPod;

impl OverlayCluster {
    /// A fresh pod namespace on `node` (not yet ADDed).
    pub fn new_pod(&self, node: &str, name: &str) -> io::Result<OverlayPod> {
        self.node(node)?;
        Ok(OverlayPod {
            node: node.to_string(),
            pod: TestPod::create(name, &format!("{}p", self.prefix))?,
        })
    }

    /// CNI ADD through the real plugin on the pod's node; records the address
    /// and result on success.
    pub fn add(&self, pod: &mut OverlayPod) -> io::Result<PluginOutput> {
        let node = self.node(&pod.node)?;
        pod.pod.add_in(&node.netns, &node.conf())
    }

    /// CNI DEL with prevResult, as containerd's first DEL.
    pub fn del(&self, pod: &OverlayPod) -> io::Result<PluginOutput> {
        let node = self.node(&pod.node)?;
        pod.del_in(&node.netns, node.conf())
    }

    /// Creates a pod on `node` and ADDs it; panics with the plugin's output
    /// and the node's diagnostics on failure (test helper).
    #[must_use]
    pub fn pod(&self, node: &str, name: &str) -> OverlayPod {
        let target = self.node(node).map(|n| (&n.netns, n.conf()));
        let prefix = format!("{}p", self.prefix);
        add_cluster_pod(node, name, &prefix, target, || self.diagnostics(node))
    }

    /// Creates a pod on `node` and ADDs it; a failed ADD is an error (the demo's way).
    pub fn try_pod(&self, node: &str, name: &str) -> io::Result<OverlayPod> {
        let target = self.node(node).map(|n| (&n.netns, n.conf()));
        try_add_cluster_pod(node, name, &format!("{}p", self.prefix), target)
    }
}
