//! Properties of ipamd's settings on any value of any variable: parsing never panics, and a
//! refusal, whether by the flag parser or by `Settings::validate`, names the variable.
//!
//! The variables come from the command definition itself, so a setting added later is
//! covered without touching this file. Values go in as `--flag=value`, through the same
//! value parsers the environment goes through (setting the process environment here would
//! race with every other test that parses settings).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::CommandFactory;
use proptest::prelude::*;
use vpc_cni_testkit::prop::{config, gen};

use super::non_utf8_setting;
use crate::config::{check_aws_knobs, Settings};
use crate::error::IpamdError;

/// (long flag, environment variable) of every setting.
fn settings() -> Vec<(String, String)> {
    Settings::command()
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let env = arg.get_env()?.to_str()?;
            Some((long.to_owned(), env.to_owned()))
        })
        .collect()
}

/// Values shaped like what each kind of setting takes, and near misses of them.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        // Counts, durations with and without units, past every integer type.
        "-?[0-9]{1,25}(ms|s|m|h|d|)",
        "[0-9]{0,3}\\.[0-9]{0,3}(e[+-]?[0-9]{1,4})?",
        prop::sample::select(vec!["NaN", "inf", "-inf", "1e-300", "-0", "0", "+1", " 30 "])
            .prop_map(str::to_owned),
        // Booleans, modes, CIDRs and lists of them.
        prop::sample::select(vec!["true", "FALSE", "yes", "1", "", "auto", "vpc", "overlay"])
            .prop_map(str::to_owned),
        "([0-9]{1,3}\\.){3}[0-9]{1,3}(/[0-9]{1,3})?(, ?([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}){0,3}",
        // Tags, paths, names, and anything at all.
        gen::value().prop_map(|v| v.to_string()),
        "/?[a-z0-9./ -]{0,30}",
        gen::string(),
    ]
}

/// Bytes that make any ASCII text before them invalid UTF-8: a lone continuation byte, or
/// one that never occurs in UTF-8.
fn non_utf8() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![0x80u8..=0xbf, 0xf8u8..=0xff], 1..3)
}

/// Which variable a refusal of `variable = value` may name: that variable, except that
/// overlay mode without a pod CIDR is about `POD_CIDR`.
fn may_name(variable: &str, named: &str) -> bool {
    named == variable || (variable == "VPC_CNI_MODE" && named == "POD_CIDR")
}

