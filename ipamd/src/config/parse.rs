//! Value parsers for settings: durations, MTUs, lists of CIDRs, booleans, tags.

use std::any::TypeId;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_proto::Mode;

use super::{ModeSetting, Settings};

/// Refuses a zero interval, naming the variable.
pub(super) fn require_nonzero(
    variable: &'static str,
    interval: std::time::Duration,
) -> Result<(), crate::error::IpamdError> {
    if interval.is_zero() {
        return Err(crate::error::IpamdError::Config {
            variable,
            reason: "must be greater than zero".into(),
        });
    }
    Ok(())
}

/// `auto`, or a mode's name (`vpc`, `overlay`).
pub fn parse_mode_setting(s: &str) -> Result<ModeSetting, String> {
    match s.trim() {
        "auto" => Ok(ModeSetting::Auto),
        name => Mode::from_name(name)
            .map(ModeSetting::Fixed)
            .ok_or_else(|| format!("{name:?} is not auto, vpc or overlay")),
    }
}

/// A duration given as whole seconds ("30", as the AWS VPC CNI takes it) or
/// with a unit suffix ("500ms", "30s", "5m", "1h").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30, 30s, 500ms, 5m)"))?;
    let millis = match unit {
        "" | "s" => value.checked_mul(1000),
        "ms" => Some(value),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        other => return Err(format!("unknown unit {other:?} in {s:?}")),
    }
    .ok_or_else(|| format!("{s:?} is too large"))?;
    Ok(Duration::from_millis(millis))
}

pub fn parse_mtu(s: &str) -> Result<u32, String> {
    let mtu: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (576..=9001).contains(&mtu) {
        Ok(mtu)
    } else {
        Err(format!("{mtu} is outside 576..=9001"))
    }
}

/// An HTTP(S) URL with a host, as an endpoint (`https://ec2.us-west-2.amazonaws.com`).
pub fn parse_endpoint(s: &str) -> Result<String, String> {
    let s = s.trim();
    let uri: http::Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(s.to_owned()),
        _ => Err(format!(
            "{s:?} is not an http:// or https:// URL with a host"
        )),
    }
}

/// A list of CIDRs given as one comma-separated value (a newtype, so clap
/// takes the whole list as one value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(pub Vec<Ipv4Cidr>);

/// A comma-separated list of CIDRs (empty string = none).
pub fn parse_cidr_list(s: &str) -> Result<CidrList, String> {
    s.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.parse::<Ipv4Cidr>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()
        .map(CidrList)
}

/// `true`/`false` in the spellings Kubernetes manifests use.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// A JSON object of string tags, as the AWS VPC CNI takes `ADDITIONAL_ENI_TAGS`.
pub fn parse_tags(s: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    if s.trim().is_empty() {
        return Ok(std::collections::BTreeMap::new());
    }
    serde_json::from_str(s).map_err(|e| format!("not a JSON object of strings: {e}"))
}

impl Settings {
    /// `try_parse_from` over `args` and the environment, except that a value that is not
    /// UTF-8 is refused naming its flag and variable: clap's own message for it ("invalid
    /// UTF-8 was detected in one or more arguments") names neither, and a bad value must stop
    /// ipamd with a message that names the variable. `env` is how the process environment
    /// is read (clap reads the same).
    pub fn try_parse_naming(
        args: impl IntoIterator<Item = OsString>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Settings, clap::Error> {
        let args: Vec<OsString> = args.into_iter().collect();
        Self::try_parse_from(&args).map_err(|err| {
            if err.kind() != ErrorKind::InvalidUtf8 {
                return err;
            }
            match non_utf8_setting(&args, env) {
                Some(message) => Self::command().error(ErrorKind::InvalidUtf8, message),
                None => err,
            }
        })
    }
}

/// Which setting holds a value that is not UTF-8 though it must be, as a message naming its
/// variable (and flag); the command line first, as clap prefers it to the environment.
/// Path settings are skipped: any bytes are a valid path.
fn non_utf8_setting(args: &[OsString], env: impl Fn(&str) -> Option<OsString>) -> Option<String> {
    let any_bytes = [TypeId::of::<PathBuf>(), TypeId::of::<OsString>()];
    for arg in Settings::command().get_arguments() {
        let (Some(long), Some(var)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let parses_to = arg.get_value_parser().type_id();
        if any_bytes.iter().any(|t| parses_to == *t) {
            continue;
        }
        let var = var.to_string_lossy();
        let flag = format!("--{long}");
        let on_command_line = args.iter().enumerate().find_map(|(i, a)| {
            if a.as_os_str() == OsStr::new(&flag) {
                args.get(i + 1).cloned()
            } else {
                a.as_bytes()
                    .strip_prefix(format!("{flag}=").as_bytes())
                    .map(|v| OsStr::from_bytes(v).to_owned())
            }
        });
        let found = [
            (on_command_line, format!(" (flag {flag})")),
            (env(&var), String::new()),
        ];
        for (value, from) in found {
            if let Some(value) = value.filter(|v| v.to_str().is_none()) {
                return Some(format!(
                    "invalid {var}{from}: value {value:?} is not valid UTF-8"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "parse_prop_tests.rs"]
mod prop_tests;
