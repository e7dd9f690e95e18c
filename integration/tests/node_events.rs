//! Events on the Node in VPC mode (issue 13), end to end: vpc-sim refuses EC2 actions the
//! way EC2 does, and ipamd, given a kubeconfig for the fake Kubernetes API and MY_NODE_NAME,
//! posts core/v1 Events on its Node: `MissingIAMPermissions` naming the refused action
//! (rate-limited: one per reason however often the pass fails), then `SubnetFull`.
//! Needs root (the cluster's namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use serde_json::Value;
use vpc_cni_cloud::sim::{FailNext, Faults, SimVpc};
use vpc_cni_integration::fake_kube::{node_object, Call, FakeKube};
use vpc_cni_integration::vpc_cluster::VpcCluster;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for convergence (never asserted as a duration).
/// A failing pass backs off, doubling up to the 30 s reconcile interval: two more attempts
/// can take a minute.
const EVENTUAL: Duration = Duration::from_secs(120);

fn fail(action: &str, code: &str) -> Faults {
    Faults {
        fail_next: vec![FailNext {
            action: action.into(),
            times: 1_000,
            code: code.into(),
        }],
        ..Faults::default()
    }
}

fn requests(sim: &SimVpc, action: &str) -> u64 {
    sim.request_counts().get(action).copied().unwrap_or(0)
}

fn with_reason(kube: &FakeKube, reason: &str) -> Vec<Value> {
    kube.api()
        .events(Some("default"))
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

#[test]
fn root_ec2_refusals_become_rate_limited_events_on_the_node() {
    require_root();
    let mut cluster = VpcCluster::new("nev", &[("ev", "t3.medium")], &[])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let sim = cluster.sim().clone();
    // Every new ENI refused as for a role without ec2:CreateNetworkInterface.
    sim.set_faults(fail("CreateNetworkInterface", "UnauthorizedOperation"));

    let node = cluster.node_mut("ev").unwrap();
    let kube = FakeKube::start(node.netns(), SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
    kube.api()
        .create_node(node_object("ev", node.primary_ip(), None))
        .unwrap();
    let kubeconfig = node.dir().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig).unwrap();
    for (k, v) in [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("MY_NODE_NAME", "ev".to_owned()),
        // More than the primary ENI holds: the pool must create an ENI.
        ("WARM_IP_TARGET", "8".to_owned()),
        ("SUBNET_FULL_PAUSE", "1".to_owned()),
    ] {
        node.ipamd.set_env(k, &v);
    }
    node.ipamd.restart(node.netns()).unwrap();

    let diagnostics = || {
        format!(
            "{:?}\n{}",
            kube.api().request_log(20),
            cluster.all_diagnostics()
        )
    };
    let first = wait_for(EVENTUAL, || {
        with_reason(&kube, "MissingIAMPermissions").pop()
    })
    .unwrap_or_else(|| panic!("no MissingIAMPermissions Event\n{}", diagnostics()));
    assert_eq!(first["involvedObject"]["kind"], "Node");
    assert_eq!(first["involvedObject"]["name"], "ev");
    assert_eq!(first["type"], "Warning");
    assert_eq!(first["source"]["component"], "vpc-cni-ipamd");
    let message = first["message"].as_str().unwrap();
    assert!(message.contains("ec2:CreateNetworkInterface"), "{message}");
    assert!(message.contains("UnauthorizedOperation"), "{message}");

    // The pass keeps failing (backing off); the Event is not repeated.
    let refused = requests(&sim, "CreateNetworkInterface");
    wait_for(EVENTUAL, || {
        (requests(&sim, "CreateNetworkInterface") >= refused + 2).then_some(())
    })
    .unwrap_or_else(|| panic!("the pass stopped retrying\n{}", diagnostics()));
    assert_eq!(with_reason(&kube, "MissingIAMPermissions").len(), 1);

    // The role fixed, the subnet now full: a SubnetFull Event, naming EC2's code.
    sim.set_faults(fail(
        "CreateNetworkInterface",
        "InsufficientFreeAddressesInSubnet",
    ));
    let full = wait_for(EVENTUAL, || with_reason(&kube, "SubnetFull").pop())
        .unwrap_or_else(|| panic!("no SubnetFull Event\n{}", diagnostics()));
    let message = full["message"].as_str().unwrap();
    assert!(
        message.contains("InsufficientFreeAddressesInSubnet"),
        "{message}"
    );
    let refused = requests(&sim, "CreateNetworkInterface");
    wait_for(EVENTUAL, || {
        (requests(&sim, "CreateNetworkInterface") > refused).then_some(())
    })
    .unwrap_or_else(|| panic!("growth stopped retrying\n{}", diagnostics()));
    assert_eq!(with_reason(&kube, "SubnetFull").len(), 1);
    assert_eq!(with_reason(&kube, "MissingIAMPermissions").len(), 1);
    // Every post was accepted: two Events, two creates.
    assert_eq!(kube.api().requests(&Call::CreateEvent("default".into())), 2);
    sim.set_faults(Faults::default());
}
