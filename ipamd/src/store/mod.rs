//! Address assignments and their durable checkpoint; no kernel or cloud I/O.
//!
//! - `types`: the records both hold: assignments and the checkpoint's layout.
//! - `datastore`: the pool and its assignments, pure and synchronous.
//! - `ranges`: address sets kept as runs of consecutive addresses (the pool, the free set).
//! - `checkpoint`: where the checkpoint is kept (a file; memory in unit tests).
//! - `commit`: `Store`, the shared async front end that makes every change durable before
//!   it is acknowledged, with concurrent changes sharing one write.

mod checkpoint;
mod commit;
mod datastore;
#[cfg(test)]
mod memory;
mod ranges;
mod types;

#[cfg(test)]
mod tests;

pub use checkpoint::{Checkpoint, FileCheckpoint, StartState};
pub use commit::{Store, WriteObserver, WriteReport};
pub use datastore::{AddressState, Datastore, PoolCounts, RestoreReport, ADOPTED_PREFIX};
#[cfg(test)]
pub use memory::MemoryCheckpoint;
pub use types::{
    Assignment, AttachmentKey, CheckpointData, CoolingAddress, PodIdentity, PoolAddress,
    CHECKPOINT_VERSION,
};
