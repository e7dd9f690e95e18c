//! The `CNI_*` environment a runtime execs the plugin with.

use std::ffi::OsString;
use std::path::Path;

use crate::error::CniError;

/// The CNI operation requested through `CNI_COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    pub const ALL: [Command; 6] = [
        Command::Add,
        Command::Del,
        Command::Check,
        Command::Gc,
        Command::Status,
        Command::Version,
    ];

    /// The spec's spelling, as found in `CNI_COMMAND`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    /// Parses a `CNI_COMMAND` value; matching is exact, like the reference library's.
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| CniError::InvalidEnvironment {
                var: "CNI_COMMAND",
                reason: format!(
                    "unknown command {s:?}; expected one of {}",
                    Self::ALL.map(Command::as_str).join(", ")
                ),
            })
    }

    /// Whether the command is about one attachment, so it needs the container
    /// id, interface name and (for some) the netns.
    fn is_per_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Kubernetes keys of `CNI_ARGS`; an empty value counts as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub infra_container_id: Option<String>,
    pub pod_uid: Option<String>,
}

/// Parses `CNI_ARGS` (`K=V;K=V`).
///
/// `IgnoreUnknown` applies wherever it appears in the list, as in the
/// reference library. Values may contain `=`; empty segments (a trailing `;`)
/// are skipped.
pub fn parse_cni_args(s: &str) -> Result<CniArgs, CniError> {
    let mut pairs = Vec::new();
    for segment in s.split(';').filter(|seg| !seg.is_empty()) {
        let (key, value) = segment.split_once('=').ok_or_else(|| {
            args_error(format!("pair {segment:?} has no '=' (expected KEY=VALUE)"))
        })?;
        if key.is_empty() {
            return Err(args_error(format!("pair {segment:?} has an empty key")));
        }
        pairs.push((key, value));
    }

    let mut ignore_unknown = false;
    for (key, value) in &pairs {
        if *key == "IgnoreUnknown" {
            ignore_unknown = parse_bool(value).ok_or_else(|| {
                args_error(format!(
                    "IgnoreUnknown must be 1, 0, true or false, found {value:?}"
                ))
            })?;
        }
    }

    let mut args = CniArgs::default();
    for (key, value) in pairs {
        let value = (!value.is_empty()).then(|| value.to_owned());
        match key {
            "K8S_POD_NAMESPACE" => args.pod_namespace = value,
            "K8S_POD_NAME" => args.pod_name = value,
            "K8S_POD_INFRA_CONTAINER_ID" => args.infra_container_id = value,
            "K8S_POD_UID" => args.pod_uid = value,
            "IgnoreUnknown" => {}
            _ if ignore_unknown => {}
            other => {
                return Err(args_error(format!(
                    "unknown key {other:?} (set IgnoreUnknown=1 to allow unknown keys)"
                )))
            }
        }
    }
    Ok(args)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn args_error(reason: String) -> CniError {
    CniError::InvalidEnvironment {
        var: "CNI_ARGS",
        reason,
    }
}

/// The validated `CNI_*` environment.
///
/// `container_id`, `netns`, `ifname` and `args` are only read for ADD, DEL and
/// CHECK; for GC, STATUS and VERSION they are `None`/default even when set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Command,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: CniArgs,
    pub path: Option<String>,
}

/// Every variable we read, so `from_process` can report a non-UTF-8 one by name.
const VARS: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

/// The reference library's limit on container ids.
pub const MAX_CONTAINER_ID_LEN: usize = 256;
/// The kernel's IFNAMSIZ minus the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

impl CniEnv {
    /// Reads and validates the environment through `get`, which returns a
    /// variable's value (tests pass a map instead of touching the process env).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<CniEnv, CniError> {
        // An empty value is what `VAR= cmd` produces and means "not given".
        let get = |var: &str| get(var).filter(|v| !v.is_empty());

        let command = match get("CNI_COMMAND") {
            Some(c) => Command::parse(&c)?,
            None => return Err(missing("CNI_COMMAND")),
        };
        let mut env = CniEnv {
            command,
            container_id: None,
            netns: None,
            ifname: None,
            args: CniArgs::default(),
            path: get("CNI_PATH"),
        };
        if !command.is_per_attachment() {
            return Ok(env);
        }

