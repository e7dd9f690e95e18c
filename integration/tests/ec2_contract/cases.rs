//! The contract cases: each builds what it needs in a fresh world and checks
//! what ipamd relies on in EC2's answers.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;

use aws_sdk_ec2::types::{
    Filter, InstanceType, NetworkInterfaceAttachmentChanges, ResourceType, Tag, TagSpecification,
};

use crate::sdk::code_of;
use crate::world::World;
use crate::world_cases;

pub struct Ctx {
    pub client: aws_sdk_ec2::Client,
    pub world: World,
    /// Whatever must stay alive while the case runs (the backend's servers).
    pub _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

pub type CaseFn = for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Every case, by name. Which of them moto is excused from is in main.rs.
pub const CASES: &[(&str, CaseFn)] = &[
    ("create_network_interface", |c| {
        Box::pin(create_network_interface(c))
    }),
    ("attach_modify_detach_delete", |c| {
        Box::pin(attach_modify_detach_delete(c))
    }),
    ("assign_unassign_secondaries", |c| {
        Box::pin(assign_unassign_secondaries(c))
    }),
    ("assign_reply_lists_only_new", |c| {
        Box::pin(assign_reply_lists_only_new(c))
    }),
    ("describe_filters", |c| Box::pin(describe_filters(c))),
    ("describe_attachment_status_filter", |c| {
        Box::pin(describe_attachment_status_filter(c))
    }),
    ("describe_pagination", |c| Box::pin(describe_pagination(c))),
    ("describe_instances", |c| Box::pin(describe_instances(c))),
    ("describe_instance_types", |c| {
        Box::pin(describe_instance_types(c))
    }),
    ("describe_subnets", |c| Box::pin(describe_subnets(c))),
    ("create_tags", |c| Box::pin(create_tags(c))),
    ("delete_on_termination", |c| {
        Box::pin(delete_on_termination(c))
    }),
    ("error_codes", |c| Box::pin(error_codes(c))),
    ("limits", |c| Box::pin(limits(c))),
    ("prefix_delegation", |c| Box::pin(prefix_delegation(c))),
    ("vpc_cidr_blocks", |c| {
        Box::pin(world_cases::vpc_cidr_blocks(c))
    }),
    ("vpc_cidr_block_rules", |c| {
        Box::pin(world_cases::vpc_cidr_block_rules(c))
    }),
    ("subnet_filters", |c| {
        Box::pin(world_cases::subnet_filters(c))
    }),
    ("run_and_terminate_instances", |c| {
        Box::pin(world_cases::run_and_terminate_instances(c))
    }),
    ("terminated_primary_interface_goes", |c| {
        Box::pin(world_cases::terminated_primary_interface_goes(c))
    }),
    ("security_groups", |c| {
        Box::pin(world_cases::security_groups(c))
    }),
    ("unknown_security_group_refused", |c| {
        Box::pin(world_cases::unknown_security_group_refused(c))
    }),
];

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, len) = cidr.split_once('/').unwrap();
    let (net, len): (Ipv4Addr, u32) = (net.parse().unwrap(), len.parse().unwrap());
    let ip: Ipv4Addr = ip.parse().unwrap();
    let mask = u32::MAX << (32 - len);
    u32::from(ip) & mask == u32::from(net)
}

async fn new_eni(ctx: &Ctx, description: &str) -> String {
    let out = ctx
        .client
        .create_network_interface()
        .subnet_id(&ctx.world.subnet_id)
        .description(description)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::NetworkInterface)
                .tags(
                    Tag::builder()
                        .key("vpc-cni.io/instance-id")
                        .value(&ctx.world.instance_id)
                        .build(),
                )
                .tags(
                    Tag::builder()
                        .key("vpc-cni.io/created-at")
                        .value("2026-11-26T00:00:00Z")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap()
        .to_string()
}

async fn attach(ctx: &Ctx, eni: &str, device_index: i32) -> String {
    ctx.client
        .attach_network_interface()
        .network_interface_id(eni)
        .instance_id(&ctx.world.instance_id)
        .device_index(device_index)
        .send()
        .await
        .unwrap()
        .attachment_id()
        .unwrap()
        .to_string()
}

async fn describe_one(ctx: &Ctx, eni: &str) -> aws_sdk_ec2::types::NetworkInterface {
    let out = ctx
        .client
        .describe_network_interfaces()
        .network_interface_ids(eni)
        .send()
        .await
        .unwrap();
    assert_eq!(out.network_interfaces().len(), 1, "describe {eni}");
    out.network_interfaces()[0].clone()
}

fn addresses(eni: &aws_sdk_ec2::types::NetworkInterface) -> BTreeSet<String> {
    eni.private_ip_addresses()
        .iter()
        .filter_map(|a| a.private_ip_address().map(ToString::to_string))
        .collect()
}

