//! Properties of the network configuration parser on any stdin: it never panics, and every
//! refusal is a spec error with its code whose message names what was wrong (the key, or
//! "network configuration on stdin" for what is not a JSON object at all).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use vpc_cni_testkit::prop::{config, gen};

use super::*;
use crate::error::code;

/// Every key the parser reads.
const KEYS: [&str; 10] = [
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "ipamdSocket",
    "mtu",
    "prevResult",
    "runtimeConfig",
    VALID_ATTACHMENTS,
    ATTACHMENTS_ALIAS,
];

/// A configuration the parser must accept, with every optional key present or not.
fn valid_conf() -> impl Strategy<Value = Map<String, Value>> {
    let version = prop::sample::select(CniVersion::supported_strings());
    let attachments = prop::collection::vec(
        ("[a-z0-9]{1,64}", "eth[0-9]").prop_map(|(c, i)| json!({"containerID": c, "ifname": i})),
        0..4,
    );
    (
        version,
        prop::option::of(prop::collection::vec(
            prop::sample::select(CniVersion::supported_strings()),
            0..3,
        )),
        "[a-zA-Z0-9_.-]{1,32}",
        "[a-z-]{1,16}",
        prop::option::of("/[a-z0-9/._-]{1,60}"),
        prop::option::of(MTU_MIN..=MTU_MAX),
        prop::option::of(gen::value()),
        prop::option::of(attachments),
    )
        .prop_map(
            |(version, versions, name, kind, socket, mtu, extra, attached)| {
                let mut conf = Map::new();
                conf.insert("cniVersion".into(), json!(version));
                if let Some(mut list) = versions {
                    list.push(version);
                    conf.insert("cniVersions".into(), json!(list));
                }
                conf.insert("name".into(), json!(name));
                conf.insert("type".into(), json!(kind));
                if let Some(socket) = socket {
                    conf.insert("ipamdSocket".into(), json!(socket));
                }
                if let Some(mtu) = mtu {
                    conf.insert("mtu".into(), json!(mtu));
                }
                if let Some(extra) = extra {
                    // A chained plugin's key, and a prevResult that is some object.
                    conf.insert("somePluginKey".into(), extra.clone());
                    conf.insert("prevResult".into(), json!({ "opaque": extra }));
                }
                if let Some(attached) = attached {
                    conf.insert(VALID_ATTACHMENTS.into(), json!(attached));
                }
                conf
            },
        )
}

