//! `/proc/sys` values, written only where they differ, from the calling thread.
//!
//! Values are named by their `/proc/sys/net/...` path; the directory they are read and written
//! through is set once at start from `SYSCTL_NET_DIR` ([`set_net_dir`]). In a container,
//! `/proc/sys` is mounted read-only, so the DaemonSet mounts the node's `/proc/sys/net`
//! read-write elsewhere. Like the calling thread's network namespace this module already
//! depends on, the directory is a fact of the process, not of any one caller: one value for
//! the whole process, set before the first sysctl is touched.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::IpamdError;

/// IPv4 forwarding of the namespace: pods' traffic is routed by the node.
pub const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The prefix [`set_net_dir`] replaces.
const PROC_SYS_NET: &str = "/proc/sys/net";

static NET_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Reads and writes `/proc/sys/net/...` values through `dir` from now on. Set once, at start;
/// a second call with another directory is refused (a value already read through the first
/// one would not be comparable).
pub fn set_net_dir(dir: &Path) -> Result<(), IpamdError> {
    let set = NET_DIR.get_or_init(|| dir.to_path_buf());
    if set == dir {
        Ok(())
    } else {
        Err(IpamdError::Config {
            variable: "SYSCTL_NET_DIR",
            reason: format!(
                "already set to {} in this process, cannot become {}",
                set.display(),
                dir.display()
            ),
        })
    }
}

/// Where the value named `path` is read and written.
#[must_use]
pub fn resolve(path: &str) -> Cow<'_, Path> {
    resolve_in(NET_DIR.get().map(PathBuf::as_path), path)
}

/// Where the value named `path` is when the net sysctls are in `net_dir`.
fn resolve_in<'a>(net_dir: Option<&Path>, path: &'a str) -> Cow<'a, Path> {
    match (net_dir, path.strip_prefix(PROC_SYS_NET)) {
        (Some(dir), Some(rest)) if dir != Path::new(PROC_SYS_NET) && rest.starts_with('/') => {
            Cow::Owned(dir.join(rest.trim_start_matches('/')))
        }
        _ => Cow::Borrowed(Path::new(path)),
    }
}

/// The current value named `path` (see [`resolve`]), trimmed.
pub fn read_sysctl(path: &str) -> Result<String, IpamdError> {
    let at = resolve(path);
    std::fs::read_to_string(&at)
        .map(|v| v.trim().to_owned())
        .map_err(|source| IpamdError::Sysctl {
            path: at.display().to_string(),
            action: "reading",
            source,
        })
}

/// One `/proc/sys` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub path: String,
    pub value: &'static str,
}

impl Sysctl {
    #[must_use]
    pub fn ip_forward() -> Self {
        Self {
            path: IP_FORWARD.to_owned(),
            value: "1",
        }
    }
}

/// Writes each value that differs from the kernel's. Synchronous on purpose: see the module
/// comment of [`crate::kernel`].
pub fn apply_sysctls(sysctls: &[Sysctl]) -> Result<(), IpamdError> {
    for sysctl in sysctls {
        if read_sysctl(&sysctl.path)? != sysctl.value {
            let at = resolve(&sysctl.path);
            std::fs::write(&at, sysctl.value).map_err(|source| IpamdError::Sysctl {
                path: at.display().to_string(),
                action: "writing",
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_values_move_with_the_directory_and_nothing_else_does() {
        let dir = Path::new("/host/proc/sys/net");
        assert_eq!(
            resolve_in(Some(dir), IP_FORWARD),
            Path::new("/host/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            resolve_in(Some(dir), "/proc/sys/net/ipv4/conf/eth0/rp_filter"),
            Path::new("/host/proc/sys/net/ipv4/conf/eth0/rp_filter")
        );
        assert_eq!(resolve_in(None, IP_FORWARD), Path::new(IP_FORWARD));
        assert_eq!(
            resolve_in(Some(Path::new(PROC_SYS_NET)), IP_FORWARD),
            Path::new(IP_FORWARD)
        );
        // Not under /proc/sys/net (or only by name): left alone.
        for other in ["/proc/sys/kernel/hostname", "/proc/sys/netfilter/x"] {
            assert_eq!(resolve_in(Some(dir), other), Path::new(other));
        }
    }
}
