//! Properties of vpc-sim's EC2 Query API on any request body: form decoding and every
//! action's parameter parsing never panic, and a refusal is an EC2 error with a code and an
//! HTTP error status; a parameter named as invalid is one the request carried, and one named
//! as missing is one it lacked. (The sim answers every test's EC2 calls: a panic in it would
//! fail them all with no clue.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use vpc_cni_cloud::sim::{CreateEni, SimVpc};
use vpc_cni_testkit::prop::{config, gen};

use super::{run, ACTIONS};
use crate::vpcsim::query::Query;

/// Parameter names the actions read, with list indices anywhere from 0 to past `u32`.
fn key() -> impl Strategy<Value = String> {
    let plain = prop::sample::select(vec![
        "NetworkInterfaceId",
        "SubnetId",
        "InstanceId",
        "DeviceIndex",
        "AttachmentId",
        "SecondaryPrivateIpAddressCount",
        "Ipv4PrefixCount",
        "AllowReassignment",
        "MaxResults",
        "NextToken",
        "Description",
        "ClientToken",
        "Force",
        "DryRun",
        "InstanceType",
        "NetworkCardIndex",
        "Attachment.AttachmentId",
        "Attachment.DeleteOnTermination",
        "VpcId",
        "CidrBlock",
        "AvailabilityZone",
        "AssociationId",
        "MinCount",
        "MaxCount",
        "ImageId",
        "GroupName",
        "GroupDescription",
    ]);
    let listed = prop::sample::select(vec![
        "PrivateIpAddress",
        "Ipv4Prefix",
        "SecurityGroupId",
        "NetworkInterfaceId",
        "InstanceId",
        "InstanceType",
        "ResourceId",
        "SubnetId",
        "VpcId",
        "SecurityGroupId",
    ]);
    let index = prop_oneof![1u64..4, Just(0), Just(u64::from(u32::MAX) + 1)];
    prop_oneof![
        3 => plain.prop_map(str::to_owned),
        2 => (listed, index.clone()).prop_map(|(k, i)| format!("{k}.{i}")),
        2 => (index.clone(), prop::sample::select(vec!["Name", "Value.1", "Value.2"]))
            .prop_map(|(i, f)| format!("Filter.{i}.{f}")),
        1 => (index.clone(), prop::sample::select(vec!["Key", "Value"]))
            .prop_map(|(i, f)| format!("Tag.{i}.{f}")),
        1 => (index, prop::sample::select(vec!["ResourceType", "Tag.1.Key", "Tag.1.Value"]))
            .prop_map(|(i, f)| format!("TagSpecification.{i}.{f}")),
        1 => gen::string(),
    ]
}

/// Values: the world's real ids, numbers of every size, filter globs, anything.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        // Stand-ins for the world's ids, filled in per case (see `World::body`).
        3 => prop::sample::select(vec![
            "@subnet", "@instance", "@eni", "@attachment", "@vpc", "@association",
        ])
        .prop_map(str::to_owned),
        2 => prop::sample::select(vec![
            "eni-", "subnet-", "i-", "t3.medium", "network-interface", "attachment.instance-id",
            "status", "tag-key", "*", "?", "true", "false", "10.0.0.9", "10.0.0.16/28",
            "vpcsim1.", "vpcsim1.eni-", "100.64.0.0/16", "10.0.1.0/24", "us-west-2b", "20",
            "21", "0", "vpc-cidr-assoc-",
        ]).prop_map(str::to_owned),
        1 => "-?[0-9]{1,25}",
        1 => "[*?a-z0-9.-]{0,20}",
        1 => gen::string(),
    ]
}

/// A request: a well-formed form of any action (pairs whose values may stand for the
/// world's ids), or any bytes.
#[derive(Debug, Clone)]
enum Request {
    Form(String, Vec<(String, String)>),
    Bytes(Vec<u8>),
}

fn request() -> impl Strategy<Value = Request> {
    let action = prop_oneof![
        4 => prop::sample::select(ACTIONS.to_vec()).prop_map(str::to_owned),
        1 => gen::string(),
    ];
    prop_oneof![
        4 => (action, any::<bool>(), prop::collection::vec((key(), value()), 0..8))
            .prop_map(|(a, with_base, pairs)| {
                // Mostly on top of what the action needs, so the edits reach past the
                // first missing parameter into the action's own parsing.
                let mut all: Vec<(String, String)> = if with_base { base(&a) } else { Vec::new() };
                all.extend(pairs);
                Request::Form(a, all)
            }),
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(Request::Bytes),
    ]
}

