//! What the DaemonSet relies on, with the real ipamd binary: `ipamd health` (the probes),
//! `ipamd install-cni` (the init container), the network configuration appearing only once
//! health serves (CNI_CONF_DIR: the node turns network-ready only then), and the node's net
//! sysctls reached through SYSCTL_NET_DIR (a container's /proc/sys is read-only). The tests
//! that start ipamd need root (network namespaces) and say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipamd::daemon::conflist::CONFLIST_FILE;
use ipamd::daemon::supervise::{task, TEST_PANIC_TASK};
use serde_json::Value;
use vpc_cni_integration::fake_kube::Call;
use vpc_cni_integration::ipamd_proc::IpamdProcess;
use vpc_cni_integration::node::{test_ipamd_env, NodeOptions, TestNode};
use vpc_cni_integration::overlay_cluster::{pod_cidr, OverlayCluster};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::{bins, require_root, unique_name};

/// Harness bound for a step that must happen (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);

/// `ipamd health --socket <socket>`: (exit 0, stdout, stderr).
fn health(socket: &Path) -> (bool, String, String) {
    let out = Command::new(bins::ipamd())
        .args(["health", "--socket"])
        .arg(socket)
        .env_clear()
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn health_without_an_ipamd_fails_with_one_line_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ipamd.sock");
    let (ok, stdout, stderr) = health(&socket);
    assert!(!ok, "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&socket.display().to_string()) && stderr.contains("not serving"),
        "{stderr}"
    );
}

#[test]
fn health_passes_on_a_serving_ipamd_and_fails_once_a_task_died_needs_root() {
    require_root();
    let node = TestNode::start("dphs", NodeOptions::new("10.76.0.0/24")).unwrap();
    let (ok, stdout, stderr) = health(node.ipamd.socket());
    assert!(ok, "{stderr}\n{}", node.ipamd.log_text());
    assert_eq!(stdout.trim(), "SERVING");
    drop(node);

    let options = NodeOptions::new("10.76.1.0/24").with(TEST_PANIC_TASK, task::VETH_SWEEPER);
    let node = TestNode::start("dphd", options).unwrap();
    let failed = wait_for(EVENTUAL, || {
        let (ok, _, stderr) = health(node.ipamd.socket());
        (!ok).then_some(stderr)
    })
    .unwrap_or_else(|| panic!("health kept passing:\n{}", node.ipamd.log_text()));
    assert_eq!(failed.lines().count(), 1, "{failed}");
    assert!(failed.contains("NOT_SERVING"), "{failed}");
}

#[test]
fn install_cni_puts_the_plugin_binary_in_place_with_mode_0755() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("opt-cni-bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("vpc-cni"), b"an older plugin").unwrap();
    let plugin = bins::plugin();
    for _ in 0..2 {
        let out = Command::new(bins::ipamd())
            .args(["install-cni", "--to"])
            .arg(&bin)
            .arg("--from")
            .arg(&plugin)
            .env_clear()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let installed = bin.join("vpc-cni");
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(&plugin).unwrap()
        );
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        let names: Vec<_> = std::fs::read_dir(&bin).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file is left: {names:?}");
    }
    // The installed plugin runs: VERSION answers.
    let version = Command::new(bin.join("vpc-cni"))
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(version.status.success());
    let reply: Value = serde_json::from_slice(&version.stdout).unwrap();
    assert!(reply["supportedVersions"].is_array(), "{reply}");

    let out = Command::new(bins::ipamd())
        .args(["install-cni", "--to"])
        .arg(&bin)
        .arg("--from")
        .arg(dir.path().join("missing"))
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

/// The conflist folder is watched while a node's ipamd starts: while it waits for its
/// Node's pod CIDR it does not serve, and the folder stays empty; once it serves, the file
/// appears, and every time the watcher saw the file, a health check right after passed.
#[test]
fn the_network_configuration_appears_only_after_health_serves_needs_root() {
    require_root();
    let conf = tempfile::tempdir().unwrap();
    let conf_dir = conf.path().to_str().unwrap().to_owned();
    let mut cluster =
        OverlayCluster::with_kube_env("dpcf", 0, 1500, &[("CNI_CONF_DIR", &conf_dir)])
            .unwrap_or_else(|e| panic!("starting the Kubernetes overlay cluster: {e}"));
    let conflist = conf.path().join(CONFLIST_FILE);
    let name = cluster.register_next_node(None).unwrap();

    let (_, (waiting, before, looks)) = cluster
        .start_kube_node_while(|starting| {
            // ipamd asked for its Node twice: it is waiting for a pod CIDR, not serving.
            let waiting = wait_for(EVENTUAL, || {
                (starting.api.requests(&Call::Get(starting.name.clone())) >= 2).then_some(())
            })
            .is_some();
            let before = (conflist.exists(), health(&starting.socket).0);
            starting
                .api
                .set_pod_cidr(&starting.name, Some(&pod_cidr(1)))
                .unwrap();
            // Each look at the folder is followed by a health check.
            let mut looks = Vec::new();
            wait_for(EVENTUAL, || {
                let present = conflist.exists();
                looks.push((present, health(&starting.socket).0));
                present.then_some(())
            });
            (waiting, before, looks)
        })
        .unwrap_or_else(|e| panic!("starting {name}: {e}\n{}", cluster.all_diagnostics()));

    assert!(
        waiting,
        "ipamd never asked for its Node\n{}",
        cluster.all_diagnostics()
    );
    assert_eq!(
        before,
        (false, false),
        "(conflist present, health passing) while ipamd waited for its pod CIDR"
    );
    assert!(
        looks.last().is_some_and(|(present, _)| *present),
        "the network configuration never appeared: {looks:?}\n{}",
        cluster.all_diagnostics()
    );
    for (present, serving) in &looks {
        assert!(
            !present || *serving,
            "the network configuration was there while health did not pass: {looks:?}"
        );
    }
    let written: Value = serde_json::from_slice(&std::fs::read(&conflist).unwrap()).unwrap();
    let node = cluster.node(&name).unwrap();
    assert_eq!(written["plugins"][0]["type"], "vpc-cni");
    assert_eq!(
        written["plugins"][0]["ipamdSocket"],
        node.ipamd.socket().to_str().unwrap()
    );
    let mode = std::fs::metadata(&conflist).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
    assert!(node
        .ipamd
        .log_text()
        .contains("network configuration installed"));
}

#[test]
fn net_sysctls_go_through_sysctl_net_dir_needs_root() {
    require_root();
    let netns = Netns::try_new(&unique_name("dpsy")).unwrap();
    netns
        .try_ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"])
        .unwrap();
    // Forwarding off in the node, so a write to its own /proc/sys would show.
    netns
        .write_sysctls(&[("net.ipv4.ip_forward", "0")])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let net: PathBuf = dir.path().join("net");
    std::fs::create_dir_all(net.join("ipv4")).unwrap();
    std::fs::write(net.join("ipv4/ip_forward"), "0\n").unwrap();
    let env = test_ipamd_env(
        "overlay",
        &[
            ("POD_CIDR", "10.76.2.0/24".to_owned()),
            ("SYSCTL_NET_DIR", net.display().to_string()),
        ],
    );
    let ipamd = IpamdProcess::start(&netns, dir.path(), env).unwrap();

    assert_eq!(
        std::fs::read_to_string(net.join("ipv4/ip_forward"))
            .unwrap()
            .trim(),
        "1",
        "ipamd did not write forwarding through SYSCTL_NET_DIR:\n{}",
        ipamd.log_text()
    );
    assert_eq!(netns.sysctl("net.ipv4.ip_forward"), "0");
    drop(ipamd);
}
