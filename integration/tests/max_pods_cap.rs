//! Kubelet's max pods, both ways (issue 13, acceptance 4 and 6): `ipamd max-pods` asks
//! EC2's DescribeInstanceTypes (vpc-sim over HTTP) when the standard AWS chain finds
//! credentials, and the table shipped with ipamd otherwise (no root needed); and ipamd in
//! VPC mode never planning past its Node's `status.capacity.pods` (root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use vpc_cni_cloud::sim::{EniFilter, SimVpc};
use vpc_cni_integration::fake_kube::{node_object, Call, FakeKube};
use vpc_cni_integration::vpc_cluster::{VpcCluster, VpcPod};
use vpc_cni_integration::vpcsim::serve_ec2;
use vpc_cni_testkit::bins;
use vpc_cni_testkit::plugin::PluginOutput;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(60);

/// vpc-sim's EC2 API on loopback; stops when the sender is dropped.
async fn ec2_endpoint(sim: &SimVpc) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_ec2(sim.clone(), listener, async move {
        let _ = stopped.await;
    }));
    (endpoint, stop)
}

/// `ipamd max-pods ARGS` with no AWS settings but those in `aws` (no profile, no IMDS).
async fn max_pods(aws: &[(&str, &str)], args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bins::ipamd());
    cmd.arg("max-pods").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(aws.iter().copied());
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn describes(sim: &SimVpc) -> u64 {
    sim.request_counts()
        .get("DescribeInstanceTypes")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_pods_asks_describe_instance_types_when_credentials_exist() {
    let sim = SimVpc::with_seed(13);
    let (endpoint, _stop) = ec2_endpoint(&sim).await;
    let aws = [
        ("AWS_ENDPOINT_URL_EC2", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_REGION", "us-west-2"),
    ];
    let cases: [(&[&str], &str); 5] = [
        (&["--instance-type", "t3.medium"], "17"),
        (&["--instance-type", "m5.large"], "29"),
        (&["--instance-type", "m5.24xlarge"], "737"),
        (
            &["--instance-type", "m5.large", "--prefix-delegation"],
            "110",
        ),
        (
            &["--instance-type", "m5.24xlarge", "--prefix-delegation"],
            "250",
        ),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let before = describes(&sim);
        assert_eq!(stdout(&max_pods(&aws, args).await), *want, "{args:?}");
        assert_eq!(describes(&sim), before + 1, "case {i}: asked EC2 once");
    }
    // EC2 answers for the type, so an unknown one is EC2's error, naming it.
    let out = max_pods(&aws, &["--instance-type", "x9.nonexistent"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x9.nonexistent"), "{err}");
    assert!(describes(&sim) >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_max_pods_reads_the_shipped_table() {
    let out = max_pods(&[], &["--instance-type", "m5.24xlarge"]).await;
    assert_eq!(stdout(&out), "737");
    let pd = ["--instance-type", "t3.medium", "--prefix-delegation"];
    assert_eq!(stdout(&max_pods(&[], &pd).await), "110");
    let out = max_pods(&[], &["--instance-type", "x9.nonexistent"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"x9.nonexistent\""), "{err}");
    // Asked for EC2 by name, the missing credentials are the answer, not the table.
    let out = max_pods(&[], &["--instance-type", "m5.large", "--source", "ec2"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no AWS credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Secondary addresses EC2 has assigned to `instance`'s ENIs (each ENI's own primary
/// address is not a pod's).
fn pod_addresses_in_ec2(sim: &SimVpc, instance: &str) -> usize {
    let filter = EniFilter {
        attachment_instance_id: Some(instance.to_owned()),
        ..EniFilter::default()
    };
    sim.describe_network_interfaces(&filter, None, None)
        .unwrap()
        .items
        .iter()
        .map(|e| e.private_ips.len().saturating_sub(1) + 16 * e.prefixes.len())
        .sum()
}

/// Acceptance 6, end to end on vpc-sim with the fake Kubernetes API (needs root): a
/// t3.medium (17 pods by the formula) whose Node says `status.capacity.pods: 8`. ipamd,
/// restarted with a kubeconfig, MY_NODE_NAME and an eager WARM_IP_TARGET of 20, never has
/// EC2 assign more than 8 pod addresses; of 9 concurrent ADDs, 8 get one and the 9th is
/// answered try-again-later (CNI code 11) with a message that names the cap.
#[test]
fn root_the_nodes_capacity_caps_the_pool_and_the_ninth_add() {
    require_root();
    let mut cluster = VpcCluster::new("mpc", &[("cap", "t3.medium")], &[])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let instance = cluster.node("cap").unwrap().instance.id.clone();
    // Before Kubernetes: WARM_ENI_TARGET=1 fills the primary ENI only (5 addresses).
    assert!(pod_addresses_in_ec2(cluster.sim(), &instance) <= 8);

    // The API server in the node's own namespace, as a kubelet's Node with max-pods 8.
    let node = cluster.node_mut("cap").unwrap();
    let kube = FakeKube::start(node.netns(), SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut object = node_object("cap", node.primary_ip(), None);
    object["status"]["capacity"] = json!({ "cpu": "2", "memory": "3977804Ki", "pods": "8" });
    object["status"]["allocatable"] = object["status"]["capacity"].clone();
    kube.api().create_node(object).unwrap();
    let kubeconfig = node.dir().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    for (k, v) in [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("MY_NODE_NAME", "cap".to_owned()),
        ("WARM_IP_TARGET", "20".to_owned()),
    ] {
        node.ipamd.set_env(k, &v);
    }
    node.ipamd.restart(node.netns()).unwrap();
    assert_eq!(kube.api().requests(&Call::Get("cap".into())), 1);

    // The eager target grows the pool to the cap and no further.
    let node = cluster.node("cap").unwrap();
    wait_for(EVENTUAL, || {
        (pod_addresses_in_ec2(cluster.sim(), &instance) >= 8).then_some(())
    })
    .unwrap_or_else(|| panic!("the pool never reached 8\n{}", cluster.all_diagnostics()));
    assert!(
        node.ipamd
            .log_text()
            .contains("Node cap's status.capacity.pods"),
        "{}",
        node.ipamd.log_text()
    );

    let results: Vec<(VpcPod, PluginOutput)> = std::thread::scope(|scope| {
        let adds: Vec<_> = (0..9)
            .map(|i| {
                let cluster = &cluster;
                scope.spawn(move || {
                    let mut pod = cluster.new_pod("cap", &format!("mpc{i}")).unwrap();
                    let out = cluster.add(&mut pod).unwrap();
                    (pod, out)
                })
            })
            .collect();
        adds.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (ok, refused): (Vec<_>, Vec<_>) = results.iter().partition(|(_, out)| out.success());
    assert_eq!(ok.len(), 8, "{}", cluster.all_diagnostics());
    let [(_, refusal)] = refused.as_slice() else {
        let outs: Vec<&PluginOutput> = refused.iter().map(|(_, out)| out).collect();
        panic!("want one refusal: {outs:?}");
    };
    let error = refusal.json();
    assert_eq!(error["code"], 11, "try again later: {refusal:?}");
    let msg = error["msg"].as_str().unwrap_or_default().to_owned()
        + error["details"].as_str().unwrap_or_default();
    assert!(msg.contains("cap is 8"), "{refusal:?}");
    assert!(msg.contains("status.capacity.pods"), "{refusal:?}");
    assert_eq!(pod_addresses_in_ec2(cluster.sim(), &instance), 8);
    for (pod, _) in &ok {
        assert!(cluster.del(pod).unwrap().success());
    }
}