fn check(args: Vec<OsString>, variable: &str) -> Result<(), TestCaseError> {
    match Settings::try_parse_naming(args, |_| None) {
        Err(err) => {
            let msg = err.to_string();
            prop_assert!(
                msg.contains(variable),
                "refusal does not name {}: {}",
                variable,
                msg
            );
        }
        Ok(settings) => match settings.validate() {
            Ok(()) => {}
            Err(
                err @ IpamdError::Config {
                    variable: named, ..
                },
            ) => {
                prop_assert!(may_name(variable, named), "{} refused as {}", variable, err);
                prop_assert!(err.to_string().contains(named));
            }
            Err(other) => prop_assert!(false, "untyped answer {:?}", other),
        },
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// One setting at a time, any value.
    #[test]
    fn prop_settings_refusals_name_the_variable(
        at in any::<prop::sample::Index>(),
        value in value(),
    ) {
        let all = settings();
        let (long, variable) = &all[at.index(all.len())];
        let args = vec![OsString::from("ipamd"), OsString::from(format!("--{long}={value}"))];
        check(args, variable)?;
    }

    /// One setting at a time, a value that is not UTF-8.
    #[test]
    fn prop_settings_non_utf8_refusals_name_the_variable(
        at in any::<prop::sample::Index>(),
        prefix in "[ -~]{0,10}",
        bad in non_utf8(),
    ) {
        let all = settings();
        let (long, variable) = &all[at.index(all.len())];
        let mut arg = format!("--{long}={prefix}").into_bytes();
        arg.extend(bad);
        check(vec![OsString::from("ipamd"), OsString::from_vec(arg)], variable)?;
    }

    /// A variable whose value is not UTF-8 is named, unless it is a path (any bytes are).
    #[test]
    fn prop_settings_non_utf8_variable_is_named(
        at in any::<prop::sample::Index>(),
        prefix in "[ -~]{0,10}",
        bad in non_utf8(),
    ) {
        let all = settings();
        let (long, variable) = &all[at.index(all.len())];
        let raw = [prefix.as_bytes(), &bad].concat();
        let env = |v: &str| (v == variable).then(|| OsString::from_vec(raw.clone()));
        let is_path = [
            "IPAMD_SOCKET", "IPAMD_STATE_DIR", "PEERS_FILE", "KUBECONFIG", "CNI_CONF_DIR",
            "SYSCTL_NET_DIR",
        ]
        .contains(&variable.as_str());
        match non_utf8_setting(&[], env) {
            Some(msg) => {
                prop_assert!(!is_path, "path {} refused: {}", variable, msg);
                prop_assert!(msg.contains(variable.as_str()) && msg.contains("UTF-8"), "{}", msg);
                prop_assert!(!msg.contains(&format!("--{long}")), "{}", msg);
            }
            None => prop_assert!(is_path, "{} not refused", variable),
        }
    }

    /// The AWS VPC CNI knobs we do not implement: any value is accepted (with a notice) or
    /// refused naming the knob.
    #[test]
    fn prop_unsupported_knobs_name_the_knob(
        knob in prop::sample::select(vec![
            "ENABLE_IPv6", "ENABLE_POD_ENI", "AWS_VPC_K8S_CNI_CONNMARK",
            "AWS_VPC_K8S_CNI_BACKING_STORE", "AWS_EXTERNAL_SERVICE_CIDRS", "SOME_OTHER_VAR",
            "AWS_VPC_K8S_CNI_VETHPREFIX", "VPC_CNI_VERSION", "NETWORK_POLICY_ENFORCING_MODE",
        ]),
        value in prop_oneof![
            value().prop_map(Vec::from),
            Just(b"false".to_vec()),
            Just(b" 0x80 ".to_vec()),
            ("[ -~]{0,8}", non_utf8()).prop_map(|(p, bad)| [p.as_bytes(), &bad].concat()),
        ],
    ) {
        let raw = OsString::from_vec(value.clone());
        match check_aws_knobs(|name| (name == knob).then(|| raw.clone())) {
            Ok(_) => prop_assert!(
                knob == "SOME_OTHER_VAR" || raw.to_str().is_some(),
                "{} = {:?} taken as what we do", knob, raw
            ),
            Err(err @ IpamdError::Unsupported { variable, .. }) => {
                prop_assert_eq!(variable, knob);
                prop_assert!(err.to_string().contains(knob));
            }
            Err(other) => prop_assert!(false, "untyped answer {:?}", other),
        }
    }
}

/// Found by `prop_settings_non_utf8_refusals_name_the_variable`: clap refused a value that
/// is not UTF-8 with "invalid UTF-8 was detected in one or more arguments", naming no
/// variable.
#[test]
fn a_non_utf8_value_is_refused_naming_its_variable() {
    let flag = OsString::from_vec(b"--ip-cooldown-period=3\x80s".to_vec());
    let err = Settings::try_parse_naming([OsString::from("ipamd"), flag], |_| None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("IP_COOLDOWN_PERIOD") && msg.contains("--ip-cooldown-period"),
        "{msg}"
    );

    let env = |v: &str| (v == "POD_CIDR").then(|| OsString::from_vec(b"10.0.0.0/\xff".to_vec()));
    let msg = non_utf8_setting(&[], env).unwrap();
    assert!(
        msg.contains("POD_CIDR") && msg.contains("not valid UTF-8"),
        "{msg}"
    );
    // Paths may be any bytes.
    let env = |v: &str| (v == "PEERS_FILE").then(|| OsString::from_vec(b"/etc/\xff".to_vec()));
    assert_eq!(non_utf8_setting(&[], env), None);
}
