//! Overlay networking (VXLAN) for nodes without a VPC fabric: the device and per-peer
//! entries ([`vxlan`]), where peers come from ([`peers`]), the underlay they ride on, the SNAT
//! table, the pod-CIDR pool, the node datapath that ties them together and the loop that
//! follows the peers.

pub mod datapath;
pub mod hybrid;
pub mod peers;
pub mod pool;
pub mod run;
pub mod snat;
pub mod underlay;
pub mod vxlan;

pub use datapath::OverlayDatapath;
pub use hybrid::HybridDatapath;
pub use run::run_peer_loop;
pub use underlay::Underlay;

#[cfg(test)]
mod hybrid_tests;
#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod tests;
