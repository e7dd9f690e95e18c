//! VPCs, subnets, instances and the ENI lifecycle.

use std::collections::{BTreeMap, HashSet};

use super::*;

#[test]
fn vpc_and_subnet_rules() {
    let sim = SimVpc::with_seed(1);
    assert_eq!(
        code(sim.create_vpc("10.0.0.0/8")),
        ErrorCode::InvalidVpcRange
    );
    assert_eq!(
        code(sim.create_vpc("10.0.0.1/16")),
        ErrorCode::InvalidParameterValue
    );
    let vpc = sim.create_vpc("10.1.0.0/16").unwrap();
    assert!(vpc.id.starts_with("vpc-") && vpc.default_security_group.starts_with("sg-"));
    assert_eq!(
        code(sim.create_subnet("vpc-00000000000000000", "10.1.0.0/24", "us-west-2a")),
        ErrorCode::InvalidVpcIdNotFound
    );
    assert_eq!(
        code(sim.create_subnet(&vpc.id, "10.2.0.0/24", "us-west-2a")),
        ErrorCode::InvalidSubnetRange,
        "outside the VPC"
    );
    assert_eq!(
        code(sim.create_subnet(&vpc.id, "10.1.0.0/29", "us-west-2a")),
        ErrorCode::InvalidSubnetRange,
        "smaller than /28"
    );
    let s = sim
        .create_subnet(&vpc.id, "10.1.0.0/24", "us-west-2a")
        .unwrap();
    assert_eq!(s.available_ip_count, 251);
    assert_eq!(
        code(sim.create_subnet(&vpc.id, "10.1.0.128/25", "us-west-2b")),
        ErrorCode::InvalidSubnetConflict,
        "overlap"
    );
    assert_eq!(
        code(sim.describe_subnets(&["subnet-00000000000000000".into()])),
        ErrorCode::InvalidSubnetIdNotFound
    );
    assert_eq!(
        sim.describe_subnets(std::slice::from_ref(&s.id)).unwrap(),
        vec![s]
    );
}

#[test]
fn secondary_vpc_blocks_hold_subnets_and_go_only_when_empty() {
    let sim = SimVpc::with_seed(2);
    let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
    assert_eq!(vpc.cidr_blocks.len(), 1);
    let primary = vpc.cidr_blocks[0].association_id.clone();
    for (bad, why, expected) in [
        (
            "10.0.128.0/17",
            "overlaps the primary",
            ErrorCode::InvalidVpcRange,
        ),
        ("100.0.0.0/8", "larger than /16", ErrorCode::InvalidVpcRange),
        (
            "100.64.0.1/16",
            "not a network address",
            ErrorCode::InvalidParameterValue,
        ),
    ] {
        assert_eq!(
            code(sim.associate_vpc_cidr_block(&vpc.id, bad)),
            expected,
            "{why}"
        );
    }
    assert_eq!(
        code(sim.associate_vpc_cidr_block("vpc-00000000000000000", "100.64.0.0/16")),
        ErrorCode::InvalidVpcIdNotFound
    );
    let block = sim
        .associate_vpc_cidr_block(&vpc.id, "100.64.0.0/16")
        .unwrap();
    assert!(block.association_id.starts_with("vpc-cidr-assoc-"));
    let described = sim.describe_vpcs(std::slice::from_ref(&vpc.id)).unwrap();
    let blocks: Vec<&str> = described[0]
        .cidr_blocks
        .iter()
        .map(|b| b.cidr.as_str())
        .collect();
    assert_eq!(blocks, ["10.0.0.0/16", "100.64.0.0/16"]);
    assert_eq!(described[0].cidr, "10.0.0.0/16", "the primary stays");
    assert_eq!(
        sim.fabric_view().vpc_cidrs,
        ["10.0.0.0/16", "100.64.0.0/16"]
    );

    let subnet = sim
        .create_subnet(&vpc.id, "100.64.0.0/24", "us-west-2b")
        .unwrap();
    assert_eq!(
        code(sim.disassociate_vpc_cidr_block(&block.association_id)),
        ErrorCode::OperationNotPermitted,
        "a subnet lies in it"
    );
    assert_eq!(
        code(sim.disassociate_vpc_cidr_block(&primary)),
        ErrorCode::OperationNotPermitted,
        "the primary"
    );
    assert_eq!(
        code(sim.disassociate_vpc_cidr_block("vpc-cidr-assoc-00000000000000000")),
        ErrorCode::InvalidVpcCidrBlockAssociationIdNotFound
    );
    // Five blocks at most.
    for cidr in ["100.65.0.0/16", "100.66.0.0/16", "100.67.0.0/16"] {
        sim.associate_vpc_cidr_block(&vpc.id, cidr).unwrap();
    }
    assert_eq!(
        code(sim.associate_vpc_cidr_block(&vpc.id, "100.68.0.0/16")),
        ErrorCode::CidrLimitExceeded
    );

    // A subnet with an interface stays; emptied, it goes, then the block, and no subnet can
    // be made in it any more.
    let eni = sim
        .create_network_interface(CreateEni {
            subnet_id: subnet.id.clone(),
            ..CreateEni::default()
        })
        .unwrap();
    assert_eq!(
        code(sim.delete_subnet(&subnet.id)),
        ErrorCode::DependencyViolation
    );
    sim.delete_network_interface(&eni.id).unwrap();
    sim.delete_subnet(&subnet.id).unwrap();
    let (owner, gone) = sim
        .disassociate_vpc_cidr_block(&block.association_id)
        .unwrap();
    assert_eq!(
        (owner.as_str(), gone.cidr.as_str()),
        (vpc.id.as_str(), "100.64.0.0/16")
    );
    assert_eq!(
        code(sim.create_subnet(&vpc.id, "100.64.0.0/24", "us-west-2b")),
        ErrorCode::InvalidSubnetRange
    );
    let tags = BTreeMap::from([("team".to_string(), "net".to_string())]);
    sim.create_tags(std::slice::from_ref(&vpc.id), &tags)
        .unwrap();
    assert_eq!(sim.describe_vpcs(&[]).unwrap()[0].tags["team"], "net");
}

