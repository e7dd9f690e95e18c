//! ipamd's gRPC socket is root's: it never removes something that is not a socket at
//! `IPAMD_SOCKET` (it stops, naming the path), the socket it creates is mode 0600 and owned
//! by root, and a connection from a non-root process gets no answer even when the socket's
//! mode lets it connect. Needs root (namespaces, and a client that drops to `nobody`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_testkit::bins;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::plugin::Invocation;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for ipamd to stop or to log (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(30);

/// The `nobody` user and group.
const NOBODY: u32 = 65534;

/// Starts ipamd in `ns` with its socket at `socket`; returns whether it exited 0 and its
/// stderr, or panics when it is still running after the bound (it took the path over).
fn ipamd_exit_with_socket_at(ns: &Netns, dir: &Path, socket: &Path) -> (bool, String) {
    let mut child = ns
        .command(bins::ipamd())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VPC_CNI_MODE", "overlay")
        .env("POD_CIDR", "10.76.0.0/24")
        .env("IPAMD_SOCKET", socket)
        .env("IPAMD_STATE_DIR", dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_for(EVENTUAL, || child.try_wait().unwrap());
    if exited.is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "ipamd kept running with {} taken; log:\n{}",
            socket.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn something_that_is_not_a_socket_at_the_socket_path_is_left_and_stops_ipamd() {
    require_root();
    let ns = Netns::unique("ipsk");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "an operator's file\n").unwrap();
    let link = dir.path().join("a-link");
    std::os::unix::fs::symlink(&file, &link).unwrap();

    for (path, kind) in [(&file, "a regular file"), (&link, "a symbolic link")] {
        let (ok, stderr) = ipamd_exit_with_socket_at(&ns, dir.path(), path);
        assert!(!ok, "ipamd started with {kind} at its socket path");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(kind),
            "the error does not name {} as {kind}:\n{stderr}",
            path.display()
        );
        let left = std::fs::symlink_metadata(path).unwrap();
        assert_eq!(left.file_type().is_symlink(), kind == "a symbolic link");
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "an operator's file\n"
    );
}

/// The plugin's STATUS against `socket`, run as `nobody` (in the machine's namespace: a
/// process that dropped root can no longer enter another; STATUS only talks to the socket).
fn status_as_nobody(socket: &Path) -> std::process::Output {
    let conf = json!({
        "cniVersion": "1.1.0",
        "name": "socket-test",
        "type": "vpc-cni",
        "ipamdSocket": socket,
    });
    let mut child = Command::new(bins::plugin())
        .env_clear()
        .env("CNI_COMMAND", "STATUS")
        .env("CNI_PATH", bins::plugin().parent().unwrap())
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_socket_is_root_only_and_non_root_peers_get_no_answer() {
    require_root();
    let node = TestNode::start("ipsr", NodeOptions::new("10.77.0.0/24")).unwrap();
    let socket = node.ipamd.socket().to_path_buf();
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o7777, 0o600, "socket mode");
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "socket owner");
    // The state directory and the checkpoint in it are root's alone.
    let state = node.ipamd.state_dir();
    let dir_mode = std::fs::metadata(state).unwrap().mode() & 0o7777;
    assert_eq!(dir_mode, 0o700, "state dir mode");
    let checkpoint = state.join(ipamd::daemon::CHECKPOINT_FILE);
    let file_mode = std::fs::metadata(&checkpoint).unwrap().mode() & 0o7777;
    assert_eq!(file_mode, 0o600, "checkpoint mode");

    // Loosen the modes by hand, so that only ipamd's own check stands in the way.
    std::fs::set_permissions(node.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    let out = status_as_nobody(&socket);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a non-root client got an answer: {stdout}"
    );
    let reply: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("STATUS as nobody printed no CNI error ({e}): {stdout}"));
    assert_eq!(reply["code"], 50, "{reply}");
    let warned = wait_for(EVENTUAL, || {
        let log = node.ipamd.log_text();
        log.lines()
            .any(|l| l.contains("non-root peer") && l.contains(&format!("uid={NOBODY}")))
            .then_some(())
    });
    assert!(
        warned.is_some(),
        "no warning naming uid {NOBODY}; log:\n{}",
        node.ipamd.log_text()
    );

    // Root still gets its answer through the same socket.
    let root = Invocation {
        command: "STATUS".into(),
        stdin: json!({
            "cniVersion": "1.1.0",
            "name": "socket-test",
            "type": "vpc-cni",
            "ipamdSocket": socket,
        })
        .to_string()
        .into_bytes(),
        ..Invocation::default()
    }
    .run(&node.netns)
    .unwrap();
    assert!(root.success(), "STATUS as root: {root:?}");
}
