//! Cases for the actions that build a world: VPC CIDR blocks, subnets in several zones with
//! the tags subnet discovery reads, instances launched and terminated. What issue 16's tests
//! build their worlds with, checked against moto where moto can.

use aws_sdk_ec2::types::{Filter, InstanceType, ResourceType, Tag, TagSpecification};

use crate::cases::Ctx;
use crate::sdk::code_of;

/// The tag subnet discovery looks for.
const CNI_ROLE: &str = "kubernetes.io/role/cni";

async fn vpc_blocks(ctx: &Ctx) -> Vec<String> {
    let out = ctx
        .client
        .describe_vpcs()
        .vpc_ids(&ctx.world.vpc_id)
        .send()
        .await
        .unwrap();
    let mut blocks: Vec<String> = out.vpcs()[0]
        .cidr_block_association_set()
        .iter()
        .filter(|b| {
            b.cidr_block_state()
                .and_then(|s| s.state())
                .is_some_and(|s| s.as_str() == "associated")
        })
        .filter_map(|b| b.cidr_block().map(str::to_owned))
        .collect();
    blocks.sort();
    blocks
}

async fn subnet_in(ctx: &Ctx, cidr: &str, az: &str, tags: &[(&str, &str)]) -> String {
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Subnet);
    for (key, value) in tags {
        spec = spec.tags(Tag::builder().key(*key).value(*value).build());
    }
    let mut request = ctx
        .client
        .create_subnet()
        .vpc_id(&ctx.world.vpc_id)
        .cidr_block(cidr)
        .availability_zone(az);
    if !tags.is_empty() {
        request = request.tag_specifications(spec.build());
    }
    let out = request.send().await.unwrap();
    let subnet = out.subnet().unwrap();
    assert_eq!(subnet.cidr_block(), Some(cidr));
    assert_eq!(subnet.availability_zone(), Some(az));
    subnet.subnet_id().unwrap().to_owned()
}

/// A secondary block (100.64.0.0/16, as custom networking uses) is associated, holds a
/// subnet, and goes once the subnet has; the primary block cannot go; a subnet outside every
/// block or overlapping another is refused with EC2's codes.
pub async fn vpc_cidr_blocks(ctx: &Ctx) {
    let out = ctx
        .client
        .associate_vpc_cidr_block()
        .vpc_id(&ctx.world.vpc_id)
        .cidr_block("100.64.0.0/16")
        .send()
        .await
        .unwrap();
    assert_eq!(out.vpc_id(), Some(ctx.world.vpc_id.as_str()));
    let association = out.cidr_block_association().unwrap();
    assert_eq!(association.cidr_block(), Some("100.64.0.0/16"));
    let association_id = association.association_id().unwrap().to_owned();
    assert_eq!(vpc_blocks(ctx).await, ["10.0.0.0/16", "100.64.0.0/16"]);
    let found = ctx
        .client
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("cidr-block-association.cidr-block")
                .values("100.64.0.0/16")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = found.vpcs().iter().filter_map(|v| v.vpc_id()).collect();
    assert_eq!(ids, [ctx.world.vpc_id.as_str()]);

    let subnet = subnet_in(ctx, "100.64.0.0/24", "us-west-2b", &[]).await;
    for (cidr, code) in [
        ("172.16.0.0/24", "InvalidSubnet.Range"),
        ("100.64.0.0/25", "InvalidSubnet.Conflict"),
    ] {
        let refused = ctx
            .client
            .create_subnet()
            .vpc_id(&ctx.world.vpc_id)
            .cidr_block(cidr)
            .availability_zone("us-west-2b")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code_of(&refused), code, "{cidr}");
    }
    let primary = ctx
        .client
        .describe_vpcs()
        .vpc_ids(&ctx.world.vpc_id)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .cidr_block_association_set()
        .iter()
        .find(|b| b.cidr_block() == Some("10.0.0.0/16"))
        .and_then(|b| b.association_id().map(str::to_owned))
        .unwrap();
    let refused = ctx
        .client
        .disassociate_vpc_cidr_block()
        .association_id(&primary)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&refused), "OperationNotPermitted");

    ctx.client
        .delete_subnet()
        .subnet_id(&subnet)
        .send()
        .await
        .unwrap();
    let out = ctx
        .client
        .disassociate_vpc_cidr_block()
        .association_id(&association_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.cidr_block_association().and_then(|a| a.cidr_block()),
        Some("100.64.0.0/16")
    );
    assert_eq!(vpc_blocks(ctx).await, ["10.0.0.0/16"]);
}

