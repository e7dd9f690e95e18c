//! The network configuration the runtime writes to the plugin's stdin.
//!
//! Fields are checked by hand rather than through a serde derive so that each
//! error names the offending key and what was found there; unknown keys are
//! kept (in `raw`) and ignored, because chaining runtimes add many of them.
//! A JSON `null` counts as an absent key, as it does for the reference Go
//! library, which decodes null into a zero value.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::version::CniVersion;
use crate::error::CniError;

/// The most we read from stdin: real configs are a few KiB, a prevResult included.
pub const MAX_STDIN_BYTES: usize = 1 << 20;

/// The MTU bounds we accept: the IPv4 minimum datagram size up to the largest
/// jumbo frame EC2 supports.
pub const MTU_MIN: u32 = 576;
pub const MTU_MAX: u32 = 9001;

const STDIN_WHAT: &str = "network configuration on stdin";
const VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";
/// The key libcni actually sends for GC (spec issue #1101).
const ATTACHMENTS_ALIAS: &str = "cni.dev/attachments";

/// One attachment the runtime still uses, as listed in a GC request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// A validated network configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// The single version to answer in (chosen from `cniVersions` when `cniVersion` is absent).
    pub cni_version: CniVersion,
    pub name: String,
    pub plugin_type: String,
    pub ipamd_socket: Option<PathBuf>,
    pub mtu: Option<u32>,
    pub prev_result: Option<Value>,
    /// The `runtimeConfig` object, `{}` when absent.
    pub runtime_config: Value,
    /// From `cni.dev/valid-attachments`, or its alias `cni.dev/attachments`.
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The whole configuration as received.
    pub raw: Value,
}

/// Parses and validates the network configuration read from stdin.
pub fn parse_netconf(bytes: &[u8]) -> Result<NetConf, CniError> {
    if bytes.len() > MAX_STDIN_BYTES {
        return Err(CniError::Decode {
            what: STDIN_WHAT.into(),
            reason: format!(
                "input of {} bytes exceeds 1 MiB ({MAX_STDIN_BYTES} bytes)",
                bytes.len()
            ),
        });
    }
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| CniError::Decode {
        what: STDIN_WHAT.into(),
        reason: e.to_string(),
    })?;
    let obj = raw.as_object().ok_or_else(|| CniError::Decode {
        what: STDIN_WHAT.into(),
        reason: format!("expected a JSON object, found {}", describe(&raw)),
    })?;

    let cni_version = choose_version(obj)?;
    let name = required_string(obj, "name")?;
    let plugin_type = required_string(obj, "type")?;
    let ipamd_socket = optional_string(obj, "ipamdSocket")?
        .map(|s| {
            let path = PathBuf::from(&s);
            if path.is_absolute() {
                Ok(path)
            } else {
                Err(invalid(
                    "ipamdSocket",
                    format!("must be an absolute path, found {s:?}"),
                ))
            }
        })
        .transpose()?;
    let mtu = get(obj, "mtu").map(parse_mtu).transpose()?;
    let prev_result = optional_object(obj, "prevResult")?.cloned();
    let runtime_config = optional_object(obj, "runtimeConfig")?
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let valid_attachments = match (get(obj, VALID_ATTACHMENTS), get(obj, ATTACHMENTS_ALIAS)) {
        (Some(v), _) => Some(parse_attachments(VALID_ATTACHMENTS, v)?),
        (None, Some(v)) => Some(parse_attachments(ATTACHMENTS_ALIAS, v)?),
        (None, None) => None,
    };

    Ok(NetConf {
        cni_version,
        name,
        plugin_type,
        ipamd_socket,
        mtu,
        prev_result,
        runtime_config,
        valid_attachments,
        raw,
    })
}

/// The `cniVersion` string of a configuration, for error replies and VERSION.
///
/// Never fails: anything unreadable answers as the newest version.
#[must_use]
pub fn parse_version_only(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| CniVersion::LATEST.as_str().to_owned())
}

