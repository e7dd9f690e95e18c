#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use super::*;

fn env_from(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    CniEnv::from_lookup(|k| map.get(k).cloned())
}

fn add_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "0123abcd"),
        ("CNI_NETNS", "/var/run/netns/cni-1234"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=5f3c-11",
        ),
    ]
}

fn replace(
    mut env: Vec<(&'static str, &'static str)>,
    key: &'static str,
    value: Option<&'static str>,
) -> Vec<(&'static str, &'static str)> {
    env.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        env.push((key, v));
    }
    env
}

/// Asserts an InvalidEnvironment (code 4) naming `var`, whose message contains `needle`.
fn assert_env_err<T: std::fmt::Debug>(result: Result<T, CniError>, var: &str, needle: &str) {
    let err = result.expect_err("expected an environment error");
    assert_eq!(err.code(), 4, "{err}");
    match &err {
        CniError::InvalidEnvironment { var: v, .. } => assert_eq!(*v, var, "{err}"),
        other => panic!("expected InvalidEnvironment for {var}, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(var), "{msg:?} should name {var}");
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
}

#[test]
fn command_round_trips() {
    for c in Command::ALL {
        assert_eq!(Command::parse(c.as_str()).unwrap(), c);
        assert_eq!(c.to_string(), c.as_str());
    }
}

#[test]
fn full_add_env_parses() {
    let env = env_from(&add_env()).unwrap();
    assert_eq!(env.command, Command::Add);
    assert_eq!(env.container_id.as_deref(), Some("0123abcd"));
    assert_eq!(env.netns.as_deref(), Some("/var/run/netns/cni-1234"));
    assert_eq!(env.ifname.as_deref(), Some("eth0"));
    assert_eq!(env.path.as_deref(), Some("/opt/cni/bin"));
    assert_eq!(
        env.args,
        CniArgs {
            pod_namespace: Some("default".into()),
            pod_name: Some("web-0".into()),
            infra_container_id: Some("0123abcd".into()),
            pod_uid: Some("5f3c-11".into()),
        }
    );
}

#[test]
fn missing_or_empty_command_names_cni_command() {
    assert_env_err(env_from(&[]), "CNI_COMMAND", "missing");
    assert_env_err(env_from(&[("CNI_COMMAND", "")]), "CNI_COMMAND", "missing");
}

#[test]
fn unknown_command_is_named() {
    assert_env_err(
        env_from(&[("CNI_COMMAND", "FOO")]),
        "CNI_COMMAND",
        "\"FOO\"",
    );
    assert_env_err(
        env_from(&[("CNI_COMMAND", "add")]),
        "CNI_COMMAND",
        "\"add\"",
    );
}

#[test]
fn add_and_check_need_container_id_netns_and_ifname() {
    for command in ["ADD", "CHECK"] {
        let base = replace(add_env(), "CNI_COMMAND", Some(command));
        assert_eq!(env_from(&base).unwrap().command.as_str(), command);
        for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            assert_env_err(env_from(&replace(base.clone(), var, None)), var, "missing");
            assert_env_err(
                env_from(&replace(base.clone(), var, Some(""))),
                var,
                "missing",
            );
        }
    }
}

#[test]
fn del_needs_container_id_and_ifname_but_not_netns() {
    let base = replace(add_env(), "CNI_COMMAND", Some("DEL"));
    let env = env_from(&replace(base.clone(), "CNI_NETNS", None)).unwrap();
    assert_eq!(env.command, Command::Del);
    assert_eq!(env.netns, None);
    let env = env_from(&replace(base.clone(), "CNI_NETNS", Some(""))).unwrap();
    assert_eq!(env.netns, None);
    assert_eq!(
        env_from(&base).unwrap().netns.as_deref(),
        Some("/var/run/netns/cni-1234")
    );
    for var in ["CNI_CONTAINERID", "CNI_IFNAME"] {
        assert_env_err(env_from(&replace(base.clone(), var, None)), var, "missing");
    }
}

#[test]
fn gc_status_version_need_nothing_else_and_ignore_the_rest() {
    for (command, expected) in [
        ("GC", Command::Gc),
        ("STATUS", Command::Status),
        ("VERSION", Command::Version),
    ] {
        let env = env_from(&[("CNI_COMMAND", command)]).unwrap();
        assert_eq!(env.command, expected);
        assert_eq!(env.container_id, None);
        assert_eq!(env.path, None);

        // Junk in per-attachment variables does not matter for these commands.
        let env = env_from(&[
            ("CNI_COMMAND", command),
            ("CNI_IFNAME", "way/too/long/interface"),
            ("CNI_ARGS", "garbage"),
            ("CNI_PATH", "/opt/cni/bin"),
        ])
        .unwrap();
        assert_eq!(env.ifname, None);
        assert_eq!(env.args, CniArgs::default());
        assert_eq!(env.path.as_deref(), Some("/opt/cni/bin"));
    }
}

#[test]
fn bad_ifnames_are_rejected_naming_the_value() {
    let long = "abcdefghijklmnop"; // 16 bytes
    let long_utf8: &'static str = "é".repeat(8).leak(); // 8 chars, 16 bytes
    for bad in [
        long, ".", "..", "eth/0", "eth:0", "eth 0", "eth\t0", long_utf8,
    ] {
        let env = replace(add_env(), "CNI_IFNAME", Some(bad));
        assert_env_err(env_from(&env), "CNI_IFNAME", &format!("{bad:?}"));
    }
    for good in ["eth0", "a", "abcdefghijklmno", "net-1.2_x", "...", "é"] {
        assert!(validate_ifname(good).is_ok(), "{good}");
    }
}

#[test]
fn bad_container_ids_are_rejected_naming_the_value() {
    let too_long: &'static str = "a".repeat(257).leak();
    for bad in [
        "-abc", ".abc", "_abc", "ab c", "ab\nc", "ab/c", "ab:c", too_long,
    ] {
        let env = replace(add_env(), "CNI_CONTAINERID", Some(bad));
        assert_env_err(env_from(&env), "CNI_CONTAINERID", &format!("{bad:?}"));
    }
    for good in [
        "0123abcd",
        "A",
        "pod_1.ctr-2",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ] {
        assert!(validate_container_id(good).is_ok(), "{good}");
    }
    assert!(validate_container_id(&"a".repeat(256)).is_ok());
}

#[test]
fn relative_netns_is_rejected() {
    let env = replace(add_env(), "CNI_NETNS", Some("netns/x"));
    assert_env_err(env_from(&env), "CNI_NETNS", "\"netns/x\"");
    let env = replace(
        replace(add_env(), "CNI_COMMAND", Some("DEL")),
        "CNI_NETNS",
        Some("x"),
    );
    assert_env_err(env_from(&env), "CNI_NETNS", "\"x\"");
}

#[test]
fn cni_args_errors_surface_from_env() {
    let env = replace(add_env(), "CNI_ARGS", Some("FOO=bar"));
    assert_env_err(env_from(&env), "CNI_ARGS", "\"FOO\"");
    let env = replace(add_env(), "CNI_ARGS", None);
    assert_eq!(env_from(&env).unwrap().args, CniArgs::default());
}

#[test]
fn cni_args_known_keys_without_ignore_unknown() {
    let args = parse_cni_args("K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1").unwrap();
    assert_eq!(args.pod_namespace.as_deref(), Some("kube-system"));
    assert_eq!(args.pod_name.as_deref(), Some("coredns-1"));
    assert_eq!(args.infra_container_id, None);
    assert_eq!(args.pod_uid, None);
}

#[test]
fn cni_args_empty_string_and_empty_values() {
    assert_eq!(parse_cni_args("").unwrap(), CniArgs::default());
    let args = parse_cni_args("K8S_POD_NAMESPACE=;K8S_POD_NAME=x;").unwrap();
    assert_eq!(args.pod_namespace, None);
    assert_eq!(args.pod_name.as_deref(), Some("x"));
}

#[test]
fn cni_args_unknown_key_needs_ignore_unknown() {
    assert_env_err(
        parse_cni_args("K8S_POD_NAME=x;MY_KEY=1"),
        "CNI_ARGS",
        "unknown key \"MY_KEY\"",
    );
    for flag in ["1", "true", "True", "TRUE"] {
        let s = format!("IgnoreUnknown={flag};K8S_POD_NAME=x;MY_KEY=1");
        assert_eq!(parse_cni_args(&s).unwrap().pod_name.as_deref(), Some("x"));
    }
    // Position does not matter.
    assert!(parse_cni_args("MY_KEY=1;IgnoreUnknown=1").is_ok());
    for flag in ["0", "false", "False"] {
        let s = format!("IgnoreUnknown={flag};MY_KEY=1");
        assert_env_err(parse_cni_args(&s), "CNI_ARGS", "\"MY_KEY\"");
    }
    assert!(parse_cni_args("IgnoreUnknown=0").is_ok());
}

#[test]
fn cni_args_malformed_pairs() {
    assert_env_err(
        parse_cni_args("K8S_POD_NAME"),
        "CNI_ARGS",
        "\"K8S_POD_NAME\"",
    );
    assert_env_err(
        parse_cni_args("IgnoreUnknown=1;novalue"),
        "CNI_ARGS",
        "\"novalue\"",
    );
    assert_env_err(parse_cni_args("=x"), "CNI_ARGS", "empty key");
    assert_env_err(
        parse_cni_args("IgnoreUnknown=yes"),
        "CNI_ARGS",
        "IgnoreUnknown",
    );
}

#[test]
fn cni_args_value_may_contain_equals_and_last_duplicate_wins() {
    let args = parse_cni_args("K8S_POD_NAME=a=b;K8S_POD_UID=1;K8S_POD_UID=2").unwrap();
    assert_eq!(args.pod_name.as_deref(), Some("a=b"));
    assert_eq!(args.pod_uid.as_deref(), Some("2"));
}
