//! Network namespace handles and per-namespace netlink connections.
//!
//! A netlink socket talks to the namespace it was created in for its whole life, so the pod
//! side gets its own connection, opened while this thread is briefly inside the pod netns.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use rtnetlink::Handle;

use crate::CniError;

/// This thread's own netns; `/proc/self` would name the main thread's, which differs when a
/// caller runs us on a thread it moved into another namespace (tests, and ipamd helpers).
const OWN_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace file and the path it came from, for error messages.
pub(super) struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens a netns by path (`/run/netns/x`, `/proc/<pid>/ns/net`).
    pub(super) fn open(path: &Path) -> Result<Self, CniError> {
        let file = File::open(path).map_err(|e| CniError::Netns {
            path: path.to_path_buf(),
            reason: format!("cannot open: {e}"),
        })?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The namespace of the calling thread: the host (node) netns for every public function.
    pub(super) fn current() -> Result<Self, CniError> {
        Self::open(Path::new(OWN_NETNS))
    }

    pub(super) fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn enter(&self) -> Result<(), CniError> {
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| CniError::Netns {
            path: self.path.clone(),
            reason: format!("setns failed: {e}"),
        })
    }
}

/// Puts the thread back into its original netns when dropped, so that no error path can leave
/// a runtime worker thread (ipamd) inside a pod's namespace.
struct NetnsGuard<'a> {
    home: &'a Netns,
}

impl<'a> NetnsGuard<'a> {
    fn enter(target: &Netns, home: &'a Netns) -> Result<Self, CniError> {
        target.enter()?;
        Ok(Self { home })
    }
}

impl Drop for NetnsGuard<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.home.enter() {
            // Returning would leave this thread's later host work aimed at a pod's namespace,
            // silently corrupting other pods' wiring; stopping is the only safe outcome. The
            // fd is open and was entered moments ago, so this does not happen in practice.
            eprintln!("vpc-cni: cannot return to the original network namespace: {err}");
            std::process::abort();
        }
    }
}

/// A netlink connection in the calling thread's own namespace, its task spawned on the
/// current tokio runtime.
pub(super) fn connect_here() -> Result<Handle, CniError> {
    let (conn, handle, _) = rtnetlink::new_connection()
        .map_err(|e| CniError::io("opening a netlink socket in the host netns", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A netlink connection bound to `target`; the thread enters `target` only for the socket()
/// call and is back in `home` before this returns. No `.await` happens in between, so the
/// switch cannot leak to other tasks sharing the thread.
pub(super) fn connect_in(target: &Netns, home: &Netns) -> Result<Handle, CniError> {
    let created = {
        let _guard = NetnsGuard::enter(target, home)?;
        rtnetlink::new_connection()
    };
    let (conn, handle, _) = created.map_err(|e| {
        CniError::io(
            format!(
                "opening a netlink socket in netns {}",
                target.path.display()
            ),
            e,
        )
    })?;
    tokio::spawn(conn);
    Ok(handle)
}
