//! ipamd's own footing in the node's kernel, shared by both modes: a netlink connection,
//! `/proc/sys` values, and our nftables table (`ip vpc-cni`; the pod guard's tables are
//! built in [`crate::guard`] and run through [`nft`] too).
//!
//! Everything here acts on the calling thread's network namespace: a netlink socket keeps
//! the namespace it was opened in, `nft` is forked from this thread and inherits its
//! namespace, and `/proc/sys/net` resolves against the opener's. So none of it may move to
//! another thread (no `spawn_blocking`, no `tokio::fs`): a pool thread could sit in another
//! namespace than the caller.

pub mod nft;
mod sysctl;

pub use sysctl::{apply_sysctls, Sysctl, IP_FORWARD};

use vpc_cni::netlink::Handle;

use crate::error::IpamdError;

/// A netlink connection in the calling thread's namespace.
pub fn connect() -> Result<Handle, IpamdError> {
    vpc_cni::netlink::connect().map_err(|source| IpamdError::NetlinkSocket { source })
}

/// A subscription to the IPv4 rule changes of the calling thread's netns, for reading the
/// rules with [`vpc_cni::netlink::ipv4_rules`]; open it beside the [`connect`] it goes with.
pub fn subscribe_rule_changes() -> Result<vpc_cni::netlink::RuleChanges, IpamdError> {
    vpc_cni::netlink::RuleChanges::subscribe()
        .map_err(|source| IpamdError::NetlinkSocket { source })
}
