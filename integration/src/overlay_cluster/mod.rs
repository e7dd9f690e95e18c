//! A small overlay-mode cluster: node namespaces on a plain L2 underlay with
//! no IMDS, each running the real ipamd in `auto` mode (it must pick overlay on
//! its own) with its peers from a peers file the harness writes or, in a
//! cluster built with [`OverlayCluster::with_kube`], from Node objects in a
//! fake Kubernetes API; pods are ADDed through the real plugin. The
//! end-to-end tests of issue 6 and the demo's on-prem part build on it.
//!
//! Hygiene: every namespace has a unique name and goes with its guard, ipamd
//! processes are killed before the namespaces they run in.

mod kube;
mod pods;
mod snapshot;
mod underlay;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fake_kube::FakeKube;
use crate::ipamd_proc::IpamdProcess;
use crate::node::{every_node, plugin_conf, test_ipamd_env};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::unique_name;

use kube::kube_diagnostics;
pub use kube::Starting;
pub use pods::OverlayPod;
pub use snapshot::{is_peer_line, node_state_dump, OverlaySnapshot, VxlanDevice, DEVICE};
pub use underlay::{
    pod_cidr, underlay_ip, write_peers_file, PeerEntry, Underlay, CLUSTER_CIDR, OUTSIDE_IP,
};

/// The CNI version the cluster's runtime speaks: 1.1.0 results carry the
/// interface MTU, which the tests check.
pub const CNI_VERSION: &str = "1.1.0";
/// How often ipamd re-reads the peers file here (short, so tests converge fast).
const PEERS_POLL: &str = "200ms";
/// Lines of ipamd's log in diagnostics.
const LOG_TAIL: usize = 80;

/// How an ipamd is stopped before it is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL: the crash case.
    Kill,
    /// SIGTERM: a clean shutdown; must exit 0.
    Term,
}

/// One node: its namespace on the underlay and its ipamd.
pub struct OverlayNode {
    // Field order is drop order: ipamd dies before its namespace and directory.
    pub ipamd: IpamdProcess,
    /// `node-<number>`: the name in the peers file and MY_NODE_NAME.
    pub name: String,
    pub number: u8,
    pub underlay_ip: Ipv4Addr,
    pub pod_cidr: String,
    netns: Netns,
    dir: tempfile::TempDir,
}

