//! IMDS through aws-config's real IMDSv2 client, and the faults the SDK
//! must live with: throttling (retried) and eventual consistency.

use std::collections::BTreeMap;

use aws_sdk_ec2::config::ProvideCredentials;
use vpc_cni_cloud::sim::{CreateEni, Faults};

use crate::sdk::ec2_client;
use crate::simulated::Sim;

fn imds_client(sim: &Sim) -> aws_config::imds::Client {
    aws_config::imds::Client::builder()
        .endpoint(&sim.imds_endpoint)
        .unwrap()
        .build()
}

async fn get(client: &aws_config::imds::Client, path: &str) -> String {
    client
        .get(format!("/latest/meta-data/{path}"))
        .await
        .unwrap_or_else(|e| panic!("IMDS {path}: {e}"))
        .as_ref()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_tree_matches_ec2_state_through_the_sdk_client() {
    let sim = Sim::start().await;
    let imds = imds_client(&sim);
    assert_eq!(get(&imds, "instance-id").await, sim.world.instance_id);
    assert_eq!(get(&imds, "instance-type").await, "t3.medium");
    assert_eq!(
        get(&imds, "placement/availability-zone").await,
        "us-west-2a"
    );
    assert_eq!(get(&imds, "placement/region").await, "us-west-2");
    let mac = get(&imds, "mac").await;
    let macs = get(&imds, "network/interfaces/macs/").await;
    assert_eq!(macs.lines().collect::<Vec<_>>(), [format!("{mac}/")]);
    let base = format!("network/interfaces/macs/{mac}");
    assert_eq!(get(&imds, &format!("{base}/device-number")).await, "0");
    assert_eq!(
        get(&imds, &format!("{base}/vpc-id")).await,
        sim.world.vpc_id
    );
    assert_eq!(
        get(&imds, &format!("{base}/subnet-id")).await,
        sim.world.subnet_id
    );
    assert_eq!(
        get(&imds, &format!("{base}/subnet-ipv4-cidr-block")).await,
        "10.0.0.0/24"
    );
    assert_eq!(
        get(&imds, &format!("{base}/vpc-ipv4-cidr-blocks")).await,
        "10.0.0.0/16"
    );
    assert!(get(&imds, &format!("{base}/security-group-ids"))
        .await
        .starts_with("sg-"));
    let local = get(&imds, "local-ipv4").await;
    assert_eq!(
        get(&imds, &format!("{base}/local-ipv4s"))
            .await
            .lines()
            .next(),
        Some(local.as_str())
    );

    // The same ENI as EC2 describes it.
    let ec2 = ec2_client(&sim.ec2_endpoint, 3);
    let eni_id = get(&imds, &format!("{base}/interface-id")).await;
    let described = ec2
        .describe_network_interfaces()
        .network_interface_ids(&eni_id)
        .send()
        .await
        .unwrap();
    let eni = &described.network_interfaces()[0];
    assert_eq!(eni.mac_address(), Some(mac.as_str()));
    assert_eq!(eni.private_ip_address(), Some(local.as_str()));

    // The SDK's default chain on EC2 asks IMDS for role credentials.
    let provider = aws_config::imds::credentials::ImdsCredentialsProvider::builder()
        .imds_client(imds)
        .build();
    let creds = provider.provide_credentials().await.unwrap();
    assert!(!creds.access_key_id().is_empty());
    assert!(creds.session_token().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_retries_through_a_30_percent_throttle() {
    let sim = Sim::start().await;
    sim.sim.set_faults(Faults {
        throttle_rate: 0.3,
        ..Faults::default()
    });
    let ec2 = ec2_client(&sim.ec2_endpoint, 10);
    const CALLS: u64 = 40;
    for _ in 0..CALLS {
        ec2.describe_network_interfaces().send().await.unwrap();
    }
    let counts: BTreeMap<String, u64> = sim.sim.request_counts();
    let sent = counts
        .get("DescribeNetworkInterfaces")
        .copied()
        .unwrap_or(0);
    println!("{CALLS} calls took {sent} requests at a 30% throttle rate");
    assert!(
        sent > CALLS,
        "no request was throttled and retried ({sent} requests)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_just_attached_eni_stays_out_of_imds_until_the_delay_passes() {
    let sim = Sim::start().await;
    // Long enough that no machine is slow enough to see it elapse here; the
    // end of the delay is then simulated by lifting it.
    sim.sim.set_faults(Faults {
        visibility_delay_ms: 3_600_000,
        ..Faults::default()
    });
    let eni = sim
        .sim
        .create_network_interface(CreateEni {
            subnet_id: sim.world.subnet_id.clone(),
            description: "vpc-cni-late".into(),
            security_groups: Vec::new(),
            tags: BTreeMap::new(),
            private_ip: None,
            secondary_count: 0,
            prefix_count: 0,
        })
        .unwrap();
    let ec2 = ec2_client(&sim.ec2_endpoint, 3);
    ec2.attach_network_interface()
        .network_interface_id(&eni.id)
        .instance_id(&sim.world.instance_id)
        .device_index(1)
        .send()
        .await
        .unwrap();
    let imds = imds_client(&sim);
    let macs = get(&imds, "network/interfaces/macs/").await;
    assert!(
        !macs.contains(&eni.mac),
        "attached ENI visible before the delay: {macs}"
    );

    sim.sim.set_faults(Faults::default());
    let macs = get(&imds, "network/interfaces/macs/").await;
    assert!(
        macs.contains(&eni.mac),
        "attached ENI still missing once visible: {macs}"
    );
    let device = get(
        &imds,
        &format!("network/interfaces/macs/{}/device-number", eni.mac),
    )
    .await;
    assert_eq!(device, "1");
}