/// Picks the version to answer in, per the spec's `cniVersion`/`cniVersions` rules.
fn choose_version(obj: &Map<String, Value>) -> Result<CniVersion, CniError> {
    let single = optional_string(obj, "cniVersion")?;
    let list = match get(obj, "cniVersions") {
        None => None,
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(invalid(
                    "cniVersions",
                    "must list at least one version".into(),
                ));
            }
            let strings = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    item.as_str().map(str::to_owned).ok_or_else(|| {
                        invalid(
                            &format!("cniVersions[{i}]"),
                            format!("must be a string, found {}", describe(item)),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(strings)
        }
        Some(other) => {
            return Err(invalid(
                "cniVersions",
                format!("must be an array of strings, found {}", describe(other)),
            ))
        }
    };

    match (single, list) {
        (Some(single), list) => {
            if let Some(list) = list {
                if !list.contains(&single) {
                    return Err(invalid(
                        "cniVersion",
                        format!(
                            "{single:?} is not listed in cniVersions [{}]",
                            list.join(", ")
                        ),
                    ));
                }
            }
            CniVersion::parse(&single)
        }
        (None, Some(list)) => list
            .iter()
            .filter_map(|s| CniVersion::parse(s).ok())
            .max()
            .ok_or_else(|| CniVersion::incompatible(&list.join(", "))),
        (None, None) => Err(invalid(
            "cniVersion",
            "missing (and no cniVersions list either)".into(),
        )),
    }
}

fn parse_mtu(value: &Value) -> Result<u32, CniError> {
    let range = || format!("an integer between {MTU_MIN} and {MTU_MAX}");
    let n = value.as_u64().ok_or_else(|| {
        invalid(
            "mtu",
            format!("must be {}, found {}", range(), describe(value)),
        )
    })?;
    u32::try_from(n)
        .ok()
        .filter(|n| (MTU_MIN..=MTU_MAX).contains(n))
        .ok_or_else(|| invalid("mtu", format!("must be {}, found {n}", range())))
}

fn parse_attachments(key: &str, value: &Value) -> Result<Vec<Attachment>, CniError> {
    let items = value.as_array().ok_or_else(|| {
        invalid(
            key,
            format!(
                "must be an array of {{\"containerID\", \"ifname\"}} objects, found {}",
                describe(value)
            ),
        )
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("{key}[{i}]");
            let obj = item.as_object().ok_or_else(|| {
                invalid(
                    &field,
                    format!("must be an object, found {}", describe(item)),
                )
            })?;
            Ok(Attachment {
                container_id: required_string_at(obj, &field, "containerID")?,
                ifname: required_string_at(obj, &field, "ifname")?,
            })
        })
        .collect()
}

/// The value at `key`, with `null` treated as absent.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    get(obj, key)
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(key, format!("must be a string, found {}", describe(v))))
        })
        .transpose()
}

fn required_string(obj: &Map<String, Value>, key: &str) -> Result<String, CniError> {
    match optional_string(obj, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(invalid(key, "must not be empty".into())),
        None => Err(invalid(key, "missing".into())),
    }
}

/// A required string inside a nested object, reported as `parent.key`.
fn required_string_at(
    obj: &Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<String, CniError> {
    let field = format!("{parent}.{key}");
    match get(obj, key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(invalid(
            &field,
            format!("must be a string, found {}", describe(other)),
        )),
        None => Err(invalid(&field, "missing".into())),
    }
}

fn optional_object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Value>, CniError> {
    match get(obj, key) {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(other) => Err(invalid(
            key,
            format!("must be an object, found {}", describe(other)),
        )),
    }
}

fn invalid(field: &str, reason: String) -> CniError {
    CniError::InvalidConfig {
        field: field.to_owned(),
        reason,
    }
}

/// A short description of a JSON value for error messages, with scalars shown
/// (truncated) so the caller sees what was wrong.
pub(crate) fn describe(value: &Value) -> String {
    const MAX: usize = 64;
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(MAX).collect();
            if shown.len() < s.len() {
                format!("string {shown:?}...")
            } else {
                format!("string {s:?}")
            }
        }
        Value::Array(a) => format!("an array of {} elements", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "config_prop_tests.rs"]
mod prop_tests;
