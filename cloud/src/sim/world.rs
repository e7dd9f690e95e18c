//! World building (VPCs, subnets, instances) and the Describe calls for them.

use std::collections::BTreeMap;

use super::addresses::bad_value;
use super::alloc::Pool;
use vpc_cni_proto::net::Ipv4Cidr;

use super::cidr::parse_cidr;
use super::errors::{err, ErrorCode, SimError};
use super::instance_types::{instance_type, instance_types, InstanceType};
use super::state::{State, SubnetRec, VpcRec};
use super::types::{CreateEni, Instance, Subnet, Vpc, VpcCidrBlock};
use super::SimVpc;

/// EC2 accepts VPC and subnet blocks from /16 to /28.
const MIN_LEN: u8 = 16;
const MAX_LEN: u8 = 28;
/// IPv4 CIDR blocks per VPC (EC2's default quota).
const MAX_VPC_BLOCKS: usize = 5;

fn block_size_ok(c: Ipv4Cidr, code: ErrorCode, what: &str, s: &str) -> Result<(), SimError> {
    if (MIN_LEN..=MAX_LEN).contains(&c.prefix_len) {
        Ok(())
    } else {
        err(
            code,
            format!("{what} CIDR block {s} must be between /{MIN_LEN} and /{MAX_LEN}"),
        )
    }
}

impl State {
    fn create_vpc(&mut self, cidr_s: &str) -> Result<Vpc, SimError> {
        let cidr = parse_cidr(cidr_s)?;
        block_size_ok(cidr, ErrorCode::InvalidVpcRange, "VPC", cidr_s)?;
        let id = self.new_id("vpc");
        let default_group = self.add_group(&id, "default", "default VPC security group");
        let vpc = Vpc {
            id,
            cidr: cidr.to_string(),
            cidr_blocks: vec![VpcCidrBlock {
                association_id: self.new_id("vpc-cidr-assoc"),
                cidr: cidr.to_string(),
            }],
            default_security_group: default_group.id,
            tags: BTreeMap::new(),
        };
        self.vpcs.insert(
            vpc.id.clone(),
            VpcRec {
                vpc: vpc.clone(),
                blocks: vec![cidr],
            },
        );
        Ok(vpc)
    }

    fn vpc(&self, vpc_id: &str) -> Result<&VpcRec, SimError> {
        self.vpcs.get(vpc_id).ok_or_else(|| {
            SimError::new(
                ErrorCode::InvalidVpcIdNotFound,
                format!("The vpc ID '{vpc_id}' does not exist"),
            )
        })
    }

    /// AssociateVpcCidrBlock: another block, the same sizes as a VPC's, overlapping none of
    /// the VPC's blocks, at most five in all.
    fn associate_vpc_cidr(&mut self, vpc_id: &str, cidr_s: &str) -> Result<VpcCidrBlock, SimError> {
        let cidr = parse_cidr(cidr_s)?;
        let rec = self.vpc(vpc_id)?;
        block_size_ok(cidr, ErrorCode::InvalidVpcRange, "VPC", cidr_s)?;
        if let Some(other) = rec.blocks.iter().find(|b| b.overlaps(&cidr)) {
            return err(
                ErrorCode::InvalidVpcRange,
                format!("The CIDR '{cidr_s}' overlaps {other}, already a block of {vpc_id}"),
            );
        }
        if rec.blocks.len() >= MAX_VPC_BLOCKS {
            return err(
                ErrorCode::CidrLimitExceeded,
                format!("{vpc_id} already has {MAX_VPC_BLOCKS} IPv4 CIDR blocks"),
            );
        }
        let block = VpcCidrBlock {
            association_id: self.new_id("vpc-cidr-assoc"),
            cidr: cidr.to_string(),
        };
        if let Some(rec) = self.vpcs.get_mut(vpc_id) {
            rec.blocks.push(cidr);
            rec.vpc.cidr_blocks.push(block.clone());
        }
        Ok(block)
    }

