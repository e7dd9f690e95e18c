//! Best-effort removal of what a podman run can leave on the machine when a
//! test fails half-way: processes, cgroups, netns bind mounts, libcni cache
//! entries and mounts under the test's temp dir. Every step is scoped to
//! names this test made; nothing is matched by program name alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Where libcni (inside podman) caches ADD results, named `<net>-<id>-<if>`.
const CNI_CACHE: &str = "/var/lib/cni/results";
/// runc's state root when podman runs it as root.
const RUNC_ROOT: &str = "/run/runc";

/// Programs podman leaves running after its own process exits; they are the
/// only orphans this test process reaps.
const ORPHAN_PROGRAMS: &[&str] = &["conmon", "podman"];

fn own_pid() -> i32 {
    i32::try_from(std::process::id()).unwrap_or(i32::MAX)
}

fn sigkill(pid: i32) {
    if pid > 1 && pid != own_pid() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Makes orphaned descendants (conmon double-forks away from podman) children
/// of this process instead of PID 1, which on this machine never reaps them:
/// the guard can then reap them rather than leave `[conmon] <defunct>`.
pub fn become_subreaper() {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and touches no
    // memory of ours.
    let _ = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Command name, state, parent and session of a process (/proc/<pid>/stat).
fn stat_fields(pid: &str) -> Option<(String, String, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp session ...: comm may hold spaces, so split
    // at the last ')'.
    let (head, tail) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let mut fields = tail.split_whitespace();
    let state = fields.next()?.to_string();
    let ppid = fields.next()?.parse().ok()?;
    let session = fields.nth(1)?.parse().ok()?;
    Some((comm, state, ppid, session))
}

/// Exited children of this process that podman left behind: conmon and the
/// `podman container cleanup` it spawns. Both run in conmon's own session,
/// which tells them apart from the podman commands a test thread is still
/// waiting for (those share this process's session and are not ours to reap).
fn orphaned_zombies() -> Vec<i32> {
    let me = own_pid();
    let Some((_, _, _, my_session)) = stat_fields(&me.to_string()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            let pid = name.parse::<i32>().ok()?;
            let (comm, state, ppid, session) = stat_fields(name)?;
            (ppid == me
                && state == "Z"
                && session != my_session
                && ORPHAN_PROGRAMS.contains(&comm.as_str()))
            .then_some(pid)
        })
        .collect()
}

/// Kills what still runs from `dir` and reaps the zombies podman reparented
/// to this process, waiting a bounded while for the killed ones to exit.
pub fn kill_and_reap(dir: &Path) {
    for _ in 0..50 {
        let live = processes_mentioning(dir);
        for pid in &live {
            sigkill(*pid);
        }
        let zombies = orphaned_zombies();
        for pid in &zombies {
            // SAFETY: waitpid on a known exited child with a null status pointer.
            let _ = unsafe { libc::waitpid(*pid, std::ptr::null_mut(), libc::WNOHANG) };
        }
        if live.is_empty() && zombies.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Live processes whose command line names `dir`: conmon (its bundle and
/// exit dirs are there) and `podman container cleanup` (its --root is).
#[must_use]
pub fn processes_mentioning(dir: &Path) -> Vec<i32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            // A zombie's cmdline reads empty, so only live processes match.
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline
                .windows(needle.len())
                .any(|w| w == needle)
                .then_some(pid)
        })
        .filter(|pid| *pid != own_pid())
        .collect()
}

/// Every directory named `parent` (absolute, e.g. `/x`) in each cgroup
/// hierarchy: `/sys/fs/cgroup/x` (v2) and `/sys/fs/cgroup/<ctrl>/x` (v1).
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let relative = parent.trim_start_matches('/');
    let mut found = Vec::new();
    let root = Path::new(CGROUP_ROOT);
    if root.join(relative).is_dir() {
        found.push(root.join(relative));
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let candidate = entry.path().join(relative);
            if candidate.is_dir() {
                found.push(candidate);
            }
        }
    }
    found
}

/// Directories under `dir` (itself included), children before parents.
fn depth_first(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                depth_first(&entry.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// Kills the processes left in the cgroup tree `parent` and removes its
/// directories (podman removes the container cgroups but not the parent nor
/// the `conmon` child).
pub fn remove_cgroup_tree(parent: &str) {
    let mut dirs = Vec::new();
    for top in cgroup_dirs(parent) {
        depth_first(&top, &mut dirs);
    }
    for dir in &dirs {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            sigkill(pid);
        }
    }
    // A killed task leaves its cgroup only once it has been reaped.
    for _ in 0..50 {
        let left: Vec<&PathBuf> = dirs
            .iter()
            .filter(|d| d.exists() && std::fs::remove_dir(d).is_err())
            .collect();
        if left.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Unmounts and removes a network namespace bind mount podman made, if it
/// is still there.
pub fn remove_netns(path: &Path) {
    if path.starts_with("/run/netns") && path.exists() {
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Deletes runc's state for a container podman could not remove (runc
/// keeps it in /run/runc/<id> for root, outside the test's temp dir).
pub fn remove_runc_state(container_id: &str) {
    if Path::new(RUNC_ROOT).join(container_id).exists() {
        let _ = Command::new("runc")
            .args(["--root", RUNC_ROOT, "delete", "--force", container_id])
            .output();
    }
}

/// Drops libcni's cached results for one container on one network.
pub fn remove_cni_cache(network: &str, container_id: &str) {
    let prefix = format!("{network}-{container_id}-");
    let Ok(entries) = std::fs::read_dir(CNI_CACHE) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Mount points at or under `dir` in this mount namespace, deepest first.
#[must_use]
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(field.replace("\\040", " ")))
        .filter(|mount| mount.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

/// Lazily unmounts everything under `dir` (the shm tmpfs podman mounts per
/// container), so the temp dir can be deleted.
pub fn unmount_under(dir: &Path) {
    for mount in mounts_under(dir) {
        let _ = Command::new("umount").arg("-l").arg(&mount).output();
    }
}
