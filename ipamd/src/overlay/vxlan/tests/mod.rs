//! Tests of the VXLAN overlay: the pure core without root, the apply layer and traffic in
//! throwaway namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod core;
mod kernel;
mod netns;
mod scale;
mod traffic;
