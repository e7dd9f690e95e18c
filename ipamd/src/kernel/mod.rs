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

pub use sysctl::{apply_sysctls, read_sysctl, set_net_dir, Sysctl, IP_FORWARD};

use vpc_cni::netlink::Handle;

use crate::error::IpamdError;

/// A netlink connection in the calling thread's namespace.
pub fn connect() -> Result<Handle, IpamdError> {
    vpc_cni::netlink::connect().map_err(|source| IpamdError::NetlinkSocket { source })
}

/// A netlink connection kept for the daemon's lifetime, opened again when its task has
/// ended. The task (netlink-proto's connection) ends for good on any socket error, such as
/// ENOBUFS when the kernel could not queue a reply, and from then on every request on its
/// handle fails: without a re-open, whatever holds the connection could not change the
/// kernel again until ipamd restarts.
///
/// Re-opened in the calling thread's namespace, like [`connect`]: the daemon's runtime has one
/// thread, and the holder is always used from it.
pub struct Connection {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Connection {
    /// Opens a connection in the calling thread's namespace; must run inside a tokio runtime,
    /// which serves it.
    pub fn open() -> Result<Self, IpamdError> {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|source| IpamdError::NetlinkSocket { source })?;
        Ok(Self {
            handle,
            task: tokio::spawn(conn),
        })
    }

    #[must_use]
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Opens a new connection if this one's task has ended; returns whether it did.
    pub fn reopen_if_ended(&mut self) -> Result<bool, IpamdError> {
        if !self.task.is_finished() {
            return Ok(false);
        }
        *self = Self::open()?;
        tracing::warn!("a netlink connection had ended; opened a new one");
        Ok(true)
    }

    /// Ends the connection's task, as a socket error would.
    #[cfg(test)]
    pub(crate) fn end(&self) {
        self.task.abort();
    }

    /// Whether the connection's task has ended.
    #[cfg(test)]
    pub(crate) fn has_ended(&self) -> bool {
        self.task.is_finished()
    }
}

/// A subscription to the IPv4 rule changes of the calling thread's netns, for reading the
/// rules with [`vpc_cni::netlink::ipv4_rules`]; open it beside the [`connect`] it goes with.
pub fn subscribe_rule_changes() -> Result<vpc_cni::netlink::RuleChanges, IpamdError> {
    vpc_cni::netlink::RuleChanges::subscribe()
        .map_err(|source| IpamdError::NetlinkSocket { source })
}
