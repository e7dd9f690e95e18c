//! AWS VPC CNI settings this implementation does not have. A drop-in that
//! silently ignores a setting is worse than none: each one set to anything
//! but what we do stops ipamd with a message that names it.

use std::ffi::OsString;

use crate::error::IpamdError;

/// (variable, the values that describe what we do anyway, what it asks for).
const UNSUPPORTED: &[(&str, &[&str], &str)] = &[
    ("ENABLE_IPv6", &["false"], "IPv6 pods"),
    (
        "ENABLE_POD_ENI",
        &["false"],
        "security groups for pods (branch ENIs)",
    ),
    (
        "POD_SECURITY_GROUP_ENFORCING_MODE",
        &["strict"],
        "security groups for pods",
    ),
    (
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
        &["false"],
        "custom networking (ENIConfig)",
    ),
    (
        "AWS_VPC_K8S_CNI_VETHPREFIX",
        &["vpc"],
        "another host veth prefix",
    ),
    (
        "AWS_EXTERNAL_SERVICE_CIDRS",
        &[""],
        "rule 1535 for external service CIDRs",
    ),
    (
        "ENABLE_SUBNET_DISCOVERY",
        &["false"],
        "ENIs in subnets other than the primary ENI's",
    ),
    (
        "AWS_VPC_K8S_CNI_RANDOMIZESNAT",
        &["prng"],
        "another SNAT port randomisation",
    ),
    (
        "AWS_VPC_K8S_CNI_CONNMARK",
        &["0x80", "128"],
        "another connmark",
    ),
    (
        "AWS_VPC_CNI_NODE_PORT_SUPPORT",
        &["true"],
        "turning NodePort return routing off",
    ),
    (
        "ENABLE_V4_EGRESS",
        &["false"],
        "a second interface for the other IP family",
    ),
    (
        "ENABLE_V6_EGRESS",
        &["false"],
        "a second interface for the other IP family",
    ),
    (
        "ENABLE_MULTI_NIC",
        &["false"],
        "ENIs on more than one network card",
    ),
    (
        "ENABLE_IMDS_ONLY_MODE",
        &["false"],
        "running without EC2 calls",
    ),
    (
        "DISABLE_NETWORK_RESOURCE_PROVISIONING",
        &["false"],
        "running without managing ENIs",
    ),
    (
        "MANAGE_UNTAGGED_ENI",
        &["true"],
        "leaving untagged ENIs alone",
    ),
    (
        "AWS_MANAGE_ENIS_NON_SCHEDULABLE",
        &["false"],
        "managing ENIs on unschedulable nodes",
    ),
    (
        "ANNOTATE_POD_IP",
        &["false"],
        "annotating pods with their address",
    ),
    (
        "AWS_VPC_K8S_CNI_BACKING_STORE",
        &[],
        "another checkpoint path (use IPAMD_STATE_DIR)",
    ),
];

/// Checks the environment (through `lookup`, so tests need not touch the
/// process's) for AWS VPC CNI settings we do not implement.
///
/// Values come raw: one that is not UTF-8 is set to something, so it is refused (shown as
/// best it can be), never taken as unset.
pub fn refuse_unsupported_knobs(
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<(), IpamdError> {
    for (name, accepted, feature) in UNSUPPORTED {
        let Some(value) = lookup(name) else { continue };
        let value = value.to_string_lossy().into_owned();
        let normalised = value.trim().to_ascii_lowercase();
        if !accepted.contains(&normalised.as_str()) {
            let ours = if accepted.is_empty() {
                "leave it unset".to_string()
            } else {
                format!("only {:?} is supported", accepted)
            };
            return Err(IpamdError::Unsupported {
                variable: name,
                value,
                reason: format!("{feature} is not implemented; {ours}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn defaults_and_matching_values_pass() {
        refuse_unsupported_knobs(env(&[])).unwrap();
        refuse_unsupported_knobs(env(&[
            ("ENABLE_IPv6", "false"),
            ("AWS_VPC_K8S_CNI_CONNMARK", "0x80"),
        ]))
        .unwrap();
    }

    #[test]
    fn a_feature_we_lack_is_refused_by_name() {
        let err = refuse_unsupported_knobs(env(&[("ENABLE_POD_ENI", "true")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ENABLE_POD_ENI") && text.contains("true"),
            "{text}"
        );
        let err =
            refuse_unsupported_knobs(env(&[("AWS_VPC_K8S_CNI_BACKING_STORE", "/x")])).unwrap_err();
        assert!(err.to_string().contains("AWS_VPC_K8S_CNI_BACKING_STORE"));
    }

    /// Found by `prop_unsupported_knobs_name_the_knob`: ipamd read these knobs with
    /// `std::env::var(..).ok()`, so a value that is not UTF-8 counted as unset and the knob
    /// was silently ignored.
    #[test]
    fn a_value_that_is_not_utf8_is_refused_not_ignored() {
        use std::os::unix::ffi::OsStringExt;
        let raw = || Some(OsString::from_vec(b"tru\xffe".to_vec()));
        let err =
            refuse_unsupported_knobs(|k| (k == "ENABLE_IPv6").then(raw).flatten()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ENABLE_IPv6") && text.contains('\u{fffd}'),
            "{text}"
        );
    }
}
