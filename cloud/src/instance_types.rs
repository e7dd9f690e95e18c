//! The instance-type table shipped with the binaries: the limits that decide how many pods
//! a node can hold (ENIs, IPv4 addresses per ENI) and whether /28 prefix delegation is
//! possible (Nitro only), for when EC2's DescribeInstanceTypes cannot be asked.
//!
//! The facts live in `data/instance-types.txt` (its header names the sources); `build.rs`
//! compiles them in. vpc-sim answers DescribeInstanceTypes from the same table.

use crate::api::InstanceLimits;

/// One EC2 instance type's networking limits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "sim", derive(serde::Serialize))]
pub struct InstanceType {
    pub name: &'static str,
    /// Network interfaces on the default network card.
    pub max_enis: u32,
    /// IPv4 addresses per ENI, primary included; /28 prefixes count against it too.
    pub ipv4_per_eni: u32,
    /// Nitro instances accept prefix delegation.
    pub nitro: bool,
    pub vcpus: u32,
}

impl InstanceType {
    /// The limits as the `Ec2` seam reports them.
    #[must_use]
    pub fn limits(&self) -> InstanceLimits {
        InstanceLimits {
            max_enis: self.max_enis,
            ipv4_per_eni: self.ipv4_per_eni,
            nitro: self.nitro,
            vcpus: self.vcpus,
        }
    }
}

static TABLE: &[InstanceType] = include!(concat!(env!("OUT_DIR"), "/instance_types.rs"));

/// Looks a type up by its EC2 name.
#[must_use]
pub fn instance_type(name: &str) -> Option<&'static InstanceType> {
    TABLE.iter().find(|it| it.name == name)
}

/// The whole table, in the data file's order.
#[must_use]
pub fn instance_types() -> &'static [InstanceType] {
    TABLE
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_published_values() {
        let want = [
            ("t3.medium", 3, 6, true, 2),
            ("t3.small", 3, 4, true, 2),
            ("m5.large", 3, 10, true, 2),
            ("m5.xlarge", 4, 15, true, 4),
            ("m5.4xlarge", 8, 30, true, 16),
            ("m5.24xlarge", 15, 50, true, 96),
            ("c5n.18xlarge", 15, 50, true, 72),
            ("m4.large", 2, 10, false, 2),
            ("t2.medium", 3, 6, false, 2),
            ("i3.metal", 15, 50, false, 72),
            ("m6i.32xlarge", 15, 50, true, 128),
            ("t3a.small", 2, 4, true, 2),
            ("g4dn.16xlarge", 4, 15, true, 64),
            ("hpc6a.48xlarge", 2, 50, true, 96),
        ];
        for (name, enis, ips, nitro, vcpus) in want {
            let it = instance_type(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(
                (it.max_enis, it.ipv4_per_eni, it.nitro, it.vcpus),
                (enis, ips, nitro, vcpus),
                "{name}"
            );
        }
        assert!(instance_type("x9.nonexistent").is_none());
    }

    #[test]
    fn types_launched_since_2022_give_the_published_max_pods() {
        // Max pods as the AWS VPC CNI publishes them (misc/eni-max-pods.txt), which is
        // enis * (ipv4 - 1) + 2 on the default network card: multi-card and odd-sized
        // types included, so a mistyped row shows here.
        let want = [
            ("m7i.large", 29),
            ("m7g.medium", 8),
            ("c7g.16xlarge", 737),
            ("c7i-flex.large", 29),
            ("r7iz.metal-32xl", 737),
            ("m8g.metal-48xl", 737),
            ("c6in.32xlarge", 394),
            ("i4i.24xlarge", 437),
            ("i7ie.12xlarge", 394),
            ("g6e.12xlarge", 292),
            ("g6e.48xlarge", 492),
            ("p5.48xlarge", 100),
            ("p5en.48xlarge", 198),
            ("trn1.32xlarge", 247),
            ("hpc6id.32xlarge", 51),
            ("hpc7g.16xlarge", 198),
            ("u7in-16tb.224xlarge", 394),
            ("d3en.12xlarge", 89),
            ("mac2-m2pro.metal", 234),
            // Rows the 2022 user guide overstated.
            ("g5.48xlarge", 345),
            ("h1.16xlarge", 394),
            ("inf1.24xlarge", 321),
            ("u-6tb1.metal", 147),
        ];
        for (name, pods) in want {
            let it = instance_type(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(it.max_enis * (it.ipv4_per_eni - 1) + 2, pods, "{name}");
        }
        let metal = instance_type("m7i.metal-48xl").expect("m7i.metal-48xl");
        assert!(
            !metal.nitro,
            "bare metal: no hypervisor, as DescribeInstanceTypes reports it"
        );
        assert_eq!(metal.vcpus, 192);
    }

    #[test]
    fn the_table_is_whole() {
        // build.rs refuses duplicates and zeros; this guards against an empty include.
        assert!(instance_types().len() > 1000, "{}", instance_types().len());
        assert!(instance_types().iter().all(|t| t.ipv4_per_eni >= 2));
    }
}