async fn create_network_interface(ctx: &Ctx) {
    let out = ctx
        .client
        .create_network_interface()
        .subnet_id(&ctx.world.subnet_id)
        .description("vpc-cni-i-test")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::NetworkInterface)
                .tags(
                    Tag::builder()
                        .key("cluster.k8s.amazonaws.com/name")
                        .value("c1")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let eni = out.network_interface().unwrap();
    assert!(eni.network_interface_id().unwrap().starts_with("eni-"));
    assert_eq!(eni.description(), Some("vpc-cni-i-test"));
    assert_eq!(eni.subnet_id(), Some(ctx.world.subnet_id.as_str()));
    assert_eq!(eni.vpc_id(), Some(ctx.world.vpc_id.as_str()));
    assert!(eni.mac_address().is_some_and(|m| m.len() == 17), "{eni:?}");
    assert!(
        !eni.groups().is_empty(),
        "a new ENI without groups gets the VPC's default group"
    );
    let primary = eni.private_ip_address().unwrap();
    assert!(in_cidr(primary, &ctx.world.subnet_cidr), "{primary}");
    let tags: Vec<_> = eni
        .tag_set()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert!(
        tags.contains(&("cluster.k8s.amazonaws.com/name", "c1")),
        "{tags:?}"
    );
    assert_eq!(eni.status().map(|s| s.as_str()), Some("available"));
}

async fn attach_modify_detach_delete(ctx: &Ctx) {
    let eni = new_eni(ctx, "vpc-cni-attach").await;
    let attachment = attach(ctx, &eni, 1).await;
    assert!(attachment.starts_with("eni-attach-"), "{attachment}");
    ctx.client
        .modify_network_interface_attribute()
        .network_interface_id(&eni)
        .attachment(
            NetworkInterfaceAttachmentChanges::builder()
                .attachment_id(&attachment)
                .delete_on_termination(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let described = describe_one(ctx, &eni).await;
    let att = described.attachment().unwrap();
    assert_eq!(att.instance_id(), Some(ctx.world.instance_id.as_str()));
    assert_eq!(att.device_index(), Some(1));
    assert_eq!(described.status().map(|s| s.as_str()), Some("in-use"));
    ctx.client
        .detach_network_interface()
        .attachment_id(&attachment)
        .send()
        .await
        .unwrap();
    let described = describe_one(ctx, &eni).await;
    assert_eq!(described.status().map(|s| s.as_str()), Some("available"));
    ctx.client
        .delete_network_interface()
        .network_interface_id(&eni)
        .send()
        .await
        .unwrap();
    let gone = ctx
        .client
        .describe_network_interfaces()
        .network_interface_ids(&eni)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&gone), "InvalidNetworkInterfaceID.NotFound");
}

async fn assign_unassign_secondaries(ctx: &Ctx) {
    let eni = new_eni(ctx, "vpc-cni-assign").await;
    attach(ctx, &eni, 1).await;
    ctx.client
        .assign_private_ip_addresses()
        .network_interface_id(&eni)
        .secondary_private_ip_address_count(2)
        .send()
        .await
        .unwrap();
    let held = addresses(&describe_one(ctx, &eni).await);
    assert_eq!(held.len(), 3, "primary + 2 secondaries: {held:?}");
    let described = describe_one(ctx, &eni).await;
    let secondary = described
        .private_ip_addresses()
        .iter()
        .find(|a| a.primary() == Some(false))
        .and_then(|a| a.private_ip_address())
        .unwrap()
        .to_string();
    ctx.client
        .unassign_private_ip_addresses()
        .network_interface_id(&eni)
        .private_ip_addresses(&secondary)
        .send()
        .await
        .unwrap();
    let held = addresses(&describe_one(ctx, &eni).await);
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(!held.contains(&secondary));
}

async fn assign_reply_lists_only_new(ctx: &Ctx) {
    let eni = new_eni(ctx, "vpc-cni-assign-reply").await;
    attach(ctx, &eni, 1).await;
    let primary = describe_one(ctx, &eni)
        .await
        .private_ip_address()
        .unwrap()
        .to_string();
    let out = ctx
        .client
        .assign_private_ip_addresses()
        .network_interface_id(&eni)
        .secondary_private_ip_address_count(2)
        .send()
        .await
        .unwrap();
    let new: Vec<_> = out
        .assigned_private_ip_addresses()
        .iter()
        .filter_map(|a| a.private_ip_address())
        .collect();
    assert_eq!(
        new.len(),
        2,
        "the reply lists the new addresses only: {new:?}"
    );
    assert!(!new.contains(&primary.as_str()));
}

