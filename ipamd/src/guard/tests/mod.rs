//! Tests of the pod guard: the exact batch without root, and against the real kernel in
//! throwaway namespaces: the tables as `nft` lists them, their repair, and what they let
//! through for pods wired by the plugin's own code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod golden;
mod kernel;
mod node;
mod traffic;
