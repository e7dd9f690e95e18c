//! From inside a node namespace, the real SDK clients reach vpc-sim's IMDS at
//! 169.254.169.254 and its EC2 API at the fabric's endpoint, and IMDS knows
//! which instance is asking. Needs root (creates namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use vpc_cni_cloud::sim::SimVpc;
use vpc_cni_integration::fabric::{ec2_url, imds_url, in_namespace, Fabric, FabricServices};
use vpc_cni_testkit::require_root;

#[test]
fn fabric_nodes_reach_imds_and_the_ec2_endpoint_with_the_sdk() {
    require_root();
    let sim = SimVpc::new();
    let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
    let subnet = sim
        .create_subnet(&vpc.id, "10.0.0.0/24", "us-west-2a")
        .unwrap();
    let a = sim.run_instance(&subnet.id, "t3.medium", "a").unwrap();
    let b = sim.run_instance(&subnet.id, "m5.large", "b").unwrap();
    let fabric = Fabric::new("vfs").unwrap();
    fabric.reconcile(&sim.fabric_view()).unwrap();
    let _services = FabricServices::start(&fabric, &sim).unwrap();

    for (instance, name) in [(&a, "a"), (&b, "b")] {
        let node = fabric.node(name).unwrap();
        let (id, itype, described) = in_namespace(&node, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(runtime.block_on(async {
                let imds = aws_config::imds::Client::builder()
                    .endpoint(imds_url())
                    .unwrap()
                    .build();
                let id = imds.get("/latest/meta-data/instance-id").await.unwrap();
                let itype = imds.get("/latest/meta-data/instance-type").await.unwrap();
                let config = aws_sdk_ec2::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new("us-west-2"))
                    .endpoint_url(ec2_url())
                    .credentials_provider(Credentials::new(
                        "AKIDTEST", "secret", None, None, "test",
                    ))
                    .build();
                let ec2 = aws_sdk_ec2::Client::from_conf(config);
                let out = ec2
                    .describe_instances()
                    .instance_ids(id.as_ref())
                    .send()
                    .await
                    .unwrap();
                let ip = out.reservations()[0].instances()[0]
                    .private_ip_address()
                    .unwrap()
                    .to_string();
                (id.as_ref().to_string(), itype.as_ref().to_string(), ip)
            }))
        })
        .unwrap();
        assert_eq!(
            id, instance.id,
            "IMDS answered node {name} as another instance"
        );
        assert_eq!(itype, instance.instance_type);
        assert_eq!(described, instance.private_ip.to_string());
    }
}
