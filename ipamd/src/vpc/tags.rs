//! The EC2 tags and description by which ENIs are recognised as ours (or as not ours to touch).

use std::collections::BTreeMap;

use super::rfc3339;

pub const INSTANCE_ID_TAG: &str = "vpc-cni.io/instance-id";
pub const CREATED_AT_TAG: &str = "vpc-cni.io/created-at";
pub const CLUSTER_TAG: &str = "cluster.k8s.amazonaws.com/name";
/// Descriptions of ENIs we create start with this.
pub const DESCRIPTION_PREFIX: &str = "vpc-cni-";
/// The AWS VPC CNI's opt-out tag, honoured for drop-in use.
pub const NO_MANAGE_TAG: &str = "node.k8s.amazonaws.com/no_manage";

/// Whether the ENI's tags say ipamd must leave it alone.
#[must_use]
pub fn is_no_manage(tags: &BTreeMap<String, String>) -> bool {
    tags.get(NO_MANAGE_TAG)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// When we created the ENI (unix ms), from our creation tag; `None` without a readable one.
#[must_use]
pub fn created_ms(tags: &BTreeMap<String, String>) -> Option<u64> {
    tags.get(CREATED_AT_TAG).and_then(|t| rfc3339::parse(t))
}
