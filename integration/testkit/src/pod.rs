//! A pod as a container runtime makes one: its own network namespace and the identity the
//! runtime gives it, wired by the real plugin through ADD and DEL.

use std::net::Ipv4Addr;

use serde_json::Value;

use crate::netns::Netns;
use crate::plugin::{Invocation, PluginOutput};
use crate::unique_name;

/// A pod's network namespace and the identity the runtime gives it.
pub struct TestPod {
    pub name: String,
    pub container_id: String,
    pub netns: Netns,
    pub ip: Option<Ipv4Addr>,
    /// The ADD result, as the runtime keeps it for DEL and CHECK.
    pub result: Value,
}

impl TestPod {
    /// A fresh pod namespace (named from `netns_prefix`) and container id.
    pub fn create(name: &str, netns_prefix: &str) -> std::io::Result<Self> {
        Ok(Self {
            name: name.to_string(),
            container_id: unique_name("ctr"),
            netns: Netns::try_new(&unique_name(netns_prefix))?,
            ip: None,
            result: Value::Null,
        })
    }

    /// The runtime's invocation for this pod, netns set.
    #[must_use]
    pub fn invocation(&self, command: &str, conf: &Value) -> Invocation {
        let netns = self.netns.path().display().to_string();
        Invocation::for_pod(command, &self.container_id, Some(&netns), &self.name, conf)
    }

    /// CNI ADD through the real plugin in `node`; records the address and
    /// result on success.
    pub fn add_in(&mut self, node: &Netns, conf: &Value) -> std::io::Result<PluginOutput> {
        let out = self.invocation("ADD", conf).run(node)?;
        if out.success() {
            self.ip = out.ip().and_then(|ip| ip.parse().ok());
            self.result = out.json();
        }
        Ok(out)
    }

    /// CNI DEL in `node` with the ADD result as prevResult, as containerd's
    /// first DEL.
    pub fn del_in(&self, node: &Netns, mut conf: Value) -> std::io::Result<PluginOutput> {
        if !self.result.is_null() {
            conf["prevResult"] = self.result.clone();
        }
        self.invocation("DEL", &conf).run(node)
    }
}