    /// DisassociateVpcCidrBlock: never the primary block, nor one a subnet lies in.
    fn disassociate_vpc_cidr(
        &mut self,
        association_id: &str,
    ) -> Result<(String, VpcCidrBlock), SimError> {
        let found = self.vpcs.values().find_map(|rec| {
            let at = rec
                .vpc
                .cidr_blocks
                .iter()
                .position(|b| b.association_id == association_id)?;
            Some((rec.vpc.id.clone(), at, rec.blocks[at]))
        });
        let Some((vpc_id, at, cidr)) = found else {
            return err(
                ErrorCode::InvalidVpcCidrBlockAssociationIdNotFound,
                format!("The vpc CIDR block association ID '{association_id}' does not exist"),
            );
        };
        if at == 0 {
            return err(
                ErrorCode::OperationNotPermitted,
                format!(
                    "The vpc CIDR block with association ID {association_id} may not be \
                     disassociated. It is the primary IPv4 CIDR block of the VPC"
                ),
            );
        }
        if let Some(subnet) = self
            .subnets
            .values()
            .find(|s| s.subnet.vpc_id == vpc_id && cidr.contains_cidr(&s.cidr))
        {
            return err(
                ErrorCode::OperationNotPermitted,
                format!(
                    "The vpc CIDR block {cidr} cannot be disassociated: subnet {} ({}) lies in it",
                    subnet.subnet.id, subnet.cidr
                ),
            );
        }
        let rec = self
            .vpcs
            .get_mut(&vpc_id)
            .ok_or_else(|| SimError::new(ErrorCode::InternalError, format!("{vpc_id} vanished")))?;
        rec.blocks.remove(at);
        let block = rec.vpc.cidr_blocks.remove(at);
        Ok((vpc_id, block))
    }

    fn create_subnet(&mut self, vpc_id: &str, cidr_s: &str, az: &str) -> Result<Subnet, SimError> {
        let vpc = self.vpc(vpc_id)?;
        let cidr = parse_cidr(cidr_s)?;
        block_size_ok(cidr, ErrorCode::InvalidSubnetRange, "subnet", cidr_s)?;
        if !vpc.blocks.iter().any(|b| b.contains_cidr(&cidr)) {
            return err(
                ErrorCode::InvalidSubnetRange,
                format!(
                    "The CIDR '{cidr_s}' is invalid: not within a CIDR block of {vpc_id} ({})",
                    vpc.cidr_texts().join(", ")
                ),
            );
        }
        if let Some(other) = self
            .subnets
            .values()
            .find(|s| s.subnet.vpc_id == vpc_id && s.cidr.overlaps(&cidr))
        {
            return err(
                ErrorCode::InvalidSubnetConflict,
                format!(
                    "The CIDR '{cidr_s}' conflicts with another subnet: {} ({})",
                    other.subnet.id, other.cidr
                ),
            );
        }
        if az.is_empty() {
            return bad_value("availability zone must not be empty".to_string());
        }
        // /16 at most (checked above), so the size fits.
        let pool = Pool::new(u32::try_from(cidr.size()).unwrap_or(u32::MAX));
        let subnet = Subnet {
            id: self.new_id("subnet"),
            vpc_id: vpc_id.to_string(),
            cidr: cidr.to_string(),
            availability_zone: az.to_string(),
            available_ip_count: pool.free_count(),
            tags: BTreeMap::new(),
        };
        let rec = SubnetRec {
            subnet: subnet.clone(),
            cidr,
            pool,
        };
        self.subnets.insert(subnet.id.clone(), rec);
        Ok(subnet)
    }

    fn delete_subnet(&mut self, subnet_id: &str) -> Result<(), SimError> {
        self.subnet(subnet_id)?;
        if let Some(eni) = self.enis.values().find(|e| e.eni.subnet_id == subnet_id) {
            return err(
                ErrorCode::DependencyViolation,
                format!(
                    "The subnet '{subnet_id}' has dependencies and cannot be deleted: {}",
                    eni.eni.id
                ),
            );
        }
        self.subnets.remove(subnet_id);
        Ok(())
    }

