//! The EC2 Query API: XML names, error documents, faults, paging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};

use super::{admin, all, ec2, one, world};

#[tokio::test]
async fn eni_lifecycle_speaks_ec2_xml() {
    let (run, default_sg, subnet, inst) = world().await;
    let r = ec2(
        run.ec2,
        &[
            ("Action", "CreateNetworkInterface"),
            ("SubnetId", &subnet),
            ("Description", "vpc-cni <test> & co"),
            ("SecondaryPrivateIpAddressCount", "1"),
            ("TagSpecification.1.ResourceType", "network-interface"),
            ("TagSpecification.1.Tag.1.Key", "vpc-cni.io/instance-id"),
            ("TagSpecification.1.Tag.1.Value", &inst),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><CreateNetworkInterfaceResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>"));
    let eni = one(&r.body, "networkInterfaceId");
    assert!(eni.starts_with("eni-"));
    assert_eq!(
        one(&r.body, "groupId"),
        default_sg,
        "no explicit group -> VPC default"
    );
    assert_eq!(one(&r.body, "groupName"), "default");
    assert_eq!(one(&r.body, "description"), "vpc-cni &lt;test&gt; &amp; co");
    assert_eq!(one(&r.body, "status"), "available");
    assert_eq!(one(&r.body, "key"), "vpc-cni.io/instance-id");
    assert_eq!(all(&r.body, "primary"), vec!["true", "false"]);

    let r = ec2(
        run.ec2,
        &[
            ("Action", "AttachNetworkInterface"),
            ("NetworkInterfaceId", &eni),
            ("InstanceId", &inst),
            ("DeviceIndex", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let attachment = one(&r.body, "attachmentId");
    assert_eq!(one(&r.body, "networkCardIndex"), "0");

    let r = ec2(
        run.ec2,
        &[
            ("Action", "ModifyNetworkInterfaceAttribute"),
            ("NetworkInterfaceId", &eni),
            ("Attachment.AttachmentId", &attachment),
            ("Attachment.DeleteOnTermination", "true"),
        ],
    )
    .await;
    assert_eq!(
        (r.status, one(&r.body, "return")),
        (200, "true".into()),
        "{}",
        r.body
    );

    let r = ec2(
        run.ec2,
        &[
            ("Action", "AssignPrivateIpAddresses"),
            ("NetworkInterfaceId", &eni),
            ("SecondaryPrivateIpAddressCount", "2"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(one(&r.body, "networkInterfaceId"), eni);
    let assigned = all(
        &one(&r.body, "assignedPrivateIpAddressesSet"),
        "privateIpAddress",
    );
    assert_eq!(assigned.len(), 2);

    let r = ec2(
        run.ec2,
        &[
            ("Action", "DescribeNetworkInterfaces"),
            ("Filter.1.Name", "attachment.instance-id"),
            ("Filter.1.Value.1", &inst),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let set = one(&r.body, "networkInterfaceSet");
    assert_eq!(all(&set, "networkInterfaceId").len(), 2, "{set}");
    // Describe orders by ENI id, which is random: compare as a set.
    let mut devices = all(&set, "deviceIndex");
    devices.sort();
    assert_eq!(devices, vec!["0", "1"]);
    assert!(set.contains(&format!(
        "<privateIpAddress>{}</privateIpAddress>",
        assigned[0]
    )));
    assert_eq!(all(&set, "deleteOnTermination"), vec!["true", "true"]);
    assert!(one(&set, "attachTime").ends_with('Z'));

    let r = ec2(
        run.ec2,
        &[
            ("Action", "UnassignPrivateIpAddresses"),
            ("NetworkInterfaceId", &eni),
            ("PrivateIpAddress.1", &assigned[0]),
        ],
    )
    .await;
    assert_eq!(
        (r.status, one(&r.body, "return")),
        (200, "true".into()),
        "{}",
        r.body
    );

    let r = ec2(
        run.ec2,
        &[
            ("Action", "DeleteNetworkInterface"),
            ("NetworkInterfaceId", &eni),
        ],
    )
    .await;
    assert_eq!(
        (r.status, one(&r.body, "Code")),
        (400, "InvalidNetworkInterface.InUse".into())
    );

    let r = ec2(
        run.ec2,
        &[
            ("Action", "DetachNetworkInterface"),
            ("AttachmentId", &attachment),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = ec2(
        run.ec2,
        &[
            ("Action", "DeleteNetworkInterface"),
            ("NetworkInterfaceId", &eni),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = ec2(
        run.ec2,
        &[
            ("Action", "DescribeNetworkInterfaces"),
            ("NetworkInterfaceId.1", &eni),
        ],
    )
    .await;
    assert_eq!(
        (r.status, one(&r.body, "Code")),
        (400, "InvalidNetworkInterfaceID.NotFound".into())
    );
}

#[tokio::test]
async fn errors_are_ec2_documents() {
    let (run, _, _, _) = world().await;
    let r = ec2(run.ec2, &[("Action", "DeleteVpc")]).await;
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>InvalidAction</Code><Message>"), "{}", r.body);
    assert!(r.body.contains("</Errors><RequestID>"));
    let r = ec2(run.ec2, &[("Action", "DeleteNetworkInterface")]).await;
    assert_eq!(
        (r.status, one(&r.body, "Code")),
        (400, "MissingParameter".into())
    );
    let r = ec2(
        run.ec2,
        &[
            ("Action", "AttachNetworkInterface"),
            ("NetworkInterfaceId", "eni-x"),
            ("InstanceId", "i-x"),
            ("DeviceIndex", "one"),
        ],
    )
    .await;
    assert_eq!(
        (r.status, one(&r.body, "Code")),
        (400, "InvalidParameterValue".into())
    );
    let r = ec2(
        run.ec2,
        &[
            ("Action", "DescribeNetworkInterfaces"),
            ("Filter.1.Name", "bogus"),
            ("Filter.1.Value.1", "x"),
        ],
    )
    .await;
    assert_eq!(one(&r.body, "Code"), "InvalidParameterValue");
}

#[tokio::test]
async fn throttling_answers_503_and_requests_are_counted() {
    let (run, _, _, _) = world().await;
    let (status, _) = admin(&run, "PUT", "/faults", json!({ "throttle_rate": 1.0 })).await;
    assert_eq!(status, 200);
    let r = ec2(run.ec2, &[("Action", "DescribeSubnets")]).await;
    assert_eq!(
        (r.status, one(&r.body, "Code")),
        (503, "RequestLimitExceeded".into())
    );
    admin(&run, "PUT", "/faults", json!({ "fail_next": [{ "action": "DescribeSubnets", "times": 1, "code": "InternalError" }] })).await;
    let r = ec2(run.ec2, &[("Action", "DescribeSubnets")]).await;
    assert_eq!(
        (r.status, one(&r.body, "Code")),
        (500, "InternalError".into())
    );
    let r = ec2(run.ec2, &[("Action", "DescribeSubnets")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    ec2(run.ec2, &[("Action", "DescribeInstances")]).await;
    let (_, counts) = admin(&run, "GET", "/counts", Value::Null).await;
    assert_eq!(counts["DescribeSubnets"], 3);
    assert_eq!(counts["DescribeInstances"], 1);
}

#[tokio::test]
async fn describe_network_interfaces_pages() {
    let (run, _, subnet, _) = world().await;
    for _ in 0..7 {
        let r = ec2(
            run.ec2,
            &[
                ("Action", "CreateNetworkInterface"),
                ("SubnetId", &subnet),
                ("TagSpecification.1.ResourceType", "network-interface"),
                ("TagSpecification.1.Tag.1.Key", "paged"),
                ("TagSpecification.1.Tag.1.Value", "yes"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..5 {
        let mut req = vec![
            ("Action", "DescribeNetworkInterfaces"),
            ("MaxResults", "5"),
            ("Filter.1.Name", "tag:paged"),
            ("Filter.1.Value.1", "yes"),
        ];
        if let Some(t) = &token {
            req.push(("NextToken", t));
        }
        let r = ec2(run.ec2, &req).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let ids = all(&r.body, "networkInterfaceId");
        assert!(ids.len() <= 5);
        seen.extend(ids);
        token = all(&r.body, "nextToken").into_iter().next();
        if token.is_none() {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7);
    let r = ec2(
        run.ec2,
        &[("Action", "DescribeNetworkInterfaces"), ("MaxResults", "4")],
    )
    .await;
    assert_eq!(one(&r.body, "Code"), "InvalidParameterValue");
}

#[tokio::test]
async fn describe_instances_types_and_subnets() {
    let (run, default_sg, subnet, inst) = world().await;
    let r = ec2(
        run.ec2,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &inst)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let res = one(&r.body, "reservationSet");
    assert_eq!(one(&res, "instanceId"), inst);
    assert_eq!(one(&res, "instanceType"), "t3.medium");
    assert_eq!(one(&one(&res, "instanceState"), "name"), "running");
    assert_eq!(
        one(&one(&res, "placement"), "availabilityZone"),
        "us-west-2a"
    );
    let nis = one(&res, "networkInterfaceSet");
    assert_eq!(one(&nis, "deviceIndex"), "0");
    assert_eq!(one(&nis, "groupId"), default_sg);

    let r = ec2(
        run.ec2,
        &[
            ("Action", "DescribeInstanceTypes"),
            ("InstanceType.1", "t3.medium"),
            ("InstanceType.2", "m4.large"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        all(&r.body, "hypervisor"),
        vec!["xen", "nitro"],
        "sorted by name: m4 first"
    );
    assert_eq!(all(&r.body, "ipv4AddressesPerInterface"), vec!["10", "6"]);
    assert_eq!(all(&r.body, "defaultVCpus"), vec!["2", "2"]);
    assert!(all(&r.body, "maximumNetworkInterfaces").contains(&"3".to_string()));
    let r = ec2(
        run.ec2,
        &[
            ("Action", "DescribeInstanceTypes"),
            ("InstanceType.1", "x9.huge"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);

    let r = ec2(
        run.ec2,
        &[
            ("Action", "DescribeSubnets"),
            ("Filter.1.Name", "vpc-id"),
            ("Filter.1.Value.1", "vpc-nope"),
        ],
    )
    .await;
    assert!(all(&r.body, "subnetId").is_empty(), "{}", r.body);
    let r = ec2(
        run.ec2,
        &[("Action", "DescribeSubnets"), ("SubnetId.1", &subnet)],
    )
    .await;
    assert_eq!(one(&r.body, "cidrBlock"), "10.0.0.0/24");
    // 256 - 5 reserved - the instance's primary address.
    assert_eq!(one(&r.body, "availableIpAddressCount"), "250");

    let r = ec2(
        run.ec2,
        &[
            ("Action", "CreateTags"),
            ("ResourceId.1", &inst),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "net"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = ec2(
        run.ec2,
        &[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "tag:team"),
            ("Filter.1.Value.1", "net"),
        ],
    )
    .await;
    assert_eq!(one(&r.body, "instanceId"), inst);
}

#[tokio::test]
async fn dry_run_latency_and_network_cards() {
    let (run, _, subnet, inst) = world().await;
    let (status, _) = admin(&run, "PUT", "/faults", json!({ "latency_ms": 20 })).await;
    assert_eq!(status, 200);
    let r = ec2(
        run.ec2,
        &[
            ("Action", "CreateNetworkInterface"),
            ("SubnetId", &subnet),
            ("DryRun", "true"),
        ],
    )
    .await;
    assert_eq!(
        (r.status, one(&r.body, "Code")),
        (412, "DryRunOperation".into())
    );
    let r = ec2(
        run.ec2,
        &[("Action", "CreateNetworkInterface"), ("SubnetId", &subnet)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let eni = one(&r.body, "networkInterfaceId");
    let r = ec2(
        run.ec2,
        &[
            ("Action", "AttachNetworkInterface"),
            ("NetworkInterfaceId", &eni),
            ("InstanceId", &inst),
            ("DeviceIndex", "1"),
            ("NetworkCardIndex", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = ec2(
        run.ec2,
        &[
            ("Action", "DescribeNetworkInterfaces"),
            ("NetworkInterfaceId.1", &eni),
        ],
    )
    .await;
    assert_eq!(
        one(&r.body, "status"),
        "available",
        "refused attach left no trace"
    );
    let (_, counts) = admin(&run, "GET", "/counts", Value::Null).await;
    assert_eq!(
        counts["CreateNetworkInterface"], 2,
        "dry runs are requests too"
    );
}
