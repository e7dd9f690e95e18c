#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::time::Duration;

use super::*;
use crate::spec::{parse_cni_args, CniEnv};

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn add_env() -> CniEnv {
    CniEnv {
        command: Command::Add,
        container_id: Some("c0ffee".into()),
        netns: Some("/run/netns/p1".into()),
        ifname: Some("eth0".into()),
        args: parse_cni_args("K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-1").unwrap(),
        path: None,
    }
}

fn conf(file: &std::path::Path, level: Option<&str>) -> Vec<u8> {
    let mut conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "n", "type": "vpc-cni",
        "pluginLogFile": file,
    });
    if let Some(level) = level {
        conf["pluginLogLevel"] = level.into();
    }
    conf.to_string().into_bytes()
}

#[test]
fn the_conflist_key_names_the_file_and_each_command_gets_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // The directory is created, as the DaemonSet's hostPath may not have it yet.
    let file = dir.path().join("logs/plugin.log");
    let stdin = conf(&file, None);
    let log = PluginLog::open(&stdin, no_env);
    let result = r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.7/32"}]}"#;
    log.finished(
        Some(&add_env()),
        &stdin,
        &Ok(Some(result.into())),
        Duration::from_millis(12),
    );
    let failed = Err(CniError::TryAgainLater("no free address".into()));
    log.finished(Some(&add_env()), &stdin, &failed, Duration::from_millis(3));
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for field in [
        " info ",
        "command=ADD",
        "container=c0ffee",
        "netns=/run/netns/p1",
        "pod=shop/cart-1",
        "ip=10.0.0.7/32",
        "ms=12.0",
    ] {
        assert!(lines[0].contains(field), "{field} missing: {}", lines[0]);
    }
    assert!(
        lines[1].contains(" error ") && lines[1].contains("code=11"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("no free address"), "{}", lines[1]);
}

#[test]
fn the_variables_win_over_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let from_key = dir.path().join("key.log");
    let from_env = dir.path().join("env.log");
    let stdin = conf(&from_key, Some("error"));
    let env = |k: &str| match k {
        LOG_FILE_ENV => Some(OsString::from(&from_env)),
        LOG_LEVEL_ENV => Some(OsString::from("DEBUG")),
        _ => None,
    };
    let log = PluginLog::open(&stdin, env);
    log.finished(Some(&add_env()), &stdin, &Ok(None), Duration::ZERO);
    let text = std::fs::read_to_string(&from_env).unwrap();
    // Debug: the command's line, then its configuration.
    assert!(text.lines().count() >= 2, "{text}");
    assert!(text.contains("config {"), "{text}");
    assert!(!from_key.exists());
}

#[test]
fn levels_filter_and_a_bad_level_is_said_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugin.log");
    let stdin = conf(&file, Some("ERROR"));
    let log = PluginLog::open(&stdin, no_env);
    log.finished(Some(&add_env()), &stdin, &Ok(None), Duration::ZERO);
    assert_eq!(std::fs::read_to_string(&file).unwrap_or_default(), "");

    let stdin = conf(&file, Some("chatty"));
    let log = PluginLog::open(&stdin, no_env);
    assert!(log.enabled(Level::Info) && !log.enabled(Level::Debug));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("level=chatty") && text.contains(" warn "),
        "{text}"
    );

    for (name, level) in [
        ("DEBUG", Level::Debug),
        ("Fatal", Level::Error),
        ("warning", Level::Warn),
    ] {
        assert_eq!(Level::parse(name), Some(level), "{name}");
    }
}

#[test]
fn a_log_that_cannot_be_written_is_no_log_and_no_failure() {
    let stdin = conf(std::path::Path::new("/proc/vpc-cni-no/plugin.log"), None);
    let log = PluginLog::open(&stdin, no_env);
    assert!(!log.enabled(Level::Error));
    log.finished(Some(&add_env()), &stdin, &Ok(None), Duration::ZERO);
    // Neither a relative path nor stdout (the result's channel) is a log destination.
    for bad in ["plugin.log", "stdout"] {
        let stdin = serde_json::json!({"pluginLogFile": bad}).to_string();
        assert!(
            !PluginLog::open(stdin.as_bytes(), no_env).enabled(Level::Error),
            "{bad}"
        );
    }
    // No configuration at all, or not JSON: no log.
    assert!(!PluginLog::open(b"not json", no_env).enabled(Level::Error));
}

#[test]
fn routine_commands_are_debug_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugin.log");
    let stdin = conf(&file, None);
    let log = PluginLog::open(&stdin, no_env);
    let mut status = add_env();
    status.command = Command::Status;
    log.finished(Some(&status), &stdin, &Ok(None), Duration::ZERO);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
}

#[test]
fn timestamps_are_rfc3339_utc() {
    let at = UNIX_EPOCH + Duration::from_millis(1_706_745_599_123);
    assert_eq!(rfc3339_utc(at), "2024-01-31T23:59:59.123Z");
    assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
    assert_eq!(rfc3339_utc(leap), "2000-02-29T00:00:00.000Z");
}

#[test]
fn values_with_spaces_are_quoted() {
    assert_eq!(quoted("plain"), "plain");
    assert_eq!(quoted("two words"), "\"two words\"");
    assert_eq!(quoted(""), "\"\"");
}
