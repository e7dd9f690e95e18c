//! Netlink plumbing shared by the device and the entry code.

use rtnetlink::Handle;
use vpc_cni::CniError;

use crate::error::IpamdError;

pub(super) fn netlink_error(operation: impl Into<String>, source: rtnetlink::Error) -> IpamdError {
    IpamdError::Dataplane(CniError::netlink(operation, source))
}

fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

/// Someone removed it first: the goal is reached all the same.
pub(super) fn is_gone(err: &rtnetlink::Error) -> bool {
    use nix::errno::Errno;
    errno(err).is_some_and(|code| {
        [
            Errno::ENODEV,
            Errno::ESRCH,
            Errno::ENOENT,
            Errno::EADDRNOTAVAIL,
        ]
        .iter()
        .any(|gone| *gone as i32 == code)
    })
}

/// A netlink connection in the calling thread's netns, served by a task on the current runtime.
pub(super) fn connect() -> Result<Handle, IpamdError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| IpamdError::Io {
        context: "opening a netlink socket for the VXLAN overlay".to_owned(),
        source,
    })?;
    tokio::spawn(conn);
    Ok(handle)
}
