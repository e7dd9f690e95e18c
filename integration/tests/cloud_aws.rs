//! `AwsEc2` and `AwsImds` (the cloud crate's AWS implementation) against
//! vpc-sim served in this process on loopback: every seam method checked
//! against the model's state, retries through our own limiter under
//! throttling, error classification, and the IMDS probe. No root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use vpc_cni_cloud::sim::{Eni, EniFilter, FailNext, Faults, SimVpc};
use vpc_cni_cloud::{
    Assign, AssignedIps, AwsEc2, AwsImds, CloudError, Ec2, Ec2Options, EniInfo, EniQuery, Imds,
    InstanceLimits, NewEni, RetryPolicy,
};
use vpc_cni_integration::vpcsim::{serve_ec2, serve_imds, ImdsResolver};

const TAG: &str = "vpc-cni.io/instance-id";

/// vpc-sim on 127.0.0.1: one VPC, one /24 subnet, one t3.medium (3 ENIs,
/// 6 addresses each, nitro). The servers stop when this is dropped.
struct Sim {
    sim: SimVpc,
    vpc_id: String,
    subnet_id: String,
    instance_id: String,
    ec2_endpoint: String,
    imds_endpoint: String,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Sim {
    async fn start() -> Self {
        // Seeded: the throttle dice fall the same way on every run.
        let sim = SimVpc::with_seed(5);
        let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
        let subnet = sim
            .create_subnet(&vpc.id, "10.0.0.0/24", "us-west-2a")
            .unwrap();
        let instance = sim.run_instance(&subnet.id, "t3.medium", "node-a").unwrap();
        let ec2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let imds = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ec2_endpoint = format!("http://{}", ec2.local_addr().unwrap());
        let imds_endpoint = format!("http://{}", imds.local_addr().unwrap());
        let (stop_ec2, ec2_stopped) = oneshot::channel::<()>();
        let (stop_imds, imds_stopped) = oneshot::channel::<()>();
        tokio::spawn(serve_ec2(sim.clone(), ec2, async move {
            let _ = ec2_stopped.await;
        }));
        tokio::spawn(serve_imds(
            sim.clone(),
            imds,
            ImdsResolver::Fixed(instance.id.clone()),
            async move {
                let _ = imds_stopped.await;
            },
        ));
        Self {
            sim,
            vpc_id: vpc.id,
            subnet_id: subnet.id,
            instance_id: instance.id,
            ec2_endpoint,
            imds_endpoint,
            _stop: vec![stop_ec2, stop_imds],
        }
    }

    /// `AwsEc2` as ipamd builds it, pointed here, with millisecond backoffs.
    fn ec2(&self, qps: f64, burst: u32, max_attempts: u32) -> AwsEc2 {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .endpoint_url(&self.ec2_endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            )))
            .build();
        AwsEc2::from_sdk_config(&config, qps, burst).with_retry_policy(RetryPolicy {
            max_attempts,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(20),
        })
    }

    fn imds(&self) -> AwsImds {
        AwsImds::with_endpoint(&self.imds_endpoint).unwrap()
    }

    /// The model's ENI, or None when it does not exist.
    fn model_eni(&self, id: impl std::fmt::Display) -> Option<Eni> {
        let filter = EniFilter {
            ids: vec![id.to_string()],
            ..EniFilter::default()
        };
        match self.sim.describe_network_interfaces(&filter, None, None) {
            Ok(page) => page.items.into_iter().next(),
            Err(e) if e.code.as_str() == "InvalidNetworkInterfaceID.NotFound" => None,
            Err(e) => panic!("model describe {id}: {e}"),
        }
    }

    fn new_eni(&self, secondary_count: u32) -> NewEni {
        NewEni {
            subnet_id: self.subnet_id.clone().into(),
            description: format!("vpc-cni-{}", self.instance_id),
            security_groups: Vec::new(),
            tags: BTreeMap::from([(TAG.to_string(), self.instance_id.clone())]),
            secondary_count,
            prefix_count: 0,
        }
    }
}

fn texts<T: ToString>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

