//! Tests of the VXLAN overlay: the pure core without root, the apply layer and traffic in
//! throwaway namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod core;
pub(crate) mod entries;
mod kernel;
mod scale;
mod traffic;
