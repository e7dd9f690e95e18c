//! A background task of a real ipamd that dies is not silent: the log names it, and the
//! standard gRPC health service on ipamd's socket answers NOT_SERVING for the server ("")
//! and for the CniBackend service, so a liveness probe restarts ipamd. Each task of each
//! mode is killed in turn by the debug builds' `IPAMD_TEST_PANIC_TASK`. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use ipamd::daemon::supervise::{task, TEST_PANIC_TASK};
use tonic_health::pb::health_check_response::ServingStatus;
use vpc_cni_integration::ipamd_proc::IpamdProcess;
use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_integration::overlay_cluster::OverlayCluster;
use vpc_cni_integration::vpc_cluster::VpcCluster;
use vpc_cni_proto::HEALTH_SERVICE_NAME;
use vpc_cni_testkit::process::{block_on, wait_for};
use vpc_cni_testkit::require_root;

/// Harness bound for the health answer to change (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);

/// What the health service answers for the server and for the backend.
fn health(socket: &Path) -> [Option<ServingStatus>; 2] {
    let socket = socket.to_path_buf();
    block_on(async move {
        let mut answers = [None; 2];
        for (answer, service) in answers.iter_mut().zip(["", HEALTH_SERVICE_NAME]) {
            let Ok(channel) = vpc_cni::client::connect_channel(&socket).await else {
                continue;
            };
            let reply = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await;
            *answer = reply
                .ok()
                .and_then(|r| ServingStatus::try_from(r.into_inner().status).ok());
        }
        answers
    })
}

/// Waits until `ipamd`'s health is NOT_SERVING for both names and its log names `task` as
/// the one that died.
fn assert_reported_dead(ipamd: &IpamdProcess, task: &str) {
    let not_serving = [Some(ServingStatus::NotServing); 2];
    let reported = wait_for(EVENTUAL, || {
        (health(ipamd.socket()) == not_serving).then_some(())
    });
    assert!(
        reported.is_some(),
        "{task}: health answers {:?} after the task died; log:\n{}",
        health(ipamd.socket()),
        ipamd.log_text()
    );
    let log = ipamd.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("background task died") && l.contains(task)),
        "{task}: no error naming the task in the log:\n{log}"
    );
}

#[test]
fn a_dead_task_of_a_standalone_node_turns_health_not_serving() {
    require_root();
    for (n, name) in [task::VETH_SWEEPER, task::DATAPATH_UPKEEP]
        .into_iter()
        .enumerate()
    {
        let options = NodeOptions::new(&format!("10.75.{n}.0/24")).with(TEST_PANIC_TASK, name);
        let node = TestNode::start("tdth", options).unwrap();
        assert_reported_dead(&node.ipamd, name);
    }
}

#[test]
fn a_dead_peer_loop_or_node_annotation_turns_health_not_serving() {
    require_root();
    let cluster = OverlayCluster::with_env("tdtp", 1, 1500, &[(TEST_PANIC_TASK, task::PEER_LOOP)])
        .unwrap_or_else(|e| panic!("starting the overlay cluster: {e}"));
    assert_reported_dead(&cluster.nodes()[0].ipamd, task::PEER_LOOP);
    drop(cluster);

    let cluster =
        OverlayCluster::with_kube_env("tdtk", 1, 1500, &[(TEST_PANIC_TASK, task::NODE_ANNOTATION)])
            .unwrap_or_else(|e| panic!("starting the Kubernetes overlay cluster: {e}"));
    assert_reported_dead(&cluster.nodes()[0].ipamd, task::NODE_ANNOTATION);
}

#[test]
fn a_dead_pool_controller_or_leaked_eni_cleanup_turns_health_not_serving() {
    require_root();
    for name in [task::POOL_CONTROLLER, task::LEAKED_ENI_CLEANUP] {
        let cluster = VpcCluster::new("tdtv", &[("a", "t3.medium")], &[(TEST_PANIC_TASK, name)])
            .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
        assert_reported_dead(&cluster.nodes()[0].ipamd, name);
    }
}
