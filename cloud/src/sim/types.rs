//! Plain data the sim hands out. Every value is a copy: callers never hold
//! references into the model, so the lock is never held across their code.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vpc {
    pub id: String,
    /// The primary IPv4 CIDR block (the one it was created with).
    pub cidr: String,
    /// Every associated IPv4 block, the primary first, then in association order.
    pub cidr_blocks: Vec<VpcCidrBlock>,
    pub default_security_group: String,
    pub tags: BTreeMap<String, String>,
}

/// A security group of a VPC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
    /// `default` for the VPC's own.
    pub name: String,
    pub description: String,
}

/// One IPv4 CIDR block associated with a VPC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VpcCidrBlock {
    /// `vpc-cidr-assoc-…`
    pub association_id: String,
    pub cidr: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub cidr: String,
    pub availability_zone: String,
    /// EC2's AvailableIpAddressCount: free addresses, reserved ones excluded.
    pub available_ip_count: u32,
    /// Subnet discovery (`kubernetes.io/role/cni`) reads these.
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: String,
    pub instance_type: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub primary_eni: String,
    pub private_ip: Ipv4Addr,
    pub name: String,
    /// "running" or "terminated".
    pub state: String,
    pub iam_role: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// `eni-attach-…`
    pub id: String,
    pub instance_id: String,
    pub device_index: u32,
    /// Always 0: the sim models the default network card only.
    pub network_card_index: u32,
    /// "attached".
    pub status: String,
    pub delete_on_termination: bool,
    pub attached_at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrivateIp {
    pub address: Ipv4Addr,
    pub primary: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Eni {
    pub id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    /// "02:xx:xx:xx:xx:xx", lowercase, unique in the sim.
    pub mac: String,
    pub description: String,
    pub security_groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
    /// Primary first.
    pub private_ips: Vec<PrivateIp>,
    /// "10.0.1.16/28"
    pub prefixes: Vec<String>,
    /// "available" or "in-use".
    pub status: String,
    pub attachment: Option<Attachment>,
    pub requester_managed: bool,
    pub created_at_ms: u64,
}

impl Eni {
    /// The primary private address (every ENI has one).
    pub fn primary_ip(&self) -> Option<Ipv4Addr> {
        self.private_ips
            .iter()
            .find(|p| p.primary)
            .map(|p| p.address)
    }
}

/// CreateNetworkInterface's parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateEni {
    pub subnet_id: String,
    pub description: String,
    /// Empty means the VPC's default security group, as in EC2.
    pub security_groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub private_ip: Option<Ipv4Addr>,
    pub secondary_count: u32,
    pub prefix_count: u32,
}

/// AssignPrivateIpAddresses' parameters: a count or a list, of addresses or
/// of prefixes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssignIps {
    pub count: u32,
    pub addresses: Vec<Ipv4Addr>,
    pub prefix_count: u32,
    pub prefixes: Vec<String>,
    pub allow_reassignment: bool,
}

/// What an assign call added (only the new addresses and prefixes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Assigned {
    pub addresses: Vec<Ipv4Addr>,
    pub prefixes: Vec<String>,
}

/// DescribeNetworkInterfaces filters. Empty fields do not filter; set fields
/// are ANDed; the values inside one field are ORed, as EC2 does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EniFilter {
    pub ids: Vec<String>,
    pub attachment_instance_id: Option<String>,
    pub status: Option<String>,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    /// `tag-key`: the ENI has any of these keys.
    pub tag_keys: Vec<String>,
    /// `tag:K`: the ENI's value for K is any of the values.
    pub tags: Vec<(String, Vec<String>)>,
    /// Exact, or with `*` / `?` wildcards as EC2 filters accept.
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// What IMDS shows one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImdsView {
    pub instance_id: String,
    pub instance_type: String,
    /// The availability zone without its letter.
    pub region: String,
    pub availability_zone: String,
    pub local_ipv4: Ipv4Addr,
    /// The primary ENI's MAC.
    pub mac: String,
    pub iam_role: String,
    /// Ordered by device number.
    pub interfaces: Vec<ImdsInterface>,
}

/// One `network/interfaces/macs/<mac>/` directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImdsInterface {
    pub mac: String,
    pub interface_id: String,
    pub device_number: u32,
    pub network_card: u32,
    pub subnet_id: String,
    pub vpc_id: String,
    pub security_group_ids: Vec<String>,
    pub subnet_cidr: String,
    pub vpc_cidrs: Vec<String>,
    /// Primary first.
    pub local_ipv4s: Vec<Ipv4Addr>,
    pub ipv4_prefixes: Vec<String>,
}

/// What the network-namespace fabric needs to wire: every running instance and
/// every visible attached ENI with its visible addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FabricView {
    pub vpc_cidrs: Vec<String>,
    pub subnets: Vec<Subnet>,
    pub instances: Vec<Instance>,
    pub enis: Vec<Eni>,
}
