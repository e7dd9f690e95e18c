//! The `vpc-sim` command line as a person uses it: serve on loopback, add a
//! node through the admin API, read the state, stop on SIGTERM. No root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use vpc_cni_testkit::bins::binary;

#[test]
fn serve_then_add_a_node_by_hand_then_stop() {
    let mut server = Command::new(binary("vpc-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let bound: serde_json::Value = serde_json::from_str(&line).unwrap();
    let admin = bound["admin"].as_str().unwrap().to_string();
    assert!(
        bound["ec2"].as_str().unwrap().contains("127.0.0.1"),
        "{line}"
    );

    let added = Command::new(binary("vpc-sim"))
        .args([
            "node",
            "add",
            "--admin",
            &admin,
            "--type",
            "t3.medium",
            "--name",
            "n1",
        ])
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let node: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap();
    let text = node.to_string();
    assert!(text.contains("\"i-"), "no instance id in {text}");

    let state = Command::new(binary("vpc-sim"))
        .args(["state", "--admin", &admin])
        .output()
        .unwrap();
    assert!(state.status.success());
    let dump = String::from_utf8_lossy(&state.stdout);
    assert!(
        dump.contains("t3.medium") && dump.contains("eni-"),
        "{dump}"
    );

    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(
        server.wait().unwrap().success(),
        "vpc-sim did not stop cleanly on SIGTERM"
    );
}