impl OverlayNode {
    #[must_use]
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The VTEP MAC every peer derives from this node's underlay address.
    #[must_use]
    pub fn vtep_mac(&self) -> String {
        let [a, b, c, d] = self.underlay_ip.octets();
        format!("0e:56:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
    }

    /// The network configuration a runtime on this node hands the plugin.
    #[must_use]
    pub fn conf(&self) -> Value {
        plugin_conf(CNI_VERSION, "overlay-e2e", &self.ipamd)
    }

    /// The kernel's overlay entries on this node.
    pub fn snapshot(&self) -> io::Result<OverlaySnapshot> {
        OverlaySnapshot::read(&self.netns)
    }

    /// Stops ipamd as `how` says and starts it again with the same settings and
    /// state; returns once it answers STATUS.
    pub fn restart_ipamd(&mut self, how: Stop) -> io::Result<()> {
        if how == Stop::Term && !self.ipamd.terminate()? {
            return Err(io::Error::other(format!(
                "ipamd on {} exited non-zero on SIGTERM; log:\n{}",
                self.name,
                self.ipamd.log_text()
            )));
        }
        // After SIGTERM the child is reaped; restart's SIGKILL is then a no-op.
        self.ipamd.restart(&self.netns)
    }

    /// ipamd's log, last lines only.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let text = self.ipamd.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }
}

/// A node whose namespace is wired but whose ipamd has not started.
struct PreparedNode {
    name: String,
    number: u8,
    underlay_ip: Ipv4Addr,
    netns: Netns,
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl PreparedNode {
    /// Starts ipamd; returns once it answers STATUS.
    fn start_ipamd(&self) -> io::Result<IpamdProcess> {
        IpamdProcess::start(&self.netns, self.dir.path(), self.env.clone())
            .map_err(|e| io::Error::other(format!("starting ipamd on {}: {e}", self.name)))
    }

    fn into_node(self, ipamd: IpamdProcess, pod_cidr: String) -> OverlayNode {
        OverlayNode {
            ipamd,
            name: self.name,
            number: self.number,
            underlay_ip: self.underlay_ip,
            pod_cidr,
            netns: self.netns,
            dir: self.dir,
        }
    }
}

/// The cluster. Dropping it kills every ipamd, then deletes the node
/// namespaces, the outside host and the switch. Pods belong to the caller and
/// should go first (declare them after the cluster).
pub struct OverlayCluster {
    // Field order is drop order.
    nodes: Vec<OverlayNode>,
    /// The Kubernetes API of a cluster whose nodes follow Nodes; it listens
    /// in the outside host, so it stops before that namespace goes.
    kube: Option<FakeKube>,
    underlay: Underlay,
    listed: BTreeSet<String>,
    prefix: String,
    extra_env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl OverlayCluster {
    /// The underlay (MTU `mtu`) and `count` nodes, all listed in the peers
    /// file; returns once every ipamd answers STATUS.
    pub fn new(prefix: &str, count: u8, mtu: u32) -> io::Result<Self> {
        Self::with_env(prefix, count, mtu, &[])
    }

    /// [`OverlayCluster::new`] with extra ipamd environment on every node
    /// (overriding the harness's).
    pub fn with_env(prefix: &str, count: u8, mtu: u32, env: &[(&str, &str)]) -> io::Result<Self> {
        let mut cluster = Self::empty(prefix, mtu, env)?;
        cluster.listed = (1..=count).map(node_name).collect();
        cluster.write_peers()?;
        for _ in 0..count {
            cluster.start_node()?;
        }
        Ok(cluster)
    }

    /// More ipamd environment for the nodes started from now on (overriding the harness's
    /// and what was set before).
    pub fn set_node_env(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.to_string(), value.to_string()));
    }

    /// The underlay and nothing on it yet.
    fn empty(prefix: &str, mtu: u32, env: &[(&str, &str)]) -> io::Result<Self> {
        Ok(Self {
            nodes: Vec::new(),
            kube: None,
            underlay: Underlay::new(prefix, mtu)?,
            listed: BTreeSet::new(),
            prefix: prefix.to_string(),
            extra_env: env
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            dir: tempfile::tempdir()?,
        })
    }

    /// Starts the next node (`node-<n+1>`); `listed` says whether the peers
    /// file names it before its ipamd starts. Returns its name.
    pub fn add_node(&mut self, listed: bool) -> io::Result<String> {
        let number = next_number(self.nodes.len())?;
        let name = node_name(number);
        if listed {
            self.list(&name)?;
        }
        self.start_node()?;
        Ok(name)
    }

    fn start_node(&mut self) -> io::Result<()> {
        let number = next_number(self.nodes.len())?;
        let mut prepared = self.prepare_node(number)?;
        let cidr = pod_cidr(number);
        prepared.env.insert("POD_CIDR".into(), cidr.clone());
        prepared
            .env
            .insert("PEERS_FILE_POLL_INTERVAL".into(), PEERS_POLL.into());
        prepared
            .env
            .insert("PEERS_FILE".into(), self.peers_file().display().to_string());
        prepared.env.extend(self.extra_env.iter().cloned());
        let ipamd = prepared.start_ipamd()?;
        self.nodes.push(prepared.into_node(ipamd, cidr));
        Ok(())
    }

    /// Node `number`'s namespace on the underlay, its directory and the
    /// environment every node's ipamd gets, whatever its peer source.
    fn prepare_node(&self, number: u8) -> io::Result<PreparedNode> {
        let name = node_name(number);
        let netns = Netns::try_new(&unique_name(&format!("{}n{number}", self.prefix)))?;
        let ip = underlay_ip(number);
        self.underlay
            .attach_node(&netns, &format!("p{number}"), ip)?;
        let env = test_ipamd_env(
            "auto",
            &[
                ("MY_NODE_NAME", name.clone()),
                ("CLUSTER_CIDR", CLUSTER_CIDR.to_string()),
            ],
        );
        Ok(PreparedNode {
            name,
            number,
            underlay_ip: ip,
            netns,
            dir: tempfile::tempdir()?,
            env,
        })
    }

