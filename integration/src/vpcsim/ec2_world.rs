//! The EC2 actions that build a world (VPCs and their CIDR blocks, subnets, security groups,
//! instances) and take it apart again, so any EC2 client can set one up on vpc-sim as it can
//! on moto, beside the admin API.

use vpc_cni_cloud::sim::{EniFilter, Instance, SimVpc, Vpc, VpcCidrBlock};

use super::api_error::ApiError;
use super::ec2_filter::{check_max, keep, page, subnet_matches, vpc_matches};
use super::ec2_xml::{self, GroupNames};
use super::query::{ParamError, Query};
use super::xml::Xml;
use super::ACCOUNT_ID;

/// The most instances one RunInstances call launches here.
const MAX_LAUNCH: u32 = 20;

/// Runs one of this module's actions; `None` when `action` is not one of them.
pub fn run(
    sim: &SimVpc,
    action: &str,
    q: &Query,
    body: &mut Xml,
    names: impl Fn() -> GroupNames,
) -> Option<Result<(), ApiError>> {
    let result = match action {
        "CreateVpc" => create_vpc(sim, q, body),
        "DescribeVpcs" => describe_vpcs(sim, q, body),
        "AssociateVpcCidrBlock" => associate(sim, q, body),
        "DisassociateVpcCidrBlock" => disassociate(sim, q, body),
        "CreateSubnet" => create_subnet(sim, q, body),
        "DeleteSubnet" => delete_subnet(sim, q, body),
        "DescribeSubnets" => describe_subnets(sim, q, body),
        "CreateSecurityGroup" => create_security_group(sim, q, body),
        "RunInstances" => run_instances(sim, q, body, &names()),
        "TerminateInstances" => terminate_instances(sim, q, body),
        _ => return None,
    };
    Some(result)
}

fn create_vpc(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let vpc = sim.create_vpc(q.required("CidrBlock")?)?;
    let tags = q.tag_specifications("vpc");
    if !tags.is_empty() {
        sim.create_tags(std::slice::from_ref(&vpc.id), &tags)?;
    }
    let vpc = sim
        .describe_vpcs(std::slice::from_ref(&vpc.id))?
        .into_iter()
        .next()
        .unwrap_or(vpc);
    body.element("vpc", |x| ec2_xml::vpc(x, &vpc));
    Ok(())
}

fn describe_vpcs(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let max = q.u32("MaxResults")?;
    check_max(max, 5, 1000)?;
    let vpcs: Vec<Vpc> = keep(
        sim.describe_vpcs(&q.list("VpcId"))?,
        &q.filters(),
        vpc_matches,
    )?;
    let (vpcs, next) = page(vpcs, |v| v.id.as_str(), max, q.get("NextToken"))?;
    body.set("vpcSet", &vpcs, ec2_xml::vpc);
    if let Some(token) = next {
        body.text("nextToken", token);
    }
    Ok(())
}

fn associate(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let vpc_id = q.required("VpcId")?;
    let block = sim.associate_vpc_cidr_block(vpc_id, q.required("CidrBlock")?)?;
    association(body, vpc_id, &block, "associated");
    Ok(())
}

fn disassociate(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let (vpc_id, block) = sim.disassociate_vpc_cidr_block(q.required("AssociationId")?)?;
    association(body, &vpc_id, &block, "disassociated");
    Ok(())
}

/// `AssociateVpcCidrBlock`'s and `DisassociateVpcCidrBlock`'s reply. EC2 reports the
/// transition (`associating`, `disassociating`); the sim's takes no time, so it reports the
/// state reached.
fn association(body: &mut Xml, vpc_id: &str, block: &VpcCidrBlock, state: &str) {
    body.element("cidrBlockAssociation", |x| {
        x.text("associationId", &block.association_id)
            .text("cidrBlock", &block.cidr)
            .element("cidrBlockState", |x| {
                x.text("state", state);
            });
    })
    .text("vpcId", vpc_id);
}

fn create_subnet(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let subnet = sim.create_subnet(
        q.required("VpcId")?,
        q.required("CidrBlock")?,
        q.required("AvailabilityZone")?,
    )?;
    let tags = q.tag_specifications("subnet");
    if !tags.is_empty() {
        sim.create_tags(std::slice::from_ref(&subnet.id), &tags)?;
    }
    let subnet = sim
        .describe_subnets(std::slice::from_ref(&subnet.id))?
        .into_iter()
        .next()
        .unwrap_or(subnet);
    body.element("subnet", |x| ec2_xml::subnet(x, &subnet));
    Ok(())
}

fn delete_subnet(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    sim.delete_subnet(q.required("SubnetId")?)?;
    body.text("return", true);
    Ok(())
}

