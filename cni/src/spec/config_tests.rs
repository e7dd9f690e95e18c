#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

fn parse(v: &Value) -> Result<NetConf, CniError> {
    parse_netconf(v.to_string().as_bytes())
}

fn base() -> Value {
    json!({"cniVersion": "1.0.0", "name": "vpc", "type": "vpc-cni"})
}

fn with(key: &str, value: Value) -> Value {
    let mut conf = base();
    conf[key] = value;
    conf
}

/// Asserts an InvalidConfig (code 7) naming `field`, whose message contains `needle`.
fn assert_invalid(result: Result<NetConf, CniError>, field: &str, needle: &str) {
    let err = result.expect_err("expected an invalid config");
    assert_eq!(err.code(), 7, "{err}");
    match &err {
        CniError::InvalidConfig { field: f, .. } => assert_eq!(f, field, "{err}"),
        other => panic!("expected InvalidConfig for {field}, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(field), "{msg:?} should name {field}");
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
}

#[test]
fn minimal_config_parses_with_defaults() {
    let conf = parse(&base()).unwrap();
    assert_eq!(conf.cni_version, CniVersion::V1_0_0);
    assert_eq!(conf.name, "vpc");
    assert_eq!(conf.plugin_type, "vpc-cni");
    assert_eq!(conf.ipamd_socket, None);
    assert_eq!(conf.mtu, None);
    assert_eq!(conf.prev_result, None);
    assert_eq!(conf.runtime_config, json!({}));
    assert_eq!(conf.valid_attachments, None);
    assert_eq!(conf.raw, base());
}

#[test]
fn full_config_parses_every_field_and_keeps_unknown_keys() {
    let input = json!({
        "cniVersion": "0.4.0",
        "name": "vpc",
        "type": "vpc-cni",
        "ipamdSocket": "/run/vpc-cni/node-1.sock",
        "mtu": 9001,
        "prevResult": {"cniVersion": "0.4.0", "interfaces": []},
        "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 8080}]},
        "capabilities": {"portMappings": true},
        "someOtherPluginKey": [1, 2, 3],
    });
    let conf = parse(&input).unwrap();
    assert_eq!(conf.cni_version, CniVersion::V0_4_0);
    assert_eq!(
        conf.ipamd_socket.as_deref(),
        Some(std::path::Path::new("/run/vpc-cni/node-1.sock"))
    );
    assert_eq!(conf.mtu, Some(9001));
    assert_eq!(conf.prev_result, Some(input["prevResult"].clone()));
    assert_eq!(conf.runtime_config, input["runtimeConfig"]);
    assert_eq!(conf.raw["someOtherPluginKey"], json!([1, 2, 3]));
}

#[test]
fn null_optional_fields_count_as_absent() {
    let mut conf = base();
    for key in [
        "ipamdSocket",
        "mtu",
        "prevResult",
        "runtimeConfig",
        VALID_ATTACHMENTS,
    ] {
        conf[key] = Value::Null;
    }
    let parsed = parse(&conf).unwrap();
    assert_eq!(parsed.mtu, None);
    assert_eq!(parsed.prev_result, None);
    assert_eq!(parsed.runtime_config, json!({}));
    assert_eq!(parsed.valid_attachments, None);
}

#[test]
fn oversize_stdin_is_a_decode_error() {
    let mut bytes = base().to_string().into_bytes();
    bytes.resize(MAX_STDIN_BYTES + 1, b' ');
    let err = parse_netconf(&bytes).unwrap_err();
    assert_eq!(err.code(), 6);
    let msg = err.to_string();
    assert!(msg.contains("network configuration on stdin"), "{msg}");
    assert!(msg.contains("exceeds 1 MiB"), "{msg}");
    assert!(msg.contains(&(MAX_STDIN_BYTES + 1).to_string()), "{msg}");

    // Exactly the limit is still accepted (trailing whitespace is valid JSON).
    bytes.truncate(MAX_STDIN_BYTES);
    assert!(parse_netconf(&bytes).is_ok());
}

#[test]
fn malformed_json_is_a_decode_error_with_position() {
    let err = parse_netconf(b"{\"cniVersion\": \"1.0.0\",\n \"name\": }").unwrap_err();
    assert_eq!(err.code(), 6);
    let msg = err.to_string();
    assert!(msg.contains("network configuration on stdin"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(msg.contains("column"), "{msg}");

    for bad in [&b""[..], b"   ", b"{", b"\xff\xfe", b"{} trailing"] {
        assert_eq!(parse_netconf(bad).unwrap_err().code(), 6, "{bad:?}");
    }
}

#[test]
fn non_object_json_is_a_decode_error() {
    for (input, found) in [
        ("[1,2]", "an array"),
        ("\"x\"", "string"),
        ("42", "number 42"),
        ("null", "null"),
    ] {
        let err = parse_netconf(input.as_bytes()).unwrap_err();
        assert_eq!(err.code(), 6, "{input}");
        let msg = err.to_string();
        assert!(msg.contains("JSON object"), "{msg}");
        assert!(msg.contains(found), "{msg}");
    }
}

#[test]
fn unsupported_cni_version_is_code_1() {
    for v in ["0.2.0", "2.0.0", "latest"] {
        let err = parse(&with("cniVersion", json!(v))).unwrap_err();
        assert_eq!(err.code(), 1, "{v}");
        assert!(err.to_string().contains(v));
    }
}

#[test]
fn every_supported_version_is_accepted() {
    for v in CniVersion::ALL {
        let conf = parse(&with("cniVersion", json!(v.as_str()))).unwrap();
        assert_eq!(conf.cni_version, v);
    }
}

#[test]
fn missing_version_names_cni_version() {
    let mut conf = base();
    conf.as_object_mut().unwrap().remove("cniVersion");
    assert_invalid(parse(&conf), "cniVersion", "missing");
}

#[test]
fn cni_versions_picks_the_highest_supported() {
    let mut conf = base();
    conf.as_object_mut().unwrap().remove("cniVersion");
    conf["cniVersions"] = json!(["0.3.1", "1.0.0", "0.4.0", "2.0.0", "garbage"]);
    assert_eq!(parse(&conf).unwrap().cni_version, CniVersion::V1_0_0);

    conf["cniVersions"] = json!(["1.1.0", "0.3.0"]);
    assert_eq!(parse(&conf).unwrap().cni_version, CniVersion::V1_1_0);
}

#[test]
fn cni_versions_with_nothing_supported_is_code_1() {
    let mut conf = base();
    conf.as_object_mut().unwrap().remove("cniVersion");
    conf["cniVersions"] = json!(["0.1.0", "0.2.0", "2.0.0"]);
    let err = parse(&conf).unwrap_err();
    assert_eq!(err.code(), 1);
    let msg = err.to_string();
    assert!(msg.contains("0.2.0") && msg.contains("2.0.0"), "{msg}");
}

#[test]
fn cni_version_wins_when_listed_in_cni_versions() {
    let conf = with("cniVersions", json!(["0.4.0", "1.0.0", "1.1.0"]));
    assert_eq!(parse(&conf).unwrap().cni_version, CniVersion::V1_0_0);
}

#[test]
fn cni_version_not_in_cni_versions_is_invalid() {
    let conf = with("cniVersions", json!(["1.1.0", "0.4.0"]));
    assert_invalid(parse(&conf), "cniVersion", "\"1.0.0\" is not listed");
}

#[test]
fn cni_versions_type_errors_name_the_field() {
    assert_invalid(
        parse(&with("cniVersions", json!("1.0.0"))),
        "cniVersions",
        "array",
    );
    assert_invalid(
        parse(&with("cniVersions", json!([]))),
        "cniVersions",
        "at least one",
    );
    assert_invalid(
        parse(&with("cniVersions", json!(["1.0.0", 1]))),
        "cniVersions[1]",
        "number 1",
    );
}

#[test]
fn cni_version_must_be_a_string() {
    assert_invalid(
        parse(&with("cniVersion", json!(1.0))),
        "cniVersion",
        "number 1.0",
    );
}

#[test]
fn name_is_a_required_non_empty_string() {
    let mut conf = base();
    conf.as_object_mut().unwrap().remove("name");
    assert_invalid(parse(&conf), "name", "missing");
    assert_invalid(parse(&with("name", json!(""))), "name", "empty");
    assert_invalid(parse(&with("name", json!(7))), "name", "number 7");
    assert_invalid(parse(&with("name", Value::Null)), "name", "missing");
}

#[test]
fn type_is_a_required_string() {
    let mut conf = base();
    conf.as_object_mut().unwrap().remove("type");
    assert_invalid(parse(&conf), "type", "missing");
    assert_invalid(parse(&with("type", json!(["vpc-cni"]))), "type", "an array");
}

#[test]
fn ipamd_socket_must_be_an_absolute_path_string() {
    assert_invalid(
        parse(&with("ipamdSocket", json!("run/ipamd.sock"))),
        "ipamdSocket",
        "\"run/ipamd.sock\"",
    );
    assert_invalid(
        parse(&with("ipamdSocket", json!(""))),
        "ipamdSocket",
        "absolute",
    );
    assert_invalid(
        parse(&with("ipamdSocket", json!(true))),
        "ipamdSocket",
        "boolean true",
    );
}

#[test]
fn mtu_must_be_an_integer_in_range() {
    assert_eq!(parse(&with("mtu", json!(576))).unwrap().mtu, Some(576));
    assert_eq!(parse(&with("mtu", json!(1500))).unwrap().mtu, Some(1500));
    for (bad, needle) in [
        (json!(575), "575"),
        (json!(9002), "9002"),
        (json!(0), "found 0"),
        (json!(-1500), "-1500"),
        (json!(1500.5), "1500.5"),
        (json!(u64::MAX), &u64::MAX.to_string()),
        (json!("1500"), "string \"1500\""),
    ] {
        assert_invalid(parse(&with("mtu", bad)), "mtu", needle);
    }
}

#[test]
fn prev_result_and_runtime_config_must_be_objects() {
    assert_invalid(
        parse(&with("prevResult", json!("{}"))),
        "prevResult",
        "string",
    );
    assert_invalid(
        parse(&with("prevResult", json!([]))),
        "prevResult",
        "an array",
    );
    assert_invalid(
        parse(&with("runtimeConfig", json!(3))),
        "runtimeConfig",
        "number 3",
    );
}

#[test]
fn valid_attachments_parse() {
    let conf = with(
        VALID_ATTACHMENTS,
        json!([
            {"containerID": "abc", "ifname": "eth0"},
            {"containerID": "def", "ifname": "net1", "extra": 1},
        ]),
    );
    let attachments = parse(&conf).unwrap().valid_attachments.unwrap();
    assert_eq!(
        attachments,
        vec![
            Attachment {
                container_id: "abc".into(),
                ifname: "eth0".into()
            },
            Attachment {
                container_id: "def".into(),
                ifname: "net1".into()
            },
        ]
    );
    let empty = with(VALID_ATTACHMENTS, json!([]));
    assert_eq!(parse(&empty).unwrap().valid_attachments, Some(vec![]));
}

#[test]
fn attachments_alias_is_accepted_and_valid_attachments_preferred() {
    let alias = with(
        ATTACHMENTS_ALIAS,
        json!([{"containerID": "a", "ifname": "eth0"}]),
    );
    let got = parse(&alias).unwrap().valid_attachments.unwrap();
    assert_eq!(got[0].container_id, "a");

    let mut both = alias.clone();
    both[VALID_ATTACHMENTS] = json!([{"containerID": "b", "ifname": "eth0"}]);
    let got = parse(&both).unwrap().valid_attachments.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].container_id, "b");

    // A bad alias is not looked at when the preferred key is present.
    both[ATTACHMENTS_ALIAS] = json!("garbage");
    assert!(parse(&both).is_ok());
}

#[test]
fn attachment_type_errors_name_the_key_and_index() {
    assert_invalid(
        parse(&with(VALID_ATTACHMENTS, json!({"containerID": "a"}))),
        VALID_ATTACHMENTS,
        "an object",
    );
    assert_invalid(
        parse(&with(ATTACHMENTS_ALIAS, json!(["a"]))),
        "cni.dev/attachments[0]",
        "string \"a\"",
    );
    assert_invalid(
        parse(&with(
            VALID_ATTACHMENTS,
            json!([{"containerID": "a", "ifname": "eth0"}, {"ifname": "eth0"}]),
        )),
        "cni.dev/valid-attachments[1].containerID",
        "missing",
    );
    assert_invalid(
        parse(&with(
            VALID_ATTACHMENTS,
            json!([{"containerID": "a", "ifname": 0}]),
        )),
        "cni.dev/valid-attachments[0].ifname",
        "number 0",
    );
}

#[test]
fn attachment_serde_uses_spec_key_names() {
    let a = Attachment {
        container_id: "c".into(),
        ifname: "eth0".into(),
    };
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        json!({"containerID": "c", "ifname": "eth0"})
    );
}

#[test]
fn version_only_is_best_effort() {
    assert_eq!(parse_version_only(br#"{"cniVersion":"0.4.0"}"#), "0.4.0");
    assert_eq!(parse_version_only(br#"{"cniVersion":"9.9.9"}"#), "9.9.9");
    assert_eq!(parse_version_only(br#"{"cniVersion":1}"#), "1.1.0");
    assert_eq!(parse_version_only(br#"{"name":"x"}"#), "1.1.0");
    assert_eq!(parse_version_only(b"not json"), "1.1.0");
    assert_eq!(parse_version_only(b""), "1.1.0");
    assert_eq!(parse_version_only(b"[\"cniVersion\"]"), "1.1.0");
}

#[test]
fn describe_truncates_long_strings() {
    let long = "x".repeat(500);
    let d = describe(&json!(long));
    assert!(d.len() < 100, "{d}");
    assert!(d.ends_with("..."), "{d}");
    assert_eq!(describe(&json!("é")), "string \"é\"");
}
