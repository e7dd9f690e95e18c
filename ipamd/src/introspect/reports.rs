//! The JSON the introspection API answers with, one type per path; `ipamd inspect` reads the
//! same types back. Field names are camelCase, as in the checkpoint and the peers file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `/v1/pool`: the pool's figures, in the AWS VPC CNI's terms (`available = total - assigned -
/// cooling`, counting only addresses the pool shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolReport {
    /// `vpc` or `overlay`.
    pub mode: String,
    /// Where the addresses come from ("ENIs of i-…", "pod CIDR 10.244.1.0/24").
    pub pool: String,
    /// Addresses pods may get, held or not.
    pub total: u64,
    /// Addresses pods hold (those outside the pool included).
    pub assigned: u64,
    /// Released addresses resting before reuse (`IP_COOLDOWN_PERIOD`).
    pub cooling: u64,
    /// Addresses an ADD can have now.
    pub available: u64,
    /// Held addresses the latest look at the node did not show in the pool.
    pub outside_pool: u64,
    /// VPC mode: the ENIs behind the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc: Option<VpcPool>,
}

/// The ENI side of a VPC-mode pool, from the pool controller's latest pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VpcPool {
    pub instance_id: String,
    pub instance_type: String,
    /// Attached ENIs whose addresses the pool uses.
    pub enis: u32,
    /// Attached ENIs tagged `node.k8s.amazonaws.com/no_manage=true`: counted, never used.
    pub unmanaged_enis: u32,
    /// Attached ENIs whose link the node has not shown yet (their addresses wait).
    pub unwired_enis: u32,
    /// ENIs ipamd may use: `MAX_ENI` capped at the type's limit, less the unmanaged ones.
    pub max_enis: u32,
    /// Pod addresses one ENI holds at most (its own primary excluded; 16 per /28 slot in
    /// prefix mode).
    pub addresses_per_eni: u32,
    /// `max_enis × addresses_per_eni`.
    pub ip_max: u32,
    pub prefix_mode: bool,
    /// Delegated /28s held.
    pub prefixes: u32,
    /// Delegated /28s none of whose addresses is assigned or cooling.
    pub free_prefixes: u32,
    /// Most pods the pool plans for.
    pub max_pods: u32,
    /// When the pass looked (unix ms).
    pub observed_at_ms: u64,
}

/// `/v1/enis`: the node's attached ENIs and where each address stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnisReport {
    pub mode: String,
    /// Empty in overlay mode.
    pub enis: Vec<EniRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EniRow {
    pub id: String,
    pub device_number: u32,
    pub mac: String,
    pub subnet_id: String,
    pub subnet_cidr: String,
    /// The ENI's own address, never a pod's.
    pub primary_ip: String,
    /// False for a `no_manage` ENI, or one whose tags are not known yet.
    pub managed: bool,
    /// False while the node shows no link with its MAC.
    pub wired: bool,
    /// Secondary addresses.
    pub addresses: Vec<AddressRow>,
    /// Delegated /28s.
    pub prefixes: Vec<PrefixRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressRow {
    pub ip: String,
    pub state: SlotStatus,
    /// `namespace/name` of the pod holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixRow {
    pub prefix: String,
    pub free: u32,
    pub assigned: u32,
    pub cooling: u32,
}

/// Where one address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotStatus {
    Free,
    Assigned,
    Cooling,
    /// Not in the pool: just released to EC2, on an ENI not wired or not ours.
    Unavailable,
}

impl SlotStatus {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Assigned => "assigned",
            Self::Cooling => "cooling",
            Self::Unavailable => "unavailable",
        }
    }
}

/// `/v1/pods`: every attachment holding an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodsReport {
    pub pods: Vec<PodRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRow {
    pub namespace: String,
    pub name: String,
    pub container_id: String,
    pub ifname: String,
    /// The CNI network name of the attachment.
    pub network: String,
    pub ip: String,
    pub device_number: u32,
    /// 0 = main.
    pub route_table: u32,
    pub host_veth: String,
    pub assigned_at_ms: u64,
}

/// `/v1/peers`: the overlay's other nodes, as last programmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeersReport {
    pub mode: String,
    /// False until a peer set has been applied (and always in VPC mode).
    pub applied: bool,
    pub peers: Vec<PeerRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerRow {
    pub name: String,
    /// `overlay`, or `vpc` for a VPC-mode node of a hybrid cluster.
    pub kind: String,
    pub underlay_ip: String,
    /// An overlay node's pod CIDR, or a VPC-mode node's pod address ranges, comma-separated.
    pub pod_cidr: String,
    pub vtep_mac: String,
}

/// `/v1/config`: every setting ipamd runs with, and where its value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReport {
    /// The mode in force (`VPC_CNI_MODE=auto` resolved).
    pub mode: String,
    pub pool: String,
    pub settings: Vec<SettingRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingRow {
    /// The environment variable (each has a flag too).
    pub variable: String,
    pub flag: String,
    /// As given (or defaulted); absent when unset and without default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `env`, `flag`, `default` or `unset`.
    pub source: String,
}

/// `/v1/ipamd-env-settings` and `/v1/networkutils-env-settings`: variable -> value in force,
/// as the AWS VPC CNI answers them (a flat object).
pub type EnvSettings = BTreeMap<String, String>;