/// What the seam reported equals what the model holds.
fn assert_matches_model(info: &EniInfo, model: &Eni) {
    assert_eq!(info.id.as_str(), model.id);
    assert_eq!(info.mac.to_string(), model.mac, "{}", info.id);
    assert_eq!(info.subnet_id.as_str(), model.subnet_id, "{}", info.id);
    assert_eq!(info.description, model.description, "{}", info.id);
    assert_eq!(info.status, model.status, "{}", info.id);
    assert_eq!(info.tags, model.tags, "{}", info.id);
    let addresses: Vec<_> = model.private_ips.iter().map(|p| p.address).collect();
    assert_eq!(info.addresses, addresses, "{} (primary first)", info.id);
    assert_eq!(texts(&info.prefixes), model.prefixes, "{}", info.id);
    let att = model.attachment.as_ref();
    assert_eq!(info.attachment_id, att.map(|a| a.id.clone()), "{}", info.id);
    assert_eq!(info.instance_id, att.map(|a| a.instance_id.clone()));
    assert_eq!(info.device_index, att.map(|a| a.device_index));
}

/// Our per-action counts equal the requests vpc-sim received: every
/// attempt we made reached EC2, and nothing else did.
fn assert_counts_agree(ec2: &AwsEc2, sim: &SimVpc) {
    let ours = ec2.call_counts();
    let theirs = sim.request_counts();
    for (action, n) in &ours {
        assert_eq!(
            theirs.get(action),
            Some(n),
            "{action}: ours {ours:?} sim {theirs:?}"
        );
    }
    assert_eq!(ours.values().sum::<u64>(), theirs.values().sum::<u64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ec2_method_agrees_with_the_model() {
    let s = Sim::start().await;
    let ec2 = s.ec2(100.0, 100, 3);

    let limits = ec2.instance_limits("t3.medium").await.unwrap();
    let table = vpc_cni_cloud::sim::instance_type("t3.medium").unwrap();
    assert_eq!(
        limits,
        InstanceLimits {
            max_enis: table.max_enis,
            ipv4_per_eni: table.ipv4_per_eni,
            nitro: table.nitro,
            vcpus: table.vcpus,
        }
    );
    assert_eq!(
        (limits.max_enis, limits.ipv4_per_eni, limits.nitro),
        (3, 6, true)
    );
    assert_eq!(ec2.instance_limits("t3.medium").await.unwrap(), limits);
    assert_eq!(
        ec2.call_counts()["DescribeInstanceTypes"],
        1,
        "limits are cached"
    );
    assert!(!ec2.instance_limits("m4.large").await.unwrap().nitro);

    let created = ec2.create_eni(s.new_eni(2)).await.unwrap();
    assert_eq!(created.status, "available");
    assert_eq!(created.addresses.len(), 3);
    assert_eq!(created.tags[TAG], s.instance_id);
    assert_matches_model(&created, &s.model_eni(&created.id).unwrap());

    let attachment = ec2
        .attach_eni(&created.id, &s.instance_id, 1)
        .await
        .unwrap();
    let model = s.model_eni(&created.id).unwrap();
    let att = model.attachment.as_ref().unwrap();
    assert_eq!(att.id, attachment);
    assert_eq!(
        (att.device_index, att.instance_id.as_str()),
        (1, s.instance_id.as_str())
    );
    assert!(
        att.delete_on_termination,
        "attach_eni sets DeleteOnTermination"
    );

    let added = ec2
        .assign(&created.id, Assign::Addresses(2))
        .await
        .unwrap()
        .addresses;
    assert_eq!(added.len(), 2);
    let prefixes = ec2
        .assign(&created.id, Assign::Prefixes(1))
        .await
        .unwrap()
        .prefixes;
    assert_eq!(prefixes.len(), 1);
    let model = s.model_eni(&created.id).unwrap();
    assert_eq!(model.private_ips.len(), 5);
    assert!(added
        .iter()
        .all(|a| model.private_ips.iter().any(|p| p.address == *a)));
    assert_eq!(model.prefixes, texts(&prefixes));
    assert!(ec2.assign(&created.id, Assign::Addresses(0)).await.unwrap() == AssignedIps::default());

    let attached = ec2
        .describe_enis(EniQuery::AttachedTo(s.instance_id.clone()))
        .await
        .unwrap();
    assert_eq!(attached.len(), 2, "primary and the new ENI");
    for info in &attached {
        assert_matches_model(info, &s.model_eni(&info.id).unwrap());
    }
    let by_id = ec2
        .describe_enis(EniQuery::Ids(vec![created.id.clone()]))
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    assert_matches_model(&by_id[0], &s.model_eni(&created.id).unwrap());
    assert!(ec2
        .describe_enis(EniQuery::Ids(Vec::new()))
        .await
        .unwrap()
        .is_empty());

    let extra = BTreeMap::from([("cluster".to_string(), "demo".to_string())]);
    ec2.create_tags(std::slice::from_ref(&created.id), &extra)
        .await
        .unwrap();
    assert_eq!(s.model_eni(&created.id).unwrap().tags["cluster"], "demo");

    ec2.unassign(&created.id, &added[..1], &prefixes)
        .await
        .unwrap();
    let model = s.model_eni(&created.id).unwrap();
    assert!(model.private_ips.iter().all(|p| p.address != added[0]));
    assert!(model.prefixes.is_empty());

    ec2.detach_eni(&attachment).await.unwrap();
    assert_eq!(s.model_eni(&created.id).unwrap().status, "available");
    let leaked = ec2
        .describe_enis(EniQuery::AvailableTagged(TAG.to_string()))
        .await
        .unwrap();
    assert_eq!(leaked.len(), 1);
    assert_matches_model(&leaked[0], &s.model_eni(&created.id).unwrap());

    ec2.delete_eni(&created.id).await.unwrap();
    assert!(s.model_eni(&created.id).is_none());
    let dump = s.sim.dump();
    assert!(!dump["enis"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == created.id.as_str()));

    assert_counts_agree(&ec2, &s.sim);
    println!("calls: {:?}", ec2.call_counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_agrees_with_the_model() {
    let s = Sim::start().await;
    let imds = s.imds();
    let view = s.sim.imds_instance(&s.instance_id).unwrap();

    let id = imds.identity().await.unwrap();
    assert_eq!(id.instance_id, s.instance_id);
    assert_eq!(id.instance_type, "t3.medium");
    assert_eq!(id.region, "us-west-2");
    assert_eq!(id.availability_zone, "us-west-2a");
    assert_eq!(id.primary_mac.to_string(), view.mac);
    assert_eq!(id.local_ipv4, view.local_ipv4);

    // A second ENI with addresses and a prefix, so both the 404 (primary:
    // no ipv4-prefix) and the listed case are read.
    let ec2 = s.ec2(100.0, 100, 3);
    let eni = ec2.create_eni(s.new_eni(1)).await.unwrap();
    ec2.attach_eni(&eni.id, &s.instance_id, 1).await.unwrap();
    ec2.assign(&eni.id, Assign::Prefixes(1)).await.unwrap();

    let view = s.sim.imds_instance(&s.instance_id).unwrap();
    let enis = imds.enis().await.unwrap();
    assert_eq!(enis.len(), 2);
    assert_eq!(enis.len(), view.interfaces.len());
    for got in &enis {
        let want = view
            .interfaces
            .iter()
            .find(|i| i.mac == got.mac.to_string())
            .unwrap_or_else(|| panic!("IMDS listed {} the model lacks", got.mac));
        assert_eq!(got.eni_id.as_str(), want.interface_id);
        assert_eq!(got.device_number, want.device_number);
        assert_eq!(got.subnet_id.as_str(), want.subnet_id);
        assert_eq!(got.vpc_id, s.vpc_id);
        assert_eq!(got.vpc_id, want.vpc_id);
        assert_eq!(got.security_groups, want.security_group_ids);
        assert_eq!(got.subnet_cidr.to_string(), want.subnet_cidr);
        assert_eq!(texts(&got.vpc_cidrs), want.vpc_cidrs);
        assert_eq!(got.addresses, want.local_ipv4s);
        assert_eq!(texts(&got.prefixes), want.ipv4_prefixes);
    }
    assert_eq!(enis[0].device_number, 0);
    assert!(enis[0].prefixes.is_empty());
    assert_eq!(enis[1].eni_id, eni.id);
    assert_eq!(enis[1].prefixes.len(), 1);
    assert_eq!(enis[1].addresses.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_calls_all_succeed_through_retries_and_the_limiter() {
    let s = Sim::start().await;
    s.sim.set_faults(Faults {
        throttle_rate: 0.3,
        ..Faults::default()
    });
    // A tight bucket, so waiting for tokens is part of the run too.
    let ec2 = s.ec2(200.0, 4, 30);
    let mut successes = 0u64;

    ec2.instance_limits("t3.medium").await.unwrap();
    successes += 1;
    let mut enis = Vec::new();
    for device in 1..=2 {
        let eni = ec2.create_eni(s.new_eni(1)).await.unwrap();
        // attach_eni is two requests: attach and DeleteOnTermination.
        let att = ec2
            .attach_eni(&eni.id, &s.instance_id, device)
            .await
            .unwrap();
        successes += 3;
        enis.push((eni.id, att));
    }
    // Concurrent callers share the bucket and each retry on its own.
    let (e1, e2) = (&enis[0].0, &enis[1].0);
    let (a, b, c, d) = tokio::join!(
        ec2.assign(e1, Assign::Addresses(1)),
        ec2.assign(e1, Assign::Addresses(1)),
        ec2.assign(e2, Assign::Addresses(1)),
        ec2.assign(e2, Assign::Addresses(1)),
    );
    let assigned = [a, b, c, d];
    for a in &assigned {
        assert_eq!(a.as_ref().unwrap().addresses.len(), 1);
        successes += 1;
    }
    for _ in 0..5 {
        let all = ec2
            .describe_enis(EniQuery::AttachedTo(s.instance_id.clone()))
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        successes += 1;
    }
    for (id, att) in &enis {
        let model = s.model_eni(id).unwrap();
        let secondary: Vec<_> = model
            .private_ips
            .iter()
            .filter(|p| !p.primary)
            .map(|p| p.address)
            .collect();
        assert_eq!(secondary.len(), 3, "1 at create + 2 assigned");
        ec2.unassign(id, &secondary, &[]).await.unwrap();
        ec2.detach_eni(att).await.unwrap();
        ec2.delete_eni(id).await.unwrap();
        successes += 3;
        assert!(s.model_eni(id).is_none());
    }

    let counts = ec2.call_counts();
    let sent: u64 = counts.values().sum();
    println!("{successes} calls succeeded with {sent} requests: {counts:?}");
    assert!(
        sent > successes,
        "throttling at 0.3 must have caused retries"
    );
    assert_counts_agree(&ec2, &s.sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_errors_map_to_their_variants() {
    let s = Sim::start().await;
    let ec2 = s.ec2(100.0, 100, 3);

    let missing = ec2
        .delete_eni(&"eni-0123456789abcdef0".into())
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, CloudError::NotFound { code, .. } if code == "InvalidNetworkInterfaceID.NotFound"),
        "{missing}"
    );

    let first = ec2.create_eni(s.new_eni(0)).await.unwrap();
    ec2.attach_eni(&first.id, &s.instance_id, 1).await.unwrap();
    let in_use = ec2.delete_eni(&first.id).await.unwrap_err();
    assert!(matches!(in_use, CloudError::InUse { .. }), "{in_use}");

    // t3.medium: 6 addresses per ENI, the primary included.
    let over = ec2
        .assign(&first.id, Assign::Addresses(6))
        .await
        .unwrap_err();
    assert!(
        matches!(&over, CloudError::LimitExceeded { code, .. } if code == "PrivateIpAddressLimitExceeded"),
        "{over}"
    );
    // t3.medium: 3 ENIs.
    let second = ec2.create_eni(s.new_eni(0)).await.unwrap();
    ec2.attach_eni(&second.id, &s.instance_id, 2).await.unwrap();
    let third = ec2.create_eni(s.new_eni(0)).await.unwrap();
    let too_many = ec2
        .attach_eni(&third.id, &s.instance_id, 3)
        .await
        .unwrap_err();
    assert!(
        matches!(&too_many, CloudError::LimitExceeded { code, .. } if code == "AttachmentLimitExceeded"),
        "{too_many}"
    );

    // A /28 has 11 usable addresses.
    let small = s
        .sim
        .create_subnet(&s.vpc_id, "10.0.1.0/28", "us-west-2a")
        .unwrap();
    let mut big = s.new_eni(20);
    big.subnet_id = small.id.into();
    let full = ec2.create_eni(big).await.unwrap_err();
    assert!(
        matches!(&full, CloudError::SubnetFull { code, .. } if code == "InsufficientFreeAddressesInSubnet"),
        "{full}"
    );

    // Not retryable: asked once.
    let before = ec2.call_counts().get("DescribeInstanceTypes").copied();
    let unknown = ec2.instance_limits("x9.nonexistent").await.unwrap_err();
    assert!(!unknown.is_retryable(), "{unknown}");
    assert_eq!(
        ec2.call_counts()["DescribeInstanceTypes"],
        before.unwrap_or(0) + 1
    );

    // Throttled beyond the policy: surfaces as Throttled after exactly
    // max_attempts (3) requests; a transient failure is retried away.
    s.sim.set_faults(Faults {
        fail_next: vec![
            FailNext {
                action: "CreateTags".to_string(),
                times: 100,
                code: "RequestLimitExceeded".to_string(),
            },
            FailNext {
                action: "DetachNetworkInterface".to_string(),
                times: 1,
                code: "InternalError".to_string(),
            },
        ],
        ..Faults::default()
    });
    let tags = BTreeMap::from([("k".to_string(), "v".to_string())]);
    let throttled = ec2
        .create_tags(std::slice::from_ref(&first.id), &tags)
        .await
        .unwrap_err();
    assert!(
        matches!(throttled, CloudError::Throttled { .. }),
        "{throttled}"
    );
    assert_eq!(ec2.call_counts()["CreateTags"], 3);
    let att = s.model_eni(&second.id).unwrap().attachment.unwrap().id;
    ec2.detach_eni(&att).await.unwrap();
    assert_eq!(ec2.call_counts()["DetachNetworkInterface"], 2);
    assert_counts_agree(&ec2, &s.sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_tells_imds_from_a_closed_port() {
    let s = Sim::start().await;
    let timeout = Duration::from_secs(1);
    // The outer bound only guards against a hang; it asserts no timing.
    let guard = Duration::from_secs(10);
    let answered = tokio::time::timeout(guard, s.imds().probe(timeout))
        .await
        .expect("probe hung");
    assert!(answered, "vpc-sim's IMDS must answer the probe");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let nobody = AwsImds::with_endpoint(&format!("http://{closed}")).unwrap();
    let answered = tokio::time::timeout(guard, nobody.probe(timeout))
        .await
        .expect("probe hung");
    assert!(!answered, "a closed port is not IMDS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_variables_point_both_clients_at_the_sim() {
    let s = Sim::start().await;
    // The only test here that sets variables; the others pass endpoints
    // explicitly, so they do not read these.
    std::env::set_var("AWS_EC2_METADATA_SERVICE_ENDPOINT", &s.imds_endpoint);
    std::env::set_var("AWS_ENDPOINT_URL_EC2", &s.ec2_endpoint);
    std::env::set_var("AWS_REGION", "us-west-2");
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDTEST");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");

    let imds = AwsImds::new();
    assert!(imds.probe(Duration::from_secs(1)).await);
    assert_eq!(imds.identity().await.unwrap().instance_id, s.instance_id);

    let ec2 = AwsEc2::from_env(100.0, 100).await;
    let enis = ec2
        .describe_enis(EniQuery::AttachedTo(s.instance_id.clone()))
        .await
        .unwrap();
    assert_eq!(enis.len(), 1, "the primary ENI");
    assert_counts_agree(&ec2, &s.sim);
}

/// `Ec2Options` (ipamd's `AWS_EC2_ENDPOINT` and `HTTP_TIMEOUT`): the chosen endpoint wins over
/// the loaded configuration's, and the chosen attempt timeout abandons a slow answer that the
/// default one waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_endpoint_wins_and_chosen_attempt_timeout_bounds_each_attempt() {
    let s = Sim::start().await;
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        // Nothing listens here: only the chosen endpoint can answer.
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .build();
    let options = Ec2Options {
        qps: 100.0,
        burst: 100,
        endpoint: Some(s.ec2_endpoint.clone()),
        attempt_timeout: Some(Duration::from_millis(300)),
    };
    let policy = RetryPolicy {
        max_attempts: 2,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
    };
    let quick = AwsEc2::from_sdk_config_with(&config, &options).with_retry_policy(policy);
    let query = || EniQuery::AttachedTo(s.instance_id.clone());
    assert_eq!(quick.describe_enis(query()).await.unwrap().len(), 1);

    s.sim.set_faults(Faults {
        latency_ms: 1000,
        ..Faults::default()
    });
    let err = quick.describe_enis(query()).await.unwrap_err();
    assert!(
        matches!(err, CloudError::Transient { .. })
            && err.to_string().to_lowercase().contains("timeout"),
        "{err}"
    );
    let patient = AwsEc2::from_sdk_config_with(
        &config,
        &Ec2Options {
            attempt_timeout: None,
            ..options
        },
    )
    .with_retry_policy(policy);
    assert_eq!(patient.describe_enis(query()).await.unwrap().len(), 1);
}
