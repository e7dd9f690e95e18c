//! A checkpoint in memory for unit tests: it can be told to fail the next stores.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use super::checkpoint::Checkpoint;
use super::types::CheckpointData;
use crate::error::IpamdError;

/// A checkpoint in memory, for tests: can be told to fail the next stores.
#[derive(Debug, Default)]
pub struct MemoryCheckpoint {
    data: Mutex<Option<CheckpointData>>,
    fail_next: AtomicUsize,
    fail_next_after_storing: AtomicUsize,
    stores: AtomicUsize,
}

impl MemoryCheckpoint {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts out holding `data`, as if an earlier run had stored it.
    pub fn with_data(data: CheckpointData) -> Self {
        Self {
            data: Mutex::new(Some(data)),
            ..Self::default()
        }
    }

    /// The next `n` calls to `store` fail and leave the stored data unchanged.
    pub fn fail_next_stores(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` calls to `store` store the data and then fail as a failed directory
    /// fsync does (the file was replaced).
    pub fn fail_next_after_storing(&self, n: usize) {
        self.fail_next_after_storing.store(n, Ordering::SeqCst);
    }

    /// What the last successful `store` wrote.
    pub fn stored(&self) -> Option<CheckpointData> {
        self.data
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many `store` calls succeeded.
    pub fn store_count(&self) -> usize {
        self.stores.load(Ordering::SeqCst)
    }
}

impl Checkpoint for MemoryCheckpoint {
    fn load(&self) -> Result<Option<CheckpointData>, IpamdError> {
        Ok(self.stored())
    }

    fn store(&self, data: &CheckpointData) -> Result<(), IpamdError> {
        let failing = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(IpamdError::CheckpointWrite {
                path: PathBuf::from("<memory>"),
                step: "writing",
                source: std::io::Error::other("injected failure"),
            });
        }
        *self.data.lock().unwrap_or_else(PoisonError::into_inner) = Some(data.clone());
        let after_storing = self
            .fail_next_after_storing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if after_storing {
            return Err(IpamdError::CheckpointDirSync {
                path: PathBuf::from("<memory>"),
                source: std::io::Error::other("injected directory fsync failure"),
            });
        }
        self.stores.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
