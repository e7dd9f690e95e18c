//! The starting world every case runs in: one VPC, one subnet, one running
//! t3.medium instance, on whichever backend.

use aws_sdk_ec2::types::InstanceType;

#[derive(Debug, Clone)]
pub struct World {
    pub vpc_id: String,
    pub subnet_id: String,
    pub subnet_cidr: String,
    pub instance_id: String,
    pub az: String,
}

/// Builds the world through EC2 itself (moto has no admin API).
pub async fn build_through_ec2(client: &aws_sdk_ec2::Client) -> World {
    let vpc = client
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let az = "us-west-2a".to_string();
    let subnet = client
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.0.0.0/24")
        .availability_zone(&az)
        .send()
        .await
        .unwrap();
    let subnet_id = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
    let run = client
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Medium)
        .subnet_id(&subnet_id)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let instance_id = run.instances()[0].instance_id().unwrap().to_string();
    World {
        vpc_id,
        subnet_id,
        subnet_cidr: "10.0.0.0/24".into(),
        instance_id,
        az,
    }
}