    fn run_instance(
        &mut self,
        subnet_id: &str,
        type_name: &str,
        name: &str,
    ) -> Result<Instance, SimError> {
        let sub = self.subnet(subnet_id)?.subnet.clone();
        if instance_type(type_name).is_none() {
            return bad_value(format!("The instance type '{type_name}' does not exist"));
        }
        let eni = self.create_eni(&CreateEni {
            subnet_id: subnet_id.to_string(),
            description: String::new(),
            ..CreateEni::default()
        })?;
        let Some(private_ip) = eni.primary_ip() else {
            return err(ErrorCode::InternalError, "new ENI has no primary address");
        };
        let id = self.new_id("i");
        let mut tags = BTreeMap::new();
        if !name.is_empty() {
            tags.insert("Name".to_string(), name.to_string());
        }
        let inst = Instance {
            id: id.clone(),
            instance_type: type_name.to_string(),
            subnet_id: subnet_id.to_string(),
            vpc_id: sub.vpc_id.clone(),
            availability_zone: sub.availability_zone.clone(),
            primary_eni: eni.id.clone(),
            private_ip,
            name: name.to_string(),
            state: "running".to_string(),
            iam_role: self.iam_role.clone(),
            tags,
        };
        self.instances.insert(id.clone(), inst);
        // The primary interface exists from launch: never hidden by the delay.
        if let Err(e) = self.attach(&eni.id, &id, 0, Some(0)) {
            self.instances.remove(&id);
            let _ = self.delete_eni(&eni.id);
            return Err(e);
        }
        self.instance(&id).cloned()
    }

    fn terminate_instance(&mut self, instance_id: &str) -> Result<(), SimError> {
        self.instance(instance_id)?;
        let attached: Vec<(String, String, bool)> = self
            .enis
            .values()
            .filter_map(|r| {
                let a = r.eni.attachment.as_ref()?;
                (a.instance_id == instance_id)
                    .then(|| (r.eni.id.clone(), a.id.clone(), a.delete_on_termination))
            })
            .collect();
        for (eni_id, att_id, dot) in attached {
            self.detach(&att_id, true)?;
            if dot {
                self.delete_eni(&eni_id)?;
            }
        }
        if let Some(i) = self.instances.get_mut(instance_id) {
            i.state = "terminated".to_string();
        }
        Ok(())
    }

