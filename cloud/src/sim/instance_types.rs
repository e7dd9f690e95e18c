//! The instance-type table: the limits that decide how many pods a node can
//! hold (ENIs per instance, IPv4 addresses per ENI) and whether /28 prefix
//! delegation is possible (Nitro only).

use serde::Serialize;

/// One EC2 instance type's networking limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

const fn t(name: &'static str, max_enis: u32, ipv4: u32, nitro: bool, vcpus: u32) -> InstanceType {
    InstanceType {
        name,
        max_enis,
        ipv4_per_eni: ipv4,
        nitro,
        vcpus,
    }
}

/// Values as published by EC2 for the default network card.
static TABLE: &[InstanceType] = &[
    t("t2.micro", 2, 2, false, 1),
    t("t2.medium", 3, 6, false, 2),
    t("t2.large", 3, 12, false, 2),
    t("t3.micro", 2, 2, true, 2),
    t("t3.small", 3, 4, true, 2),
    t("t3.medium", 3, 6, true, 2),
    t("t3.large", 3, 12, true, 2),
    t("t3.xlarge", 4, 15, true, 4),
    t("t3.2xlarge", 4, 15, true, 8),
    t("m4.large", 2, 10, false, 2),
    t("m4.xlarge", 4, 15, false, 4),
    t("c4.large", 3, 10, false, 2),
    t("m5.large", 3, 10, true, 2),
    t("m5.xlarge", 4, 15, true, 4),
    t("m5.2xlarge", 4, 15, true, 8),
    t("m5.4xlarge", 8, 30, true, 16),
    t("m5.8xlarge", 8, 30, true, 32),
    t("m5.12xlarge", 8, 30, true, 48),
    t("m5.16xlarge", 15, 50, true, 64),
    t("m5.24xlarge", 15, 50, true, 96),
    t("c5.large", 3, 10, true, 2),
    t("c5.xlarge", 4, 15, true, 4),
    t("c5n.18xlarge", 15, 50, true, 72),
    t("m6i.large", 3, 10, true, 2),
];

/// Looks a type up by its EC2 name.
pub fn instance_type(name: &str) -> Option<&'static InstanceType> {
    TABLE.iter().find(|it| it.name == name)
}

/// The whole table, in a stable order.
pub fn instance_types() -> &'static [InstanceType] {
    TABLE
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_issue_types() {
        let want = [
            ("t3.medium", 3, 6, true, 2),
            ("t3.small", 3, 4, true, 2),
            ("m5.large", 3, 10, true, 2),
            ("m5.xlarge", 4, 15, true, 4),
            ("m5.4xlarge", 8, 30, true, 16),
            ("c5n.18xlarge", 15, 50, true, 72),
            ("m4.large", 2, 10, false, 2),
            ("t2.medium", 3, 6, false, 2),
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
    fn names_are_unique() {
        let mut names: Vec<_> = instance_types().iter().map(|t| t.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }
}
