//! The two seams ipamd's VPC mode talks through. Implementations: the AWS
//! SDK (feature `aws`) and `cloud::sim` in memory (feature `sim`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use futures::future::BoxFuture;
use vpc_cni_proto::net::{Ipv4Cidr, MacAddr};

use crate::error::CloudError;

pub type CloudResult<T> = Result<T, CloudError>;

/// What every seam method returns: a boxed future of a [`CloudResult`].
pub type CloudFuture<'a, T> = BoxFuture<'a, CloudResult<T>>;

/// An EC2 resource id (`eni-…`, `subnet-…`): opaque text EC2 hands out, kept apart by type so
/// one kind is never passed where another is meant.
macro_rules! resource_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(String);

        impl $name {
            #[must_use]
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

resource_id!(
    /// An elastic network interface, `eni-…`.
    EniId
);
resource_id!(
    /// A subnet, `subnet-…`.
    SubnetId
);

/// The VPC router of a subnet, where EC2 puts it: the subnet's first host address.
#[must_use]
pub fn subnet_router(subnet: &Ipv4Cidr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network).wrapping_add(1))
}

/// Limits of an instance type, as DescribeInstanceTypes reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    pub max_enis: u32,
    /// IPv4 addresses per ENI, its own primary included.
    pub ipv4_per_eni: u32,
    /// Nitro hypervisor: /28 prefix delegation is available.
    pub nitro: bool,
    pub vcpus: u32,
}

/// An ENI as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniInfo {
    pub id: EniId,
    pub mac: MacAddr,
    pub subnet_id: SubnetId,
    pub description: String,
    pub status: String,
    pub tags: BTreeMap<String, String>,
    /// Primary address first.
    pub addresses: Vec<Ipv4Addr>,
    /// Delegated /28s.
    pub prefixes: Vec<Ipv4Cidr>,
    pub attachment_id: Option<String>,
    pub instance_id: Option<String>,
    pub device_index: Option<u32>,
}

/// What a new ENI is created with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEni {
    pub subnet_id: SubnetId,
    pub description: String,
    pub security_groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub secondary_count: u32,
    pub prefix_count: u32,
}

/// What one AssignPrivateIpAddresses asks for: secondary addresses or delegated /28s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assign {
    Addresses(u32),
    Prefixes(u32),
}

/// What EC2 assigned; the list of the other kind is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignedIps {
    pub addresses: Vec<Ipv4Addr>,
    pub prefixes: Vec<Ipv4Cidr>,
}

/// Which ENIs a describe call asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EniQuery {
    Ids(Vec<EniId>),
    AttachedTo(String),
    /// `available` ENIs carrying this tag key (leaked-ENI cleanup).
    AvailableTagged(String),
}

/// A subnet as DescribeSubnets shows it: what subnet discovery chooses among.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetInfo {
    pub id: SubnetId,
    pub cidr: Ipv4Cidr,
    pub availability_zone: String,
    /// EC2's AvailableIpAddressCount.
    pub available_addresses: u32,
    pub tags: BTreeMap<String, String>,
}

/// The EC2 actions ipamd uses (DESIGN.md, "EC2 usage"). A new method must be called by
/// `aws::actions`' test, which keeps `EC2_ACTIONS` (and so the IAM policy) complete.
pub trait Ec2: Send + Sync {
    fn instance_limits(&self, instance_type: &str) -> CloudFuture<'_, InstanceLimits>;
    fn create_eni(&self, eni: NewEni) -> CloudFuture<'_, EniInfo>;
    /// Attaches and sets DeleteOnTermination; returns the attachment id.
    fn attach_eni<'a>(
        &'a self,
        eni_id: &'a EniId,
        instance_id: &'a str,
        device_index: u32,
    ) -> CloudFuture<'a, String>;
    /// AssignPrivateIpAddresses; asking for none is no call.
    fn assign<'a>(&'a self, eni_id: &'a EniId, what: Assign) -> CloudFuture<'a, AssignedIps>;
    fn unassign<'a>(
        &'a self,
        eni_id: &'a EniId,
        addresses: &'a [Ipv4Addr],
        prefixes: &'a [Ipv4Cidr],
    ) -> CloudFuture<'a, ()>;
    fn detach_eni<'a>(&'a self, attachment_id: &'a str) -> CloudFuture<'a, ()>;
    fn delete_eni<'a>(&'a self, eni_id: &'a EniId) -> CloudFuture<'a, ()>;
    fn describe_enis(&self, query: EniQuery) -> CloudFuture<'_, Vec<EniInfo>>;
    fn create_tags<'a>(
        &'a self,
        enis: &'a [EniId],
        tags: &'a BTreeMap<String, String>,
    ) -> CloudFuture<'a, ()>;
    /// ModifyNetworkInterfaceAttribute: the ENI's security groups become `groups`.
    fn set_security_groups<'a>(
        &'a self,
        eni_id: &'a EniId,
        groups: &'a [String],
    ) -> CloudFuture<'a, ()>;
    /// DescribeSubnets: every subnet of `vpc_id` in `availability_zone`.
    fn describe_subnets<'a>(
        &'a self,
        vpc_id: &'a str,
        availability_zone: &'a str,
    ) -> CloudFuture<'a, Vec<SubnetInfo>>;
}

/// The node as IMDS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub instance_id: String,
    pub instance_type: String,
    pub region: String,
    pub availability_zone: String,
    pub primary_mac: MacAddr,
    pub local_ipv4: Ipv4Addr,
}

/// One attached ENI as IMDS shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsEni {
    pub mac: MacAddr,
    pub eni_id: EniId,
    pub device_number: u32,
    pub subnet_id: SubnetId,
    pub vpc_id: String,
    pub security_groups: Vec<String>,
    pub subnet_cidr: Ipv4Cidr,
    pub vpc_cidrs: Vec<Ipv4Cidr>,
    /// Primary first.
    pub addresses: Vec<Ipv4Addr>,
    /// Delegated /28s.
    pub prefixes: Vec<Ipv4Cidr>,
}

/// Node-local facts, IMDSv2 only.
pub trait Imds: Send + Sync {
    fn identity(&self) -> CloudFuture<'_, NodeIdentity>;
    /// Every attached ENI IMDS shows now (eventually consistent).
    fn enis(&self) -> CloudFuture<'_, Vec<ImdsEni>>;
}