async fn describe_filters(ctx: &Ctx) {
    let eni = new_eni(ctx, "vpc-cni-filters").await;
    attach(ctx, &eni, 1).await;
    let loose = new_eni(ctx, "vpc-cni-loose").await;
    let ids_for = |name: &str, value: &str| {
        let client = ctx.client.clone();
        let filter = Filter::builder().name(name).values(value).build();
        async move {
            let out = client
                .describe_network_interfaces()
                .filters(filter)
                .send()
                .await
                .unwrap();
            out.network_interfaces()
                .iter()
                .filter_map(|n| n.network_interface_id().map(ToString::to_string))
                .collect::<BTreeSet<_>>()
        }
    };
    let by_instance = ids_for("attachment.instance-id", &ctx.world.instance_id).await;
    assert!(
        by_instance.contains(&eni) && !by_instance.contains(&loose),
        "{by_instance:?}"
    );
    let available = ids_for("status", "available").await;
    assert!(
        available.contains(&loose) && !available.contains(&eni),
        "{available:?}"
    );
    let tagged = ids_for("tag-key", "vpc-cni.io/instance-id").await;
    assert!(tagged.contains(&eni) && tagged.contains(&loose));
    let by_tag = ids_for("tag:vpc-cni.io/instance-id", &ctx.world.instance_id).await;
    assert!(by_tag.contains(&eni), "{by_tag:?}");
    let in_vpc = ids_for("vpc-id", &ctx.world.vpc_id).await;
    assert!(in_vpc.contains(&eni) && in_vpc.contains(&loose));
    let in_subnet = ids_for("subnet-id", &ctx.world.subnet_id).await;
    assert!(in_subnet.contains(&loose));
}

