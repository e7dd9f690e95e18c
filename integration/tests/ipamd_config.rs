//! ipamd refuses bad or unsupported settings at start, naming the variable.
//! No root: ipamd stops before it touches the network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::Command;

use vpc_cni_testkit::bins;

fn start_with(env: &[(&str, &str)]) -> (bool, String) {
    let env: Vec<(&str, OsString)> = env.iter().map(|(k, v)| (*k, OsString::from(v))).collect();
    start_with_raw(&env)
}

fn start_with_raw(env: &[(&str, OsString)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bins::ipamd())
        .env_clear()
        .env("POD_CIDR", "10.1.0.0/24")
        .env("IPAMD_SOCKET", dir.path().join("s.sock"))
        .env("IPAMD_STATE_DIR", dir.path().join("state"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_aws_knob_we_do_not_implement_stops_ipamd_by_name() {
    let (ok, stderr) = start_with(&[("ENABLE_POD_ENI", "true")]);
    assert!(!ok, "ipamd started with ENABLE_POD_ENI=true");
    assert!(stderr.contains("ENABLE_POD_ENI"), "{stderr}");
}

#[test]
fn a_bad_value_stops_ipamd_naming_the_variable() {
    for (var, value) in [
        ("WARM_IP_TARGET", "lots"),
        ("IP_COOLDOWN_PERIOD", "soon"),
        ("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "10.0.0.1/8"),
        ("POD_CIDR", "10.1.0.0/33"),
    ] {
        let (ok, stderr) = start_with(&[(var, value)]);
        assert!(!ok, "ipamd started with {var}={value}");
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

/// The property tests found both: clap's refusal of a value that is not UTF-8 named no
/// variable, and such a value of an unsupported knob was taken as unset.
#[test]
fn a_value_that_is_not_utf8_stops_ipamd_naming_the_variable() {
    for var in ["VETH_SWEEP_INTERVAL", "ENABLE_IPv6"] {
        let (ok, stderr) = start_with_raw(&[(var, OsString::from_vec(b"tru\xffe".to_vec()))]);
        assert!(!ok, "ipamd started with a {var} that is not UTF-8");
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}
