//! Overlay networking (VXLAN) for nodes without a VPC fabric.

pub mod peers;
pub mod vxlan;