#[test]
fn run_instance_builds_the_primary_eni() {
    let w = World::new("10.0.1.0/24");
    let i = w.instance("m5.large");
    assert_eq!(i.state, "running");
    assert_eq!(
        i.private_ip,
        "10.0.1.4".parse::<std::net::Ipv4Addr>().unwrap()
    );
    let e = w.eni_by_id(&i.primary_eni);
    let a = e.attachment.clone().unwrap();
    assert_eq!((a.device_index, a.delete_on_termination), (0, true));
    assert_eq!(a.instance_id, i.id);
    assert!(a.id.starts_with("eni-attach-"));
    assert_eq!(e.status, "in-use");
    assert_eq!(
        e.security_groups,
        vec![w.vpc.default_security_group.clone()]
    );
    assert_eq!(e.primary_ip(), Some(i.private_ip));
    assert_eq!(
        code(w.sim.run_instance(&w.subnet.id, "x9.huge", "n")),
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        code(
            w.sim
                .run_instance("subnet-00000000000000000", "m5.large", "n")
        ),
        ErrorCode::InvalidSubnetIdNotFound
    );
}

#[test]
fn new_eni_gets_default_sg_or_the_given_groups() {
    let w = World::new("10.0.1.0/24");
    let e = w.eni();
    assert_eq!(
        e.security_groups,
        vec![w.vpc.default_security_group.clone()]
    );
    assert_eq!(e.status, "available");
    assert!(e.attachment.is_none());
    let unknown = w.sim.create_network_interface(CreateEni {
        subnet_id: w.subnet.id.clone(),
        security_groups: vec!["sg-0123456789abcdef0".into()],
        ..CreateEni::default()
    });
    assert_eq!(code(unknown), ErrorCode::InvalidGroupNotFound);
    let group = w
        .sim
        .create_security_group(&w.vpc.id, "pods", "pod ENIs")
        .unwrap();
    assert_eq!(
        code(w.sim.create_security_group(&w.vpc.id, "pods", "again")),
        ErrorCode::InvalidGroupDuplicate
    );
    let e = w
        .sim
        .create_network_interface(CreateEni {
            subnet_id: w.subnet.id.clone(),
            security_groups: vec![group.id.clone()],
            description: "aws-K8S-i-1".into(),
            tags: BTreeMap::from([("k".to_string(), "v".to_string())]),
            secondary_count: 3,
            ..CreateEni::default()
        })
        .unwrap();
    assert_eq!(e.security_groups, vec![group.id.clone()]);
    // Changed on the live ENI: to existing groups of its VPC only, never to none.
    let both = vec![group.id.clone(), w.vpc.default_security_group.clone()];
    w.sim.set_security_groups(&e.id, &both).unwrap();
    let other_vpc = w.sim.create_vpc("10.9.0.0/16").unwrap();
    for bad in [
        vec![],
        vec!["sg-0123456789abcdef0".to_string()],
        vec![other_vpc.default_security_group.clone()],
    ] {
        assert!(w.sim.set_security_groups(&e.id, &bad).is_err(), "{bad:?}");
    }
    assert_eq!(e.private_ips.len(), 4);
    assert!(e.private_ips[0].primary && e.private_ips[1..].iter().all(|p| !p.primary));
    assert_eq!(e.description, "aws-K8S-i-1");
    assert_eq!(e.tags.get("k").map(String::as_str), Some("v"));
    let bad = CreateEni {
        subnet_id: w.subnet.id.clone(),
        secondary_count: 1,
        prefix_count: 1,
        ..CreateEni::default()
    };
    assert_eq!(
        code(w.sim.create_network_interface(bad)),
        ErrorCode::InvalidParameterCombination
    );
    let with_prefix = w
        .sim
        .create_network_interface(CreateEni {
            subnet_id: w.subnet.id.clone(),
            prefix_count: 2,
            ..CreateEni::default()
        })
        .unwrap();
    assert_eq!(with_prefix.prefixes.len(), 2);
}

