//! Settings of overlay mode (VXLAN between nodes without a VPC fabric).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use super::parse::{parse_bool, parse_duration};
use crate::error::IpamdError;
use crate::overlay::vxlan::core::check_vni_and_port;
use vpc_cni_proto::net::Ipv4Cidr;

#[derive(Debug, Clone, Args)]
pub struct OverlaySettings {
    /// This node's name: its Kubernetes Node, and its entry in the peers file
    /// (default: the hostname).
    #[arg(long, env = "MY_NODE_NAME", value_name = "MY_NODE_NAME")]
    pub node_name: Option<String>,

    /// Every pod CIDR of the cluster: pod traffic to anywhere else is
    /// masqueraded to the node's address. Unset: this node's pod CIDR and its
    /// peers' pod CIDRs.
    #[arg(long, env = "CLUSTER_CIDR")]
    pub cluster_cidr: Option<Ipv4Cidr>,

    /// JSON file listing the overlay's nodes (`{"peers":[{"name","underlayIP","podCIDR"}]}`);
    /// used instead of the Kubernetes API when set.
    #[arg(long, env = "PEERS_FILE")]
    pub peers_file: Option<PathBuf>,

    /// How often the peers file is looked at for changes.
    #[arg(long, env = "PEERS_FILE_POLL_INTERVAL", default_value = "1",
          value_parser = parse_duration)]
    pub peers_file_poll_interval: Duration,

    /// VXLAN network identifier of the overlay (1..=16777215).
    #[arg(long, env = "VXLAN_VNI", default_value_t = crate::overlay::vxlan::DEFAULT_VNI)]
    pub vxlan_vni: u32,

    /// UDP port of the overlay (8472, the Linux default; 4789 for interop).
    #[arg(long, env = "VXLAN_PORT", default_value_t = crate::overlay::vxlan::DEFAULT_PORT)]
    pub vxlan_port: u16,

    /// Interface carrying the overlay (default: the one of the default route).
    #[arg(long, env = "VXLAN_UNDERLAY_IFACE")]
    pub vxlan_underlay_iface: Option<String>,

    /// Route to peers on the underlay's own subnet without encapsulation.
    #[arg(long, env = "VXLAN_DIRECT_ROUTING", default_value = "false", value_parser = parse_bool,
          action = ArgAction::Set)]
    pub vxlan_direct_routing: bool,

    /// Set by Kubernetes in every pod: ipamd runs in a cluster and can use the API.
    #[arg(long, env = "KUBERNETES_SERVICE_HOST", hide = true)]
    pub kubernetes_service_host: Option<String>,

    /// A kubeconfig for the API (outside a cluster).
    #[arg(long, env = "KUBECONFIG", hide = true)]
    pub kubeconfig: Option<PathBuf>,

    /// The API server's URL, used instead of the one in-cluster or kubeconfig configuration
    /// names (e.g. to reach the API before kube-proxy serves its service address).
    #[arg(long, env = "CLUSTER_ENDPOINT", value_name = "CLUSTER_ENDPOINT",
          value_parser = super::parse::parse_endpoint)]
    pub cluster_endpoint: Option<String>,
}

/// Where overlay mode learns about the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSourceChoice {
    /// `PEERS_FILE`.
    File(PathBuf),
    /// Node objects from the Kubernetes API.
    Kubernetes,
    /// Neither is available: the node runs alone, without a VXLAN device.
    Standalone,
}

impl OverlaySettings {
    /// The peers file when given, else the API when ipamd can reach one.
    #[must_use]
    pub fn peer_source(&self) -> PeerSourceChoice {
        match &self.peers_file {
            Some(path) => PeerSourceChoice::File(path.clone()),
            None if self.kubernetes_service_host.is_some() || self.kubeconfig.is_some() => {
                PeerSourceChoice::Kubernetes
            }
            None => PeerSourceChoice::Standalone,
        }
    }

    /// Checks what a single flag parser cannot.
    pub fn validate(&self) -> Result<(), IpamdError> {
        check_vni_and_port(self.vxlan_vni, self.vxlan_port)?;
        super::parse::require_nonzero("PEERS_FILE_POLL_INTERVAL", self.peers_file_poll_interval)?;
        if let Some(name) = &self.node_name {
            if name.trim().is_empty() {
                return Err(IpamdError::Config {
                    variable: "MY_NODE_NAME",
                    reason: "is set but empty".to_owned(),
                });
            }
        }
        Ok(())
    }
}
