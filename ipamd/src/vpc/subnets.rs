//! Subnet discovery (`ENABLE_SUBNET_DISCOVERY`, the AWS VPC CNI's default): which subnets a
//! new ENI may go to, best first. The candidates are the primary ENI's subnet, unless tagged
//! `kubernetes.io/role/cni=0`, and the subnets of the VPC in the node's availability zone
//! tagged `kubernetes.io/role/cni` with any other value; the one with the most free
//! addresses comes first; a subnet EC2 recently called full waits out its pause.

use std::collections::HashMap;

use vpc_cni_cloud::{SubnetId, SubnetInfo};

/// The tag that puts a subnet in, or (`0`) takes it out of, subnet discovery.
pub const CNI_ROLE_TAG: &str = "kubernetes.io/role/cni";

/// Subnets EC2 answered full, and until when (unix ms) each is skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FullSubnets {
    until_ms: HashMap<SubnetId, u64>,
}

impl FullSubnets {
    pub fn mark(&mut self, subnet: &SubnetId, until_ms: u64) {
        self.until_ms.insert(subnet.clone(), until_ms);
    }

    #[must_use]
    pub fn is_paused(&self, subnet: &SubnetId, now_ms: u64) -> bool {
        self.until_ms.get(subnet).is_some_and(|&t| t > now_ms)
    }

    /// When the first paused subnet may be tried again, if any is paused now.
    #[must_use]
    pub fn next_retry(&self, now_ms: u64) -> Option<u64> {
        self.until_ms
            .values()
            .copied()
            .filter(|&t| t > now_ms)
            .min()
    }
}

/// The subnets a new ENI may go to, best first. `listed` is what DescribeSubnets answered for
/// the VPC and zone (the primary subnet among them, with its tags); the primary subnet is a
/// candidate even when the listing lacks it.
#[must_use]
pub fn candidates(
    primary: &SubnetId,
    listed: &[SubnetInfo],
    full: &FullSubnets,
    now_ms: u64,
) -> Vec<SubnetId> {
    let opted_out = |s: &SubnetInfo| s.tags.get(CNI_ROLE_TAG).is_some_and(|v| v.trim() == "0");
    let mut chosen: Vec<&SubnetInfo> = listed
        .iter()
        .filter(|s| {
            let tagged_in = s.tags.contains_key(CNI_ROLE_TAG) && !opted_out(s);
            (s.id == *primary && !opted_out(s)) || tagged_in
        })
        .filter(|s| !full.is_paused(&s.id, now_ms))
        .collect();
    // Most free first; ties by id, so the choice is stable.
    chosen.sort_by(|a, b| {
        b.available_addresses
            .cmp(&a.available_addresses)
            .then_with(|| a.id.as_str().cmp(b.id.as_str()))
    });
    let mut ids: Vec<SubnetId> = chosen.into_iter().map(|s| s.id.clone()).collect();
    let primary_listed = listed.iter().any(|s| s.id == *primary);
    if !primary_listed && !full.is_paused(primary, now_ms) {
        ids.push(primary.clone());
    }
    ids
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn subnet(id: &str, free: u32, role: Option<&str>) -> SubnetInfo {
        SubnetInfo {
            id: SubnetId::new(id),
            cidr: "10.0.0.0/24".parse().unwrap(),
            availability_zone: "us-west-2a".into(),
            available_addresses: free,
            tags: role
                .map(|v| BTreeMap::from([(CNI_ROLE_TAG.to_string(), v.to_string())]))
                .unwrap_or_default(),
        }
    }

    fn ids(v: &[SubnetId]) -> Vec<&str> {
        v.iter().map(SubnetId::as_str).collect()
    }

    #[test]
    fn the_primary_and_tagged_subnets_most_free_first() {
        let primary = SubnetId::new("subnet-p");
        let listed = [
            subnet("subnet-p", 10, None),
            subnet("subnet-a", 200, Some("1")),
            subnet("subnet-b", 50, Some("")),
            subnet("subnet-untagged", 900, None),
            subnet("subnet-out", 900, Some("0")),
        ];
        let full = FullSubnets::default();
        assert_eq!(
            ids(&candidates(&primary, &listed, &full, 0)),
            ["subnet-a", "subnet-b", "subnet-p"]
        );
    }

    #[test]
    fn a_primary_tagged_0_is_left_out_and_an_unlisted_one_comes_last() {
        let primary = SubnetId::new("subnet-p");
        let full = FullSubnets::default();
        let opted_out = [
            subnet("subnet-p", 900, Some("0")),
            subnet("subnet-a", 5, Some("1")),
        ];
        assert_eq!(
            ids(&candidates(&primary, &opted_out, &full, 0)),
            ["subnet-a"]
        );
        let unlisted = [subnet("subnet-a", 5, Some("1"))];
        assert_eq!(
            ids(&candidates(&primary, &unlisted, &full, 0)),
            ["subnet-a", "subnet-p"]
        );
        assert_eq!(ids(&candidates(&primary, &[], &full, 0)), ["subnet-p"]);
    }

    #[test]
    fn a_full_subnet_waits_out_its_pause_alone() {
        let primary = SubnetId::new("subnet-p");
        let listed = [
            subnet("subnet-p", 0, None),
            subnet("subnet-a", 100, Some("1")),
        ];
        let mut full = FullSubnets::default();
        full.mark(&SubnetId::new("subnet-a"), 1_000);
        assert_eq!(
            ids(&candidates(&primary, &listed, &full, 999)),
            ["subnet-p"]
        );
        assert_eq!(full.next_retry(999), Some(1_000));
        assert_eq!(
            ids(&candidates(&primary, &listed, &full, 1_000)),
            ["subnet-a", "subnet-p"]
        );
        assert_eq!(full.next_retry(1_000), None);
    }
}