/// One structure-aware change to a valid configuration.
#[derive(Debug, Clone)]
enum Edit {
    Drop(&'static str),
    /// Any JSON value under the key: wrong types, nulls, unicode, long strings, nesting.
    Set(&'static str, Value),
    /// A JSON text no `Value` holds (huge numbers, deep nesting) under the key.
    SetRaw(&'static str, String),
}

impl Edit {
    fn key(&self) -> &'static str {
        match self {
            Edit::Drop(k) | Edit::Set(k, _) | Edit::SetRaw(k, _) => k,
        }
    }
}

/// Values just off what each key takes: bounds, types one step away, empty forms.
fn near_misses() -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for mtu in [
        json!(0),
        json!(MTU_MIN - 1),
        json!(MTU_MAX + 1),
        json!(-1),
        json!(1500.5),
        json!(u64::from(u32::MAX) + u64::from(MTU_MIN)),
        json!("1500"),
    ] {
        out.push(("mtu", mtu));
    }
    for v in [
        json!(""),
        json!("1.0"),
        json!("2.0.0"),
        json!(" 1.0.0"),
        json!(1),
    ] {
        out.push(("cniVersion", v));
    }
    for v in [
        json!([]),
        json!(["9.9.9"]),
        json!([1]),
        json!("1.0.0"),
        json!(["1.0.0", null]),
    ] {
        out.push(("cniVersions", v));
    }
    for key in ["name", "type"] {
        for v in [json!(""), json!(0), json!([]), json!({})] {
            out.push((key, v));
        }
    }
    for v in [json!("relative.sock"), json!(""), json!(7)] {
        out.push(("ipamdSocket", v));
    }
    for key in ["prevResult", "runtimeConfig"] {
        for v in [json!([]), json!("x"), json!(1)] {
            out.push((key, v));
        }
    }
    for key in [VALID_ATTACHMENTS, ATTACHMENTS_ALIAS] {
        for v in [
            json!({}),
            json!([1]),
            json!([{}]),
            json!([{"containerID": 1, "ifname": "e"}]),
            json!([{"containerID": "c"}]),
        ] {
            out.push((key, v));
        }
    }
    out
}

fn edit() -> impl Strategy<Value = Edit> {
    let key = prop::sample::select(&KEYS[..]);
    prop_oneof![
        1 => key.clone().prop_map(Edit::Drop),
        2 => (key.clone(), gen::value()).prop_map(|(k, v)| Edit::Set(k, v)),
        1 => (key, gen::raw_json()).prop_map(|(k, raw)| Edit::SetRaw(k, raw)),
        2 => prop::sample::select(near_misses()).prop_map(|(k, v)| Edit::Set(k, v)),
    ]
}

/// The configuration's text after `edits`.
fn edited(mut conf: Map<String, Value>, edits: &[Edit]) -> Vec<u8> {
    let mut raw_by_key = std::collections::BTreeMap::new();
    for edit in edits {
        raw_by_key.remove(edit.key());
        match edit {
            Edit::Drop(k) => {
                conf.remove(*k);
            }
            Edit::Set(k, v) => {
                conf.insert((*k).into(), v.clone());
            }
            Edit::SetRaw(k, raw) => {
                conf.insert((*k).into(), json!(gen::RAW_MARK));
                raw_by_key.insert(*k, raw.clone());
            }
        }
    }
    // The marks are replaced in the order the text holds them: the map's own order.
    let raws: Vec<String> = conf
        .keys()
        .filter_map(|k| raw_by_key.get(k.as_str()).cloned())
        .collect();
    gen::splice_raw(&Value::Object(conf), &raws).into_bytes()
}

/// The key an `InvalidConfig` field is about: `cniVersions[2]` and
/// `cni.dev/valid-attachments[0].ifname` are about their array's key.
fn root_key(field: &str) -> &str {
    field.split('[').next().unwrap_or(field)
}

/// What every answer of the parser must be: success, or a spec error whose code matches
/// its kind and whose message names the offending input.
fn check_answer(result: &Result<NetConf, CniError>) -> Result<(), TestCaseError> {
    let Err(err) = result else { return Ok(()) };
    let msg = err.to_string();
    match err {
        CniError::Decode { what, .. } => {
            prop_assert_eq!(err.code(), code::DECODE_FAILURE);
            prop_assert_eq!(what.as_str(), STDIN_WHAT);
            prop_assert!(msg.contains(STDIN_WHAT), "{}", msg);
        }
        CniError::InvalidConfig { field, .. } => {
            prop_assert_eq!(err.code(), code::INVALID_NETWORK_CONFIG);
            prop_assert!(KEYS.contains(&root_key(field)), "unknown field {:?}", field);
            prop_assert!(msg.contains(field.as_str()), "{}", msg);
        }
        CniError::IncompatibleVersion { .. } => {
            prop_assert_eq!(err.code(), code::INCOMPATIBLE_VERSION);
            prop_assert!(msg.contains("CNI version"), "{}", msg);
        }
        other => prop_assert!(false, "untyped answer {:?}", other),
    }
    // What the plugin prints: the spec's error object.
    let printed = err.to_json(&parse_version_only(b""));
    prop_assert_eq!(printed["code"].as_u64(), Some(u64::from(err.code())));
    Ok(())
}

/// What an accepted configuration must satisfy, whatever it came from.
fn check_accepted(conf: &NetConf) -> Result<(), TestCaseError> {
    prop_assert!(!conf.name.is_empty());
    prop_assert!(!conf.plugin_type.is_empty());
    prop_assert!(conf.mtu.is_none_or(|m| (MTU_MIN..=MTU_MAX).contains(&m)));
    prop_assert!(conf.ipamd_socket.as_ref().is_none_or(|p| p.is_absolute()));
    prop_assert!(conf.runtime_config.is_object());
    prop_assert_eq!(
        conf.raw.get("name").and_then(Value::as_str),
        Some(conf.name.as_str())
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes, and valid configurations with bytes flipped, inserted (non-UTF-8 among
    /// them), removed, cut off or repeated.
    #[test]
    fn prop_netconf_any_bytes_answer_a_spec_error(
        bytes in gen::bytes_around(
            valid_conf().prop_map(|c| Value::Object(c).to_string().into_bytes()).boxed()
        ),
    ) {
        let result = parse_netconf(&bytes);
        check_answer(&result)?;
        if let Ok(conf) = &result {
            check_accepted(conf)?;
        }
        // Never fails, and answers with something printable.
        let _ = parse_version_only(&bytes);
    }

    /// Any JSON document, object or not.
    #[test]
    fn prop_netconf_any_json_answers_a_spec_error(doc in gen::value()) {
        let result = parse_netconf(doc.to_string().as_bytes());
        check_answer(&result)?;
        if !doc.is_object() {
            prop_assert!(matches!(result, Err(CniError::Decode { .. })), "{:?}", result);
        }
    }

    /// Valid configurations with keys dropped or replaced by any value, including numbers
    /// past u64 and arrays nested thousands deep: a refusal names a key that was edited.
    #[test]
    fn prop_netconf_edited_keys_are_named(
        conf in valid_conf(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let bytes = edited(conf, &edits);
        let result = parse_netconf(&bytes);
        check_answer(&result)?;
        let touched: Vec<&str> = edits.iter().map(Edit::key).collect();
        let touched_version = touched.iter().any(|k| k.starts_with("cniVersion"));
        match &result {
            Ok(conf) => check_accepted(conf)?,
            Err(CniError::InvalidConfig { field, .. }) => {
                let key = root_key(field);
                // Editing cniVersions can make the untouched cniVersion unlisted in it.
                prop_assert!(
                    touched.contains(&key) || (key == "cniVersion" && touched_version),
                    "{} names {:?}, edits touched {:?}", result.as_ref().unwrap_err(), key, touched
                );
            }
            Err(CniError::IncompatibleVersion { .. }) => {
                prop_assert!(touched_version, "version refused, edits touched {:?}", touched);
            }
            // Only a raw text can make the document itself unreadable.
            Err(CniError::Decode { .. }) => prop_assert!(
                edits.iter().any(|e| matches!(e, Edit::SetRaw(..))),
                "{:?}", result
            ),
            Err(other) => prop_assert!(false, "untyped answer {:?}", other),
        }
    }

    /// Stdin over the limit is refused before it is parsed, naming the limit and the size.
    #[test]
    fn prop_netconf_oversized_stdin_names_the_limit(
        extra in 1usize..65_536,
        fill in any::<u8>(),
        conf in valid_conf(),
    ) {
        let doc = Value::Object(conf).to_string().into_bytes();
        // `vec!` of a byte is one memset; a resize loops byte by byte in a debug build.
        let mut bytes = vec![fill; MAX_STDIN_BYTES + extra];
        bytes[..doc.len()].copy_from_slice(&doc);
        let err = parse_netconf(&bytes).unwrap_err();
        prop_assert_eq!(err.code(), code::DECODE_FAILURE);
        let msg = err.to_string();
        prop_assert!(msg.contains("exceeds 1 MiB"), "{}", msg);
        prop_assert!(msg.contains(&bytes.len().to_string()), "{}", msg);
    }

    /// A valid configuration with a byte that is not UTF-8 inside one of its strings is a
    /// decode error: the plugin never guesses at what the runtime meant.
    #[test]
    fn prop_netconf_non_utf8_string_is_a_decode_error(
        conf in valid_conf(),
        bad in prop_oneof![0x80u8..=0xbf, 0xc0u8..=0xc1, 0xf5u8..=0xff],
        at in any::<prop::sample::Index>(),
    ) {
        let mut bytes = Value::Object(conf).to_string().into_bytes();
        // Right after the opening quote of the name's value: inside a string for sure.
        let name_at = bytes.windows(8).position(|w| w == b"\"name\":\"").unwrap() + 8;
        let name_len = bytes[name_at..].iter().position(|&b| b == b'"').unwrap();
        bytes.insert(name_at + at.index(name_len + 1), bad);
        let err = parse_netconf(&bytes).unwrap_err();
        prop_assert!(matches!(err, CniError::Decode { .. }), "{:?}", err);
        prop_assert!(err.to_string().contains(STDIN_WHAT));
    }
}
