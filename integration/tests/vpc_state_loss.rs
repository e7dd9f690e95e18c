//! ipamd's checkpoint lost or damaged under running pods (issue 12): deleted, torn, garbage,
//! or in another format. ipamd must start (no crash loop), set an unreadable file aside,
//! hold every address a live pod uses (rebuilt from the node's /32 routes to host veths),
//! and hand new pods only addresses nobody holds; a rebuilt pod's address comes back once
//! the pod is gone. One t3.medium node in VPC mode. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use vpc_cni_integration::vpc_cluster::{VpcCluster, VpcPod};
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for eventual conditions (never asserted as a duration).
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// What happens to the checkpoint while ipamd is down, and whether ipamd should find a
/// file to set aside.
const DAMAGE: [(&str, Option<&[u8]>); 4] = [
    ("deleted", None),
    ("garbage", Some(b"\x00\x01 this is not json \xff")),
    (
        "torn",
        Some(br#"{"version":"vpc-cni/ipam/v1","mode":"vpc","assignments":[{"key""#),
    ),
    (
        "older format",
        Some(br#"{"version":"vpc-cni/ipam/v0","allocations":{}}"#),
    ),
];

fn set_aside_files(state: &Path) -> usize {
    std::fs::read_dir(state)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("ipam.json.unreadable.")
        })
        .count()
}

#[test]
fn a_lost_or_damaged_checkpoint_never_hands_out_a_live_pods_address() {
    require_root();
    let mut cluster = VpcCluster::new("vlost", &[("a", "t3.medium")], &[])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let mut live: Vec<VpcPod> = (0..4).map(|i| cluster.pod("a", &format!("p{i}"))).collect();

    for (round, (what, damage)) in DAMAGE.into_iter().enumerate() {
        let node = cluster.node_mut("a").unwrap();
        let state = node.ipamd.state_dir().to_owned();
        let checkpoint = state.join("ipam.json");
        let aside_before = set_aside_files(&state);
        node.ipamd.kill9();
        match damage {
            None => std::fs::remove_file(&checkpoint).unwrap(),
            Some(bytes) => std::fs::write(&checkpoint, bytes).unwrap(),
        }
        let netns = std::sync::Arc::clone(node.netns());
        node.ipamd
            .restart(&netns)
            .unwrap_or_else(|e| panic!("{what}: ipamd did not start again: {e}"));
        let log = node.ipamd.log_text();
        let status = node.ipamd.status().unwrap();
        let held: BTreeSet<Ipv4Addr> = live.iter().map(|p| p.ip().unwrap()).collect();
        let new = cluster.pod("a", &format!("new{round}"));
        assert!(
            !held.contains(&new.ip().unwrap()),
            "{what}: new pod got {}, which a running pod uses\n{}",
            new.ip().unwrap(),
            cluster.all_diagnostics()
        );
        assert!(
            log.contains("rebuilt assignments from the kernel"),
            "{what}: ipamd did not say what it rebuilt:\n{log}"
        );
        let expect_aside = usize::from(damage.is_some());
        assert_eq!(
            set_aside_files(&state) - aside_before,
            expect_aside,
            "{what}: the unreadable file was not set aside exactly once"
        );
        assert!(
            status.assigned_addresses as usize >= live.len(),
            "{what}: ipamd holds {} addresses, {} pods are running",
            status.assigned_addresses,
            live.len()
        );

        live.push(new);
    }

    // A rebuilt pod goes: its DEL finds no assignment under the runtime's id, and the veth
    // sweep gives the address back once the veth is gone.
    let gone = live.remove(0);
    let before = cluster.node("a").unwrap().ipamd.status().unwrap();
    cluster.del(&gone).unwrap();
    drop(gone);
    let node = cluster.node("a").unwrap();
    let released = wait_for(SETTLE_LIMIT, || {
        std::thread::sleep(Duration::from_millis(200));
        let now = node.ipamd.status().ok()?;
        (now.assigned_addresses < before.assigned_addresses).then_some(())
    });
    assert!(
        released.is_some(),
        "the rebuilt pod's address was never released\n{}",
        cluster.all_diagnostics()
    );
    drop(live);
}