    /// The peers file every ipamd of the cluster polls.
    #[must_use]
    pub fn peers_file(&self) -> PathBuf {
        self.dir.path().join("peers.json")
    }

    /// Names `name` in the peers file (it need not be started yet).
    pub fn list(&mut self, name: &str) -> io::Result<()> {
        self.listed.insert(name.to_string());
        self.write_peers()
    }

    /// Takes `name` out of the peers file; its ipamd keeps running.
    pub fn unlist(&mut self, name: &str) -> io::Result<()> {
        self.listed.remove(name);
        self.write_peers()
    }

    /// Nodes named in the peers file now.
    #[must_use]
    pub fn listed(&self) -> Vec<String> {
        self.listed.iter().cloned().collect()
    }

    fn write_peers(&self) -> io::Result<()> {
        let mut entries = Vec::new();
        for name in &self.listed {
            let number = node_number(name)?;
            entries.push(underlay::PeerEntry {
                name: name.clone(),
                underlay_ip: underlay_ip(number),
                pod_cidr: pod_cidr(number),
            });
        }
        underlay::write_peers_file(&self.peers_file(), &entries)
    }

    #[must_use]
    pub fn nodes(&self) -> &[OverlayNode] {
        &self.nodes
    }

    #[must_use]
    pub fn mtu(&self) -> u32 {
        self.underlay.mtu
    }

    /// The outside host at [`OUTSIDE_IP`] (no route to any pod CIDR).
    #[must_use]
    pub fn outside(&self) -> &Netns {
        self.underlay.outside()
    }

    /// The node with this name; an error naming it when there is none.
    pub fn node(&self, name: &str) -> io::Result<&OverlayNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| no_node(name))
    }

    pub fn node_mut(&mut self, name: &str) -> io::Result<&mut OverlayNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| no_node(name))
    }

    /// ipamd's log tail and the node's addresses, routes, neighbours, FDB and
    /// nftables.
    #[must_use]
    pub fn diagnostics(&self, node: &str) -> String {
        let Ok(n) = self.node(node) else {
            return format!("no node named {node:?}");
        };
        format!(
            "=== {} ({}, pod CIDR {}, ns {}) ===\n--- ipamd log (tail) ---\n{}\n{}",
            n.name,
            n.underlay_ip,
            n.pod_cidr,
            n.netns.name(),
            n.log_tail(),
            node_state_dump(&n.netns)
        )
    }

    /// [`OverlayCluster::diagnostics`] for every node, plus the peers file
    /// or the Kubernetes API's Nodes and last requests.
    #[must_use]
    pub fn all_diagnostics(&self) -> String {
        let mut text = every_node(self.nodes.iter().map(|n| n.name.as_str()), |n| {
            self.diagnostics(n)
        });
        match &self.kube {
            Some(kube) => text.push_str(&kube_diagnostics(kube)),
            None => {
                let peers = std::fs::read_to_string(self.peers_file())
                    .unwrap_or_else(|e| format!("(unreadable: {e})"));
                text.push_str(&format!("\n=== peers file ===\n{peers}\n"));
            }
        }
        text
    }
}

fn node_name(number: u8) -> String {
    format!("node-{number}")
}

fn node_number(name: &str) -> io::Result<u8> {
    name.strip_prefix("node-")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=200).contains(n))
        .ok_or_else(|| io::Error::other(format!("{name:?} is not a node name (node-<1..200>)")))
}

/// The number of the node after `existing` ones; the underlay /24 has room
/// for 200 (`.11` to `.210`).
fn next_number(existing: usize) -> io::Result<u8> {
    u8::try_from(existing + 1)
        .ok()
        .filter(|n| *n <= 200)
        .ok_or_else(|| {
            io::Error::other(format!("no room for node {} on the underlay", existing + 1))
        })
}

fn no_node(name: &str) -> io::Error {
    io::Error::other(format!("no node named {name:?} in the cluster"))
}
