//! The records the datastore holds and the checkpoint keeps: who holds which address, and
//! the checkpoint's layout. Below both, so neither depends on the other.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use vpc_cni_proto::Mode;

/// What an assignment is keyed on: the CNI spec's IPAM identity of an attachment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentKey {
    pub container_id: String,
    pub ifname: String,
}

/// Who holds an address; kept so restarts and sweeps can find the pod's host side again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentity {
    pub network_name: String,
    pub netns: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub host_veth: String,
}

/// One address pods may get: from the node's pod CIDR (overlay) or an ENI (VPC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolAddress {
    pub ip: Ipv4Addr,
    /// Route table the pod's traffic leaves through (0 = main).
    pub route_table: u32,
    /// Device index of the interface the address lives on.
    pub device_number: u32,
}

/// An address handed to one attachment, with what the pod was wired with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub key: AttachmentKey,
    pub pod: PodIdentity,
    pub ip: Ipv4Addr,
    pub route_table: u32,
    pub device_number: u32,
    pub assigned_at_ms: u64,
}

/// Format version written to and required of the checkpoint.
pub const CHECKPOINT_VERSION: &str = "vpc-cni/ipam/v1";

/// The checkpoint's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointData {
    pub version: String,
    /// Decided once per boot and kept across restarts; written as its name (`vpc`,
    /// `overlay`).
    #[serde(with = "mode_name")]
    pub mode: Mode,
    pub assignments: Vec<Assignment>,
    #[serde(default)]
    pub cooling: Vec<CoolingAddress>,
}

/// A released address that must not be handed out again before `until_ms` (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoolingAddress {
    pub ip: Ipv4Addr,
    pub until_ms: u64,
}

/// The mode as its name in the checkpoint, so the file reads the same as settings and logs.
mod mode_name {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use vpc_cni_proto::Mode;

    pub fn serialize<S: Serializer>(mode: &Mode, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(mode.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Mode, D::Error> {
        let name = String::deserialize(deserializer)?;
        Mode::from_name(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown mode {name:?} (vpc or overlay)")))
    }
}
