//! `/proc/sys` values, written only where they differ, from the calling thread.

use crate::error::IpamdError;

/// IPv4 forwarding of the namespace: pods' traffic is routed by the node.
pub const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

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
        let current =
            std::fs::read_to_string(&sysctl.path).map_err(|source| IpamdError::Sysctl {
                path: sysctl.path.clone(),
                action: "reading",
                source,
            })?;
        if current.trim() != sysctl.value {
            std::fs::write(&sysctl.path, sysctl.value).map_err(|source| IpamdError::Sysctl {
                path: sysctl.path.clone(),
                action: "writing",
                source,
            })?;
        }
    }
    Ok(())
}
