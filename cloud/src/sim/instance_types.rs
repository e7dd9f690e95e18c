//! vpc-sim's instance types: the table shipped with the binaries
//! (`crate::instance_types`), so that the simulator and `ipamd max-pods` never disagree.

pub use crate::instance_types::{instance_type, instance_types, InstanceType};
