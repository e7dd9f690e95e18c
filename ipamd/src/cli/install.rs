//! `ipamd install-cni`: puts the vpc-cni plugin binary into the node's CNI bin directory
//! (the DaemonSet's init container runs it, with the node's `/opt/cni/bin` mounted), and the
//! atomic file placement it shares with the network configuration ipamd writes
//! ([`crate::daemon::conflist`]).
//!
//! Atomic because the runtime may exec the old plugin, or read the old configuration, at
//! any moment: it must see either the old file or the whole new one. Writing over a binary
//! that is running fails (ETXTBSY) and a half-written one would fail every pod, so the new
//! file is written beside the old one under a temporary name and renamed over it.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::error::IpamdError;

/// Where the image keeps the plugin binary.
pub const DEFAULT_PLUGIN_SOURCE: &str = "/opt/vpc-cni/bin/vpc-cni";

/// The plugin's file name in the CNI bin directory: the `type` of our network configuration.
pub const PLUGIN_NAME: &str = "vpc-cni";

#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// The node's CNI bin directory as mounted in this container (e.g. /host/opt/cni/bin).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,

    /// The plugin binary to install.
    #[arg(long, env = "CNI_PLUGIN_SOURCE", value_name = "CNI_PLUGIN_SOURCE",
          default_value = DEFAULT_PLUGIN_SOURCE)]
    pub from: PathBuf,
}

/// Replaces `dest` with a file of mode `mode` that `fill` writes: a temp file in the same
/// directory (rename is atomic only within one filesystem), fsynced, given its mode (set
/// explicitly, so the umask does not matter), renamed over `dest`, and the directory fsynced
/// so the rename survives a crash. On failure `dest` is left as it was and the temp file is
/// removed.
pub fn place_atomically(
    dest: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), IpamdError> {
    let err = |step: &'static str| {
        move |source| IpamdError::Install {
            path: dest.to_path_buf(),
            step,
            source,
        }
    };
    let (dir, name) = match (dest.parent(), dest.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => (dir, name),
        _ => {
            return Err(err("finding the directory")(std::io::Error::other(
                "the path has no directory and file name",
            )))
        }
    };
    // Hidden and with a suffix no runtime loads: containerd and kubelet read only
    // `*.conf`, `*.conflist` and `*.json` from a CNI configuration directory.
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    remove_leftovers(dir, &prefix);
    let temp = dir.join(format!("{prefix}{}", std::process::id()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(err("creating the temp file"))?;
        fill(&mut file).map_err(err("writing the temp file"))?;
        file.flush().map_err(err("writing the temp file"))?;
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(err("setting the mode of the temp file"))?;
        file.sync_all().map_err(err("fsync of the temp file"))?;
        fs::rename(&temp, dest).map_err(err("renaming the temp file over it"))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
        return written;
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("fsync of the directory"))
}

/// Removes temp files an earlier, interrupted install left (another pid's). Best effort.
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Installs the plugin binary `from` as `<to>/vpc-cni`, mode 0755. Returns the installed path.
pub fn install_plugin(from: &Path, to: &Path) -> Result<PathBuf, IpamdError> {
    let dest = to.join(PLUGIN_NAME);
    let mut source = File::open(from).map_err(|source| IpamdError::Install {
        path: dest.clone(),
        step: "opening the plugin binary to copy",
        source: std::io::Error::new(source.kind(), format!("{}: {source}", from.display())),
    })?;
    place_atomically(&dest, 0o755, |file| {
        std::io::copy(&mut source, file).map(drop)
    })?;
    Ok(dest)
}

/// Runs `install-cni`: exit 0 after saying where the plugin went, or 1 with the reason.
#[must_use]
pub fn main(args: &InstallArgs) -> ExitCode {
    super::finish(
        install_plugin(&args.from, &args.to)
            .map(|dest| format!("installed {} as {}\n", args.from.display(), dest.display())),
    )
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
