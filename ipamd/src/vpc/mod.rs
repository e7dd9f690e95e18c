//! VPC mode's address pool: ENIs and their secondary addresses or /28
//! prefixes, kept at the AWS VPC CNI's targets.
//!
//! - `math`: the pure pool decisions (functional core).
//! - `controller`: `PoolController`, which reads the node, asks `math` and
//!   executes the answer through the `Ec2` and `Imds` seams.
//! - `leaked`: deleting ENIs of ours left `available`.

pub mod controller;
pub mod leaked;
pub mod math;
pub mod pacing;
pub mod snapshot;

mod eni_ops;
mod rfc3339;

#[cfg(test)]
mod tests;

pub use controller::{system_clock, Clock, ControllerConfig, PoolController, ReconcileReport};
pub use eni_ops::{CLUSTER_TAG, CREATED_AT_TAG, DESCRIPTION_PREFIX, INSTANCE_ID_TAG};
pub use leaked::LeakedReport;
pub use math::{PoolConfig, PoolDecision};
pub use snapshot::{NodeSnapshot, NO_MANAGE_TAG};
