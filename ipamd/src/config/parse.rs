//! Value parsers for settings: durations, MTUs, lists of CIDRs, booleans, tags.

use std::time::Duration;

use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_proto::Mode;

use super::ModeSetting;

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
