//! The EC2 actions [`crate::aws::AwsEc2`] sends, by their API (and IAM) names: what an IAM
//! policy for ipamd must allow. `deploy/iam-policy.json` is compared with this list both
//! ways (`integration/tests/deploy_manifests.rs`), and the list with the requests the client
//! really sends: a test drives every `Ec2` method over a fake HTTP connector and records the
//! `Action` of every request (`actions_tests.rs`).

/// Every EC2 action `AwsEc2` may send, sorted.
pub const EC2_ACTIONS: &[&str] = &[
    "AssignPrivateIpAddresses",
    "AttachNetworkInterface",
    "CreateNetworkInterface",
    "CreateTags",
    "DeleteNetworkInterface",
    "DescribeInstanceTypes",
    "DescribeNetworkInterfaces",
    "DescribeSubnets",
    "DetachNetworkInterface",
    "ModifyNetworkInterfaceAttribute",
    "UnassignPrivateIpAddresses",
];

#[cfg(test)]
#[path = "actions_tests.rs"]
mod tests;
