//! The on-prem side of a hybrid cluster on the fabric: the site (its LAN, its own NAT and
//! the link into the VPC, see `fabric::site`) and overlay-mode nodes on its LAN, running the
//! real ipamd; the VPC side is a [`VpcCluster`] whose nodes run with
//! `ENABLE_HYBRID_OVERLAY`. Pods are ADDed through the real plugin.
//!
//! Hygiene: each node's ipamd is killed before its namespace goes; the site's namespaces go
//! with the fabric.

use std::io;
use std::net::Ipv4Addr;

use crate::fabric::{Fabric, SiteSpec};
use crate::ipamd_proc::IpamdProcess;
use crate::node::{plugin_conf, test_ipamd_env, try_add_cluster_pod, ClusterPod};
use crate::vpc_cluster::VpcCluster;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::unique_name;

mod cluster;
mod matrix;
mod peer_entries;

pub use cluster::{
    overlay_route_cidrs, HybridCluster, HybridPod, HybridSpec, NodeKind, VpcNodeSpec,
};
pub use matrix::{check_matrix, Matrix, Outcome};
pub use peer_entries::{onprem_marks, vpc_marks, wait_forgotten};

/// The site's LAN; node `n` (1-based) sits at `.(10 + n)`.
pub const SITE_LAN: &str = "172.20.0.0/24";
/// The CNI version the on-prem nodes' runtime speaks.
const CNI_VERSION: &str = "1.1.0";

/// Attaches the site to the fabric with a link of MTU `link_mtu` (the LAN's is 1500).
pub fn attach_site(fabric: &Fabric, link_mtu: u32) -> io::Result<()> {
    let lan = SITE_LAN
        .parse()
        .map_err(|e| io::Error::other(format!("{SITE_LAN}: {e}")))?;
    fabric
        .attach_site(SiteSpec {
            lan,
            lan_mtu: 1500,
            link_mtu,
        })
        .map(drop)
}

/// Underlay address of on-prem node `number` (1-based).
#[must_use]
pub fn onprem_ip(number: u8) -> Ipv4Addr {
    Ipv4Addr::new(172, 20, 0, 10 + number)
}

/// Pod CIDR of on-prem node `number` (1-based).
#[must_use]
pub fn onprem_pod_cidr(number: u8) -> String {
    format!("10.244.{number}.0/24")
}

/// An overlay-mode node on the site's LAN.
pub struct OnpremNode {
    // Field order is drop order: ipamd dies before its namespace and directory.
    pub ipamd: IpamdProcess,
    /// `onprem-<number>`: its name in the peers file and MY_NODE_NAME.
    pub name: String,
    pub underlay_ip: Ipv4Addr,
    pub pod_cidr: String,
    netns: Netns,
    /// Holds the node's state directory.
    _dir: tempfile::TempDir,
}

impl OnpremNode {
    /// Plugs node `number` into the site's LAN and starts ipamd in overlay mode with `env`
    /// on top of the harness's (the peer source, and `POD_CIDR` unless the Node gives it);
    /// returns once it answers STATUS.
    pub fn start(fabric: &Fabric, number: u8, env: &[(&str, String)]) -> io::Result<Self> {
        let name = format!("onprem-{number}");
        let netns = Netns::try_new(&unique_name("hybop"))?;
        let underlay_ip = onprem_ip(number);
        fabric.plug_site_node(&netns, underlay_ip)?;
        let dir = tempfile::tempdir()?;
        let mut vars: Vec<(&str, String)> = vec![("MY_NODE_NAME", name.clone())];
        vars.extend(env.iter().cloned());
        let ipamd = IpamdProcess::start(&netns, dir.path(), test_ipamd_env("overlay", &vars))
            .map_err(|e| io::Error::other(format!("starting ipamd on {name}: {e}")))?;
        Ok(Self {
            ipamd,
            name,
            underlay_ip,
            pod_cidr: onprem_pod_cidr(number),
            netns,
            _dir: dir,
        })
    }

    #[must_use]
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// A pod ADDed through the real plugin; an ADD that fails is an error with its output.
    pub fn pod(&self, name: &str) -> io::Result<ClusterPod> {
        let conf = plugin_conf(CNI_VERSION, "hybrid", &self.ipamd);
        try_add_cluster_pod(&self.name, name, "hybp", Ok((&self.netns, conf)))
    }

    /// ipamd's log and the node's routes, for a failure message.
    #[must_use]
    pub fn diagnostics(&self) -> String {
        format!(
            "--- {} ipamd ---\n{}\n--- {} routes ---\n{}",
            self.name,
            self.ipamd.log_text(),
            self.name,
            self.netns.try_ip(&["route"]).unwrap_or_default()
        )
    }
}

/// The ranges a VPC node's ENIs hold for pods as EC2 shows them (secondary addresses as /32s
/// and prefixes): what an operator's tool writes into the peers file as `vpcPodRanges`.
pub fn vpc_pod_ranges(cluster: &VpcCluster, node: &str) -> io::Result<Vec<String>> {
    let instance = cluster.node(node)?.instance.id.clone();
    let view = cluster.sim().fabric_view();
    let mut ranges = Vec::new();
    for eni in view.enis.iter().filter(|e| {
        e.attachment
            .as_ref()
            .is_some_and(|a| a.instance_id == instance)
    }) {
        ranges.extend(
            eni.private_ips
                .iter()
                .filter(|p| !p.primary)
                .map(|p| format!("{}/32", p.address)),
        );
        ranges.extend(eni.prefixes.iter().cloned());
    }
    Ok(ranges)
}

/// Environment of an ipamd following the peers file at `path`.
#[must_use]
pub fn peers_file_env(path: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("PEERS_FILE", path.display().to_string()),
        ("PEERS_FILE_POLL_INTERVAL", "200ms".to_string()),
    ]
}

/// Writes a peers file atomically (temp file, then rename).
pub fn write_peers_file(path: &std::path::Path, peers: &serde_json::Value) -> io::Result<()> {
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, serde_json::json!({ "peers": peers }).to_string())?;
    std::fs::rename(&temp, path)
}
