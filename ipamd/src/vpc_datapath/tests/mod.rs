//! Tests of VPC-mode node wiring: the pure plan and ruleset here without root, the apply
//! layer against the real kernel in throwaway namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod core;
mod golden;
mod kernel;
mod netns;
mod traffic;
