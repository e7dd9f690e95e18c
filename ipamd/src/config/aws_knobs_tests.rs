#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::ffi::OsString;

use clap::CommandFactory;

use super::*;
use crate::config::Settings;

fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| OsString::from(v))
    }
}

/// Every variable a setting of ours reads.
fn read_by_settings() -> BTreeSet<String> {
    Settings::command()
        .get_arguments()
        .filter_map(|a| a.get_env()?.to_str().map(str::to_owned))
        .collect()
}

#[test]
fn each_variable_has_one_row() {
    let mut seen = BTreeSet::new();
    for knob in AWS_KNOBS {
        assert!(seen.insert(knob.name), "{} is listed twice", knob.name);
    }
}

#[test]
fn implemented_knobs_are_read_by_a_setting_and_no_other_is() {
    let read = read_by_settings();
    for knob in AWS_KNOBS {
        let by_setting = read.contains(knob.name);
        match knob.treatment {
            Treatment::Implemented { .. } => {
                assert!(
                    by_setting,
                    "{} is classified implemented but no setting reads it",
                    knob.name
                );
            }
            Treatment::Equivalent { .. } | Treatment::Refused { .. } => assert!(
                !by_setting,
                "{} has a setting yet is classified as not implemented",
                knob.name
            ),
        }
    }
}

