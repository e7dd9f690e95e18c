//! VPC mode's address pool: ENIs and their secondary addresses or /28
//! prefixes, kept at the AWS VPC CNI's targets.
//!
//! - `math`: the pure pool decisions (functional core).
//! - `controller`: `PoolController`, which reads the node, asks `math` and
//!   executes the answer through the `Ec2` and `Imds` seams.
//! - `eni_ops`: the EC2 side of each pool step.
//! - `snapshot`: one consistent picture of the node's ENIs for a pass.
//! - `pacing`: the AWS VPC CNI's rules on how often the pool may shrink and grow.
//! - `leaked`: deleting ENIs of ours left `available`.
//! - `held`: assigned addresses the pool does not show (kept, confirmed with EC2).
//! - `tags`: how our ENIs are recognised.
//! - `subnets`: which subnets a new ENI may go to (subnet discovery).

pub mod controller;
pub mod leaked;
pub mod math;
pub mod pacing;
pub mod snapshot;
pub mod subnets;

mod eni_ops;
mod held;
mod rfc3339;
pub mod tags;

#[cfg(test)]
mod tests;

pub use controller::{ControllerConfig, PoolController, ReconcileCounts, ReconcileReport, Seen};
pub use leaked::LeakedReport;
pub use math::{PoolConfig, PoolDecision};
pub use snapshot::NodeSnapshot;
pub use tags::{CLUSTER_TAG, CREATED_AT_TAG, DESCRIPTION_PREFIX, INSTANCE_ID_TAG, NO_MANAGE_TAG};
