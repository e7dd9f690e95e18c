//! Address assignments and their durable checkpoint; no kernel or cloud I/O.
//!
//! - `datastore`: the pool and its assignments, pure and synchronous.
//! - `checkpoint`: the checkpoint format and where it is kept (a file, or memory in tests).
//! - `commit`: `Store`, the shared async front end that makes every change durable before
//!   it is acknowledged, with concurrent changes sharing one write.

mod checkpoint;
mod commit;
mod datastore;

#[cfg(test)]
mod tests;

pub use checkpoint::{
    Checkpoint, CheckpointData, CoolingAddress, FileCheckpoint, MemoryCheckpoint,
    CHECKPOINT_VERSION,
};
pub use commit::Store;
pub use datastore::{
    AddressState, Assignment, AttachmentKey, Datastore, PodIdentity, PoolAddress, PoolCounts,
    RestoreReport,
};
