//! `cloud::sim`: an in-memory VPC with EC2's rules, for tests and `vpc-sim`.
//!
//! Pure model: no HTTP, no kernel. Subnets reserve their first four and last
//! addresses; addresses and aligned /28 prefixes are unique across a subnet
//! and handed out lowest first; instance types limit ENIs per instance and
//! addresses (plus prefixes) per ENI; failures carry EC2's error codes.
//! Faults (throttling, scripted failures, visibility delay, latency to be
//! applied by the server) and per-action request counts live here too, so
//! every front end injects them the same way.
//!
//! [`SimVpc`] is a cheap handle (`Arc<Mutex<…>>`): clone it freely across
//! threads. Every call returns copies, never references into the model.

mod addresses;
mod admission;
mod alloc;
mod cidr;
mod cloud_impl;
mod describe;
mod dump;
mod enis;
mod errors;
mod faults;
mod groups;
mod imds;
mod instance_types;
mod state;
mod types;
mod world;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

pub use addresses::prefix_addresses;
pub use cloud_impl::SimCloud;
pub use errors::{ErrorCode, SimError};
pub use faults::{ActionClass, BucketConfig, FailNext, Faults};
pub use instance_types::{instance_type, instance_types, InstanceType};
pub use types::{
    AssignIps, Assigned, Attachment, CreateEni, Eni, EniFilter, FabricView, ImdsInterface,
    ImdsView, Instance, Page, PrivateIp, SecurityGroup, Subnet, Vpc, VpcCidrBlock,
};

use state::State;
use vpc_cni_proto::time::{system_clock, Clock};

/// Handle to one simulated EC2 region's worth of VPC state.
#[derive(Clone)]
pub struct SimVpc {
    inner: Arc<Mutex<State>>,
}

impl SimVpc {
    /// An empty world on the real clock.
    pub fn new() -> Self {
        SimVpc {
            inner: Arc::new(Mutex::new(State::new(system_clock(), fastrand::Rng::new()))),
        }
    }

    /// Like `new`, with ids, MACs and throttle dice drawn from a seeded
    /// generator so a test run can be replayed.
    pub fn with_seed(seed: u64) -> Self {
        SimVpc {
            inner: Arc::new(Mutex::new(State::new(
                system_clock(),
                fastrand::Rng::with_seed(seed),
            ))),
        }
    }

    /// Runs `f` under the lock. A panic elsewhere while holding the lock
    /// leaves the model consistent enough for tests to read, so poisoning
    /// is ignored rather than turned into a second panic.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Replaces the clock (unix ms); tests step it to cross the visibility
    /// delay and refill token buckets.
    pub fn set_clock(&self, clock: Clock) {
        self.with(|s| s.clock = clock)
    }

    /// The model's current time in unix ms.
    pub fn now_ms(&self) -> u64 {
        self.with(|s| s.now())
    }

    /// Empties the world and clears faults and counters; the clock stays.
    pub fn reset(&self) {
        self.with(|s| {
            let clock = s.clock.clone();
            let rng = fastrand::Rng::with_seed(s.rng.u64(..));
            *s = State::new(clock, rng);
        })
    }
}

impl Default for SimVpc {
    fn default() -> Self {
        SimVpc::new()
    }
}

impl fmt::Debug for SimVpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with(|s| {
            f.debug_struct("SimVpc")
                .field("vpcs", &s.vpcs.len())
                .field("subnets", &s.subnets.len())
                .field("instances", &s.instances.len())
                .field("enis", &s.enis.len())
                .finish()
        })
    }
}
