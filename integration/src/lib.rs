//! The end-to-end harness of vpc-cni, on top of `vpc-cni-testkit` (namespaces, processes,
//! plugin calls, pods): ipamd processes and nodes, the VPC fabric on `vpc-sim`, overlay
//! clusters, a fake Kubernetes API and the containerd image; shared by the end-to-end tests,
//! the demo and the benchmarks.
//!
//! Hygiene (DESIGN.md): every namespace a harness object creates has a unique
//! name and is deleted by its guard on drop, also when a test panics; every
//! process it starts is killed by PID on drop.

pub mod chaos;
pub mod deploy;
pub mod fabric;
pub mod fake_kube;
pub mod hybrid_cluster;
pub mod image;
pub mod ipamd_proc;
pub mod node;
pub mod overlay_cluster;
pub mod ping;
pub mod prometheus;
pub mod vpc_cluster;
pub mod vpcsim;
