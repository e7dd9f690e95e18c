//! Every environment variable of the AWS VPC CNI (v1.x: its README, its manifest's env block
//! and its entrypoint), and what vpc-cni does with each. None is silently ignored:
//!
//! - *implemented*: one of our settings reads it (clap, under that very name);
//! - *equivalent*: accepted, with what vpc-cni does instead logged once at start, naming it;
//! - *refused*: ipamd exits naming it, unless its value asks for what we do anyway (then it
//!   is logged like an equivalent).
//!
//! `docs/configuration.md` lists the same table for operators.

use std::ffi::OsString;

use crate::error::IpamdError;

/// One AWS VPC CNI variable.
#[derive(Debug, Clone, Copy)]
pub struct AwsKnob {
    pub name: &'static str,
    pub treatment: Treatment,
}

/// What vpc-cni does with an AWS VPC CNI variable.
#[derive(Debug, Clone, Copy)]
pub enum Treatment {
    /// Read by our setting `by` (its variable, or the component that reads it).
    Implemented { by: &'static str },
    /// Accepted when its value is one of `values`; `instead` is what vpc-cni does.
    Equivalent {
        values: Values,
        instead: &'static str,
    },
    /// Refused unless its value is one of `values` (what vpc-cni does anyway); `feature` is
    /// what any other value asks for.
    Refused {
        values: Values,
        feature: &'static str,
    },
}

/// The values a variable may have.
#[derive(Debug, Clone, Copy)]
pub enum Values {
    Any,
    /// `true`/`false` as the AWS VPC CNI's Go code parses them (1, t, TRUE, 0, f, ...).
    AnyBool,
    /// Only this boolean.
    Bool(bool),
    /// One of these, compared trimmed and case-insensitively.
    OneOf(&'static [&'static str]),
    /// No value at all: any is refused.
    Nothing,
}

impl Values {
    fn admits(self, value: &str) -> bool {
        let value = value.trim();
        match self {
            Values::Any => true,
            Values::AnyBool => go_bool(value).is_some(),
            Values::Bool(want) => go_bool(value) == Some(want),
            Values::OneOf(list) => list.iter().any(|v| v.eq_ignore_ascii_case(value)),
            Values::Nothing => false,
        }
    }

    /// The values, for a refusal message.
    fn describe(self) -> String {
        match self {
            Values::Any => "any value".into(),
            Values::AnyBool => "true or false".into(),
            Values::Bool(b) => format!("only {b}"),
            Values::OneOf(list) => format!("only {}", list.join(" or ")),
            Values::Nothing => "leave it unset".into(),
        }
    }
}

/// Go's `strconv.ParseBool`, which the AWS VPC CNI reads its booleans with.
fn go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

const fn implemented(name: &'static str, by: &'static str) -> AwsKnob {
    AwsKnob {
        name,
        treatment: Treatment::Implemented { by },
    }
}

const fn equivalent(name: &'static str, values: Values, instead: &'static str) -> AwsKnob {
    AwsKnob {
        name,
        treatment: Treatment::Equivalent { values, instead },
    }
}

const fn refused(name: &'static str, values: Values, feature: &'static str) -> AwsKnob {
    AwsKnob {
        name,
        treatment: Treatment::Refused { values, feature },
    }
}

/// Custom networking and the knobs that only matter with it.
const NO_CUSTOM_NETWORKING: &str = "no effect: it names the Node annotation or label that picks \
    an ENIConfig, and custom networking (AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG) is refused";

