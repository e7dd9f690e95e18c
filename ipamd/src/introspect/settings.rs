//! The settings ipamd started with, for `/v1/config` and the `*-env-settings` paths: taken from
//! clap's own view of the command line and environment at start, so every knob shows up,
//! whichever part of ipamd declared it, with where its value came from.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::CommandFactory;

use super::reports::{EnvSettings, SettingRow};
use crate::config::Settings;

/// Node networking knobs, the AWS VPC CNI's `/v1/networkutils-env-settings` (its names, and
/// ours that shape the node's datapath).
pub const NETWORKING_VARIABLES: &[&str] = &[
    "AWS_VPC_K8S_CNI_EXTERNALSNAT",
    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT",
    "AWS_VPC_K8S_CNI_CONNMARK",
    "AWS_VPC_K8S_CNI_VETHPREFIX",
    "AWS_VPC_ENI_MTU",
    "AWS_VPC_CNI_NODE_PORT_SUPPORT",
    "DISABLE_TCP_EARLY_DEMUX",
    "POD_MTU",
    "BLOCK_POD_IMDS",
    "ENABLE_POD_FAST_PATH",
    "ENABLE_HYBRID_OVERLAY",
    "HYBRID_PATH_MTU",
    "DATAPATH_RESYNC_INTERVAL",
    "CLUSTER_CIDR",
    "VXLAN_VNI",
    "VXLAN_PORT",
    "VXLAN_UNDERLAY_IFACE",
    "VXLAN_DIRECT_ROUTING",
];

/// Every setting of `Settings` as `args` and the process environment give it (the way ipamd
/// parsed them at start); empty if they no longer parse.
#[must_use]
pub fn settings_rows(args: &[OsString]) -> Vec<SettingRow> {
    let command = Settings::command();
    let Ok(matches) = command.clone().try_get_matches_from(args) else {
        return Vec::new();
    };
    let mut rows: Vec<SettingRow> = command
        .get_arguments()
        .filter_map(|arg| {
            let variable = arg.get_env()?.to_string_lossy().into_owned();
            let id = arg.get_id().as_str();
            let value = matches.get_raw(id).map(|values| {
                values
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            });
            let source = match matches.value_source(id) {
                Some(ValueSource::EnvVariable) => "env",
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::DefaultValue) => "default",
                _ => "unset",
            };
            Some(SettingRow {
                variable,
                flag: arg
                    .get_long()
                    .map(|long| format!("--{long}"))
                    .unwrap_or_default(),
                value,
                source: source.to_owned(),
            })
        })
        .collect();
    rows.sort_by(|a, b| a.variable.cmp(&b.variable));
    rows
}

/// Variable -> value of every setting that has one, as `/v1/ipamd-env-settings` answers.
#[must_use]
pub fn env_settings(rows: &[SettingRow], only: Option<&[&str]>) -> EnvSettings {
    rows.iter()
        .filter(|r| only.is_none_or(|names| names.contains(&r.variable.as_str())))
        .filter_map(|r| Some((r.variable.clone(), r.value.clone()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rows(args: &[&str]) -> Vec<SettingRow> {
        let args: Vec<OsString> = std::iter::once("ipamd")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        settings_rows(&args)
    }

    fn row<'a>(rows: &'a [SettingRow], variable: &str) -> &'a SettingRow {
        rows.iter().find(|r| r.variable == variable).unwrap()
    }

    #[test]
    fn every_setting_shows_with_its_value_and_source() {
        let rows = rows(&["--warm-ip-target", "5", "--disable-metrics", "true"]);
        let warm = row(&rows, "WARM_IP_TARGET");
        assert_eq!(
            (
                warm.value.as_deref(),
                warm.source.as_str(),
                warm.flag.as_str()
            ),
            (Some("5"), "flag", "--warm-ip-target")
        );
        let cooldown = row(&rows, "IP_COOLDOWN_PERIOD");
        assert_eq!(
            (cooldown.value.as_deref(), cooldown.source.as_str()),
            (Some("30"), "default")
        );
        assert_eq!(row(&rows, "DISABLE_METRICS").value.as_deref(), Some("true"));
        let pod_cidr = row(&rows, "POD_CIDR");
        assert_eq!(
            (pod_cidr.value.as_deref(), pod_cidr.source.as_str()),
            (None, "unset")
        );
        for knob in [
            "METRICS_ADDR",
            "INTROSPECTION_BIND_ADDRESS",
            "DISABLE_INTROSPECTION",
            "VPC_CNI_MODE",
            "VXLAN_PORT",
        ] {
            row(&rows, knob);
        }
    }

    #[test]
    fn env_settings_keep_values_and_the_networking_subset() {
        let rows = rows(&["--external-snat", "true"]);
        let all = env_settings(&rows, None);
        assert_eq!(all.get("WARM_ENI_TARGET").map(String::as_str), Some("1"));
        assert!(!all.contains_key("POD_CIDR"), "an unset knob has no value");
        let net = env_settings(&rows, Some(NETWORKING_VARIABLES));
        assert_eq!(
            net.get("AWS_VPC_K8S_CNI_EXTERNALSNAT").map(String::as_str),
            Some("true")
        );
        assert!(!net.contains_key("WARM_ENI_TARGET"));
    }
}