        let container_id = get("CNI_CONTAINERID").ok_or_else(|| missing("CNI_CONTAINERID"))?;
        validate_container_id(&container_id)?;
        let ifname = get("CNI_IFNAME").ok_or_else(|| missing("CNI_IFNAME"))?;
        validate_ifname(&ifname)?;
        // DEL may come without a netns: containerd's second DEL sends it empty.
        let netns = match (get("CNI_NETNS"), command) {
            (None, Command::Del) => None,
            (None, _) => return Err(missing("CNI_NETNS")),
            (Some(ns), _) => {
                validate_netns(&ns)?;
                Some(ns)
            }
        };

        env.container_id = Some(container_id);
        env.ifname = Some(ifname);
        env.netns = netns;
        env.args = get("CNI_ARGS")
            .map(|a| parse_cni_args(&a))
            .transpose()?
            .unwrap_or_default();
        Ok(env)
    }

    /// Reads and validates the process environment.
    pub fn from_process() -> Result<CniEnv, CniError> {
        Self::from_os_lookup(|var| std::env::var_os(var))
    }

    /// As [`CniEnv::from_lookup`], from raw values as the process holds them: a value that
    /// is not UTF-8 is refused naming its variable, whichever command would read it, rather
    /// than guessed at or taken as absent.
    pub fn from_os_lookup(get: impl Fn(&str) -> Option<OsString>) -> Result<CniEnv, CniError> {
        let mut values = Vec::with_capacity(VARS.len());
        for var in VARS {
            if let Some(raw) = get(var) {
                let value = raw
                    .into_string()
                    .map_err(|raw| CniError::InvalidEnvironment {
                        var,
                        reason: format!("value {raw:?} is not valid UTF-8"),
                    })?;
                values.push((var, value));
            }
        }
        Self::from_lookup(|var| {
            values
                .iter()
                .find(|(name, _)| *name == var)
                .map(|(_, value)| value.clone())
        })
    }
}

fn missing(var: &'static str) -> CniError {
    CniError::InvalidEnvironment {
        var,
        reason: "missing or empty".into(),
    }
}

/// Checks a container id against the reference library's rule:
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 256 characters.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    let bad = |reason: String| CniError::InvalidEnvironment {
        var: "CNI_CONTAINERID",
        reason: format!("{id:?} {reason}"),
    };
    if id.is_empty() {
        return Err(bad("is empty".into()));
    }
    if id.len() > MAX_CONTAINER_ID_LEN {
        return Err(bad(format!(
            "is {} bytes long, more than {MAX_CONTAINER_ID_LEN}",
            id.len()
        )));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("must start with a letter or digit".into()));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(bad(format!(
            "contains {c:?}; only letters, digits, '_', '.' and '-' are allowed"
        )));
    }
    Ok(())
}

/// Checks an interface name the way the kernel's `dev_valid_name` does.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let bad = |reason: String| CniError::InvalidEnvironment {
        var: "CNI_IFNAME",
        reason: format!("{name:?} {reason}"),
    };
    if name.is_empty() {
        return Err(bad("is empty".into()));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(bad(format!(
            "is {} bytes long, more than the kernel's {MAX_IFNAME_LEN}",
            name.len()
        )));
    }
    if name == "." || name == ".." {
        return Err(bad("is not a valid interface name".into()));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return Err(bad(format!(
            "contains {c:?}; '/', ':' and whitespace are not allowed"
        )));
    }
    Ok(())
}

/// A netns reference must be an absolute path (e.g. `/var/run/netns/cni-…`):
/// anything else would be resolved against the plugin's working directory.
fn validate_netns(ns: &str) -> Result<(), CniError> {
    if Path::new(ns).is_absolute() && !ns.contains('\0') {
        Ok(())
    } else {
        Err(CniError::InvalidEnvironment {
            var: "CNI_NETNS",
            reason: format!("{ns:?} is not an absolute path"),
        })
    }
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "env_prop_tests.rs"]
mod prop_tests;
