//! `ipamd max-pods`: kubelet's `--max-pods` for an instance type, by the formula ipamd's
//! pool uses ([`crate::vpc::math::max_pods`]), so that the value a node is started with and
//! the pool ipamd plans agree.
//!
//! The limits come from EC2's DescribeInstanceTypes when the standard AWS chain finds
//! credentials (and `AWS_ENDPOINT_URL_EC2` may point elsewhere), else from the table shipped
//! with the binary ([`vpc_cni_cloud::instance_types`]); `--source` forces one.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use vpc_cni_cloud::{instance_types, AwsEc2, Ec2, InstanceLimits};

use crate::error::IpamdError;
use crate::vpc::math::{self, Limits, PoolConfig};

/// Where the instance type's limits come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// EC2 when credentials are found, else the shipped table.
    Auto,
    /// EC2's DescribeInstanceTypes; an error without credentials.
    Ec2,
    /// The table shipped with ipamd, without asking EC2.
    Table,
}

#[derive(Debug, Clone, Args)]
pub struct MaxPodsArgs {
    /// The EC2 instance type, e.g. m5.large.
    #[arg(long, value_name = "TYPE")]
    pub instance_type: String,

    /// ENABLE_PREFIX_DELEGATION=true: /28 prefixes per ENI slot (Nitro types only; others
    /// fall back to addresses, as ipamd does).
    #[arg(long)]
    pub prefix_delegation: bool,

    /// Custom networking (pods on another subnet than the node): the primary ENI carries
    /// no pod addresses, so one ENI fewer.
    #[arg(long)]
    pub cni_custom_networking: bool,

    /// MAX_ENI: at most this many ENIs (capped at the type's limit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_eni: Option<u32>,

    /// Where the type's limits come from.
    #[arg(long, value_enum, default_value_t = Source::Auto)]
    pub source: Source,
}

/// Kubelet's max pods for a type with `limits`, as ipamd's pool would plan it.
#[must_use]
pub fn max_pods(limits: &InstanceLimits, args: &MaxPodsArgs) -> u32 {
    let limits = Limits {
        max_enis: limits.max_enis,
        ipv4_per_eni: limits.ipv4_per_eni,
        nitro: limits.nitro,
        vcpus: limits.vcpus,
    };
    let config = PoolConfig {
        prefix_delegation: args.prefix_delegation,
        max_eni: args.max_eni.unwrap_or(0),
        ..PoolConfig::default()
    };
    let mut enis = config.max_enis(&limits);
    if args.cni_custom_networking {
        enis = enis.saturating_sub(1);
    }
    math::max_pods(
        &PoolConfig {
            max_eni: 0,
            ..config
        },
        &Limits {
            max_enis: enis,
            ..limits
        },
    )
}

/// The type's limits from the shipped table.
pub fn table_limits(instance_type: &str) -> Result<InstanceLimits, IpamdError> {
    instance_types::instance_type(instance_type)
        .map(instance_types::InstanceType::limits)
        .ok_or_else(|| IpamdError::UnknownInstanceType {
            name: instance_type.to_owned(),
        })
}

async fn ec2_limits(ec2: &AwsEc2, instance_type: &str) -> Result<InstanceLimits, IpamdError> {
    ec2.instance_limits(instance_type)
        .await
        .map_err(IpamdError::cloud(format!(
            "DescribeInstanceTypes for instance type {instance_type:?}"
        )))
}

/// The limits from the source `args` asks for.
pub async fn limits(args: &MaxPodsArgs) -> Result<InstanceLimits, IpamdError> {
    let t = &args.instance_type;
    if args.source == Source::Table {
        return table_limits(t);
    }
    // One question: no bucket to pace, the SDK's defaults are fine.
    match AwsEc2::from_env_with_credentials(1.0, 1).await {
        Some(ec2) => ec2_limits(&ec2, t).await,
        None if args.source == Source::Auto => table_limits(t),
        None => Err(IpamdError::NoAwsCredentials),
    }
}

/// Prints the value, or the reason on stderr with exit 1.
#[must_use]
pub fn main(args: &MaxPodsArgs) -> ExitCode {
    super::finish(
        super::block_on("max-pods", limits(args))
            .map(|limits| format!("{}\n", max_pods(&limits, args))),
    )
}

#[cfg(test)]
#[path = "max_pods_tests.rs"]
mod tests;