#[test]
fn create_eni_is_all_or_nothing() {
    let w = World::new("10.0.1.0/28");
    let before = w.sim.describe_subnets(&[]).unwrap()[0].available_ip_count;
    let too_many = CreateEni {
        subnet_id: w.subnet.id.clone(),
        secondary_count: 11,
        ..CreateEni::default()
    };
    assert_eq!(
        code(w.sim.create_network_interface(too_many)),
        ErrorCode::InsufficientFreeAddressesInSubnet
    );
    assert_eq!(
        w.sim.describe_subnets(&[]).unwrap()[0].available_ip_count,
        before
    );
    let all = w
        .sim
        .describe_network_interfaces(&EniFilter::default(), None, None)
        .unwrap();
    assert!(all.items.is_empty());
}

#[test]
fn attachment_limit_per_type_and_device_index_rules() {
    let w = World::new("10.0.1.0/24");
    let i = w.instance("t3.medium"); // 3 ENIs
    let e1 = w.eni();
    let e2 = w.eni();
    let e3 = w.eni();
    assert_eq!(
        code(w.sim.attach_network_interface(&e1.id, &i.id, 3)),
        ErrorCode::AttachmentLimitExceeded,
        "device index beyond the type's ENI count"
    );
    assert_eq!(
        code(w.sim.attach_network_interface(&e1.id, &i.id, 0)),
        ErrorCode::InvalidParameterValue,
        "device 0 is the primary's"
    );
    let a1 = w.sim.attach_network_interface(&e1.id, &i.id, 1).unwrap();
    assert!(!a1.delete_on_termination);
    assert_eq!(
        code(w.sim.attach_network_interface(&e2.id, &i.id, 1)),
        ErrorCode::InvalidParameterValue,
        "device index taken"
    );
    assert_eq!(
        code(w.sim.attach_network_interface(&e1.id, &i.id, 2)),
        ErrorCode::InvalidNetworkInterfaceInUse
    );
    w.sim.attach_network_interface(&e2.id, &i.id, 2).unwrap();
    assert_eq!(
        code(w.sim.attach_network_interface(&e3.id, &i.id, 2)),
        ErrorCode::AttachmentLimitExceeded
    );
    assert_eq!(
        code(
            w.sim
                .attach_network_interface(&e3.id, "i-00000000000000000", 1)
        ),
        ErrorCode::InvalidInstanceIdNotFound
    );
    assert_eq!(
        code(
            w.sim
                .attach_network_interface("eni-00000000000000000", &i.id, 1)
        ),
        ErrorCode::InvalidNetworkInterfaceIdNotFound
    );
    let big = w.instance("c5n.18xlarge");
    for d in 1..15 {
        let e = w.eni();
        w.sim.attach_network_interface(&e.id, &big.id, d).unwrap();
    }
    assert_eq!(
        code(w.sim.attach_network_interface(&e3.id, &big.id, 15)),
        ErrorCode::AttachmentLimitExceeded
    );
}

