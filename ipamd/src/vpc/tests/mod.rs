//! Pool controller tests: the pure math, and the controller end to end on
//! `cloud::sim` in memory with a real datastore.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod acceptance;
mod behaviour;
mod harness;
mod held;
mod leaked;
mod math;
mod pacing;
mod reclaim;
mod seen;
mod unwired;