fn describe_subnets(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let max = q.u32("MaxResults")?;
    check_max(max, 5, 1000)?;
    let subnets = keep(
        sim.describe_subnets(&q.list("SubnetId"))?,
        &q.filters(),
        subnet_matches,
    )?;
    let (subnets, next) = page(subnets, |s| s.id.as_str(), max, q.get("NextToken"))?;
    body.set("subnetSet", &subnets, ec2_xml::subnet);
    if let Some(token) = next {
        body.text("nextToken", token);
    }
    Ok(())
}

fn create_security_group(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let group = sim.create_security_group(
        q.required("VpcId").map_err(|_| {
            ApiError::new(
                "VPCIdNotSpecified",
                "vpc-sim creates VPC security groups only: VpcId is required",
            )
        })?,
        q.required("GroupName")?,
        q.required("GroupDescription")?,
    )?;
    body.text("return", true).text("groupId", &group.id);
    Ok(())
}

/// RunInstances: `MaxCount` instances (at most [`MAX_LAUNCH`]) in `SubnetId`, each a node
/// like one `node add` makes; all or none.
fn run_instances(
    sim: &SimVpc,
    q: &Query,
    body: &mut Xml,
    names: &GroupNames,
) -> Result<(), ApiError> {
    let subnet = q.required("SubnetId").map_err(|_| {
        ApiError::new(
            "MissingParameter",
            "vpc-sim launches into a subnet: SubnetId is required",
        )
    })?;
    let instance_type = q.get("InstanceType").unwrap_or("m1.small");
    let min = q
        .u32("MinCount")?
        .ok_or_else(|| ParamError::Missing("MinCount".into()))?;
    let max = q
        .u32("MaxCount")?
        .ok_or_else(|| ParamError::Missing("MaxCount".into()))?;
    if min == 0 || min > max {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!("MinCount {min} must be at least 1 and at most MaxCount {max}"),
        ));
    }
    if max > MAX_LAUNCH {
        return Err(ApiError::new(
            "InstanceLimitExceeded",
            format!("vpc-sim launches at most {MAX_LAUNCH} instances per call, not {max}"),
        ));
    }
    let mut tags = q.tag_specifications("instance");
    let name = tags.remove("Name").unwrap_or_default();
    let mut launched = Vec::new();
    for _ in 0..max {
        match sim.run_instance(subnet, instance_type, &name) {
            Ok(instance) => launched.push(instance),
            Err(e) => {
                for instance in &launched {
                    let _ = sim.terminate_instance(&instance.id);
                }
                return Err(e.into());
            }
        }
    }
    if !tags.is_empty() {
        let ids: Vec<String> = launched.iter().map(|i| i.id.clone()).collect();
        sim.create_tags(&ids, &tags)?;
    }
    let ids: Vec<String> = launched.iter().map(|i| i.id.clone()).collect();
    reservation(sim, body, &sim.describe_instances(&ids)?, names)
}

/// One reservation's body: its id (from the first instance's), owner, and the instances
/// with their attached network interfaces, by device index.
pub(super) fn reservation(
    sim: &SimVpc,
    x: &mut Xml,
    instances: &[Instance],
    names: &GroupNames,
) -> Result<(), ApiError> {
    let mut with_enis = Vec::with_capacity(instances.len());
    for inst in instances {
        let filter = EniFilter {
            attachment_instance_id: Some(inst.id.clone()),
            ..EniFilter::default()
        };
        let mut enis = sim.describe_network_interfaces(&filter, None, None)?.items;
        enis.sort_by_key(|e| e.attachment.as_ref().map_or(0, |a| a.device_index));
        with_enis.push((inst, enis));
    }
    let first = instances.first().map_or("0", |i| i.id.as_str());
    let suffix = first.strip_prefix("i-").unwrap_or(first);
    x.text("reservationId", format!("r-{suffix}"))
        .text("ownerId", ACCOUNT_ID)
        .set("groupSet", Vec::<()>::new(), |_, ()| {})
        .set("instancesSet", &with_enis, |x, (inst, enis)| {
            ec2_xml::instance(x, inst, enis, names);
        });
    Ok(())
}

/// TerminateInstances: every id must exist; each reports the state it left and reached.
fn terminate_instances(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let ids = q.list("InstanceId");
    if ids.is_empty() {
        return Err(ParamError::Missing("InstanceId.1".into()).into());
    }
    let before = sim.describe_instances(&ids)?;
    for id in &ids {
        sim.terminate_instance(id)?;
    }
    body.set("instancesSet", &before, |x, inst| {
        let was_running = inst.state == "running";
        x.text("instanceId", &inst.id)
            .element("currentState", |x| {
                x.text("code", 48).text("name", "terminated");
            })
            .element("previousState", |x| {
                x.text("code", if was_running { 16 } else { 48 })
                    .text("name", &inst.state);
            });
    });
    Ok(())
}