/// Every AWS VPC CNI variable, in the order of `docs/configuration.md`.
pub const AWS_KNOBS: &[AwsKnob] = &[
    // --- the warm pool and ENIs ---
    implemented("WARM_ENI_TARGET", "WARM_ENI_TARGET"),
    implemented("WARM_IP_TARGET", "WARM_IP_TARGET"),
    implemented("MINIMUM_IP_TARGET", "MINIMUM_IP_TARGET"),
    implemented("WARM_PREFIX_TARGET", "WARM_PREFIX_TARGET"),
    implemented("ENABLE_PREFIX_DELEGATION", "ENABLE_PREFIX_DELEGATION"),
    implemented("MAX_ENI", "MAX_ENI"),
    implemented("IP_COOLDOWN_PERIOD", "IP_COOLDOWN_PERIOD"),
    implemented("AWS_VPC_ENI_MTU", "AWS_VPC_ENI_MTU"),
    implemented("POD_MTU", "POD_MTU"),
    implemented("ADDITIONAL_ENI_TAGS", "ADDITIONAL_ENI_TAGS"),
    implemented("CLUSTER_NAME", "CLUSTER_NAME"),
    implemented("DISABLE_LEAKED_ENI_CLEANUP", "DISABLE_LEAKED_ENI_CLEANUP"),
    refused(
        "MANAGE_UNTAGGED_ENI",
        Values::Bool(true),
        "leaving untagged ENIs alone",
    ),
    refused(
        "AWS_MANAGE_ENIS_NON_SCHEDULABLE",
        Values::Bool(false),
        "managing ENIs on unschedulable nodes",
    ),
    implemented("ENABLE_SUBNET_DISCOVERY", "ENABLE_SUBNET_DISCOVERY"),
    refused(
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
        Values::Bool(false),
        "custom networking (ENIConfig)",
    ),
    equivalent(
        "ENI_CONFIG_ANNOTATION_DEF",
        Values::Any,
        NO_CUSTOM_NETWORKING,
    ),
    equivalent("ENI_CONFIG_LABEL_DEF", Values::Any, NO_CUSTOM_NETWORKING),
    refused(
        "ENABLE_MULTI_NIC",
        Values::Bool(false),
        "ENIs on more than one network card",
    ),
    refused(
        "ENABLE_IMDS_ONLY_MODE",
        Values::Bool(false),
        "running without EC2 calls",
    ),
    refused(
        "DISABLE_NETWORK_RESOURCE_PROVISIONING",
        Values::Bool(false),
        "running without managing ENIs",
    ),
    refused(
        "AWS_VPC_K8S_CNI_BACKING_STORE",
        Values::Nothing,
        "another checkpoint path (vpc-cni's is IPAMD_STATE_DIR/ipam.json)",
    ),
    // --- address families and pod features ---
    equivalent(
        "ENABLE_IPv4",
        Values::Bool(true),
        "pods get IPv4 addresses, the only family vpc-cni hands out",
    ),
    refused("ENABLE_IPv6", Values::Bool(false), "IPv6 pods"),
    equivalent(
        "ENABLE_V4_EGRESS",
        Values::AnyBool,
        "no effect: it gives IPv6 pods IPv4 egress, and IPv6 pods (ENABLE_IPv6) are refused",
    ),
    refused(
        "ENABLE_V6_EGRESS",
        Values::Bool(false),
        "IPv6 egress for IPv4 pods (the egress plugin)",
    ),
    equivalent(
        "AWS_VPC_K8S_EGRESS_V4_PLUGIN_LOG_FILE",
        Values::Any,
        "no effect: vpc-cni runs no egress plugin",
    ),
    equivalent(
        "AWS_VPC_K8S_EGRESS_V6_PLUGIN_LOG_FILE",
        Values::Any,
        "no effect: vpc-cni runs no egress plugin",
    ),
    refused(
        "DISABLE_POD_V6",
        Values::Bool(false),
        "chaining the tuning plugin to turn IPv6 off in pods (chain it in the conflist)",
    ),
    refused(
        "ENABLE_BANDWIDTH_PLUGIN",
        Values::Bool(false),
        "chaining the bandwidth plugin (chain it in the conflist)",
    ),
    refused(
        "ENABLE_POD_ENI",
        Values::Bool(false),
        "security groups for pods (branch ENIs)",
    ),
    equivalent(
        "POD_SECURITY_GROUP_ENFORCING_MODE",
        Values::OneOf(&["strict", "standard"]),
        "no effect: it applies to branch-ENI pods, and ENABLE_POD_ENI is refused",
    ),
    refused(
        "DISABLE_TCP_EARLY_DEMUX",
        Values::Bool(false),
        "turning net.ipv4.tcp_early_demux off (vpc-cni leaves it as the node has it)",
    ),
    refused(
        "ANNOTATE_POD_IP",
        Values::Bool(false),
        "annotating pods with their address",
    ),
    equivalent(
        "NETWORK_POLICY_ENFORCING_MODE",
        Values::OneOf(&["standard"]),
        "vpc-cni runs no network policy agent: pods start with every flow allowed, as in \
         standard mode before a policy applies",
    ),
    // --- the node datapath ---
    implemented(
        "AWS_VPC_K8S_CNI_EXTERNALSNAT",
        "AWS_VPC_K8S_CNI_EXTERNALSNAT",
    ),
    implemented(
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
        "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
    ),
    refused(
        "AWS_VPC_K8S_CNI_RANDOMIZESNAT",
        Values::OneOf(&["prng"]),
        "another SNAT port randomisation (vpc-cni's SNAT is fully random, as prng)",
    ),
    refused(
        "AWS_VPC_K8S_CNI_CONNMARK",
        Values::OneOf(&["0x80", "128"]),
        "another connmark (vpc-cni's is 0x80)",
    ),
    refused(
        "AWS_VPC_CNI_NODE_PORT_SUPPORT",
        Values::Bool(true),
        "turning NodePort return routing off",
    ),
    refused(
        "AWS_EXTERNAL_SERVICE_CIDRS",
        Values::Nothing,
        "rule 1535 for external service CIDRs",
    ),
    equivalent(
        "AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER",
        Values::AnyBool,
        "vpc-cni always sets rp_filter=2 (loose) on the primary ENI, which NodePort return \
         traffic needs (the AWS VPC CNI deprecated this knob)",
    ),
    equivalent(
        "ENABLE_NFTABLES",
        Values::AnyBool,
        "vpc-cni always programs nftables (one table of its own), never iptables",
    ),
    equivalent(
        "AWS_VPC_K8S_CNI_VETHPREFIX",
        Values::OneOf(&["eni", "vpc"]),
        "host veths are named vpc… whatever this says, so that the sweep and a takeover \
         from aws-node tell vpc-cni's pods from aws-node's eni… ones",
    ),
    // --- the EC2 client ---
    implemented("AWS_EC2_ENDPOINT", "AWS_EC2_ENDPOINT"),
    implemented("HTTP_TIMEOUT", "HTTP_TIMEOUT"),
    // --- Kubernetes ---
    implemented("MY_NODE_NAME", "MY_NODE_NAME"),
    implemented("CLUSTER_ENDPOINT", "CLUSTER_ENDPOINT"),
    equivalent(
        "MY_POD_NAME",
        Values::Any,
        "no effect: vpc-cni names nothing after its own pod",
    ),
    equivalent(
        "VPC_ID",
        Values::Any,
        "no effect: vpc-cni reads the VPC of the node's primary ENI from IMDS",
    ),
    equivalent(
        "VPC_CNI_VERSION",
        Values::Any,
        "no effect: it names an AWS VPC CNI image; vpc-cni logs its own version at start",
    ),
    // --- logs ---
    implemented("AWS_VPC_K8S_CNI_LOGLEVEL", "LOG_LEVEL (alias)"),
    implemented("AWS_VPC_K8S_CNI_LOG_FILE", "AWS_VPC_K8S_CNI_LOG_FILE"),
    implemented(
        "AWS_VPC_K8S_PLUGIN_LOG_FILE",
        "the conflist's pluginLogFile, read by the plugin",
    ),
    implemented(
        "AWS_VPC_K8S_PLUGIN_LOG_LEVEL",
        "the conflist's pluginLogLevel, read by the plugin",
    ),
    // --- metrics and introspection ---
    implemented("DISABLE_METRICS", "DISABLE_METRICS"),
    implemented("DISABLE_INTROSPECTION", "DISABLE_INTROSPECTION"),
    implemented("INTROSPECTION_BIND_ADDRESS", "INTROSPECTION_BIND_ADDRESS"),
    // --- the AWS VPC CNI's entrypoint ---
    refused(
        "HOST_CNI_BIN_PATH",
        Values::OneOf(&["/host/opt/cni/bin"]),
        "another plugin directory (vpc-cni's init container runs `ipamd install-cni --to DIR`)",
    ),
    refused(
        "HOST_CNI_CONFDIR_PATH",
        Values::OneOf(&["/host/etc/cni/net.d"]),
        "another conflist directory (vpc-cni writes its conflist into CNI_CONF_DIR)",
    ),
];