/// The parameters `action` needs to succeed in a `World`.
fn base(action: &str) -> Vec<(String, String)> {
    let pairs: &[(&str, &str)] = match action {
        "CreateNetworkInterface" => &[("SubnetId", "@subnet")],
        "AttachNetworkInterface" => &[
            ("NetworkInterfaceId", "@eni"),
            ("InstanceId", "@instance"),
            ("DeviceIndex", "2"),
        ],
        "ModifyNetworkInterfaceAttribute" => &[
            ("NetworkInterfaceId", "@eni"),
            ("Attachment.AttachmentId", "@attachment"),
            ("Attachment.DeleteOnTermination", "true"),
        ],
        "AssignPrivateIpAddresses" => &[
            ("NetworkInterfaceId", "@eni"),
            ("SecondaryPrivateIpAddressCount", "1"),
        ],
        "UnassignPrivateIpAddresses" => &[
            ("NetworkInterfaceId", "@eni"),
            ("PrivateIpAddress.1", "10.0.0.9"),
        ],
        "DetachNetworkInterface" => &[("AttachmentId", "@attachment")],
        "DeleteNetworkInterface" => &[("NetworkInterfaceId", "@eni")],
        "CreateTags" => &[
            ("ResourceId.1", "@eni"),
            ("Tag.1.Key", "k"),
            ("Tag.1.Value", "v"),
        ],
        "CreateVpc" => &[("CidrBlock", "10.1.0.0/16")],
        "AssociateVpcCidrBlock" => &[("VpcId", "@vpc"), ("CidrBlock", "100.64.0.0/16")],
        "DisassociateVpcCidrBlock" => &[("AssociationId", "@association")],
        "CreateSubnet" => &[
            ("VpcId", "@vpc"),
            ("CidrBlock", "10.0.1.0/24"),
            ("AvailabilityZone", "us-west-2b"),
        ],
        "RunInstances" => &[
            ("SubnetId", "@subnet"),
            ("InstanceType", "t3.medium"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ],
        "TerminateInstances" => &[("InstanceId.1", "@instance")],
        "DeleteSubnet" => &[("SubnetId", "@subnet")],
        "CreateSecurityGroup" => &[
            ("VpcId", "@vpc"),
            ("GroupName", "pods"),
            ("GroupDescription", "pod ENIs"),
        ],
        _ => &[],
    };
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A VPC with a secondary block, a subnet, an instance and an ENI attached to it at
/// index 1.
struct World {
    sim: SimVpc,
    ids: [(&'static str, String); 6],
}

impl World {
    fn new() -> Self {
        let sim = SimVpc::new();
        let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
        let subnet = sim
            .create_subnet(&vpc.id, "10.0.0.0/24", "us-west-2a")
            .unwrap();
        let inst = sim.run_instance(&subnet.id, "t3.medium", "n1").unwrap();
        let eni = sim
            .create_network_interface(CreateEni {
                subnet_id: subnet.id.clone(),
                secondary_count: 2,
                ..CreateEni::default()
            })
            .unwrap();
        let attachment = sim.attach_network_interface(&eni.id, &inst.id, 1).unwrap();
        let block = sim
            .associate_vpc_cidr_block(&vpc.id, "172.31.0.0/16")
            .unwrap();
        let ids = [
            ("@subnet", subnet.id),
            ("@instance", inst.id),
            ("@eni", eni.id),
            ("@attachment", attachment.id),
            ("@vpc", vpc.id),
            ("@association", block.association_id),
        ];
        Self { sim, ids }
    }

    /// The request's body, stand-ins replaced by this world's ids.
    fn body(&self, request: &Request) -> Vec<u8> {
        let (action, pairs) = match request {
            Request::Bytes(bytes) => return bytes.clone(),
            Request::Form(action, pairs) => (action, pairs),
        };
        let fill = |v: &str| {
            self.ids
                .iter()
                .find(|(mark, _)| *mark == v)
                .map_or_else(|| v.to_owned(), |(_, id)| id.clone())
        };
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action)
            .append_pair("Version", "2016-11-15");
        for (k, v) in pairs {
            form.append_pair(k, &fill(v));
        }
        form.finish().into_bytes()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn prop_vpcsim_any_request_answers_xml_or_an_ec2_error(request in request()) {
        let world = World::new();
        let sim = &world.sim;
        let query = Query::parse(None, &world.body(&request));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        match runtime.block_on(run(sim, None, &query, "req-prop")) {
            Ok(xml) => prop_assert!(xml.starts_with("<?xml"), "{}", xml),
            Err(e) => {
                prop_assert!(!e.code.is_empty() && !e.message.is_empty(), "{:?}", e);
                prop_assert!((400..600).contains(&e.status), "{:?}", e);
                if let Some(name) = e.message.strip_prefix("The request must contain the parameter ") {
                    prop_assert!(query.get(name).is_none_or(str::is_empty), "{:?} was given", name);
                }
                if e.code == "InvalidParameterValue" && e.message.starts_with("Value (") {
                    let name = e.message.rsplit("for parameter ").next().unwrap();
                    let name = name.trim_end_matches(" is invalid");
                    prop_assert!(query.get(name).is_some(), "{:?} was not given: {:?}", name, e);
                }
            }
        }
    }
}