/// EC2's rules moto does not enforce: a block overlapping another, and a block with a subnet
/// in it, are refused.
pub async fn vpc_cidr_block_rules(ctx: &Ctx) {
    let overlapping = ctx
        .client
        .associate_vpc_cidr_block()
        .vpc_id(&ctx.world.vpc_id)
        .cidr_block("10.0.128.0/17")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&overlapping), "InvalidVpc.Range");
    let association_id = ctx
        .client
        .associate_vpc_cidr_block()
        .vpc_id(&ctx.world.vpc_id)
        .cidr_block("100.64.0.0/16")
        .send()
        .await
        .unwrap()
        .cidr_block_association()
        .and_then(|a| a.association_id().map(str::to_owned))
        .unwrap();
    subnet_in(ctx, "100.64.1.0/24", "us-west-2a", &[]).await;
    let in_use = ctx
        .client
        .disassociate_vpc_cidr_block()
        .association_id(&association_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&in_use), "OperationNotPermitted");
}

/// Subnets in two zones, tagged as subnet discovery reads them, found by the filters it
/// sends: `tag-key`, `tag:<key>`, `availability-zone`, `vpc-id`.
pub async fn subnet_filters(ctx: &Ctx) {
    let tagged_b = subnet_in(ctx, "10.0.1.0/24", "us-west-2b", &[(CNI_ROLE, "1")]).await;
    let tagged_a = subnet_in(ctx, "10.0.2.0/24", "us-west-2a", &[(CNI_ROLE, "1")]).await;
    let opted_out = subnet_in(ctx, "10.0.3.0/24", "us-west-2a", &[(CNI_ROLE, "0")]).await;
    let find = |filters: Vec<(&'static str, &'static str)>| {
        let mut request = ctx.client.describe_subnets();
        for (name, value) in filters {
            request = request.filters(Filter::builder().name(name).values(value).build());
        }
        let vpc = ctx.world.vpc_id.clone();
        async move {
            let out = request
                .filters(Filter::builder().name("vpc-id").values(vpc).build())
                .send()
                .await
                .unwrap();
            let mut ids: Vec<String> = out
                .subnets()
                .iter()
                .filter_map(|s| s.subnet_id().map(str::to_owned))
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    assert_eq!(
        find(vec![("tag-key", CNI_ROLE)]).await,
        sorted(vec![tagged_b.clone(), tagged_a.clone(), opted_out.clone()])
    );
    assert_eq!(
        find(vec![
            ("tag-key", CNI_ROLE),
            ("availability-zone", "us-west-2a")
        ])
        .await,
        sorted(vec![tagged_a.clone(), opted_out.clone()])
    );
    assert_eq!(
        find(vec![("tag:kubernetes.io/role/cni", "0")]).await,
        [opted_out]
    );
    assert_eq!(
        find(vec![
            ("tag:kubernetes.io/role/cni", "1"),
            ("availability-zone", "us-west-2b")
        ])
        .await,
        std::slice::from_ref(&tagged_b)
    );
    let out = ctx
        .client
        .describe_subnets()
        .subnet_ids(&tagged_b)
        .send()
        .await
        .unwrap();
    let subnet = &out.subnets()[0];
    assert_eq!(subnet.available_ip_address_count(), Some(251));
    assert!(subnet
        .tags()
        .iter()
        .any(|t| t.key() == Some(CNI_ROLE) && t.value() == Some("1")));
}

/// Two instances launched in one call, named by a tag, each with its primary interface at
/// device 0 in the subnet; one terminated: its state says so.
pub async fn run_and_terminate_instances(ctx: &Ctx) {
    launch_and_terminate(ctx).await;
}

/// A terminated instance's primary interface (DeleteOnTermination) is deleted with it.
pub async fn terminated_primary_interface_goes(ctx: &Ctx) {
    let primaries = launch_and_terminate(ctx).await;
    let gone = ctx
        .client
        .describe_network_interfaces()
        .network_interface_ids(&primaries[0])
        .send()
        .await;
    match gone {
        Err(e) => assert_eq!(code_of(&e), "InvalidNetworkInterfaceID.NotFound"),
        Ok(out) => assert!(
            out.network_interfaces().is_empty(),
            "the terminated instance's primary interface stayed"
        ),
    }
}

/// Launches two instances, terminates the first; the primary interfaces' ids.
async fn launch_and_terminate(ctx: &Ctx) -> Vec<String> {
    let out = ctx
        .client
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Medium)
        .subnet_id(&ctx.world.subnet_id)
        .min_count(2)
        .max_count(2)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key("Name").value("node-b").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let launched = out.instances();
    assert_eq!(launched.len(), 2);
    let mut primaries = Vec::new();
    for instance in launched {
        assert_eq!(instance.subnet_id(), Some(ctx.world.subnet_id.as_str()));
        let ip = instance.private_ip_address().unwrap();
        assert!(ip.starts_with("10.0.0."), "{ip}");
        let primary = instance
            .network_interfaces()
            .iter()
            .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
            .unwrap();
        primaries.push(primary.network_interface_id().unwrap().to_owned());
    }
    let id = launched[0].instance_id().unwrap().to_owned();
    let described = ctx
        .client
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert!(instance
        .tags()
        .iter()
        .any(|t| t.key() == Some("Name") && t.value() == Some("node-b")));

    let out = ctx
        .client
        .terminate_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let change = &out.terminating_instances()[0];
    assert_eq!(change.instance_id(), Some(id.as_str()));
    assert_eq!(
        change
            .previous_state()
            .and_then(|s| s.name())
            .map(|n| n.as_str()),
        Some("running")
    );
    let unknown = ctx
        .client
        .terminate_instances()
        .instance_ids("i-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&unknown), "InvalidInstanceID.NotFound");
    primaries
}

/// A security group made in the VPC goes on a new ENI and, with ModifyNetworkInterfaceAttribute,
/// on a live one (how ipamd copies the primary ENI's groups to its own).
pub async fn security_groups(ctx: &Ctx) {
    let group = ctx
        .client
        .create_security_group()
        .vpc_id(&ctx.world.vpc_id)
        .group_name("pods")
        .description("pod ENIs")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    let eni = eni_with_groups(ctx, &[&group]).await;
    let groups_of = |eni: String| async move {
        let out = ctx
            .client
            .describe_network_interfaces()
            .network_interface_ids(eni)
            .send()
            .await
            .unwrap();
        let mut ids: Vec<String> = out.network_interfaces()[0]
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(groups_of(eni.clone()).await, std::slice::from_ref(&group));
    // The VPC's default group: what an ENI made without groups carries.
    let default = groups_of(eni_with_groups(ctx, &[]).await).await.remove(0);
    ctx.client
        .modify_network_interface_attribute()
        .network_interface_id(&eni)
        .groups(&group)
        .groups(&default)
        .send()
        .await
        .unwrap();
    let mut both = vec![group.clone(), default];
    both.sort();
    assert_eq!(groups_of(eni.clone()).await, both);
}

/// A group that does not exist is refused, on a new ENI and on a live one.
pub async fn unknown_security_group_refused(ctx: &Ctx) {
    let refused = ctx
        .client
        .create_network_interface()
        .subnet_id(&ctx.world.subnet_id)
        .groups("sg-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&refused), "InvalidGroup.NotFound");
    let eni = eni_with_groups(ctx, &[]).await;
    let unknown = ctx
        .client
        .modify_network_interface_attribute()
        .network_interface_id(&eni)
        .groups("sg-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&unknown), "InvalidGroup.NotFound");
}

/// A new ENI in the world's subnet with `groups` (none: the VPC's default); its id.
async fn eni_with_groups(ctx: &Ctx, groups: &[&str]) -> String {
    let mut request = ctx
        .client
        .create_network_interface()
        .subnet_id(&ctx.world.subnet_id);
    for group in groups {
        request = request.groups(*group);
    }
    request
        .send()
        .await
        .unwrap()
        .network_interface()
        .and_then(|n| n.network_interface_id().map(str::to_owned))
        .unwrap()
}
