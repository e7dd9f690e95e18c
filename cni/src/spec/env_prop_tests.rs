//! Properties of the `CNI_*` environment and `CNI_ARGS` parsers on any values: they never
//! panic, and every refusal is code 4 naming the variable, with the offending value or key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use proptest::prelude::*;
use vpc_cni_testkit::prop::{config, gen};

use super::*;
use crate::error::code;

/// The keys `CNI_ARGS` knows, `IgnoreUnknown` aside.
const POD_KEYS: [&str; 4] = [
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// Asserts a code-4 refusal naming `var`; returns the message.
fn env_refusal<T: std::fmt::Debug>(
    result: &Result<T, CniError>,
    var: &str,
) -> Result<String, TestCaseError> {
    match result {
        Err(err @ CniError::InvalidEnvironment { var: named, .. }) => {
            prop_assert_eq!(*named, var);
            prop_assert_eq!(err.code(), code::INVALID_ENVIRONMENT);
            let msg = err.to_string();
            prop_assert!(msg.contains(var), "{}", msg);
            Ok(msg)
        }
        other => Err(TestCaseError::fail(format!(
            "expected a refusal naming {var}, got {other:?}"
        ))),
    }
}

/// One `KEY=VALUE` pair of `CNI_ARGS`: known keys, `IgnoreUnknown` with good and bad
/// booleans, and unknown keys; values hold anything but the separator.
fn pair() -> impl Strategy<Value = (String, String)> {
    let value = "[^;]{0,40}";
    prop_oneof![
        (prop::sample::select(&POD_KEYS[..]), value).prop_map(|(k, v)| (k.to_owned(), v)),
        prop_oneof![
            prop::sample::select(vec!["1", "0", "true", "false", "TRUE", "False"])
                .prop_map(str::to_owned),
            "[^;]{0,8}",
        ]
        .prop_map(|v| ("IgnoreUnknown".to_owned(), v)),
        ("[A-Za-z_][A-Za-z0-9_]{0,12}", value),
    ]
}

/// The reference library's reading of `IgnoreUnknown`.
fn as_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// What a variable holds in a generated environment.
#[derive(Debug, Clone)]
enum Setting {
    Valid,
    Absent,
    Empty,
    Any(String),
}

fn setting() -> impl Strategy<Value = Setting> {
    prop_oneof![
        4 => Just(Setting::Valid),
        1 => Just(Setting::Absent),
        1 => Just(Setting::Empty),
        2 => gen::string().prop_map(Setting::Any),
    ]
}

/// A value every command accepts for `var`.
fn valid_value(var: &str, command: Command) -> String {
    match var {
        "CNI_COMMAND" => command.as_str().to_owned(),
        "CNI_CONTAINERID" => "0123abcd".into(),
        "CNI_NETNS" => "/var/run/netns/cni-1".into(),
        "CNI_IFNAME" => "eth0".into(),
        "CNI_ARGS" => "IgnoreUnknown=1;K8S_POD_NAME=web-0;FOO=bar".into(),
        _ => "/opt/cni/bin".into(),
    }
}

fn environment() -> impl Strategy<Value = (Command, BTreeMap<&'static str, Setting>)> {
    (
        prop::sample::select(&Command::ALL[..]),
        prop::collection::vec(setting(), VARS.len()),
    )
        .prop_map(|(command, settings)| (command, VARS.into_iter().zip(settings).collect()))
}

fn values(command: Command, env: &BTreeMap<&'static str, Setting>) -> BTreeMap<String, String> {
    env.iter()
        .filter_map(|(var, setting)| {
            let value = match setting {
                Setting::Valid => valid_value(var, command),
                Setting::Absent => return None,
                Setting::Empty => String::new(),
                Setting::Any(v) => v.clone(),
            };
            Some(((*var).to_owned(), value))
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Any text at all, separators and `=` weighted in.
    #[test]
    fn prop_cni_args_any_text_is_parsed_or_refused_naming_cni_args(
        text in prop_oneof!["[;=a-zA-Z_0-9]{0,60}", gen::string()],
    ) {
        match parse_cni_args(&text) {
            Ok(args) => {
                for value in [&args.pod_namespace, &args.pod_name, &args.infra_container_id,
                              &args.pod_uid].into_iter().flatten() {
                    prop_assert!(!value.is_empty() && text.contains(value.as_str()));
                }
            }
            result => { env_refusal(&result, "CNI_ARGS")?; }
        }
    }

    /// Well-formed pair lists against a model of the reference library: `IgnoreUnknown`
    /// (the last one) decides about unknown keys, a bad one is refused by name, the last of
    /// repeated keys wins and an empty value counts as absent.
    #[test]
    fn prop_cni_args_pairs_follow_the_reference_rules(
        pairs in prop::collection::vec(pair(), 0..8),
        trailing in any::<bool>(),
    ) {
        let mut text = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";");
        if trailing {
            text.push(';');
        }
        let result = parse_cni_args(&text);

        let mut ignore = false;
        for (_, v) in pairs.iter().filter(|(k, _)| k == "IgnoreUnknown") {
            match as_bool(v) {
                Some(b) => ignore = b,
                None => {
                    let msg = env_refusal(&result, "CNI_ARGS")?;
                    prop_assert!(msg.contains("IgnoreUnknown"), "{}", msg);
                    return Ok(());
                }
            }
        }
        let unknown = pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| *k != "IgnoreUnknown" && !POD_KEYS.contains(k));
        if let (Some(key), false) = (unknown, ignore) {
            let msg = env_refusal(&result, "CNI_ARGS")?;
            prop_assert!(msg.contains(&format!("{key:?}")), "{}", msg);
            return Ok(());
        }
        let args = result.unwrap();
        let last = |key: &str| {
            pairs.iter().rev().find(|(k, _)| k == key).and_then(|(_, v)| {
                (!v.is_empty()).then(|| v.clone())
            })
        };
        prop_assert_eq!(args.pod_namespace, last("K8S_POD_NAMESPACE"));
        prop_assert_eq!(args.pod_name, last("K8S_POD_NAME"));
        prop_assert_eq!(args.infra_container_id, last("K8S_POD_INFRA_CONTAINER_ID"));
        prop_assert_eq!(args.pod_uid, last("K8S_POD_UID"));
    }

    /// Every variable valid, missing, empty or anything: the environment is accepted only
    /// when what the command reads is valid, and a refusal names a variable that was not.
    #[test]
    fn prop_env_refusals_name_a_variable_that_was_not_valid((command, env) in environment()) {
        let given = values(command, &env);
        let result = CniEnv::from_lookup(|var| given.get(var).cloned());
        match &result {
            Ok(parsed) => {
                prop_assert_eq!(given.get("CNI_COMMAND").map(String::as_str),
                                Some(parsed.command.as_str()));
                if parsed.command.is_per_attachment() {
                    let id = parsed.container_id.as_deref().unwrap();
                    prop_assert!(validate_container_id(id).is_ok());
                    prop_assert!(validate_ifname(parsed.ifname.as_deref().unwrap()).is_ok());
                }
            }
            Err(CniError::InvalidEnvironment { var, .. }) => {
                let named = env.get(var).unwrap();
                prop_assert!(!matches!(named, Setting::Valid), "{:?} refused though valid", var);
                env_refusal(&result, var)?;
            }
            Err(other) => prop_assert!(false, "untyped answer {:?}", other),
        }
        let all_valid = env.values().all(|s| matches!(s, Setting::Valid));
        prop_assert!(!all_valid || result.is_ok(), "{:?}", result);
    }

    /// A value that is not UTF-8, in any variable and for any command, is refused naming
    /// that variable, even one the command would not read.
    #[test]
    fn prop_env_non_utf8_value_names_its_variable(
        (command, env) in environment(),
        var in prop::sample::select(&VARS[..]),
        prefix in "[ -~]{0,20}",
        bad in prop::collection::vec(prop_oneof![0x80u8..=0xbf, 0xf8u8..=0xff], 1..4),
        suffix in "[ -~]{0,20}",
    ) {
        let given = values(command, &env);
        let raw = [prefix.as_bytes(), &bad, suffix.as_bytes()].concat();
        let result = CniEnv::from_os_lookup(|v| {
            if v == var {
                Some(OsString::from_vec(raw.clone()))
            } else {
                given.get(v).map(OsString::from)
            }
        });
        let msg = env_refusal(&result, var)?;
        prop_assert!(msg.contains("not valid UTF-8"), "{}", msg);
    }

    /// Container ids and interface names: any string is accepted exactly when it fits the
    /// rule, and a refusal shows the value.
    #[test]
    fn prop_container_id_and_ifname_rules(
        text in prop_oneof!["[a-zA-Z0-9_.:/ -]{0,20}", gen::string()],
    ) {
        let id_ok = !text.is_empty()
            && text.len() <= MAX_CONTAINER_ID_LEN
            && text.starts_with(|c: char| c.is_ascii_alphanumeric())
            && text.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        let result = validate_container_id(&text);
        prop_assert_eq!(result.is_ok(), id_ok, "{:?}", text);
        if !id_ok {
            let msg = env_refusal(&result, "CNI_CONTAINERID")?;
            prop_assert!(msg.contains(&format!("{text:?}")), "{}", msg);
        }

        let if_ok = !text.is_empty()
            && text.len() <= MAX_IFNAME_LEN
            && text != "."
            && text != ".."
            && !text.chars().any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace());
        let result = validate_ifname(&text);
        prop_assert_eq!(result.is_ok(), if_ok, "{:?}", text);
        if !if_ok {
            env_refusal(&result, "CNI_IFNAME")?;
        }
    }
}