    fn tag(&mut self, ids: &[String], tags: &BTreeMap<String, String>) -> Result<(), SimError> {
        // Validate every id first: CreateTags is all-or-nothing.
        for id in ids {
            if id.starts_with("eni-") {
                self.eni(id)?;
            } else if id.starts_with("i-") {
                self.instance(id)?;
            } else if id.starts_with("subnet-") {
                self.subnet(id)?;
            } else if id.starts_with("vpc-") {
                self.vpc(id)?;
            } else {
                return bad_value(format!(
                    "resource id {id:?} is not an ENI, instance, subnet or VPC"
                ));
            }
        }
        for id in ids {
            if id.starts_with("eni-") {
                self.tag_eni(id, tags)?;
            } else if let Some(i) = self.instances.get_mut(id) {
                i.tags
                    .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                if let Some(n) = tags.get("Name") {
                    i.name = n.clone();
                }
            } else if let Some(s) = self.subnets.get_mut(id) {
                s.subnet
                    .tags
                    .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            } else if let Some(v) = self.vpcs.get_mut(id) {
                v.vpc
                    .tags
                    .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Ok(())
    }
}

impl SimVpc {
    /// Creates a VPC (/16../28) and its default security group.
    pub fn create_vpc(&self, cidr: &str) -> Result<Vpc, SimError> {
        self.with(|s| s.create_vpc(cidr))
    }

    /// Associates another IPv4 CIDR block (such as 100.64.0.0/16) with a VPC.
    pub fn associate_vpc_cidr_block(
        &self,
        vpc_id: &str,
        cidr: &str,
    ) -> Result<VpcCidrBlock, SimError> {
        self.with(|s| s.associate_vpc_cidr(vpc_id, cidr))
    }

    /// Disassociates a secondary block no subnet lies in; returns the VPC's id and the block.
    pub fn disassociate_vpc_cidr_block(
        &self,
        association_id: &str,
    ) -> Result<(String, VpcCidrBlock), SimError> {
        self.with(|s| s.disassociate_vpc_cidr(association_id))
    }

    /// DescribeVpcs; empty `ids` means all.
    pub fn describe_vpcs(&self, ids: &[String]) -> Result<Vec<Vpc>, SimError> {
        self.with(|s| {
            if ids.is_empty() {
                return Ok(s.vpcs.values().map(|r| r.vpc.clone()).collect());
            }
            ids.iter()
                .map(|id| s.vpc(id).map(|r| r.vpc.clone()))
                .collect()
        })
    }

    /// Creates a subnet inside one of the VPC's blocks, overlapping no other subnet.
    pub fn create_subnet(&self, vpc_id: &str, cidr: &str, az: &str) -> Result<Subnet, SimError> {
        self.with(|s| s.create_subnet(vpc_id, cidr, az))
    }

    /// Deletes a subnet no network interface is in.
    pub fn delete_subnet(&self, subnet_id: &str) -> Result<(), SimError> {
        self.with(|s| s.delete_subnet(subnet_id))
    }

    /// Launches an instance: primary ENI at device 0 with the lowest free
    /// address, DeleteOnTermination true, the VPC's default security group.
    pub fn run_instance(
        &self,
        subnet_id: &str,
        instance_type: &str,
        name: &str,
    ) -> Result<Instance, SimError> {
        self.with(|s| s.run_instance(subnet_id, instance_type, name))
    }

    /// Deletes the instance's DeleteOnTermination ENIs and detaches the rest.
    /// Terminating a terminated instance is a no-op, as in EC2.
    pub fn terminate_instance(&self, instance_id: &str) -> Result<(), SimError> {
        self.with(|s| s.terminate_instance(instance_id))
    }

    /// The IAM role name IMDS reports for instances launched from now on.
    pub fn set_iam_role(&self, role: &str) {
        self.with(|s| s.iam_role = role.to_string())
    }

    /// DescribeInstances; empty `ids` means all.
    pub fn describe_instances(&self, ids: &[String]) -> Result<Vec<Instance>, SimError> {
        self.with(|s| {
            if ids.is_empty() {
                return Ok(s.instances.values().cloned().collect());
            }
            ids.iter().map(|id| s.instance(id).cloned()).collect()
        })
    }

    /// DescribeInstanceTypes; empty `names` means the whole table.
    pub fn describe_instance_types(&self, names: &[String]) -> Result<Vec<InstanceType>, SimError> {
        if names.is_empty() {
            return Ok(instance_types().to_vec());
        }
        names
            .iter()
            .map(|n| match instance_type(n) {
                Some(t) => Ok(t.clone()),
                None => bad_value(format!(
                    "The following supplied instance types do not exist: [{n}]"
                )),
            })
            .collect()
    }

    /// DescribeSubnets; empty `ids` means all.
    pub fn describe_subnets(&self, ids: &[String]) -> Result<Vec<Subnet>, SimError> {
        self.with(|s| {
            if ids.is_empty() {
                return Ok(s.subnets.values().map(|r| r.view()).collect());
            }
            ids.iter()
                .map(|id| s.subnet(id).map(|r| r.view()))
                .collect()
        })
    }

    /// CreateTags on ENIs, instances, subnets and VPCs; all-or-nothing.
    pub fn create_tags(
        &self,
        resource_ids: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<(), SimError> {
        self.with(|s| s.tag(resource_ids, tags))
    }
}