/// An AWS VPC CNI variable set to a value vpc-cni accepts without implementing it: logged
/// once at start, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnobNotice {
    pub variable: &'static str,
    pub value: String,
    /// What vpc-cni does instead.
    pub instead: String,
}

impl std::fmt::Display for KnobNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AWS VPC CNI setting {}={:?} accepted: {}",
            self.variable, self.value, self.instead
        )
    }
}

/// Checks the environment (through `lookup`, so tests need not touch the process's) against
/// [`AWS_KNOBS`]: the first variable set to a value we refuse is an error naming it; the
/// accepted ones come back as notices to log once logging is up. An empty value counts as
/// unset, as the AWS VPC CNI reads it.
///
/// Values come raw: one that is not UTF-8 is set to something, so it is refused (shown as
/// best it can be), never taken as unset.
pub fn check_aws_knobs(
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<Vec<KnobNotice>, IpamdError> {
    let mut notices = Vec::new();
    for knob in AWS_KNOBS {
        let (values, text, refusing) = match knob.treatment {
            Treatment::Implemented { .. } => continue,
            Treatment::Equivalent { values, instead } => (values, instead, None),
            Treatment::Refused { values, feature } => {
                (values, "vpc-cni does this anyway", Some(feature))
            }
        };
        let Some(raw) = lookup(knob.name) else {
            continue;
        };
        let value = raw.to_string_lossy().into_owned();
        let utf8 = raw.to_str().is_some();
        if utf8 && value.trim().is_empty() {
            continue;
        }
        if utf8 && values.admits(&value) {
            notices.push(KnobNotice {
                variable: knob.name,
                value,
                instead: text.to_owned(),
            });
            continue;
        }
        let reason = match refusing {
            Some(feature) => format!(
                "vpc-cni does not implement {feature}; {}",
                values.describe()
            ),
            None => format!("vpc-cni accepts {} ({text})", values.describe()),
        };
        return Err(IpamdError::Unsupported {
            variable: knob.name,
            value,
            reason,
        });
    }
    Ok(notices)
}

/// The knob of this name, if the AWS VPC CNI has one.
#[must_use]
pub fn aws_knob(name: &str) -> Option<&'static AwsKnob> {
    AWS_KNOBS.iter().find(|k| k.name == name)
}

#[cfg(test)]
#[path = "aws_knobs_tests.rs"]
mod tests;
