//! The processes containerd leaves around it: shims daemonize away from
//! containerd, so the guard finds them by command line and, being their
//! subreaper, reaps them itself.

use std::path::Path;
use std::time::Duration;

use nix::unistd::Pid;
use vpc_cni_testkit::process::wait_for;

/// Bound for shims to exit after their sandboxes went away.
const SHIM_EXIT_LIMIT: Duration = Duration::from_secs(10);

/// Makes this test process the reaper of the shims containerd daemonizes,
/// so that their exit statuses are collected here rather than left to
/// whatever init the machine runs. This test binary holds only these tests.
pub fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers and touches
    // no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(
        rc,
        0,
        "prctl(PR_SET_CHILD_SUBREAPER): {}",
        std::io::Error::last_os_error()
    );
}

/// Processes whose command line mentions `dir` (containerd's shims carry our
/// socket path in theirs). The temp dir name is unique to this guard.
#[must_use]
pub fn processes_mentioning(dir: &Path) -> Vec<nix::unistd::Pid> {
    let needle = dir.display().to_string();
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .filter_map(|pid| i32::try_from(pid).ok())
        .map(nix::unistd::Pid::from_raw)
        .collect()
}

/// Waits (bounded) until no live process mentions `dir`, then reaps the
/// exited shims that were reparented to this process.
pub fn wait_and_reap_shims(dir: &Path) {
    let _ = wait_for(SHIM_EXIT_LIMIT, || {
        processes_mentioning(dir).is_empty().then_some(())
    });
    for pid in exited_shim_children() {
        // SAFETY: waitpid on one specific pid with a null status pointer,
        // which the kernel accepts; WNOHANG keeps it from blocking.
        unsafe {
            libc::waitpid(pid.as_raw(), std::ptr::null_mut(), libc::WNOHANG);
        }
    }
}

/// Zombie `containerd-shim*` processes whose parent is this process.
fn exited_shim_children() -> Vec<Pid> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "<pid> (<comm>) <state> <ppid> ..."; comm may hold spaces.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map_or("", |(_, c)| c);
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let ppid = fields.next();
            comm.starts_with("containerd-shim") && state == Some("Z") && ppid == Some(me.as_str())
        })
        .map(Pid::from_raw)
        .collect()
}