#[test]
fn attach_needs_the_same_availability_zone() {
    let w = World::new("10.0.1.0/24");
    let other = w
        .sim
        .create_subnet(&w.vpc.id, "10.0.2.0/24", "us-west-2b")
        .unwrap();
    let i = w.instance("m5.large");
    let e = w
        .sim
        .create_network_interface(CreateEni {
            subnet_id: other.id,
            ..CreateEni::default()
        })
        .unwrap();
    assert_eq!(
        code(w.sim.attach_network_interface(&e.id, &i.id, 1)),
        ErrorCode::InvalidParameterValue
    );
}

#[test]
fn delete_attached_is_in_use_detach_then_delete_frees_addresses() {
    let w = World::new("10.0.1.0/24");
    let i = w.instance("m5.large");
    let e = w.eni();
    let a = w.sim.attach_network_interface(&e.id, &i.id, 1).unwrap();
    let got = w.sim.assign_private_ip_addresses(&e.id, count(5)).unwrap();
    assert_eq!(
        code(w.sim.delete_network_interface(&e.id)),
        ErrorCode::InvalidNetworkInterfaceInUse
    );
    assert_eq!(
        code(
            w.sim
                .detach_network_interface("eni-attach-00000000000000000", false)
        ),
        ErrorCode::InvalidAttachmentIdNotFound
    );
    let primary_att = w.eni_by_id(&i.primary_eni).attachment.unwrap();
    assert_eq!(
        code(w.sim.detach_network_interface(&primary_att.id, true)),
        ErrorCode::InvalidParameterValue
    );
    w.sim.detach_network_interface(&a.id, false).unwrap();
    assert_eq!(w.eni_by_id(&e.id).status, "available");
    assert_eq!(
        code(w.sim.detach_network_interface(&a.id, false)),
        ErrorCode::InvalidAttachmentIdNotFound
    );
    let free_before = w.sim.describe_subnets(&[]).unwrap()[0].available_ip_count;
    w.sim.delete_network_interface(&e.id).unwrap();
    assert_eq!(
        w.sim.describe_subnets(&[]).unwrap()[0].available_ip_count,
        free_before + 6
    );
    assert_eq!(
        code(w.sim.delete_network_interface(&e.id)),
        ErrorCode::InvalidNetworkInterfaceIdNotFound
    );
    // The freed addresses are handed out again, lowest first.
    let again = w.eni();
    assert_eq!(again.primary_ip(), Some(e.primary_ip().unwrap()));
    let more = w
        .sim
        .assign_private_ip_addresses(&again.id, count(5))
        .unwrap();
    assert_eq!(more.addresses, got.addresses);
}

