//! Settings of VPC mode (ENIs through EC2), by the AWS VPC CNI's names where
//! the meaning is the same.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{ArgAction, Args};

use super::ec2_client::Ec2ClientSettings;
use super::parse::{parse_bool, parse_cidr_list, parse_duration, parse_mtu, parse_tags, CidrList};

#[derive(Debug, Clone, Args)]
pub struct VpcSettings {
    /// Whole ENIs kept free (ignored once an IP target is set).
    #[arg(long, env = "WARM_ENI_TARGET", default_value_t = 1)]
    pub warm_eni_target: u32,

    /// Free addresses kept ready (0 = unset).
    #[arg(long, env = "WARM_IP_TARGET", default_value_t = 0)]
    pub warm_ip_target: u32,

    /// Addresses held at least, assigned or not (0 = unset).
    #[arg(long, env = "MINIMUM_IP_TARGET", default_value_t = 0)]
    pub minimum_ip_target: u32,

    /// Wholly free /28 prefixes kept in prefix-delegation mode.
    #[arg(long, env = "WARM_PREFIX_TARGET", default_value_t = 0)]
    pub warm_prefix_target: u32,

    /// Hand out addresses from /28 prefixes (Nitro instances only).
    #[arg(long, env = "ENABLE_PREFIX_DELEGATION", default_value = "false",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub enable_prefix_delegation: bool,

    /// Most ENIs ipamd attaches (capped at the instance type's limit; 0 = the limit).
    #[arg(long, env = "MAX_ENI", default_value_t = 0)]
    pub max_eni: u32,

    /// Most pods the pool plans for, overriding the Node's `status.capacity.pods` (kubelet's
    /// max-pods) and the formula. Unset: the Node's capacity when ipamd runs in a cluster
    /// (MY_NODE_NAME and a Kubernetes configuration), else the formula.
    #[arg(long, env = "MAX_PODS", value_name = "MAX_PODS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pods: Option<u32>,

    /// MTU of the ENIs.
    #[arg(long, env = "AWS_VPC_ENI_MTU", value_name = "AWS_VPC_ENI_MTU", default_value = "9001",
          value_parser = parse_mtu)]
    pub eni_mtu: u32,

    /// Established TCP flows between pods and other VPC addresses skip the node's IP layer
    /// once it has let them through (docs/configuration.md says what this changes).
    #[arg(long, env = "ENABLE_POD_FAST_PATH", value_name = "ENABLE_POD_FAST_PATH",
          default_value = "false", value_parser = parse_bool, action = ArgAction::Set)]
    pub enable_pod_fast_path: bool,

    /// New ENIs go to the subnet with the most free addresses among the primary ENI's (unless
    /// tagged kubernetes.io/role/cni=0) and the VPC's subnets in the node's availability zone
    /// tagged kubernetes.io/role/cni (any value but 0). Off: every ENI in the primary ENI's
    /// subnet.
    #[arg(long, env = "ENABLE_SUBNET_DISCOVERY", value_name = "ENABLE_SUBNET_DISCOVERY",
          default_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    pub enable_subnet_discovery: bool,

    /// Join the VXLAN overlay of a hybrid cluster's on-prem nodes: their pods reach this
    /// node's pods, and the other way round, with their own addresses (docs/hybrid.md).
    /// Peers come from PEERS_FILE or the Kubernetes API, as in overlay mode.
    #[arg(long, env = "ENABLE_HYBRID_OVERLAY", value_name = "ENABLE_HYBRID_OVERLAY",
          default_value = "false", value_parser = parse_bool, action = ArgAction::Set)]
    pub enable_hybrid_overlay: bool,

    /// MTU of the path from this VPC to the on-prem nodes (the VPN or direct link): the
    /// VXLAN device gets it less 50 bytes of headers, and never more than the ENI allows.
    #[arg(long, env = "HYBRID_PATH_MTU", value_name = "HYBRID_PATH_MTU", default_value = "1500",
          value_parser = parse_mtu)]
    pub hybrid_path_mtu: u32,

    /// Leave SNAT of pod traffic leaving the VPC to an external NAT.
    #[arg(long, env = "AWS_VPC_K8S_CNI_EXTERNALSNAT", value_name = "AWS_VPC_K8S_CNI_EXTERNALSNAT",
          default_value = "false", value_parser = parse_bool, action = ArgAction::Set)]
    pub external_snat: bool,

    /// CIDRs outside the VPC that pods reach with their own address (comma-separated).
    #[arg(long, env = "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
          value_name = "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", default_value = "",
          value_parser = parse_cidr_list)]
    pub exclude_snat_cidrs: CidrList,

    /// Tags new ENIs with `cluster.k8s.amazonaws.com/name=<name>`.
    #[arg(long, env = "CLUSTER_NAME", default_value = "")]
    pub cluster_name: String,

    /// More tags for new ENIs, a JSON object (`{"team":"net"}`).
    #[arg(long, env = "ADDITIONAL_ENI_TAGS", default_value = "", value_parser = parse_tags)]
    pub additional_eni_tags: BTreeMap<String, String>,

    /// Turn off deleting our ENIs left `available` (leaked).
    #[arg(long, env = "DISABLE_LEAKED_ENI_CLEANUP", default_value = "false",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub disable_leaked_eni_cleanup: bool,

    /// How often leaked ENIs are looked for (jittered).
    #[arg(long, env = "LEAKED_ENI_CLEANUP_INTERVAL", default_value = "1h",
          value_parser = parse_duration)]
    pub leaked_eni_cleanup_interval: Duration,

    /// Age an `available` ENI of ours must reach before it counts as leaked.
    #[arg(long, env = "LEAKED_ENI_MIN_AGE", default_value = "5m", value_parser = parse_duration)]
    pub leaked_eni_min_age: Duration,

    /// Least time between two passes that give addresses or ENIs back.
    #[arg(long, env = "POOL_SHRINK_INTERVAL", default_value = "30", value_parser = parse_duration)]
    pub pool_shrink_interval: Duration,

    /// Least age of an ENI before it may be detached and deleted.
    #[arg(long, env = "MIN_ENI_AGE", default_value = "1m", value_parser = parse_duration)]
    pub min_eni_age: Duration,

    /// How long growth pauses after EC2 reports the subnet full.
    #[arg(long, env = "SUBNET_FULL_PAUSE", default_value = "2m", value_parser = parse_duration)]
    pub subnet_full_pause: Duration,

    /// Sustained EC2 calls per second (one bucket for every call).
    #[arg(long, env = "EC2_API_QPS", default_value_t = 10.0)]
    pub ec2_api_qps: f64,

    /// EC2 calls allowed in a burst.
    #[arg(long, env = "EC2_API_BURST", default_value_t = 20)]
    pub ec2_api_burst: u32,

    #[command(flatten)]
    pub ec2_client: Ec2ClientSettings,
}
