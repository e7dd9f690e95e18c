//! Kubelet's max pods, both ways (issue 13, acceptance 4 and 6): `ipamd max-pods` asks
//! EC2's DescribeInstanceTypes (vpc-sim over HTTP) when the standard AWS chain finds
//! credentials, and the table shipped with ipamd otherwise. No root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use vpc_cni_cloud::sim::SimVpc;
use vpc_cni_integration::vpcsim::serve_ec2;
use vpc_cni_testkit::bins;

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
