//! The durable copy of the datastore: a JSON file replaced atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use super::types::{CheckpointData, CHECKPOINT_VERSION};
use crate::error::IpamdError;

/// Where the datastore is made durable. Synchronous: async callers use `spawn_blocking`.
/// Callers serialise `store` calls (the `Store` does), so the last write is the newest state.
pub trait Checkpoint: Send + Sync {
    /// The last stored state; `None` when nothing was ever stored.
    fn load(&self) -> Result<Option<CheckpointData>, IpamdError>;
    /// Returns once `data` survives a crash of the process or the machine.
    fn store(&self, data: &CheckpointData) -> Result<(), IpamdError>;
}

/// What the daemon starts from: the checkpoint's data, and where an unreadable file was
/// moved and why.
#[derive(Debug)]
pub struct StartState {
    pub data: Option<CheckpointData>,
    pub set_aside: Option<(PathBuf, IpamdError)>,
}

/// The checkpoint as a file, replaced by write-temp, fsync, rename, fsync-directory so a
/// reader (or a restart after a crash) sees either the old or the new state, never a mix.
#[derive(Debug)]
pub struct FileCheckpoint {
    path: PathBuf,
    temp_seq: AtomicU64,
}

impl FileCheckpoint {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            temp_seq: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// Temp files are `.<name>.tmp.<pid>.<seq>`: hidden, in the target's directory (rename
    /// is only atomic within one filesystem), and tagged by pid so a restart can tell which
    /// ones a crashed predecessor left behind.
    fn temp_prefix(&self) -> String {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!(".{name}.tmp.")
    }

    fn write_err(&self, step: &'static str) -> impl FnOnce(std::io::Error) -> IpamdError + '_ {
        move |source| IpamdError::CheckpointWrite {
            path: self.path.clone(),
            step,
            source,
        }
    }

    /// Removes temp files a process left behind when it died mid-write; returns how many.
    ///
    /// For the daemon at start, before its first `store`: it would also remove the temp file
    /// of a write in flight, so `load` (which the CLI may run beside a live daemon) does not
    /// do it. Best effort: a leftover costs a little tmpfs space, not correctness.
    pub fn remove_stale_temp_files(&self) -> usize {
        let prefix = self.temp_prefix();
        let Ok(entries) = fs::read_dir(self.dir()) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .filter(|e| fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Loads the checkpoint at start. A file that cannot be understood (not JSON, torn,
    /// another format version) is renamed to `<name>.unreadable.<unix ms>` beside it and the
    /// start goes on without it, so ipamd does not crash-loop on it; the caller rebuilds
    /// from the kernel and reports. Errors reading the file (permissions, I/O) still fail.
    pub fn load_or_set_aside(&self, now_ms: u64) -> Result<StartState, IpamdError> {
        let reason = match self.load() {
            Ok(data) => {
                return Ok(StartState {
                    data,
                    set_aside: None,
                })
            }
            Err(
                e @ (IpamdError::CheckpointCorrupt { .. } | IpamdError::CheckpointVersion { .. }),
            ) => e,
            Err(e) => return Err(e),
        };
        let mut aside = self.path.clone().into_os_string();
        aside.push(format!(".unreadable.{now_ms}"));
        let aside = PathBuf::from(aside);
        fs::rename(&self.path, &aside)
            .map_err(self.write_err("setting an unreadable checkpoint aside"))?;
        Ok(StartState {
            data: None,
            set_aside: Some((aside, reason)),
        })
    }

    fn write_temp(&self, temp: &Path, bytes: &[u8]) -> Result<(), IpamdError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            // A dead predecessor with our pid (pid 1 in a container) may have left this name.
            .truncate(true)
            // Pod names and addresses are nobody else's business on the node.
            .mode(0o600)
            .open(temp)
            .map_err(self.write_err("creating the temp file"))?;
        file.write_all(bytes)
            .map_err(self.write_err("writing the temp file"))?;
        file.sync_all()
            .map_err(self.write_err("fsync of the temp file"))
    }
}

impl Checkpoint for FileCheckpoint {
    fn load(&self) -> Result<Option<CheckpointData>, IpamdError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(IpamdError::CheckpointRead {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |source| IpamdError::CheckpointCorrupt {
            path: self.path.clone(),
            source,
        };
        // The version is checked before the rest is parsed: another version's layout may not
        // parse at all, and "wrong version" is the more useful message then.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: String,
        }
        let VersionOnly { version } = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if version != CHECKPOINT_VERSION {
            return Err(IpamdError::CheckpointVersion {
                path: self.path.clone(),
                found: version,
                expected: CHECKPOINT_VERSION.to_owned(),
            });
        }
        serde_json::from_slice(&bytes).map(Some).map_err(corrupt)
    }

    fn store(&self, data: &CheckpointData) -> Result<(), IpamdError> {
        let mut bytes =
            serde_json::to_vec_pretty(data).map_err(|source| IpamdError::CheckpointEncode {
                path: self.path.clone(),
                source,
            })?;
        bytes.push(b'\n');

        let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        let temp = self.dir().join(format!(
            "{}{}.{seq}",
            self.temp_prefix(),
            std::process::id()
        ));
        let written = self.write_temp(&temp, &bytes).and_then(|()| {
            fs::rename(&temp, &self.path).map_err(self.write_err("renaming the temp file"))
        });
        if written.is_err() {
            let _ = fs::remove_file(&temp);
            return written;
        }
        // Without this the rename itself may be lost in a crash, bringing back the old file.
        File::open(self.dir())
            .and_then(|dir| dir.sync_all())
            .map_err(|source| IpamdError::CheckpointDirSync {
                path: self.path.clone(),
                source,
            })
    }
}