/// The env block of the AWS VPC CNI's own manifest (v1.18: the chart's defaults plus the
/// per-cluster values EKS fills in) does not stop ipamd, apart from the one value that asks
/// for a feature vpc-cni lacks.
#[test]
fn the_aws_manifest_env_block_is_accepted_and_custom_networking_refused() {
    let block = [
        ("ADDITIONAL_ENI_TAGS", "{}"),
        ("AWS_VPC_CNI_NODE_PORT_SUPPORT", "true"),
        ("AWS_VPC_ENI_MTU", "9001"),
        ("AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER", "false"),
        ("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "false"),
        ("AWS_VPC_K8S_CNI_EXTERNALSNAT", "false"),
        ("AWS_VPC_K8S_CNI_LOGLEVEL", "DEBUG"),
        (
            "AWS_VPC_K8S_CNI_LOG_FILE",
            "/host/var/log/aws-routed-eni/ipamd.log",
        ),
        ("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "prng"),
        ("AWS_VPC_K8S_CNI_VETHPREFIX", "eni"),
        (
            "AWS_VPC_K8S_PLUGIN_LOG_FILE",
            "/var/log/aws-routed-eni/plugin.log",
        ),
        ("AWS_VPC_K8S_PLUGIN_LOG_LEVEL", "DEBUG"),
        ("CLUSTER_NAME", "prod"),
        ("DISABLE_INTROSPECTION", "false"),
        ("DISABLE_METRICS", "false"),
        ("DISABLE_NETWORK_RESOURCE_PROVISIONING", "false"),
        ("DISABLE_TCP_EARLY_DEMUX", "false"),
        ("ENABLE_IPv4", "true"),
        ("ENABLE_IPv6", "false"),
        ("ENABLE_POD_ENI", "false"),
        ("ENABLE_PREFIX_DELEGATION", "false"),
        ("NETWORK_POLICY_ENFORCING_MODE", "standard"),
        ("VPC_CNI_VERSION", "v1.18.1"),
        ("VPC_ID", "vpc-0123456789abcdef0"),
        ("WARM_ENI_TARGET", "1"),
        ("WARM_PREFIX_TARGET", "1"),
        ("MY_NODE_NAME", "ip-10-0-0-1.ec2.internal"),
        ("MY_POD_NAME", "aws-node-x7k2p"),
    ];
    for (name, _) in block {
        assert!(aws_knob(name).is_some(), "{name} is missing from the table");
    }
    let notices = check_aws_knobs(env(&block)).unwrap();
    let noticed: BTreeSet<&str> = notices.iter().map(|n| n.variable).collect();
    for name in [
        "AWS_VPC_K8S_CNI_VETHPREFIX",
        "ENABLE_IPv4",
        "VPC_CNI_VERSION",
        "MY_POD_NAME",
    ] {
        assert!(noticed.contains(name), "{name} was accepted without a word");
    }
    let with_custom_networking = [("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true")];
    let err = check_aws_knobs(env(&with_custom_networking))
        .unwrap_err()
        .to_string();
    assert!(err.contains("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"), "{err}");
}

#[test]
fn veth_prefix_eni_and_vpc_are_accepted_and_say_the_veths_stay_vpc() {
    for value in ["eni", "vpc", "ENI"] {
        let notices = check_aws_knobs(env(&[("AWS_VPC_K8S_CNI_VETHPREFIX", value)])).unwrap();
        assert_eq!(notices.len(), 1);
        let line = notices[0].to_string();
        assert!(
            line.contains("AWS_VPC_K8S_CNI_VETHPREFIX") && line.contains("vpc…"),
            "{line}"
        );
    }
    let err = check_aws_knobs(env(&[("AWS_VPC_K8S_CNI_VETHPREFIX", "cali")])).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("AWS_VPC_K8S_CNI_VETHPREFIX") && text.contains("cali"),
        "{text}"
    );
}

#[test]
fn defaults_and_matching_values_pass_with_a_notice_each() {
    assert_eq!(check_aws_knobs(env(&[])).unwrap(), Vec::new());
    let notices = check_aws_knobs(env(&[
        ("ENABLE_IPv6", "false"),
        ("AWS_VPC_K8S_CNI_CONNMARK", "0x80"),
        ("ENABLE_V4_EGRESS", "True"),
        ("AWS_EXTERNAL_SERVICE_CIDRS", ""),
    ]))
    .unwrap();
    let noticed: Vec<&str> = notices.iter().map(|n| n.variable).collect();
    // The empty value counts as unset, as the AWS VPC CNI reads it.
    assert_eq!(
        noticed,
        [
            "ENABLE_IPv6",
            "ENABLE_V4_EGRESS",
            "AWS_VPC_K8S_CNI_CONNMARK"
        ]
    );
}

#[test]
fn a_feature_we_lack_is_refused_by_name() {
    for (name, value) in [
        ("ENABLE_POD_ENI", "true"),
        ("AWS_VPC_K8S_CNI_BACKING_STORE", "/x"),
        ("NETWORK_POLICY_ENFORCING_MODE", "strict"),
        ("DISABLE_TCP_EARLY_DEMUX", "true"),
        ("ENABLE_IPv4", "false"),
        ("HOST_CNI_CONFDIR_PATH", "/elsewhere"),
        ("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "none"),
    ] {
        let err = check_aws_knobs(env(&[(name, value)])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(name) && text.contains(value), "{text}");
    }
}

#[test]
fn a_bool_is_read_as_the_aws_vpc_cni_reads_it() {
    for yes in ["1", "t", "TRUE", "True", " true "] {
        assert!(Values::Bool(true).admits(yes), "{yes:?}");
    }
    for not in ["yes", "on", "tru", "2"] {
        assert!(!Values::AnyBool.admits(not), "{not:?}");
    }
}

/// Found by `prop_unsupported_knobs_name_the_knob`: ipamd read these knobs with
/// `std::env::var(..).ok()`, so a value that is not UTF-8 counted as unset and the knob
/// was silently ignored.
#[test]
fn a_value_that_is_not_utf8_is_refused_not_ignored() {
    use std::os::unix::ffi::OsStringExt;
    for name in ["ENABLE_IPv6", "VPC_CNI_VERSION"] {
        let raw = || Some(OsString::from_vec(b"tru\xffe".to_vec()));
        let err = check_aws_knobs(|k| (k == name).then(raw).flatten()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(name) && text.contains('\u{fffd}'), "{text}");
    }
}