#[test]
fn terminate_deletes_delete_on_termination_enis_and_detaches_others() {
    let w = World::new("10.0.1.0/24");
    let i = w.instance("m5.large");
    let keep = w.eni();
    let drop = w.eni();
    w.sim.attach_network_interface(&keep.id, &i.id, 1).unwrap();
    let a = w.sim.attach_network_interface(&drop.id, &i.id, 2).unwrap();
    assert_eq!(
        code(
            w.sim
                .set_delete_on_termination(&drop.id, "eni-attach-00000000000000000", true)
        ),
        ErrorCode::InvalidAttachmentIdNotFound
    );
    w.sim
        .set_delete_on_termination(&drop.id, &a.id, true)
        .unwrap();
    assert!(
        w.eni_by_id(&drop.id)
            .attachment
            .unwrap()
            .delete_on_termination
    );
    w.sim.terminate_instance(&i.id).unwrap();
    let left = w
        .sim
        .describe_network_interfaces(&EniFilter::default(), None, None)
        .unwrap();
    let ids: Vec<_> = left.items.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, vec![keep.id.clone()]);
    assert_eq!(left.items[0].status, "available");
    assert_eq!(
        w.sim
            .describe_instances(std::slice::from_ref(&i.id))
            .unwrap()[0]
            .state,
        "terminated"
    );
    assert!(w.sim.imds_instance(&i.id).is_none());
    assert!(w.sim.instance_by_private_ip(i.private_ip).is_none());
    assert_eq!(
        code(w.sim.terminate_instance("i-00000000000000000")),
        ErrorCode::InvalidInstanceIdNotFound
    );
    assert_eq!(
        code(w.sim.attach_network_interface(&keep.id, &i.id, 1)),
        ErrorCode::InvalidParameterValue
    );
}

#[test]
fn ids_and_macs_are_unique_and_well_formed() {
    let w = World::new("10.0.0.0/20");
    let mut ids = HashSet::new();
    let mut macs = HashSet::new();
    for _ in 0..300 {
        let e = w.eni();
        assert!(ids.insert(e.id.clone()));
        assert!(macs.insert(e.mac.clone()));
        let hex = e.id.strip_prefix("eni-").unwrap();
        assert_eq!(hex.len(), 17);
        assert!(hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let parts: Vec<_> = e.mac.split(':').collect();
        assert_eq!(parts.len(), 6);
        assert_eq!(parts[0], "02");
        assert!(parts.iter().all(|p| p.len() == 2
            && p.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())));
    }
    for _ in 0..5 {
        let i = w.instance("m5.large");
        assert!(ids.insert(i.id.clone()));
        assert!(ids.insert(i.primary_eni.clone()));
    }
}

#[test]
fn describe_instances_and_types() {
    let w = World::new("10.0.1.0/24");
    let i = w.instance("t3.small");
    assert_eq!(w.sim.describe_instances(&[]).unwrap(), vec![i.clone()]);
    assert_eq!(
        code(w.sim.describe_instances(&["i-00000000000000000".into()])),
        ErrorCode::InvalidInstanceIdNotFound
    );
    let t = w.sim.describe_instance_types(&["t3.small".into()]).unwrap();
    assert_eq!((t[0].max_enis, t[0].ipv4_per_eni), (3, 4));
    assert_eq!(
        code(w.sim.describe_instance_types(&["nope.large".into()])),
        ErrorCode::InvalidParameterValue
    );
    assert!(w.sim.describe_instance_types(&[]).unwrap().len() >= 8);
}

#[test]
fn create_tags_on_enis_instances_and_subnets() {
    let w = World::new("10.0.1.0/24");
    let i = w.instance("m5.large");
    let e = w.eni();
    let tags = BTreeMap::from([("a".to_string(), "1".to_string())]);
    w.sim
        .create_tags(&[e.id.clone(), i.id.clone(), w.subnet.id.clone()], &tags)
        .unwrap();
    assert_eq!(w.eni_by_id(&e.id).tags, tags);
    assert_eq!(
        w.sim
            .describe_instances(std::slice::from_ref(&i.id))
            .unwrap()[0]
            .tags
            .get("a")
            .unwrap(),
        "1"
    );
    assert_eq!(w.sim.describe_subnets(&[]).unwrap()[0].tags, tags);
    let more = BTreeMap::from([("b".to_string(), "2".to_string())]);
    assert_eq!(
        code(
            w.sim
                .create_tags(&[e.id.clone(), "eni-00000000000000000".into()], &more)
        ),
        ErrorCode::InvalidNetworkInterfaceIdNotFound
    );
    assert_eq!(w.eni_by_id(&e.id).tags, tags, "all-or-nothing");
    assert_eq!(
        code(w.sim.create_tags(&["i-00000000000000000".into()], &more)),
        ErrorCode::InvalidInstanceIdNotFound
    );
    assert_eq!(
        code(w.sim.create_tags(&["ami-1".into()], &more)),
        ErrorCode::InvalidParameterValue
    );
}