async fn describe_attachment_status_filter(ctx: &Ctx) {
    let eni = new_eni(ctx, "vpc-cni-att-status").await;
    attach(ctx, &eni, 1).await;
    let out = ctx
        .client
        .describe_network_interfaces()
        .filters(
            Filter::builder()
                .name("attachment.status")
                .values("attached")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(out
        .network_interfaces()
        .iter()
        .any(|n| n.network_interface_id() == Some(eni.as_str())));
}

async fn describe_pagination(ctx: &Ctx) {
    let mut made = BTreeSet::new();
    for i in 0..7 {
        made.insert(new_eni(ctx, &format!("vpc-cni-page-{i}")).await);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = ctx
            .client
            .describe_network_interfaces()
            .filters(
                Filter::builder()
                    .name("subnet-id")
                    .values(&ctx.world.subnet_id)
                    .build(),
            )
            .max_results(5)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(
            out.network_interfaces().len() <= 5,
            "page larger than MaxResults"
        );
        seen.extend(
            out.network_interfaces()
                .iter()
                .filter_map(|n| n.network_interface_id().map(ToString::to_string)),
        );
        token = out.next_token().map(ToString::to_string);
        if token.is_none() || pages > 10 {
            break;
        }
    }
    assert!(pages >= 2, "7+ ENIs with MaxResults 5 must take two pages");
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an ENI came twice across pages");
    assert!(made.is_subset(&unique), "an ENI was missed across pages");
}

async fn describe_instances(ctx: &Ctx) {
    let out = ctx
        .client
        .describe_instances()
        .instance_ids(&ctx.world.instance_id)
        .send()
        .await
        .unwrap();
    let instance = &out.reservations()[0].instances()[0];
    assert_eq!(instance.instance_id(), Some(ctx.world.instance_id.as_str()));
    assert_eq!(instance.instance_type(), Some(&InstanceType::T3Medium));
    assert_eq!(instance.subnet_id(), Some(ctx.world.subnet_id.as_str()));
    let primary = instance
        .network_interfaces()
        .iter()
        .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
        .expect("instance lists its primary ENI at device index 0");
    assert!(in_cidr(
        primary.private_ip_address().unwrap(),
        &ctx.world.subnet_cidr
    ));
}

async fn describe_instance_types(ctx: &Ctx) {
    let out = ctx
        .client
        .describe_instance_types()
        .instance_types(InstanceType::T3Medium)
        .instance_types(InstanceType::M5Large)
        .send()
        .await
        .unwrap();
    let limits = |t: InstanceType| {
        let info = out
            .instance_types()
            .iter()
            .find(|i| i.instance_type() == Some(&t))
            .unwrap_or_else(|| panic!("{t:?} missing"));
        let net = info.network_info().unwrap();
        (
            net.maximum_network_interfaces().unwrap(),
            net.ipv4_addresses_per_interface().unwrap(),
        )
    };
    assert_eq!(limits(InstanceType::T3Medium), (3, 6));
    assert_eq!(limits(InstanceType::M5Large), (3, 10));
}

async fn describe_subnets(ctx: &Ctx) {
    let out = ctx
        .client
        .describe_subnets()
        .subnet_ids(&ctx.world.subnet_id)
        .send()
        .await
        .unwrap();
    let subnet = &out.subnets()[0];
    assert_eq!(subnet.cidr_block(), Some(ctx.world.subnet_cidr.as_str()));
    assert_eq!(subnet.vpc_id(), Some(ctx.world.vpc_id.as_str()));
    assert_eq!(subnet.availability_zone(), Some(ctx.world.az.as_str()));
}

async fn create_tags(ctx: &Ctx) {
    let eni = new_eni(ctx, "vpc-cni-tags").await;
    ctx.client
        .create_tags()
        .resources(&eni)
        .tags(
            Tag::builder()
                .key("node.k8s.amazonaws.com/no_manage")
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let described = describe_one(ctx, &eni).await;
    assert!(described
        .tag_set()
        .iter()
        .any(|t| t.key() == Some("node.k8s.amazonaws.com/no_manage") && t.value() == Some("true")));
}

async fn delete_on_termination(ctx: &Ctx) {
    let eni = new_eni(ctx, "vpc-cni-dot").await;
    let attachment = attach(ctx, &eni, 1).await;
    assert_eq!(
        describe_one(ctx, &eni)
            .await
            .attachment()
            .unwrap()
            .delete_on_termination(),
        Some(false),
        "a new attachment is not deleted on termination"
    );
    ctx.client
        .modify_network_interface_attribute()
        .network_interface_id(&eni)
        .attachment(
            NetworkInterfaceAttachmentChanges::builder()
                .attachment_id(&attachment)
                .delete_on_termination(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe_one(ctx, &eni)
            .await
            .attachment()
            .unwrap()
            .delete_on_termination(),
        Some(true)
    );
}

async fn error_codes(ctx: &Ctx) {
    let eni = new_eni(ctx, "vpc-cni-errors").await;
    let attachment = attach(ctx, &eni, 1).await;
    let in_use = ctx
        .client
        .delete_network_interface()
        .network_interface_id(&eni)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&in_use), "InvalidNetworkInterface.InUse");
    let again = ctx
        .client
        .attach_network_interface()
        .network_interface_id(&eni)
        .instance_id(&ctx.world.instance_id)
        .device_index(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&again), "InvalidNetworkInterface.InUse");
    let bad_detach = ctx
        .client
        .detach_network_interface()
        .attachment_id("eni-attach-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&bad_detach), "InvalidAttachmentID.NotFound");
    let missing = ctx
        .client
        .delete_network_interface()
        .network_interface_id("eni-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&missing), "InvalidNetworkInterfaceID.NotFound");
    let _ = attachment;
}

async fn limits(ctx: &Ctx) {
    // t3.medium: 3 ENIs, 6 IPv4 addresses each.
    let second = new_eni(ctx, "vpc-cni-limit-1").await;
    attach(ctx, &second, 1).await;
    let over = ctx
        .client
        .assign_private_ip_addresses()
        .network_interface_id(&second)
        .secondary_private_ip_address_count(6)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&over), "PrivateIpAddressLimitExceeded");
    ctx.client
        .assign_private_ip_addresses()
        .network_interface_id(&second)
        .secondary_private_ip_address_count(5)
        .send()
        .await
        .unwrap();
    let third = new_eni(ctx, "vpc-cni-limit-2").await;
    attach(ctx, &third, 2).await;
    let fourth = new_eni(ctx, "vpc-cni-limit-3").await;
    let too_many = ctx
        .client
        .attach_network_interface()
        .network_interface_id(&fourth)
        .instance_id(&ctx.world.instance_id)
        .device_index(3)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(&too_many), "AttachmentLimitExceeded");
}

async fn prefix_delegation(ctx: &Ctx) {
    let eni = new_eni(ctx, "vpc-cni-prefix").await;
    attach(ctx, &eni, 1).await;
    let out = ctx
        .client
        .assign_private_ip_addresses()
        .network_interface_id(&eni)
        .ipv4_prefix_count(1)
        .send()
        .await
        .unwrap();
    let prefix = out.assigned_ipv4_prefixes()[0]
        .ipv4_prefix()
        .unwrap()
        .to_string();
    let (net, len) = prefix.split_once('/').unwrap();
    assert_eq!(len, "28");
    assert_eq!(
        u32::from(net.parse::<Ipv4Addr>().unwrap()) % 16,
        0,
        "{prefix} not aligned"
    );
    assert!(in_cidr(net, &ctx.world.subnet_cidr));
    let described = describe_one(ctx, &eni).await;
    let listed: Vec<_> = described
        .ipv4_prefixes()
        .iter()
        .filter_map(|p| p.ipv4_prefix())
        .collect();
    assert_eq!(listed, [prefix.as_str()]);
}
